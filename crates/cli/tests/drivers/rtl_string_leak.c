/* RtlCreateUnicodeString's copy and RtlUnicodeStringToAnsiString's buffer are pool
 * the driver owns: one freed, one forgotten, the leak named by the tag Windows'
 * run-time library allocates with. */
#include <ntddk.h>

static UNICODE_STRING kept;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ANSI_STRING ansi;
    UNREFERENCED_PARAMETER(RegistryPath);
    if (!RtlCreateUnicodeString(&kept, L"forgotten")) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (!NT_SUCCESS(RtlUnicodeStringToAnsiString(&ansi, &kept, TRUE))) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlFreeAnsiString(&ansi);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
