/* A key handle closed twice: the second ZwClose is INVALID_KERNEL_HANDLE (0x93). */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE key;
    OBJECT_ATTRIBUTES oa;
    UNREFERENCED_PARAMETER(DriverObject);
    InitializeObjectAttributes(&oa, RegistryPath, OBJ_KERNEL_HANDLE, NULL, NULL);
    if (ZwOpenKey(&key, KEY_READ, &oa) != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    ZwClose(key);
    ZwClose(key);
    DbgPrint("reg: closed twice\n");
    return STATUS_SUCCESS;
}
