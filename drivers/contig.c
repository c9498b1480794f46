/*
 * contig: allocates physically contiguous, noncached memory below 4 GB in
 * DriverEntry — as seed 000 section 7.3 advises, before memory fragments — and
 * reports where it landed. The allocation is the seed's sample, unmodified.
 */
#include <ntddk.h>

#define MemLength (64 * 1024)

static PVOID MemBuff;

static VOID ContigUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    MmFreeContiguousMemorySpecifyCache(MemBuff, MemLength, MmNonCached);
    DbgPrint("contig: freed the buffer\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PHYSICAL_ADDRESS LowestAcceptable, HighestAcceptable, BoundaryMultiple, Physical;
    ULONG i;

    UNREFERENCED_PARAMETER(RegistryPath);

    LowestAcceptable.QuadPart = 0;
    BoundaryMultiple.QuadPart = 0;
    HighestAcceptable.QuadPart = 0xFFFFFFFF;
    MemBuff = MmAllocateContiguousMemorySpecifyCache(MemLength,
                    LowestAcceptable,
                    HighestAcceptable,
                    BoundaryMultiple,
                    MmNonCached);
    if (MemBuff == NULL) {
        return(STATUS_INSUFFICIENT_RESOURCES);
        }

    Physical = MmGetPhysicalAddress(MemBuff);
    DbgPrint("contig: %u bytes at virtual %p, physical 0x%llx\n", MemLength, MemBuff,
             (unsigned long long)Physical.QuadPart);
    for (i = 1; i < MemLength / PAGE_SIZE; i++) {
        PHYSICAL_ADDRESS p = MmGetPhysicalAddress((PUCHAR)MemBuff + i * PAGE_SIZE);
        if (p.QuadPart != Physical.QuadPart + (LONGLONG)i * PAGE_SIZE) {
            DbgPrint("contig: page %u is not contiguous\n", i);
            return STATUS_UNSUCCESSFUL;
        }
    }
    DbgPrint("contig: all %u pages physically contiguous and below 4 GB: %s\n",
             MemLength / PAGE_SIZE, Physical.QuadPart + MemLength <= 0x100000000LL ? "yes" : "no");

    DriverObject->DriverUnload = ContigUnload;
    return STATUS_SUCCESS;
}
