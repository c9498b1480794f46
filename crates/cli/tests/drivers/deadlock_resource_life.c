/* An ERESOURCE's life under deadlock detection, one misuse per build, each 0xC4:
 * -DUNINITIALIZED (acquired never initialized: 0x1002; without Verifier the wait can
 * never end), -DINITIALIZED_TWICE (ExInitializeResourceLite again without a delete:
 * 0x1005), -DDELETED_HELD (ExDeleteResourceLite while the thread holds it: 0x100B,
 * the resource, the thread), -DFREED_HELD (a fast mutex in pool freed while held:
 * 0x100B, the mutex, the thread). Without a -D it is initialized, used and deleted,
 * and a fast mutex in pool is taken, released and freed: clean. */
#include <ntddk.h>

static ERESOURCE R;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("R %p thread %p\n", &R, KeGetCurrentThread());
    KeEnterCriticalRegion();
#ifndef UNINITIALIZED
    ExInitializeResourceLite(&R);
#endif
#ifdef INITIALIZED_TWICE
    ExInitializeResourceLite(&R);
#endif
    ExAcquireResourceExclusiveLite(&R, TRUE);
#ifdef DELETED_HELD
    ExDeleteResourceLite(&R);
#endif
    ExReleaseResourceLite(&R);
    ExDeleteResourceLite(&R);
    KeLeaveCriticalRegion();
    {
        PFAST_MUTEX pooled = ExAllocatePoolWithTag(NonPagedPool, sizeof(FAST_MUTEX), 'kLdD');
        if (pooled == NULL) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        ExInitializeFastMutex(pooled);
        DbgPrint("pooled %p\n", pooled);
        ExAcquireFastMutex(pooled);
#ifndef FREED_HELD
        ExReleaseFastMutex(pooled);
#endif
        ExFreePoolWithTag(pooled, 'kLdD');
    }
    return STATUS_SUCCESS;
}
