/*
 * ntmem: contiguous and noncached memory, physical addresses, device registers and
 * I/O ports (seed 000 sections 7.3 and 8). Included by wdm.h; declares only what
 * ntmem implements.
 */
#ifndef NTMEM_MEMORY_H
#define NTMEM_MEMORY_H

/* The C run-time routines ntoskrnl exports, and the WDK's macros over them. */
NTKERNELAPI void *memcpy(void *Destination, const void *Source, size_t Count);
NTKERNELAPI void *memmove(void *Destination, const void *Source, size_t Count);
NTKERNELAPI void *memset(void *Destination, int Value, size_t Count);
NTKERNELAPI int memcmp(const void *Buffer1, const void *Buffer2, size_t Count);
#define RtlCopyMemory(Destination, Source, Length) memcpy((Destination), (Source), (Length))
#define RtlCopyBytes RtlCopyMemory
#define RtlMoveMemory(Destination, Source, Length) memmove((Destination), (Source), (Length))
#define RtlZeroBytes RtlZeroMemory
#define RtlFillBytes RtlFillMemory
#define RtlFillMemory(Destination, Length, Fill) memset((Destination), (Fill), (Length))
#define RtlZeroMemory(Destination, Length) memset((Destination), 0, (Length))
#define RtlEqualMemory(Destination, Source, Length) (!memcmp((Destination), (Source), (Length)))
/* The number of leading bytes that match (Length when all do). Any IRQL for
 * nonpaged blocks, else below DISPATCH_LEVEL. */
NTSYSAPI SIZE_T RtlCompareMemory(const VOID *Source1, const VOID *Source2, SIZE_T Length);
/* Length / 4 copies of Pattern (Destination ULONG-aligned, Length a multiple of 4). */
NTSYSAPI VOID RtlFillMemoryUlong(PVOID Destination, SIZE_T Length, ULONG Pattern);
/* A macro on AMD64: Length / 8 copies of Pattern. */
static __inline VOID RtlFillMemoryUlonglong(PVOID Destination, SIZE_T Length, ULONGLONG Pattern)
{
    volatile ULONGLONG *d = (volatile ULONGLONG *)Destination;
    for (SIZE_T i = 0; i < Length / sizeof(ULONGLONG); i++) d[i] = Pattern;
}
/* Zeroes through volatile stores, so the compiler keeps them (FORCEINLINE in the WDK). */
static __inline PVOID RtlSecureZeroMemory(PVOID ptr, SIZE_T cnt)
{
    volatile char *p = (volatile char *)ptr;
    while (cnt != 0) {
        *p++ = 0;
        cnt--;
    }
    return ptr;
}

/* The kernel's variables (host addresses of the simulated machine's boundaries). */
extern NTKERNELAPI PVOID MmSystemRangeStart;
extern NTKERNELAPI PVOID MmHighestUserAddress;
extern NTKERNELAPI ULONG_PTR MmUserProbeAddress;
extern NTKERNELAPI ULONG NtBuildNumber;
extern NTKERNELAPI CCHAR KeNumberProcessors;
#define MM_SYSTEM_RANGE_START MmSystemRangeStart
#define MM_HIGHEST_USER_ADDRESS MmHighestUserAddress
#define MM_USER_PROBE_ADDRESS MmUserProbeAddress

typedef enum _MEMORY_CACHING_TYPE {
    MmNonCached = 0,
    MmCached = 1,
    MmWriteCombined = 2,
    MmHardwareCoherentCached = 3,
    MmNonCachedUnordered = 4,
    MmUSWCCached = 5,
    MmMaximumCacheType = 6
} MEMORY_CACHING_TYPE;

NTKERNELAPI PVOID MmAllocateContiguousMemory(SIZE_T NumberOfBytes, PHYSICAL_ADDRESS HighestAcceptableAddress);
NTKERNELAPI PVOID MmAllocateContiguousMemorySpecifyCache(SIZE_T NumberOfBytes,
                                                         PHYSICAL_ADDRESS LowestAcceptableAddress,
                                                         PHYSICAL_ADDRESS HighestAcceptableAddress,
                                                         PHYSICAL_ADDRESS BoundaryAddressMultiple,
                                                         MEMORY_CACHING_TYPE CacheType);
NTKERNELAPI VOID MmFreeContiguousMemory(PVOID BaseAddress);
NTKERNELAPI VOID MmFreeContiguousMemorySpecifyCache(PVOID BaseAddress, SIZE_T NumberOfBytes,
                                                    MEMORY_CACHING_TYPE CacheType);
NTKERNELAPI PVOID MmAllocateNonCachedMemory(SIZE_T NumberOfBytes);
NTKERNELAPI VOID MmFreeNonCachedMemory(PVOID BaseAddress, SIZE_T NumberOfBytes);
NTKERNELAPI PHYSICAL_ADDRESS MmGetPhysicalAddress(PVOID BaseAddress);
NTKERNELAPI BOOLEAN MmIsAddressValid(PVOID VirtualAddress);

/* Pageable image sections (PAGE*): locked resident while in use, as Windows does. */
NTKERNELAPI PVOID MmLockPagableDataSection(PVOID AddressWithinSection);
#define MmLockPagableCodeSection(Address) MmLockPagableDataSection(Address)
NTKERNELAPI VOID MmLockPagableSectionByHandle(PVOID ImageSectionHandle);
NTKERNELAPI VOID MmUnlockPagableImageSection(PVOID ImageSectionHandle);
NTKERNELAPI PVOID MmPageEntireDriver(PVOID AddressWithinSection);
NTKERNELAPI VOID MmResetDriverPaging(PVOID AddressWithinSection);
NTKERNELAPI PVOID MmMapIoSpace(PHYSICAL_ADDRESS PhysicalAddress, SIZE_T NumberOfBytes, MEMORY_CACHING_TYPE CacheType);
NTKERNELAPI VOID MmUnmapIoSpace(PVOID BaseAddress, SIZE_T NumberOfBytes);

/* I/O ports: routines, as the HAL exports them. */
NTKERNELAPI UCHAR READ_PORT_UCHAR(PUCHAR Port);
NTKERNELAPI USHORT READ_PORT_USHORT(PUSHORT Port);
NTKERNELAPI ULONG READ_PORT_ULONG(PULONG Port);
NTKERNELAPI VOID WRITE_PORT_UCHAR(PUCHAR Port, UCHAR Value);
NTKERNELAPI VOID WRITE_PORT_USHORT(PUSHORT Port, USHORT Value);
NTKERNELAPI VOID WRITE_PORT_ULONG(PULONG Port, ULONG Value);
NTKERNELAPI VOID READ_PORT_BUFFER_UCHAR(PUCHAR Port, PUCHAR Buffer, ULONG Count);
NTKERNELAPI VOID READ_PORT_BUFFER_USHORT(PUSHORT Port, PUSHORT Buffer, ULONG Count);
NTKERNELAPI VOID READ_PORT_BUFFER_ULONG(PULONG Port, PULONG Buffer, ULONG Count);
NTKERNELAPI VOID WRITE_PORT_BUFFER_UCHAR(PUCHAR Port, PUCHAR Buffer, ULONG Count);
NTKERNELAPI VOID WRITE_PORT_BUFFER_USHORT(PUSHORT Port, PUSHORT Buffer, ULONG Count);
NTKERNELAPI VOID WRITE_PORT_BUFFER_ULONG(PULONG Port, PULONG Buffer, ULONG Count);

/* Memory-mapped registers: inline volatile accesses, as in the x64 WDK. */
#define NTMEM_REGISTER_ACCESSORS(T, NAME)                                                   \
    static inline T READ_REGISTER_##NAME(volatile T *Register) { return *Register; }        \
    static inline VOID WRITE_REGISTER_##NAME(volatile T *Register, T Value) { *Register = Value; } \
    static inline VOID READ_REGISTER_BUFFER_##NAME(volatile T *Register, T *Buffer, ULONG Count) { \
        for (ULONG i = 0; i < Count; i++) Buffer[i] = Register[i];                           \
    }                                                                                       \
    static inline VOID WRITE_REGISTER_BUFFER_##NAME(volatile T *Register, T *Buffer, ULONG Count) { \
        for (ULONG i = 0; i < Count; i++) Register[i] = Buffer[i];                           \
    }
NTMEM_REGISTER_ACCESSORS(UCHAR, UCHAR)
NTMEM_REGISTER_ACCESSORS(USHORT, USHORT)
NTMEM_REGISTER_ACCESSORS(ULONG, ULONG)
NTMEM_REGISTER_ACCESSORS(ULONG64, ULONG64)
#undef NTMEM_REGISTER_ACCESSORS

#endif /* NTMEM_MEMORY_H */
