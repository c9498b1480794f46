/* Releases deadlock detection stops, one per build, each 0xC4 under --verifier
 * deadlock: -DOUT_OF_ORDER (spin lock A released while B, taken after it, is held:
 * 0x1003, A, B), -DOTHER_THREAD (a fast mutex DriverEntry holds released by a system
 * thread: 0x1004, the mutex, DriverEntry's thread, the system thread),
 * -DUNACQUIRED (a free fast mutex released: 0x1007), -DMISMATCHED (a fast mutex taken
 * with ExAcquireFastMutex released with ExReleaseFastMutexUnsafe: 0x1009),
 * -DRESOURCE_OTHER_THREAD (an ERESOURCE DriverEntry holds released by a system thread
 * with ExReleaseResourceLite: 0x1004). With -DRESOURCE_FOR_THREAD the system thread
 * releases it with ExReleaseResourceForThreadLite for DriverEntry's thread, as
 * Windows allows: clean. */
#include <ntddk.h>

static KSPIN_LOCK A, B;
static FAST_MUTEX F;
static KEVENT Never;
static ERESOURCE R;
static ERESOURCE_THREAD Owner;

static VOID ResourceReleaser(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    DbgPrint("releaser %p\n", KeGetCurrentThread());
#ifdef RESOURCE_FOR_THREAD
    ExReleaseResourceForThreadLite(&R, Owner);
    DbgPrint("released for the owner\n");
#else
    ExReleaseResourceLite(&R);
#endif
    KeSetEvent(&Never, 0, FALSE);
}

static VOID Releaser(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    DbgPrint("releaser %p\n", KeGetCurrentThread());
    ExReleaseFastMutex(&F);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL a, b;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&A);
    KeInitializeSpinLock(&B);
    ExInitializeFastMutex(&F);
    KeInitializeEvent(&Never, NotificationEvent, FALSE);
    DbgPrint("A %p B %p F %p R %p thread %p\n", &A, &B, &F, &R, KeGetCurrentThread());
#ifdef OUT_OF_ORDER
    KeAcquireSpinLock(&A, &a);
    KeAcquireSpinLock(&B, &b);
    KeReleaseSpinLock(&A, a);
    KeReleaseSpinLock(&B, b);
#endif
#ifdef OTHER_THREAD
    {
        HANDLE thread;
        ExAcquireFastMutex(&F);
        if (NT_SUCCESS(PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Releaser, NULL))) {
            ZwClose(thread);
        }
        KeWaitForSingleObject(&Never, Executive, KernelMode, FALSE, NULL);
    }
#endif
#if defined(RESOURCE_OTHER_THREAD) || defined(RESOURCE_FOR_THREAD)
    {
        HANDLE thread;
        ExInitializeResourceLite(&R);
        KeEnterCriticalRegion();
        ExAcquireResourceExclusiveLite(&R, TRUE);
        Owner = ExGetCurrentResourceThread();
        if (NT_SUCCESS(PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, ResourceReleaser, NULL))) {
            ZwClose(thread);
        }
        KeWaitForSingleObject(&Never, Executive, KernelMode, FALSE, NULL);
        KeLeaveCriticalRegion();
        ExDeleteResourceLite(&R);
    }
#endif
#ifdef UNACQUIRED
    ExReleaseFastMutex(&F);
#endif
#ifdef MISMATCHED
    ExAcquireFastMutex(&F);
    ExReleaseFastMutexUnsafe(&F);
#endif
    UNREFERENCED_PARAMETER(a);
    UNREFERENCED_PARAMETER(b);
    return STATUS_SUCCESS;
}
