/* RtlUnicodeStringToAnsiString is PASSIVE_LEVEL (pageable on Windows): called at
 * DISPATCH_LEVEL it is IRQL_NOT_LESS_OR_EQUAL. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"name");
    ANSI_STRING ansi;
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    DbgPrint("rtl: converted %x\n", RtlUnicodeStringToAnsiString(&ansi, &name, TRUE));
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
