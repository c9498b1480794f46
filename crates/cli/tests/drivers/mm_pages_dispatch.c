/* MmAllocatePagesForMdl at DISPATCH_LEVEL (the page says IRQL <= APC_LEVEL): 0x0A. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PHYSICAL_ADDRESS low, high, skip;
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    low.QuadPart = 0;
    high.QuadPart = -1;
    skip.QuadPart = 0;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    MmAllocatePagesForMdl(low, high, skip, PAGE_SIZE);
    KeLowerIrql(old);
    DbgPrint("mm: allocated at dispatch\n");
    return STATUS_SUCCESS;
}
