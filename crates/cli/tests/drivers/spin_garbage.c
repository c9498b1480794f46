/* KeAcquireSpinLock on a lock word that is not zero and never clears (uninitialised
 * pool filled with 0xCC): it spins at DISPATCH_LEVEL until the DPC watchdog stops the
 * machine with DPC_WATCHDOG_VIOLATION (0x133). */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    PKSPIN_LOCK lock;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    lock = (PKSPIN_LOCK)ExAllocatePoolWithTag(NonPagedPool, sizeof(KSPIN_LOCK), 'kcoL');
    if (lock == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlFillMemory(lock, sizeof(KSPIN_LOCK), 0xCC);
    KeAcquireSpinLock(lock, &old);
    KeReleaseSpinLock(lock, old);
    ExFreePoolWithTag(lock, 'kcoL');
    return STATUS_SUCCESS;
}
