/* Every kind of lock deadlock detection follows, taken by two threads in one order
 * (resource, kernel mutex, fast mutex, guarded mutex, spin lock, a spin lock at DPC
 * level, an in-stack queued spin lock at DPC level), with what Windows allows and Verifier accepts: a kernel mutex taken
 * recursively, a resource taken shared twice and shared after exclusive, mutexes
 * released in any order, a try that fails. A clean run under --verifier deadlock. */
#include <ntddk.h>

static ERESOURCE R;
static KMUTEX M;
static FAST_MUTEX F;
static KGUARDED_MUTEX G;
static KSPIN_LOCK S1, S2, Q;

static VOID InOrder(PVOID Context)
{
    KIRQL old;
    KLOCK_QUEUE_HANDLE queued;
    LARGE_INTEGER zero;
    zero.QuadPart = 0;
    KeEnterCriticalRegion();
    ExAcquireResourceSharedLite(&R, TRUE);
    ExAcquireResourceSharedLite(&R, TRUE);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, &zero);
    ExAcquireFastMutexUnsafe(&F);
    KeAcquireGuardedMutex(&G);
    KeAcquireSpinLock(&S1, &old);
    KeAcquireSpinLockAtDpcLevel(&S2);
    KeAcquireInStackQueuedSpinLockAtDpcLevel(&Q, &queued);
    KeReleaseInStackQueuedSpinLockFromDpcLevel(&queued);
    KeReleaseSpinLockFromDpcLevel(&S2);
    KeReleaseSpinLock(&S1, old);
    KeReleaseMutex(&M, FALSE);
    KeReleaseGuardedMutex(&G);
    KeReleaseMutex(&M, FALSE);
    ExReleaseFastMutexUnsafe(&F);
    ExReleaseResourceLite(&R);
    ExReleaseResourceLite(&R);
    ExAcquireResourceExclusiveLite(&R, TRUE);
    ExAcquireResourceSharedLite(&R, TRUE);
    ExReleaseResourceLite(&R);
    ExReleaseResourceForThreadLite(&R, ExGetCurrentResourceThread());
    KeLeaveCriticalRegion();
    KeAcquireInStackQueuedSpinLock(&Q, &queued);
    KeReleaseInStackQueuedSpinLock(&queued);
    DbgPrint("%s: in order\n", (PCSTR)Context);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExDeleteResourceLite(&R);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE handle;
    PVOID thread;
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeResourceLite(&R);
    KeInitializeMutex(&M, 0);
    ExInitializeFastMutex(&F);
    KeInitializeGuardedMutex(&G);
    KeInitializeSpinLock(&S1);
    KeInitializeSpinLock(&S2);
    KeInitializeSpinLock(&Q);
    InOrder("DriverEntry");
    ExAcquireFastMutex(&F);
    DbgPrint("try while owned: %d\n", ExTryToAcquireFastMutex(&F));
    ExReleaseFastMutex(&F);
    if (NT_SUCCESS(PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, InOrder, "thread"))) {
        if (NT_SUCCESS(ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL))) {
            KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
            ObDereferenceObject(thread);
        }
        ZwClose(handle);
    }
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
