/* DriverEntry loops forever at PASSIVE_LEVEL: Windows would wait forever; ntmem's
 * watchdog stops it after --timeout (exit 4), naming DriverEntry. */
#include <ntddk.h>

static volatile LONG spinning = 1;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    while (spinning) {
    }
    return STATUS_SUCCESS;
}
