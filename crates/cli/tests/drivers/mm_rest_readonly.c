/* A write through an MDL mapping MmProtectMdlSystemAddress made read-only:
 * ATTEMPTED_WRITE_TO_READONLY_MEMORY (0xBE), the address first. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PHYSICAL_ADDRESS low, high, skip;
    PMDL mdl;
    volatile UCHAR *va;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    low.QuadPart = 0;
    high.QuadPart = -1;
    skip.QuadPart = 0;
    mdl = MmAllocatePagesForMdl(low, high, skip, PAGE_SIZE);
    if (mdl == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    va = (volatile UCHAR *)MmMapLockedPagesSpecifyCache(mdl, KernelMode, MmCached, NULL, FALSE, NormalPagePriority);
    if (va == NULL || MmProtectMdlSystemAddress(mdl, PAGE_READONLY) != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    DbgPrint("mm_rest: read %d, writing at %p\n", va[16], va + 16);
    va[16] = 1;
    DbgPrint("mm_rest: wrote a read-only mapping\n");
    return STATUS_SUCCESS;
}
