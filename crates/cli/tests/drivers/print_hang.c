/* DriverEntry prints forever at PASSIVE_LEVEL: most ticks land inside ntmem's
 * DbgPrint (which holds locks and allocates), so the timeout waits until the driver's
 * own code runs again, and the report is complete. */
#include <ntddk.h>

static volatile LONG spinning = 1;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ULONG n = 0;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    while (spinning) {
        DbgPrint("print_hang: line %lu with some text to format\n", n++);
    }
    return STATUS_SUCCESS;
}
