/*
 * ntmem: contiguous and noncached memory, physical addresses, device registers and
 * I/O ports (seed 000 sections 7.3 and 8). Included by wdm.h; declares only what
 * ntmem implements.
 */
#ifndef NTMEM_MEMORY_H
#define NTMEM_MEMORY_H

/* Memory copies and fills, as the WDK's macros over the C library. */
#define RtlCopyMemory(Destination, Source, Length) __builtin_memcpy((Destination), (Source), (Length))
#define RtlCopyBytes RtlCopyMemory
#define RtlMoveMemory(Destination, Source, Length) __builtin_memmove((Destination), (Source), (Length))
#define RtlFillMemory(Destination, Length, Fill) __builtin_memset((Destination), (Fill), (Length))
#define RtlZeroMemory(Destination, Length) __builtin_memset((Destination), 0, (Length))
#define RtlEqualMemory(Destination, Source, Length) (!__builtin_memcmp((Destination), (Source), (Length)))

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
