/* Writes through a near-null pointer: an access violation in driver code, 0x8E. */
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    volatile PULONG p = (PULONG)(ULONG_PTR)0x10;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    *p = 1;
    return STATUS_SUCCESS;
}
