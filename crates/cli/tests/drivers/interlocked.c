/* Lists under a spin lock, SLists, in-stack queued spin locks and the processor
 * queries (issue 11 items 2-3). RULE 1: an ExInterlockedInsertTailList on a list whose
 * tail's forward link is corrupt (0x139/3). RULE 2: InitializeSListHead on a header
 * that is not 16-byte aligned (STATUS_DATATYPE_MISALIGNMENT, caught). RULE 3: a queued
 * acquire of a lock this thread holds (0xC4/0x1000 under --verifier deadlock). */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

typedef struct _ITEM {
    SLIST_ENTRY Slist;
    LIST_ENTRY Link;
    SINGLE_LIST_ENTRY Single;
    ULONG Value;
} ITEM, *PITEM;

static LIST_ENTRY Head;
static SINGLE_LIST_ENTRY SingleHead;
static KSPIN_LOCK Lock;
static DECLSPEC_ALIGN(16) SLIST_HEADER SHead;
static DECLSPEC_ALIGN(16) UCHAR Unaligned[32];

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PITEM items;
    PLIST_ENTRY e;
    PSINGLE_LIST_ENTRY s;
    PSLIST_ENTRY se;
    KLOCK_QUEUE_HANDLE q;
    PROCESSOR_NUMBER pn;
    KAFFINITY mask = 0;
    KIRQL old;
    ULONG i, n;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);

    items = (PITEM)ExAllocatePool2(POOL_FLAG_NON_PAGED, 3 * sizeof(ITEM), 'tIlI');
    if (items == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    InitializeListHead(&Head);
    KeInitializeSpinLock(&Lock);
    for (i = 0; i < 3; i++)
        items[i].Value = i + 1;

    e = ExInterlockedInsertTailList(&Head, &items[0].Link, &Lock);
    DbgPrint("tail into empty: %s\n", e == NULL ? "NULL" : "entry");
    e = ExInterlockedInsertTailList(&Head, &items[1].Link, &Lock);
    DbgPrint("tail: previous last %lu\n", CONTAINING_RECORD(e, ITEM, Link)->Value);
    e = ExInterlockedInsertHeadList(&Head, &items[2].Link, &Lock);
    DbgPrint("head: previous first %lu\n", CONTAINING_RECORD(e, ITEM, Link)->Value);
#if RULE == 1
    items[1].Link.Flink = &items[0].Link;
    ExInterlockedInsertTailList(&Head, &items[0].Link, &Lock);
#endif
    DbgPrint("order:");
    while ((e = ExInterlockedRemoveHeadList(&Head, &Lock)) != NULL)
        DbgPrint(" %lu", CONTAINING_RECORD(e, ITEM, Link)->Value);
    DbgPrint("; empty %d, lock free %d, IRQL %d\n", IsListEmpty(&Head), Lock == 0, KeGetCurrentIrql());

    SingleHead.Next = NULL;
    for (i = 0; i < 3; i++)
        ExInterlockedPushEntryList(&SingleHead, &items[i].Single, &Lock);
    s = ExInterlockedPopEntryList(&SingleHead, &Lock);
    DbgPrint("single pop %lu\n", CONTAINING_RECORD(s, ITEM, Single)->Value);

#if RULE == 2
    __try {
        InitializeSListHead((PSLIST_HEADER)(Unaligned + 8));
        DbgPrint("misaligned header accepted\n");
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrint("misaligned header: 0x%x\n", GetExceptionCode());
    }
#endif
    InitializeSListHead(&SHead);
    for (i = 0; i < 3; i++) {
        se = InterlockedPushEntrySList(&SHead, &items[i].Slist);
        DbgPrint("push %lu: previous %s, depth %d\n", items[i].Value, se == NULL ? "NULL" : "entry",
                 ExQueryDepthSList(&SHead));
    }
    se = InterlockedPopEntrySList(&SHead);
    DbgPrint("pop %lu, depth %d\n", CONTAINING_RECORD(se, ITEM, Slist)->Value, ExQueryDepthSList(&SHead));
    se = InterlockedFlushSList(&SHead);
    n = 0;
    for (; se != NULL; se = se->Next)
        n++;
    DbgPrint("flushed %lu, depth %d, popped after flush %s\n", n, ExQueryDepthSList(&SHead),
             InterlockedPopEntrySList(&SHead) == NULL ? "NULL" : "entry");

    KeAcquireInStackQueuedSpinLock(&Lock, &q);
    DbgPrint("queued: IRQL %d, old %d, lock held %d\n", KeGetCurrentIrql(), q.OldIrql, Lock != 0);
#if RULE == 3
    {
        KLOCK_QUEUE_HANDLE again;
        KeAcquireInStackQueuedSpinLockAtDpcLevel(&Lock, &again);
    }
#endif
    KeReleaseInStackQueuedSpinLock(&q);
    old = KeRaiseIrqlToDpcLevel();
    KeAcquireInStackQueuedSpinLockAtDpcLevel(&Lock, &q);
    KeReleaseInStackQueuedSpinLockFromDpcLevel(&q);
    KeLowerIrql(old);
    DbgPrint("released: IRQL %d, lock free %d\n", KeGetCurrentIrql(), Lock == 0);

    n = KeQueryActiveProcessorCount(&mask);
    i = KeGetCurrentProcessorNumberEx(&pn);
    DbgPrint("processors %lu mask 0x%llx ex %lu/%lu other group %lu; current %lu (group %d number %d)\n", n,
             (ULONGLONG)mask, KeQueryActiveProcessorCountEx(0), KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS),
             KeQueryActiveProcessorCountEx(1), i, pn.Group, pn.Number);
    KeStallExecutionProcessor(50);
    ExFreePoolWithTag(items, 'tIlI');
    return STATUS_SUCCESS;
}
