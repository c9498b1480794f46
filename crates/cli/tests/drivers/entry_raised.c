/* DriverEntry returns holding a spin lock, at DISPATCH_LEVEL: the system worker
 * thread that ran it stops with WORKER_THREAD_RETURNED_AT_BAD_IRQL (0xE1). */
#include <ntddk.h>

static KSPIN_LOCK lock;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&lock);
    KeAcquireSpinLock(&lock, &old);
    return STATUS_SUCCESS; /* the bug: the lock is still held */
}
