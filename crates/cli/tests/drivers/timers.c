/* Dispatcher objects on simulated time: a wait that times out, a timer whose DPC
 * signals an event a wait is satisfied by, a semaphore, a delay, and a periodic
 * timer ticking while the scenario advances time. With -DWAIT_FOREVER, a wait that
 * nothing can ever satisfy. */
#include <ntddk.h>

static KEVENT Event;
static KTIMER Timer, Periodic;
static KDPC Dpc, TickDpc;
static KSEMAPHORE Semaphore;
static volatile LONG Ticks;

static ULONG NowMs(VOID)
{
    return (ULONG)(KeQueryInterruptTime() / 10000);
}

static VOID TimerDpc(PKDPC Dpc, PVOID Context, PVOID Argument1, PVOID Argument2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Argument2);
    DbgPrint("dpc at %lu ms, IRQL %d, expiry %I64u ms\n", NowMs(), KeGetCurrentIrql(), ((ULONG64)Argument1) / 10000);
    KeSetEvent((PKEVENT)Context, 0, FALSE);
}

static VOID TickDpcRoutine(PKDPC Dpc, PVOID Context, PVOID Argument1, PVOID Argument2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(Argument1);
    UNREFERENCED_PARAMETER(Argument2);
    InterlockedIncrement(&Ticks);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("unload at %lu ms: %ld ticks, cancelled %d\n", NowMs(), Ticks, KeCancelTimer(&Periodic));
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LARGE_INTEGER due, timeout, zero, delay;
    NTSTATUS status, caught = 0;
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeEvent(&Event, NotificationEvent, FALSE);
    KeInitializeTimer(&Timer);
    KeInitializeDpc(&Dpc, TimerDpc, &Event);
    due.QuadPart = -50 * 10000;
    DbgPrint("set %d\n", KeSetTimer(&Timer, due, &Dpc));
    timeout.QuadPart = -20 * 10000;
    status = KeWaitForSingleObject(&Event, Executive, KernelMode, FALSE, &timeout);
    DbgPrint("wait 20 ms: %08x at %lu ms\n", status, NowMs());
    status = KeWaitForSingleObject(&Event, Executive, KernelMode, FALSE, NULL);
    DbgPrint("wait: %08x at %lu ms, timer signalled %d, event %ld\n", status, NowMs(), KeReadStateTimer(&Timer),
             KeReadStateEvent(&Event));
    KeInitializeSemaphore(&Semaphore, 1, 1);
    zero.QuadPart = 0;
    status = KeWaitForSingleObject(&Semaphore, Executive, KernelMode, FALSE, &zero);
    DbgPrint("semaphore: %08x, then %08x\n", status, KeWaitForSingleObject(&Semaphore, Executive, KernelMode, FALSE, &zero));
    __try {
        KeReleaseSemaphore(&Semaphore, 0, 1, FALSE);
        KeReleaseSemaphore(&Semaphore, 0, 1, FALSE);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        caught = GetExceptionCode();
    }
    DbgPrint("over the limit: %08x, count %ld\n", caught, KeReadStateSemaphore(&Semaphore));
    delay.QuadPart = -5 * 10000;
    KeDelayExecutionThread(KernelMode, FALSE, &delay);
    DbgPrint("delayed to %lu ms\n", NowMs());
#ifdef WAIT_FOREVER
    KeResetEvent(&Event);
    KeWaitForSingleObject(&Event, Executive, KernelMode, FALSE, NULL);
#endif
    KeInitializeTimerEx(&Periodic, NotificationTimer);
    KeInitializeDpc(&TickDpc, TickDpcRoutine, NULL);
    due.QuadPart = -10 * 10000;
    KeSetTimerEx(&Periodic, due, 10, &TickDpc);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
