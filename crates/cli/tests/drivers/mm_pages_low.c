/* MmAllocatePagesForMdl(Ex) under Driver Verifier's low resources simulation: with
 * every call failed, each returns NULL (and the driver must cope). */
#include <ntddk.h>

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PHYSICAL_ADDRESS low, high, skip;
    PMDL a, b;
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverUnload = Unload;
    low.QuadPart = 0;
    high.QuadPart = -1;
    skip.QuadPart = 0;
    a = MmAllocatePagesForMdl(low, high, skip, PAGE_SIZE);
    b = MmAllocatePagesForMdlEx(low, high, skip, PAGE_SIZE, MmCached, MM_ALLOCATE_FULLY_REQUIRED);
    DbgPrint("mm: pages %s, ex %s\n", a ? "allocated" : "NULL", b ? "allocated" : "NULL");
    if (a) {
        MmFreePagesFromMdl(a);
        ExFreePool(a);
    }
    if (b) {
        MmFreePagesFromMdl(b);
        ExFreePool(b);
    }
    return STATUS_SUCCESS;
}
