/* ProbeForRead of a system-space address, as a user request might pass one:
 * STATUS_ACCESS_VIOLATION raised, and the driver's except block runs (seed §9). */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PVOID block = ExAllocatePoolWithTag(NonPagedPool, 64, 'borP');
    volatile NTSTATUS caught = STATUS_SUCCESS;

    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (block == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    try {
        ProbeForRead(block, 64, sizeof(UCHAR));
        DbgPrint("probe: not raised\n");
    } except (EXCEPTION_EXECUTE_HANDLER) {
        caught = GetExceptionCode();
        DbgPrint("probe: except block ran with 0x%08X\n", (ULONG)caught);
    }
    try {
        ProbeForRead((PVOID)0x10001, 8, sizeof(ULONG));
    } except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrint("probe: misaligned 0x%08X\n", (ULONG)GetExceptionCode());
    }
    ProbeForRead(block, 0, sizeof(UCHAR));
    DbgPrint("probe: length 0 checks nothing\n");
    ExFreePoolWithTag(block, 'borP');
    return caught == STATUS_ACCESS_VIOLATION ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
