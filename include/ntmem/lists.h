/*
 * Lists and atomics as the WDK defines them (wdm.h; learn.microsoft.com "Singly and
 * Doubly Linked Lists", "InitializeListHead", "RemoveEntryList", "Interlocked
 * Variable Access"). The list routines are inline functions, as in the WDK, and
 * check the links they touch as the WDK's do: a corrupt entry ends in
 * __fastfail(FAST_FAIL_CORRUPT_LIST_ENTRY), which stops the machine with
 * KERNEL_SECURITY_CHECK_FAILURE (0x139, parameter 1 = 3). The Interlocked routines
 * are the compiler's intrinsics, as in the WDK for x64.
 */
#ifndef NTMEM_LISTS_H
#define NTMEM_LISTS_H

#define FAST_FAIL_CORRUPT_LIST_ENTRY 3

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

typedef struct _SINGLE_LIST_ENTRY {
    struct _SINGLE_LIST_ENTRY *Next;
} SINGLE_LIST_ENTRY, *PSINGLE_LIST_ENTRY;

#define CONTAINING_RECORD(address, type, field) ((type *)((PCHAR)(address) - (ULONG_PTR)(&((type *)0)->field)))
#ifndef RTL_NUMBER_OF
#define RTL_NUMBER_OF(A) (sizeof(A) / sizeof((A)[0]))
#endif
#ifndef ARRAYSIZE
#define ARRAYSIZE(A) RTL_NUMBER_OF(A)
#endif

static __inline VOID FatalListEntryError(PVOID P1, PVOID P2, PVOID P3)
{
    (void)P1;
    (void)P2;
    (void)P3;
    __fastfail(FAST_FAIL_CORRUPT_LIST_ENTRY);
}

static __inline VOID RtlpCheckListEntry(PLIST_ENTRY Entry)
{
    if (Entry->Flink->Blink != Entry || Entry->Blink->Flink != Entry) {
        FatalListEntryError(Entry->Blink, Entry, Entry->Flink);
    }
}

static __inline VOID InitializeListHead(PLIST_ENTRY ListHead)
{
    ListHead->Flink = ListHead->Blink = ListHead;
}

static __inline BOOLEAN IsListEmpty(const LIST_ENTRY *ListHead)
{
    return (BOOLEAN)(ListHead->Flink == ListHead);
}

static __inline BOOLEAN RemoveEntryList(PLIST_ENTRY Entry)
{
    PLIST_ENTRY next = Entry->Flink, previous = Entry->Blink;
    if (next->Blink != Entry || previous->Flink != Entry) {
        FatalListEntryError(previous, Entry, next);
    }
    previous->Flink = next;
    next->Blink = previous;
    return (BOOLEAN)(previous == next);
}

static __inline PLIST_ENTRY RemoveHeadList(PLIST_ENTRY ListHead)
{
    PLIST_ENTRY entry = ListHead->Flink, next = entry->Flink;
    if (entry->Blink != ListHead || next->Blink != entry) {
        FatalListEntryError(ListHead, entry, next);
    }
    ListHead->Flink = next;
    next->Blink = ListHead;
    return entry;
}

static __inline PLIST_ENTRY RemoveTailList(PLIST_ENTRY ListHead)
{
    PLIST_ENTRY entry = ListHead->Blink, previous = entry->Blink;
    if (entry->Flink != ListHead || previous->Flink != entry) {
        FatalListEntryError(previous, entry, ListHead);
    }
    ListHead->Blink = previous;
    previous->Flink = ListHead;
    return entry;
}

static __inline VOID InsertTailList(PLIST_ENTRY ListHead, PLIST_ENTRY Entry)
{
    PLIST_ENTRY previous = ListHead->Blink;
    if (previous->Flink != ListHead) {
        FatalListEntryError(previous, ListHead, previous->Flink);
    }
    Entry->Flink = ListHead;
    Entry->Blink = previous;
    previous->Flink = Entry;
    ListHead->Blink = Entry;
}

static __inline VOID InsertHeadList(PLIST_ENTRY ListHead, PLIST_ENTRY Entry)
{
    PLIST_ENTRY next = ListHead->Flink;
    if (next->Blink != ListHead) {
        FatalListEntryError(ListHead, next, next->Blink);
    }
    Entry->Flink = next;
    Entry->Blink = ListHead;
    next->Blink = Entry;
    ListHead->Flink = Entry;
}

static __inline VOID AppendTailList(PLIST_ENTRY ListHead, PLIST_ENTRY ListToAppend)
{
    PLIST_ENTRY end = ListHead->Blink;
    ListHead->Blink->Flink = ListToAppend;
    ListHead->Blink = ListToAppend->Blink;
    ListToAppend->Blink->Flink = ListHead;
    ListToAppend->Blink = end;
}

static __inline PSINGLE_LIST_ENTRY PopEntryList(PSINGLE_LIST_ENTRY ListHead)
{
    PSINGLE_LIST_ENTRY first = ListHead->Next;
    if (first != NULL) {
        ListHead->Next = first->Next;
    }
    return first;
}

static __inline VOID PushEntryList(PSINGLE_LIST_ENTRY ListHead, PSINGLE_LIST_ENTRY Entry)
{
    Entry->Next = ListHead->Next;
    ListHead->Next = Entry;
}

/* ---- Interlocked operations: the compiler's intrinsics ----------------- */

/* Declared as <intrin.h> declares them (the compiler then expands them inline). */
LONG _InterlockedIncrement(LONG volatile *Addend);
LONG _InterlockedDecrement(LONG volatile *Addend);
LONG _InterlockedExchange(LONG volatile *Target, LONG Value);
LONG _InterlockedExchangeAdd(LONG volatile *Addend, LONG Value);
LONG _InterlockedCompareExchange(LONG volatile *Destination, LONG Exchange, LONG Comparand);
LONG _InterlockedAnd(LONG volatile *Destination, LONG Value);
LONG _InterlockedOr(LONG volatile *Destination, LONG Value);
LONG _InterlockedXor(LONG volatile *Destination, LONG Value);
LONG64 _InterlockedIncrement64(LONG64 volatile *Addend);
LONG64 _InterlockedDecrement64(LONG64 volatile *Addend);
LONG64 _InterlockedExchange64(LONG64 volatile *Target, LONG64 Value);
LONG64 _InterlockedExchangeAdd64(LONG64 volatile *Addend, LONG64 Value);
LONG64 _InterlockedCompareExchange64(LONG64 volatile *Destination, LONG64 Exchange, LONG64 Comparand);
LONG64 _InterlockedAnd64(LONG64 volatile *Destination, LONG64 Value);
LONG64 _InterlockedOr64(LONG64 volatile *Destination, LONG64 Value);
LONG64 _InterlockedXor64(LONG64 volatile *Destination, LONG64 Value);
PVOID _InterlockedExchangePointer(PVOID volatile *Target, PVOID Value);
PVOID _InterlockedCompareExchangePointer(PVOID volatile *Destination, PVOID Exchange, PVOID Comparand);
void _ReadWriteBarrier(void);

#define InterlockedIncrement _InterlockedIncrement
#define InterlockedDecrement _InterlockedDecrement
#define InterlockedExchange _InterlockedExchange
#define InterlockedExchangeAdd _InterlockedExchangeAdd
#define InterlockedCompareExchange _InterlockedCompareExchange
#define InterlockedAnd _InterlockedAnd
#define InterlockedOr _InterlockedOr
#define InterlockedXor _InterlockedXor
#define InterlockedIncrement64 _InterlockedIncrement64
#define InterlockedDecrement64 _InterlockedDecrement64
#define InterlockedExchange64 _InterlockedExchange64
#define InterlockedExchangeAdd64 _InterlockedExchangeAdd64
#define InterlockedCompareExchange64 _InterlockedCompareExchange64
#define InterlockedAnd64 _InterlockedAnd64
#define InterlockedOr64 _InterlockedOr64
#define InterlockedXor64 _InterlockedXor64
#define InterlockedExchangePointer _InterlockedExchangePointer
#define InterlockedCompareExchangePointer _InterlockedCompareExchangePointer
#define InterlockedIncrementSizeT(a) ((SIZE_T)InterlockedIncrement64((LONG64 *)(a)))
#define InterlockedDecrementSizeT(a) ((SIZE_T)InterlockedDecrement64((LONG64 *)(a)))

/* A full barrier, and a compiler-only one. */
#define KeMemoryBarrier() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define KeMemoryBarrierWithoutFence() _ReadWriteBarrier()

#endif /* NTMEM_LISTS_H */
