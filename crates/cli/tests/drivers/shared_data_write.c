/* A write to KUSER_SHARED_DATA: the page is read-only, so ATTEMPTED_WRITE_TO_READONLY_MEMORY
 * (0xBE) with the address written. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("shared: writing at %p\n", (PVOID)&SharedUserData->TickCountMultiplier);
    *(volatile ULONG *)&SharedUserData->TickCountMultiplier = 1;
    DbgPrint("shared: wrote the shared page\n");
    return STATUS_SUCCESS;
}
