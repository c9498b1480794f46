/* KeRaiseIrql to a level below the current one: IRQL_NOT_GREATER_OR_EQUAL (0x09). */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old, older;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    KeRaiseIrql(APC_LEVEL, &older);
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
