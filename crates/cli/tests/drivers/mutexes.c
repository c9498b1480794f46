/* Mutexes and multiple waits: a kernel mutex taken recursively by waits and
 * released as often, its APC rule, its release by a thread that does not own it
 * (STATUS_MUTANT_NOT_OWNED caught); fast and guarded mutexes with their IRQL;
 * KeWaitForMultipleObjects with WaitAny and WaitAll, a timeout and a timer.
 * Misuse, one per build: -DREACQUIRE_FAST (0xBF), -DFAST_AT_DISPATCH (0x09),
 * -DTOO_MANY_OBJECTS (0xC), -DRELEASE_NOT_OWNED (unhandled: 0x7E); executive
 * resources: shared and exclusive, recursion, a try that fails; -DRESOURCE_NOT_OWNED
 * (0xE3), -DRESOURCE_DEADLOCK (a thread waits for a resource its waiter holds: a
 * wait that can never end). */
#include <ntddk.h>

static KMUTEX Mutex;
static FAST_MUTEX Fast;
static KGUARDED_MUTEX Guarded;
static KEVENT Events[4];
static KSEMAPHORE Semaphore;
static KTIMER Timer;
static KWAIT_BLOCK Blocks[4];
static ERESOURCE Resource;

#ifdef RESOURCE_DEADLOCK
static VOID Reader(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    DbgPrint("reader: try %d\n", ExAcquireResourceSharedLite(&Resource, FALSE));
    ExAcquireResourceSharedLite(&Resource, TRUE);
}
#endif

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status, caught = 0;
    LONG previous;
    BOOLEAN tried;
    LARGE_INTEGER zero, timeout, due;
    PVOID objects[4];
    ULONG i;
    UNREFERENCED_PARAMETER(RegistryPath);
    zero.QuadPart = 0;

    KeInitializeMutex(&Mutex, 0);
    DbgPrint("mutex: state %ld\n", KeReadStateMutex(&Mutex));
    status = KeWaitForSingleObject(&Mutex, Executive, KernelMode, FALSE, NULL);
    DbgPrint("wait %08x state %ld owner-is-me %d apcs-disabled %d\n", status, KeReadStateMutex(&Mutex),
             Mutex.OwnerThread == KeGetCurrentThread(), KeAreApcsDisabled());
    status = KeWaitForMutexObject(&Mutex, Executive, KernelMode, FALSE, &zero);
    DbgPrint("again %08x state %ld\n", status, KeReadStateMutex(&Mutex));
    DbgPrint("release %ld\n", KeReleaseMutex(&Mutex, FALSE));
    previous = KeReleaseMutex(&Mutex, FALSE);
    DbgPrint("release %ld, state %ld, apcs-disabled %d\n", previous, KeReadStateMutex(&Mutex), KeAreApcsDisabled());
    __try {
        KeReleaseMutex(&Mutex, FALSE);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        caught = GetExceptionCode();
    }
    DbgPrint("not owned: %08x\n", caught);
#ifdef RELEASE_NOT_OWNED
    KeReleaseMutex(&Mutex, FALSE);
#endif

    ExInitializeFastMutex(&Fast);
    ExAcquireFastMutex(&Fast);
    tried = ExTryToAcquireFastMutex(&Fast);
    DbgPrint("fast: IRQL %d count %ld owner-is-me %d try %d\n", KeGetCurrentIrql(), Fast.Count,
             Fast.Owner == (PVOID)KeGetCurrentThread(), tried);
#ifdef REACQUIRE_FAST
    ExAcquireFastMutex(&Fast);
#endif
    ExReleaseFastMutex(&Fast);
    DbgPrint("released: IRQL %d count %ld\n", KeGetCurrentIrql(), Fast.Count);
    tried = ExTryToAcquireFastMutex(&Fast);
    DbgPrint("try %d: IRQL %d\n", tried, KeGetCurrentIrql());
    ExReleaseFastMutex(&Fast);
    KeEnterCriticalRegion();
    ExAcquireFastMutexUnsafe(&Fast);
    DbgPrint("unsafe: IRQL %d count %ld\n", KeGetCurrentIrql(), Fast.Count);
    ExReleaseFastMutexUnsafe(&Fast);
    KeLeaveCriticalRegion();
#ifdef FAST_AT_DISPATCH
    {
        KIRQL old;
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        ExAcquireFastMutex(&Fast);
    }
#endif

    KeInitializeGuardedMutex(&Guarded);
    KeAcquireGuardedMutex(&Guarded);
    tried = KeTryToAcquireGuardedMutex(&Guarded);
    DbgPrint("guarded: IRQL %d apcs-disabled %d try %d\n", KeGetCurrentIrql(), KeAreApcsDisabled(), tried);
    KeReleaseGuardedMutex(&Guarded);
    DbgPrint("guarded released: apcs-disabled %d\n", KeAreApcsDisabled());

    for (i = 0; i < 3; i++) {
        KeInitializeEvent(&Events[i], SynchronizationEvent, FALSE);
        objects[i] = &Events[i];
    }
    KeSetEvent(&Events[2], 0, FALSE);
    KeSetEvent(&Events[1], 0, FALSE);
    status = KeWaitForMultipleObjects(3, objects, WaitAny, Executive, KernelMode, FALSE, NULL, NULL);
    DbgPrint("any: %08x, events %ld %ld %ld\n", status, KeReadStateEvent(&Events[0]), KeReadStateEvent(&Events[1]),
             KeReadStateEvent(&Events[2]));
    status = KeWaitForMultipleObjects(3, objects, WaitAll, Executive, KernelMode, FALSE, &zero, NULL);
    DbgPrint("all (poll): %08x, event 2 still %ld\n", status, KeReadStateEvent(&Events[2]));

    KeInitializeSemaphore(&Semaphore, 2, 10);
    KeInitializeTimer(&Timer);
    due.QuadPart = -30 * 10000;
    KeSetTimer(&Timer, due, NULL);
    KeSetEvent(&Events[0], 0, FALSE);
    objects[0] = &Events[0];
    objects[1] = &Semaphore;
    objects[2] = &Events[2];
    objects[3] = &Timer;
    status = KeWaitForMultipleObjects(4, objects, WaitAll, Executive, KernelMode, FALSE, NULL, Blocks);
    DbgPrint("all: %08x at %lu ms\n", status, (ULONG)(KeQueryInterruptTime() / 10000));
    DbgPrint("semaphore %ld, event 0 %ld\n", KeReadStateSemaphore(&Semaphore), KeReadStateEvent(&Events[0]));
    timeout.QuadPart = -10 * 10000;
    status = KeWaitForMultipleObjects(2, objects, WaitAny, Executive, KernelMode, FALSE, &timeout, NULL);
    DbgPrint("any: %08x (the semaphore)\n", status);
    objects[1] = &Events[1];
    status = KeWaitForMultipleObjects(2, objects, WaitAny, Executive, KernelMode, FALSE, &timeout, NULL);
    DbgPrint("any: %08x at %lu ms\n", status, (ULONG)(KeQueryInterruptTime() / 10000));
#ifdef TOO_MANY_OBJECTS
    KeWaitForMultipleObjects(4, objects, WaitAny, Executive, KernelMode, FALSE, &zero, NULL);
#endif

    ExInitializeResourceLite(&Resource);
    KeEnterCriticalRegion();
    ExAcquireResourceSharedLite(&Resource, TRUE);
    ExAcquireResourceSharedLite(&Resource, TRUE);
    DbgPrint("shared: %lu, exclusive %d, active %d, try exclusive %d\n", ExIsResourceAcquiredSharedLite(&Resource),
             ExIsResourceAcquiredExclusiveLite(&Resource), Resource.ActiveCount,
             ExAcquireResourceExclusiveLite(&Resource, FALSE));
    ExReleaseResourceLite(&Resource);
    ExReleaseResourceLite(&Resource);
    ExAcquireResourceExclusiveLite(&Resource, TRUE);
    ExAcquireResourceSharedLite(&Resource, TRUE);
    DbgPrint("exclusive: %d, count %lu, flag %04x\n", ExIsResourceAcquiredExclusiveLite(&Resource),
             ExIsResourceAcquiredSharedLite(&Resource), Resource.Flag);
#ifdef RESOURCE_DEADLOCK
    {
        HANDLE h;
        PVOID thread;
        PsCreateSystemThread(&h, THREAD_ALL_ACCESS, NULL, NULL, NULL, Reader, NULL);
        ObReferenceObjectByHandle(h, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL);
        KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
    }
#endif
    ExReleaseResourceLite(&Resource);
    ExReleaseResourceLite(&Resource);
    KeLeaveCriticalRegion();
#ifdef RESOURCE_NOT_OWNED
    ExReleaseResourceLite(&Resource);
#endif
    DbgPrint("released: active %d, flag %04x, delete %08x\n", Resource.ActiveCount, Resource.Flag,
             ExDeleteResourceLite(&Resource));
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
