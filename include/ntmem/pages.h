/*
 * ntmem: MDLs that own their pages (MmAllocatePagesForMdl, MmAllocatePagesForMdlEx,
 * MmFreePagesFromMdl). Included by wdm.h. Written from Microsoft's public
 * documentation of these routines and of the MM_ALLOCATE_* flags (wdm.h).
 */
#ifndef NTMEM_PAGES_H
#define NTMEM_PAGES_H

#define MM_DONT_ZERO_ALLOCATION 0x00000001
#define MM_ALLOCATE_FROM_LOCAL_NODE_ONLY 0x00000002
#define MM_ALLOCATE_FULLY_REQUIRED 0x00000004
#define MM_ALLOCATE_NO_WAIT 0x00000008
#define MM_ALLOCATE_PREFER_CONTIGUOUS 0x00000010
#define MM_ALLOCATE_REQUIRE_CONTIGUOUS_CHUNKS 0x00000020

/* May describe fewer bytes than asked (MmGetMdlByteCount says how many); the MDL is
 * not mapped; ExFreePool frees it after MmFreePagesFromMdl. IRQL <= APC_LEVEL. */
NTKERNELAPI PMDL MmAllocatePagesForMdl(PHYSICAL_ADDRESS LowAddress, PHYSICAL_ADDRESS HighAddress,
                                       PHYSICAL_ADDRESS SkipBytes, SIZE_T TotalBytes);
NTKERNELAPI PMDL MmAllocatePagesForMdlEx(PHYSICAL_ADDRESS LowAddress, PHYSICAL_ADDRESS HighAddress,
                                         PHYSICAL_ADDRESS SkipBytes, SIZE_T TotalBytes,
                                         MEMORY_CACHING_TYPE CacheType, ULONG Flags);
NTKERNELAPI VOID MmFreePagesFromMdl(PMDL MemoryDescriptorList);

#endif
