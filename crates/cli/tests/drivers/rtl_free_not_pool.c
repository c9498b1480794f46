/* RtlFreeUnicodeString on a string whose buffer is not pool (a literal): the pool's
 * BAD_POOL_CALLER, as on Windows. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING literal;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    RtlInitUnicodeString(&literal, L"not pool");
    RtlFreeUnicodeString(&literal);
    DbgPrint("rtl: freed\n");
    return STATUS_SUCCESS;
}
