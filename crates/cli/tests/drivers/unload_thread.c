/* Pool tracking during an unload (0xC4/0x61, crates/cli/tests/vf_unload.rs). DriverEntry
 * keeps two blocks (0x30 bytes paged, 0x50 nonpaged, freed by Unload) and starts a
 * system thread that, every 10 ms (KeDelayExecutionThread), allocates a 0x40-byte
 * nonpaged block and frees it, until the Stop event is set.
 * Default (the bug): Unload "gives the thread time to finish" by sleeping 50 ms before
 * it sets Stop, so the thread allocates while the driver unloads: 0x61 with the two
 * kept blocks outstanding (0x30, 0x50, 2).
 * -DSTOPS_FIRST: Unload sets Stop, waits on the thread object (the thread sees Stop
 * after its sleep and returns without allocating), then frees its blocks: no stop.
 * -DBY_DPC: no thread; a periodic 10 ms timer's DPC allocates and frees instead, and
 * Unload sleeps 50 ms before it cancels the timer: 0x61 from the DPC.
 * -DBY_WORK_ITEM: no thread; a work item (ExQueueWorkItem) sleeps 20 ms in its worker
 * thread, then allocates; Unload sleeps 50 ms first: 0x61 from the worker thread.
 * -DUNLOAD_ALLOCATES: the clean unload, and Unload itself allocates and frees a
 * block first: the thread running the unload may. */
#include <ntddk.h>

static KEVENT Stop;
static PVOID Thread;
static PVOID KeptPaged, KeptNonpaged;
static KTIMER Timer;
static KDPC Dpc;
static WORK_QUEUE_ITEM Item;

static VOID Sleep(LONG ms)
{
    LARGE_INTEGER delay;
    delay.QuadPart = -(LONGLONG)ms * 10000;
    KeDelayExecutionThread(KernelMode, FALSE, &delay);
}

static VOID Churn(void)
{
    PVOID p = ExAllocatePoolWithTag(NonPagedPool, 0x40, 'nrhC');
    if (p != NULL) {
        ExFreePoolWithTag(p, 'nrhC');
    }
}

static VOID Loop(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    for (;;) {
        Sleep(10);
        if (KeReadStateEvent(&Stop) != 0) {
            break;
        }
        Churn();
    }
    DbgPrint("thread: stopped\n");
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static VOID Tick(PKDPC Dpc_, PVOID Context, PVOID Argument1, PVOID Argument2)
{
    UNREFERENCED_PARAMETER(Dpc_);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(Argument1);
    UNREFERENCED_PARAMETER(Argument2);
    Churn();
}

static VOID Deferred(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    Sleep(20);
    Churn();
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
#ifdef UNLOAD_ALLOCATES
    Churn();
#endif
#if defined(BY_DPC)
    Sleep(50);
    KeCancelTimer(&Timer);
    KeFlushQueuedDpcs();
#elif defined(BY_WORK_ITEM)
    Sleep(50);
#else
#if !defined(STOPS_FIRST) && !defined(UNLOAD_ALLOCATES)
    Sleep(50);
#endif
    KeSetEvent(&Stop, 0, FALSE);
    KeWaitForSingleObject(Thread, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(Thread);
#endif
    ExFreePoolWithTag(KeptPaged, 'tpeK');
    ExFreePoolWithTag(KeptNonpaged, 'tpeK');
    DbgPrint("unload: done\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    KeptPaged = ExAllocatePoolWithTag(PagedPool, 0x30, 'tpeK');
    KeptNonpaged = ExAllocatePoolWithTag(NonPagedPool, 0x50, 'tpeK');
    if (KeptPaged == NULL || KeptNonpaged == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    KeInitializeEvent(&Stop, NotificationEvent, FALSE);
#if defined(BY_WORK_ITEM)
    ExInitializeWorkItem(&Item, Deferred, NULL);
    ExQueueWorkItem(&Item, DelayedWorkQueue);
#elif defined(BY_DPC)
    {
        LARGE_INTEGER due;
        due.QuadPart = -10 * 10000LL;
        KeInitializeDpc(&Dpc, Tick, NULL);
        KeInitializeTimer(&Timer);
        KeSetTimerEx(&Timer, due, 10, &Dpc);
    }
#else
    {
        HANDLE handle;
        NTSTATUS status = PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Loop, NULL);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &Thread, NULL);
        ZwClose(handle);
    }
#endif
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
