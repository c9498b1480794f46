/*
 * ntmem: lists shared under a spin lock, sequenced singly linked lists (SLists),
 * run-down protection, push locks and the processor queries (wdm.h; learn.microsoft.com
 * "Singly and Doubly Linked Lists"). Included by wdm.h.
 * Layouts are the x64 WDK's.
 */
#ifndef NTMEM_INTERLOCKED_H
#define NTMEM_INTERLOCKED_H

/* ---- Lists under a spin lock (any IRQL up to DIRQL) --------------------- */

NTKERNELAPI PLIST_ENTRY ExInterlockedInsertHeadList(PLIST_ENTRY ListHead, PLIST_ENTRY ListEntry, PKSPIN_LOCK Lock);
NTKERNELAPI PLIST_ENTRY ExInterlockedInsertTailList(PLIST_ENTRY ListHead, PLIST_ENTRY ListEntry, PKSPIN_LOCK Lock);
NTKERNELAPI PLIST_ENTRY ExInterlockedRemoveHeadList(PLIST_ENTRY ListHead, PKSPIN_LOCK Lock);
NTKERNELAPI PSINGLE_LIST_ENTRY ExInterlockedPushEntryList(PSINGLE_LIST_ENTRY ListHead, PSINGLE_LIST_ENTRY ListEntry,
                                                          PKSPIN_LOCK Lock);
NTKERNELAPI PSINGLE_LIST_ENTRY ExInterlockedPopEntryList(PSINGLE_LIST_ENTRY ListHead, PKSPIN_LOCK Lock);

/* ---- SLists: the x64 SLIST_HEADER (lookaside.h), 16-byte aligned entries -- */

typedef struct DECLSPEC_ALIGN(16) _SLIST_ENTRY {
    struct _SLIST_ENTRY *Next;
} SLIST_ENTRY, *PSLIST_ENTRY;
_Static_assert(sizeof(SLIST_ENTRY) == 16, "SLIST_ENTRY");

NTKERNELAPI PSLIST_ENTRY ExpInterlockedPushEntrySList(PSLIST_HEADER ListHead, PSLIST_ENTRY ListEntry);
NTKERNELAPI PSLIST_ENTRY ExpInterlockedPopEntrySList(PSLIST_HEADER ListHead);
NTKERNELAPI PSLIST_ENTRY ExpInterlockedFlushSList(PSLIST_HEADER ListHead);

/* A header that is not 16-byte aligned raises STATUS_DATATYPE_MISALIGNMENT (x64 wdm.h). */
static __inline VOID InitializeSListHead(PSLIST_HEADER SListHead)
{
    if (((ULONG_PTR)SListHead & 0xF) != 0) {
        RtlRaiseStatus(STATUS_DATATYPE_MISALIGNMENT);
    }
    SListHead->Alignment = 0;
    SListHead->Region = 0;
}
#define InterlockedPushEntrySList(Head, Entry) ExpInterlockedPushEntrySList(Head, Entry)
#define InterlockedPopEntrySList(Head) ExpInterlockedPopEntrySList(Head)
#define InterlockedFlushSList(Head) ExpInterlockedFlushSList(Head)
/* On x64 the lock argument is not used. */
#define ExInterlockedPushEntrySList(Head, Entry, Lock) ExpInterlockedPushEntrySList(Head, Entry)
#define ExInterlockedPopEntrySList(Head, Lock) ExpInterlockedPopEntrySList(Head)

/* ---- Run-down protection: Count's bit 0 is EX_RUNDOWN_ACTIVE, each reference adds 2 -- */

typedef struct _EX_RUNDOWN_REF {
    union {
        volatile ULONG_PTR Count;
        volatile PVOID Ptr;
    };
} EX_RUNDOWN_REF, *PEX_RUNDOWN_REF;
_Static_assert(sizeof(EX_RUNDOWN_REF) == 8, "EX_RUNDOWN_REF");

NTKERNELAPI VOID ExInitializeRundownProtection(PEX_RUNDOWN_REF RunRef);
NTKERNELAPI VOID ExReInitializeRundownProtection(PEX_RUNDOWN_REF RunRef);
NTKERNELAPI BOOLEAN ExAcquireRundownProtection(PEX_RUNDOWN_REF RunRef);
NTKERNELAPI BOOLEAN ExAcquireRundownProtectionEx(PEX_RUNDOWN_REF RunRef, ULONG Count);
NTKERNELAPI VOID ExReleaseRundownProtection(PEX_RUNDOWN_REF RunRef);
NTKERNELAPI VOID ExReleaseRundownProtectionEx(PEX_RUNDOWN_REF RunRef, ULONG Count);
/* Refuses new references and waits until every granted one is released. */
NTKERNELAPI VOID ExWaitForRundownProtectionRelease(PEX_RUNDOWN_REF RunRef);
NTKERNELAPI VOID ExRundownCompleted(PEX_RUNDOWN_REF RunRef);

/* ---- Push locks (Windows 8 and later): IRQL <= APC_LEVEL, in a critical region ---- */

typedef ULONG_PTR EX_PUSH_LOCK, *PEX_PUSH_LOCK;

static __inline VOID ExInitializePushLock(PEX_PUSH_LOCK PushLock)
{
    *PushLock = 0;
}
NTKERNELAPI VOID ExAcquirePushLockExclusiveEx(PEX_PUSH_LOCK PushLock, ULONG Flags);
NTKERNELAPI VOID ExAcquirePushLockSharedEx(PEX_PUSH_LOCK PushLock, ULONG Flags);
NTKERNELAPI VOID ExReleasePushLockExclusiveEx(PEX_PUSH_LOCK PushLock, ULONG Flags);
NTKERNELAPI VOID ExReleasePushLockSharedEx(PEX_PUSH_LOCK PushLock, ULONG Flags);

/* ---- IRQL and processors ------------------------------------------------- */

/* An inline over KfRaiseIrql in the AMD64 WDK. */
#define KeRaiseIrqlToDpcLevel() KfRaiseIrql(DISPATCH_LEVEL)

typedef struct _PROCESSOR_NUMBER {
    USHORT Group;
    UCHAR Number;
    UCHAR Reserved;
} PROCESSOR_NUMBER, *PPROCESSOR_NUMBER;

#define ALL_PROCESSOR_GROUPS 0xffff

NTKERNELAPI ULONG KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber);
#define KeGetCurrentProcessorNumber() KeGetCurrentProcessorNumberEx(NULL)
NTKERNELAPI ULONG KeQueryActiveProcessorCountEx(USHORT GroupNumber);
NTKERNELAPI ULONG KeQueryActiveProcessorCount(PKAFFINITY ActiveProcessors);
NTKERNELAPI KAFFINITY KeQueryActiveProcessors(VOID);
/* Returns at once: ntmem's simulated time does not move during a stall. */
NTHALAPI VOID KeStallExecutionProcessor(ULONG MicroSeconds);

#endif /* NTMEM_INTERLOCKED_H */
