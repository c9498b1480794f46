/* IoCreateSymbolicLink at DISPATCH_LEVEL: a PASSIVE_LEVEL routine, pageable on Windows. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING link, device;
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);

    RtlInitUnicodeString(&link, L"\\DosDevices\\Raised");
    RtlInitUnicodeString(&device, L"\\Device\\Raised");
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    IoCreateSymbolicLink(&link, &device);
    DbgPrint("symlink_dispatch: not reached\n");
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
