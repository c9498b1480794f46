/* DriverEntry raises to DISPATCH_LEVEL and loops forever: the DPC watchdog's
 * DPC_WATCHDOG_VIOLATION (0x133, 1 = time cumulatively at DISPATCH_LEVEL or above). */
#include <ntddk.h>

static volatile LONG spinning = 1;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    while (spinning) {
    }
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
