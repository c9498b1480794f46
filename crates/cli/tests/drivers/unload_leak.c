/* A leak at unload under pool tracking (crates/cli/tests/vf_unload.rs): DriverEntry
 * allocates 0x30 bytes of paged pool and 0x50 + 0x20 bytes of nonpaged pool, and
 * Unload frees none of them. On Windows 2000 the stop is 0xC4/0x60 (0x30, 0x70, 3);
 * from Windows XP on 0xC4/0x62 (the driver's name, 0, 3). */
#include <ntddk.h>

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    if (ExAllocatePoolWithTag(PagedPool, 0x30, 'gaPL') == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (ExAllocatePoolWithTag(NonPagedPool, 0x50, 'pNL1') == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (ExAllocatePoolWithTag(NonPagedPool, 0x20, 'pNL2') == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
