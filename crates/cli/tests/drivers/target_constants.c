/* Prints the constants the headers give for the machine the driver is built for. */
#include <ntddk.h>
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("PAGE_SIZE %u PAGE_SHIFT %u NTDDI_VERSION %08x _WIN32_WINNT %04x\n", (ULONG)PAGE_SIZE,
             (ULONG)PAGE_SHIFT, (ULONG)NTDDI_VERSION, (ULONG)_WIN32_WINNT);
    return STATUS_SUCCESS;
}
