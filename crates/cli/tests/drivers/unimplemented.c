/* Calls a routine ntmem does not declare: it must not compile. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    MmAllocateMappingAddressEx(PAGE_SIZE, 'paMR', 0);
    return STATUS_SUCCESS;
}
