/* Frees a block twice: BAD_POOL_CALLER (0xC2), subcode 7. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PVOID p;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    p = ExAllocatePoolWithTag(PagedPool, 100, 'lbuD');
    if (p == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    ExFreePoolWithTag(p, 'lbuD');
    DbgPrint("double_free: freeing again\n");
    ExFreePoolWithTag(p, 'lbuD');
    DbgPrint("double_free: not reached\n");
    return STATUS_SUCCESS;
}
