/* The WDK's list routines and Interlocked intrinsics, then a corrupt entry:
 * RemoveEntryList finds it and fast-fails (KERNEL_SECURITY_CHECK_FAILURE, 3). */
#include <ntddk.h>

typedef struct _ITEM {
    ULONG Value;
    LIST_ENTRY Link;
} ITEM;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LIST_ENTRY head;
    ITEM items[4];
    SINGLE_LIST_ENTRY stack, pushed[2];
    PLIST_ENTRY e;
    ULONG i, sum = 0;
    volatile LONG counter = 5;
    LONG results[4];
    volatile LONG64 wide = 1;
    PVOID slot = NULL;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    InitializeListHead(&head);
    DbgPrint("empty %d\n", IsListEmpty(&head));
    for (i = 0; i < ARRAYSIZE(items); i++) {
        items[i].Value = i + 1;
        if (i % 2) {
            InsertHeadList(&head, &items[i].Link);
        } else {
            InsertTailList(&head, &items[i].Link);
        }
    }
    for (e = head.Flink; e != &head; e = e->Flink) {
        sum = sum * 10 + CONTAINING_RECORD(e, ITEM, Link)->Value;
    }
    DbgPrint("order %lu\n", sum);
    DbgPrint("head %lu tail %lu\n", CONTAINING_RECORD(RemoveHeadList(&head), ITEM, Link)->Value,
             CONTAINING_RECORD(RemoveTailList(&head), ITEM, Link)->Value);
    stack.Next = NULL;
    PushEntryList(&stack, &pushed[0]);
    PushEntryList(&stack, &pushed[1]);
    DbgPrint("pop %d\n", PopEntryList(&stack) == &pushed[1]);
    results[0] = InterlockedIncrement(&counter);
    results[1] = InterlockedExchange(&counter, 9);
    results[2] = InterlockedCompareExchange(&counter, 1, 9);
    results[3] = InterlockedExchangeAdd(&counter, 2);
    DbgPrint("interlocked %ld %ld %ld %ld now %ld, %lld, %d\n", results[0], results[1], results[2], results[3], counter,
             InterlockedIncrement64(&wide), InterlockedCompareExchangePointer(&slot, &head, NULL) == NULL);
    KeMemoryBarrier();
    items[1].Link.Flink = &items[3].Link;
    items[1].Link.Blink->Flink = &items[2].Link; /* the neighbour no longer points back */
    DbgPrint("removing a corrupt entry\n");
    RemoveEntryList(&items[1].Link);
    DbgPrint("not reached\n");
    return STATUS_SUCCESS;
}
