/* A user-address fault inside __try at DISPATCH_LEVEL is not an exception: 0xD1 / 0x0A. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    __try {
        *(volatile ULONG *)(ULONG_PTR)0x10000 = 1;
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrint("seh_dispatch_level: caught (wrong)\n");
    }
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
