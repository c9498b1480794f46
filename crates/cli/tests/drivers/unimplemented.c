/* Calls a routine ntmem does not declare: it must not compile. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    MmAllocateMappingAddress(PAGE_SIZE, 'paMR');
    return STATUS_SUCCESS;
}
