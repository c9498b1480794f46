/* ZwOpenKey at DISPATCH_LEVEL: the registry routines are pageable (PASSIVE_LEVEL),
 * so this is IRQL_NOT_LESS_OR_EQUAL (0x0A). */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE key;
    KIRQL old;
    OBJECT_ATTRIBUTES oa;
    UNREFERENCED_PARAMETER(DriverObject);
    InitializeObjectAttributes(&oa, RegistryPath, OBJ_KERNEL_HANDLE, NULL, NULL);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    ZwOpenKey(&key, KEY_READ, &oa);
    KeLowerIrql(old);
    DbgPrint("reg: opened at dispatch\n");
    return STATUS_SUCCESS;
}
