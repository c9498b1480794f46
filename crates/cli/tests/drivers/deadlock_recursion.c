/* Self-deadlock, one per build, each 0xC4/0x1000 (the lock) under Driver Verifier's
 * deadlock detection: -DSPIN_LOCK (KeAcquireSpinLock of a lock the thread holds),
 * -DFAST (ExAcquireFastMutex again: MUTEX_ALREADY_OWNED, 0xBF, without
 * Verifier), -DRESOURCE (an ERESOURCE held shared asked for exclusive), -DQUEUED (a
 * spin lock held asked for again as an in-stack queued spin lock). A kernel
 * mutex taken twice and a resource taken shared twice are allowed (and done first). */
#include <ntddk.h>

static KSPIN_LOCK S;
static FAST_MUTEX F;
static KMUTEX M;
static ERESOURCE R;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&S);
    ExInitializeFastMutex(&F);
    KeInitializeMutex(&M, 0);
    ExInitializeResourceLite(&R);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    KeReleaseMutex(&M, FALSE);
    KeReleaseMutex(&M, FALSE);
    KeEnterCriticalRegion();
    ExAcquireResourceSharedLite(&R, TRUE);
    ExAcquireResourceSharedLite(&R, TRUE);
    DbgPrint("S %p F %p R %p\n", &S, &F, &R);
#ifdef SPIN_LOCK
    KeAcquireSpinLock(&S, &old);
    KeAcquireSpinLock(&S, &old);
#endif
#ifdef FAST
    ExAcquireFastMutex(&F);
    ExAcquireFastMutex(&F);
#endif
#ifdef RESOURCE
    ExAcquireResourceExclusiveLite(&R, TRUE);
#endif
#ifdef QUEUED
    {
        KLOCK_QUEUE_HANDLE queued;
        KeAcquireSpinLock(&S, &old);
        KeAcquireInStackQueuedSpinLockAtDpcLevel(&S, &queued);
    }
#endif
    UNREFERENCED_PARAMETER(old);
    ExReleaseResourceLite(&R);
    ExReleaseResourceLite(&R);
    KeLeaveCriticalRegion();
    ExDeleteResourceLite(&R);
    return STATUS_SUCCESS;
}
