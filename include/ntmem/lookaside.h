/*
 * ntmem: lookaside lists (seed 000 sections 5.2 and 7.2). Included by wdm.h.
 * Layouts are the x64 WDK's: drivers are built for the 64-bit host.
 */
#ifndef NTMEM_LOOKASIDE_H
#define NTMEM_LOOKASIDE_H

typedef union DECLSPEC_ALIGN(16) _SLIST_HEADER {
    struct {
        ULONGLONG Alignment;
        ULONGLONG Region;
    };
} SLIST_HEADER, *PSLIST_HEADER;

/* The current number of entries on the list: the low 16 bits of the header. */
#define ExQueryDepthSList(SListHead) ((USHORT)((SListHead)->Alignment & 0xFFFF))

struct _LOOKASIDE_LIST_EX;
typedef PVOID (*PALLOCATE_FUNCTION)(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
typedef VOID (*PFREE_FUNCTION)(PVOID Buffer);
typedef PVOID (*PALLOCATE_FUNCTION_EX)(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                       struct _LOOKASIDE_LIST_EX *Lookaside);
typedef VOID (*PFREE_FUNCTION_EX)(PVOID Buffer, struct _LOOKASIDE_LIST_EX *Lookaside);

#define NTMEM_GENERAL_LOOKASIDE_FIELDS \
    SLIST_HEADER ListHead;             \
    USHORT Depth;                      \
    USHORT MaximumDepth;               \
    ULONG TotalAllocates;              \
    union {                            \
        ULONG AllocateMisses;          \
        ULONG AllocateHits;            \
    };                                 \
    ULONG TotalFrees;                  \
    union {                            \
        ULONG FreeMisses;              \
        ULONG FreeHits;                \
    };                                 \
    POOL_TYPE Type;                    \
    ULONG Tag;                         \
    ULONG Size;                        \
    union {                            \
        PALLOCATE_FUNCTION_EX AllocateEx; \
        PALLOCATE_FUNCTION Allocate;   \
    };                                 \
    union {                            \
        PFREE_FUNCTION_EX FreeEx;      \
        PFREE_FUNCTION Free;           \
    };                                 \
    LIST_ENTRY ListEntry;              \
    ULONG LastTotalAllocates;          \
    union {                            \
        ULONG LastAllocateMisses;      \
        ULONG LastAllocateHits;        \
    };                                 \
    ULONG Future[2];

typedef struct DECLSPEC_ALIGN(64) _GENERAL_LOOKASIDE {
    NTMEM_GENERAL_LOOKASIDE_FIELDS
} GENERAL_LOOKASIDE, *PGENERAL_LOOKASIDE;

typedef struct _GENERAL_LOOKASIDE_POOL {
    NTMEM_GENERAL_LOOKASIDE_FIELDS
} GENERAL_LOOKASIDE_POOL, *PGENERAL_LOOKASIDE_POOL;

typedef struct DECLSPEC_ALIGN(64) _NPAGED_LOOKASIDE_LIST {
    GENERAL_LOOKASIDE L;
} NPAGED_LOOKASIDE_LIST, *PNPAGED_LOOKASIDE_LIST;

typedef struct DECLSPEC_ALIGN(64) _PAGED_LOOKASIDE_LIST {
    GENERAL_LOOKASIDE L;
} PAGED_LOOKASIDE_LIST, *PPAGED_LOOKASIDE_LIST;

typedef struct _LOOKASIDE_LIST_EX {
    GENERAL_LOOKASIDE_POOL L;
} LOOKASIDE_LIST_EX, *PLOOKASIDE_LIST_EX;

_Static_assert(__builtin_offsetof(GENERAL_LOOKASIDE, Depth) == 0x10, "GENERAL_LOOKASIDE layout");
_Static_assert(__builtin_offsetof(GENERAL_LOOKASIDE, Allocate) == 0x30, "GENERAL_LOOKASIDE layout");
_Static_assert(__builtin_offsetof(GENERAL_LOOKASIDE, LastTotalAllocates) == 0x50, "GENERAL_LOOKASIDE layout");
_Static_assert(sizeof(GENERAL_LOOKASIDE) == 0x80, "GENERAL_LOOKASIDE size");
_Static_assert(sizeof(LOOKASIDE_LIST_EX) == 0x60, "LOOKASIDE_LIST_EX size");

NTKERNELAPI VOID ExInitializeNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside, PALLOCATE_FUNCTION Allocate,
                                                 PFREE_FUNCTION Free, ULONG Flags, SIZE_T Size, ULONG Tag,
                                                 USHORT Depth);
NTKERNELAPI VOID ExInitializePagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside, PALLOCATE_FUNCTION Allocate,
                                                PFREE_FUNCTION Free, ULONG Flags, SIZE_T Size, ULONG Tag,
                                                USHORT Depth);
NTKERNELAPI NTSTATUS ExInitializeLookasideListEx(PLOOKASIDE_LIST_EX Lookaside, PALLOCATE_FUNCTION_EX Allocate,
                                                 PFREE_FUNCTION_EX Free, POOL_TYPE PoolType, ULONG Flags,
                                                 SIZE_T Size, ULONG Tag, USHORT Depth);
NTKERNELAPI PVOID ExAllocateFromLookasideListEx(PLOOKASIDE_LIST_EX Lookaside);
NTKERNELAPI VOID ExFreeToLookasideListEx(PLOOKASIDE_LIST_EX Lookaside, PVOID Entry);
NTKERNELAPI VOID ExDeleteLookasideListEx(PLOOKASIDE_LIST_EX Lookaside);

/* The classic forms are inline in the WDK too; here they share the Ex routines. */
static inline PVOID ExAllocateFromNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside)
{
    return ExAllocateFromLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside);
}
static inline VOID ExFreeToNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside, PVOID Entry)
{
    ExFreeToLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside, Entry);
}
static inline VOID ExDeleteNPagedLookasideList(PNPAGED_LOOKASIDE_LIST Lookaside)
{
    ExDeleteLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside);
}
static inline PVOID ExAllocateFromPagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside)
{
    return ExAllocateFromLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside);
}
static inline VOID ExFreeToPagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside, PVOID Entry)
{
    ExFreeToLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside, Entry);
}
static inline VOID ExDeletePagedLookasideList(PPAGED_LOOKASIDE_LIST Lookaside)
{
    ExDeleteLookasideListEx((PLOOKASIDE_LIST_EX)(PVOID)Lookaside);
}

#endif /* NTMEM_LOOKASIDE_H */
