/* A %s argument that points at unmapped system memory: the stop the driver's own
 * read of it gives, not a host crash. */
#include <ntddk.h>
#include <ntstrsafe.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    char buffer[32];
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    RtlStringCbPrintfA(buffer, sizeof(buffer), "%s", (const char *)MmSystemRangeStart + 0x1000);
    DbgPrint("rtl: printed %s\n", buffer);
    return STATUS_SUCCESS;
}
