/* Allocates in DriverEntry and forgets to free in DriverUnload. */
#include <ntddk.h>

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    if (ExAllocatePoolWithTag(NonPagedPool, 48, 'kaeL') == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (ExAllocatePool(PagedPool, 16) == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
