/* DriverEntry fails, having freed what it allocated. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PVOID p = ExAllocatePoolWithTag(NonPagedPool, 32, 'liaF');
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (p != NULL) {
        ExFreePoolWithTag(p, 'liaF');
    }
    return STATUS_INSUFFICIENT_RESOURCES;
}
