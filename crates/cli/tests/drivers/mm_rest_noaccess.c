/* A read through an MDL mapping MmProtectMdlSystemAddress made PAGE_NOACCESS:
 * PAGE_FAULT_IN_NONPAGED_AREA (0x50). */
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
    if (va == NULL || MmProtectMdlSystemAddress(mdl, PAGE_NOACCESS) != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    DbgPrint("mm_rest: reading at %p\n", va + 8);
    DbgPrint("mm_rest: read %d from a no-access mapping\n", va[8]);
    return STATUS_SUCCESS;
}
