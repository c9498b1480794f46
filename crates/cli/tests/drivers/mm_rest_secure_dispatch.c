/* MmSecureVirtualMemory at DISPATCH_LEVEL (the page says IRQL <= APC_LEVEL): 0x0A. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    MmSecureVirtualMemory((PVOID)(ULONG_PTR)0x10000, 16, PAGE_READONLY);
    KeLowerIrql(old);
    DbgPrint("mm_rest: secured at dispatch\n");
    return STATUS_SUCCESS;
}
