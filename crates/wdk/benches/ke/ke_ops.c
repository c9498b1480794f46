/* One dispatcher operation, LOOPS times per DriverEntry call (issue 11's benchmark):
 *   OP 1: KeAcquireSpinLock + KeReleaseSpinLock, uncontended;
 *   OP 2: KeSetEvent + a satisfied KeWaitForSingleObject (synchronization event);
 *   OP 3: a timer expiring through its DPC: KeSetTimer 1 ms ahead, then a wait on it
 *         (simulated time moves to the due time, the DPC runs). */
#include <ntddk.h>

static KSPIN_LOCK Lock;
static KEVENT Event;
static KTIMER Timer;
static KDPC Dpc;
static volatile LONG Fired;

static VOID Expired(PKDPC D, PVOID Context, PVOID A1, PVOID A2)
{
    UNREFERENCED_PARAMETER(D);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(A1);
    UNREFERENCED_PARAMETER(A2);
    Fired++;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LONG i;
    KIRQL irql;
    LARGE_INTEGER due;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&Lock);
    KeInitializeEvent(&Event, SynchronizationEvent, FALSE);
    KeInitializeTimer(&Timer);
    KeInitializeDpc(&Dpc, Expired, NULL);
    Fired = 0;
    due.QuadPart = -10000;
    for (i = 0; i < LOOPS; i++) {
#if OP == 1
        KeAcquireSpinLock(&Lock, &irql);
        KeReleaseSpinLock(&Lock, irql);
#elif OP == 2
        UNREFERENCED_PARAMETER(irql);
        KeSetEvent(&Event, IO_NO_INCREMENT, FALSE);
        if (KeWaitForSingleObject(&Event, Executive, KernelMode, FALSE, NULL) != STATUS_SUCCESS) {
            return STATUS_UNSUCCESSFUL;
        }
#else
        UNREFERENCED_PARAMETER(irql);
        KeSetTimer(&Timer, due, &Dpc);
        if (KeWaitForSingleObject(&Timer, Executive, KernelMode, FALSE, NULL) != STATUS_SUCCESS) {
            return STATUS_UNSUCCESSFUL;
        }
#endif
    }
#if OP == 3
    if (Fired != LOOPS) {
        return STATUS_UNSUCCESSFUL;
    }
#endif
    return STATUS_SUCCESS;
}
