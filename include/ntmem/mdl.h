/*
 * ntmem: MDLs that own their pages, partial MDLs, and the memory manager's and the
 * kernel's small queries (seed 000 sections 5 and 9; learn.microsoft.com, each
 * routine's page in wdm.h). Included by wdm.h after io.h, which declares MDL.
 */
#ifndef NTMEM_MDL_H
#define NTMEM_MDL_H

#ifndef STATUS_INVALID_PARAMETER_2
#define STATUS_INVALID_PARAMETER_2 ((NTSTATUS)0xC00000F0L)
#endif

/* MmAllocatePagesForMdlEx's Flags. */
#define MM_DONT_ZERO_ALLOCATION 0x00000001
#define MM_ALLOCATE_FROM_LOCAL_NODE_ONLY 0x00000002
#define MM_ALLOCATE_FULLY_REQUIRED 0x00000004
#define MM_ALLOCATE_NO_WAIT 0x00000008
#define MM_ALLOCATE_PREFER_CONTIGUOUS 0x00000010
#define MM_ALLOCATE_REQUIRE_CONTIGUOUS_CHUNKS 0x00000020

NTKERNELAPI VOID IoBuildPartialMdl(PMDL SourceMdl, PMDL TargetMdl, PVOID VirtualAddress, ULONG Length);
/* May describe fewer pages than asked: MmGetMdlByteCount says how many. */
NTKERNELAPI PMDL MmAllocatePagesForMdl(PHYSICAL_ADDRESS LowAddress, PHYSICAL_ADDRESS HighAddress,
                                       PHYSICAL_ADDRESS SkipBytes, SIZE_T TotalBytes);
NTKERNELAPI PMDL MmAllocatePagesForMdlEx(PHYSICAL_ADDRESS LowAddress, PHYSICAL_ADDRESS HighAddress,
                                         PHYSICAL_ADDRESS SkipBytes, SIZE_T TotalBytes,
                                         MEMORY_CACHING_TYPE CacheType, ULONG Flags);
NTKERNELAPI VOID MmFreePagesFromMdl(PMDL MemoryDescriptorList);
NTKERNELAPI NTSTATUS MmAdvanceMdl(PMDL Mdl, ULONG NumberOfBytes);
NTKERNELAPI SIZE_T MmSizeOfMdl(PVOID Base, SIZE_T Length);
NTKERNELAPI PVOID MmMapLockedPages(PMDL MemoryDescriptorList, KPROCESSOR_MODE AccessMode);

/* Macros in the WDK; inline functions with the same effect here. */
static __inline VOID MmInitializeMdl(PMDL MemoryDescriptorList, PVOID BaseVa, SIZE_T Length)
{
    MemoryDescriptorList->Next = NULL;
    MemoryDescriptorList->Size =
        (CSHORT)(sizeof(MDL) + sizeof(PFN_NUMBER) * ADDRESS_AND_SIZE_TO_SPAN_PAGES(BaseVa, Length));
    MemoryDescriptorList->MdlFlags = 0;
    MemoryDescriptorList->StartVa = (PVOID)((ULONG_PTR)BaseVa & ~(ULONG_PTR)(PAGE_SIZE - 1));
    MemoryDescriptorList->ByteOffset = (ULONG)((ULONG_PTR)BaseVa & (PAGE_SIZE - 1));
    MemoryDescriptorList->ByteCount = (ULONG)Length;
}
/* Before a partial MDL describes another part: its own mapping, if any, goes. */
static __inline VOID MmPrepareMdlForReuse(PMDL Mdl)
{
    if (Mdl->MdlFlags & MDL_PARTIAL_HAS_BEEN_MAPPED) {
        MmUnmapLockedPages(Mdl->MappedSystemVa, Mdl);
    }
}

NTKERNELAPI BOOLEAN MmIsNonPagedSystemAddressValid(PVOID VirtualAddress);
NTKERNELAPI PVOID MmGetSystemRoutineAddress(PUNICODE_STRING SystemRoutineName);
NTKERNELAPI BOOLEAN MmIsThisAnNtAsSystem(VOID);
NTKERNELAPI ULONG KeGetRecommendedSharedDataAlignment(VOID);
NTKERNELAPI ULONG_PTR IoGetRemainingStackSize(VOID);
NTKERNELAPI VOID IoGetStackLimits(PULONG_PTR LowLimit, PULONG_PTR HighLimit);

/* ---- Page protections, system size, secured user memory, NUMA contiguous memory,
 * physical to virtual (issue 11 item 5) ---- */
#define PAGE_NOACCESS 0x01
#define PAGE_READONLY 0x02
#define PAGE_READWRITE 0x04
#define PAGE_WRITECOPY 0x08
#define PAGE_EXECUTE 0x10
#define PAGE_EXECUTE_READ 0x20
#define PAGE_EXECUTE_READWRITE 0x40
#define PAGE_EXECUTE_WRITECOPY 0x80
#define PAGE_GUARD 0x100
#define PAGE_NOCACHE 0x200
#define PAGE_WRITECOMBINE 0x400

#ifndef STATUS_NOT_MAPPED_VIEW
#define STATUS_NOT_MAPPED_VIEW ((NTSTATUS)0xC0000019L)
#endif
#ifndef STATUS_INVALID_PAGE_PROTECTION
#define STATUS_INVALID_PAGE_PROTECTION ((NTSTATUS)0xC0000045L)
#endif

typedef enum _MM_SYSTEM_SIZE { MmSmallSystem, MmMediumSystem, MmLargeSystem } MM_SYSTEMSIZE;

NTKERNELAPI MM_SYSTEMSIZE MmQuerySystemSize(VOID);
/* A write through a mapping made read-only stops with 0xBE, as on Windows. */
NTKERNELAPI NTSTATUS MmProtectMdlSystemAddress(PMDL MemoryDescriptorList, ULONG NewProtect);
NTKERNELAPI HANDLE MmSecureVirtualMemory(PVOID Address, SIZE_T Size, ULONG ProbeMode);
NTKERNELAPI VOID MmUnsecureVirtualMemory(HANDLE SecureHandle);
/* One NUMA node: PreferredNode 0 or MM_ANY_NODE_OK. Freed by MmFreeContiguousMemory. */
NTKERNELAPI PVOID MmAllocateContiguousNodeMemory(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS LowestAcceptableAddress,
                                                 PHYSICAL_ADDRESS HighestAcceptableAddress,
                                                 PHYSICAL_ADDRESS BoundaryAddressMultiple, ULONG Protect,
                                                 NODE_REQUIREMENT PreferredNode);
NTKERNELAPI PVOID MmGetVirtualForPhysical(PHYSICAL_ADDRESS PhysicalAddress);

#endif /* NTMEM_MDL_H */
