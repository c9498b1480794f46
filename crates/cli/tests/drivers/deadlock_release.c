/* Releases deadlock detection stops, one per build, each 0xC4 under --verifier
 * deadlock: -DOUT_OF_ORDER (spin lock A released while B, taken after it, is held:
 * 0x1003, A, B), -DOTHER_THREAD (a fast mutex DriverEntry holds released by a system
 * thread: 0x1004, the mutex, DriverEntry's thread, the system thread),
 * -DUNACQUIRED (a free fast mutex released: 0x1007), -DMISMATCHED (a fast mutex taken
 * with ExAcquireFastMutex released with ExReleaseFastMutexUnsafe: 0x1009). */
#include <ntddk.h>

static KSPIN_LOCK A, B;
static FAST_MUTEX F;
static KEVENT Never;

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
    DbgPrint("A %p B %p F %p thread %p\n", &A, &B, &F, KeGetCurrentThread());
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
