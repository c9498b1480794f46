/* A lock acquired with a routine of another lock type: 0xC4/0x1008 under deadlock
 * detection, one case per build. -DSPIN_AS_FAST: a spin lock taken and released,
 * then the same memory taken with ExAcquireFastMutex. -DFAST_AS_SPIN: a fast mutex
 * taken and released, then the same memory taken with KeAcquireSpinLock.
 * -DMUTEX_AS_FAST: a KMUTEX taken by a wait, then ExTryToAcquireFastMutex on it.
 * Without a case the driver does what is allowed: a FAST_MUTEX taken safe, unsafe
 * and as a guarded mutex (one type); a spin lock's pool block freed and the
 * block allocated again used as a fast mutex; a spin lock's memory initialized as a
 * KMUTEX and taken as one. */
#include <ntddk.h>

static union {
    KSPIN_LOCK Spin;
    FAST_MUTEX Fast;
    KMUTEX Mutex;
} L;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL irql;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("L %p\n", &L);
#ifdef SPIN_AS_FAST
    KeInitializeSpinLock(&L.Spin);
    KeAcquireSpinLock(&L.Spin, &irql);
    KeReleaseSpinLock(&L.Spin, irql);
    ExAcquireFastMutex(&L.Fast);
#elif defined(FAST_AS_SPIN)
    ExInitializeFastMutex(&L.Fast);
    ExAcquireFastMutex(&L.Fast);
    ExReleaseFastMutex(&L.Fast);
    KeAcquireSpinLock(&L.Spin, &irql);
#elif defined(MUTEX_AS_FAST)
    KeInitializeMutex(&L.Mutex, 0);
    KeWaitForSingleObject(&L.Mutex, Executive, KernelMode, FALSE, NULL);
    KeReleaseMutex(&L.Mutex, FALSE);
    ExTryToAcquireFastMutex(&L.Fast);
#else
    {
        PKSPIN_LOCK pooled;
        PFAST_MUTEX again;
        ExInitializeFastMutex(&L.Fast);
        ExAcquireFastMutex(&L.Fast);
        ExReleaseFastMutex(&L.Fast);
        KeEnterCriticalRegion();
        ExAcquireFastMutexUnsafe(&L.Fast);
        ExReleaseFastMutexUnsafe(&L.Fast);
        KeLeaveCriticalRegion();
        KeAcquireGuardedMutex(&L.Fast);
        KeReleaseGuardedMutex(&L.Fast);
        pooled = ExAllocatePoolWithTag(NonPagedPool, sizeof(FAST_MUTEX), 'kcoL');
        if (pooled == NULL) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        KeInitializeSpinLock(pooled);
        KeAcquireSpinLock(pooled, &irql);
        KeReleaseSpinLock(pooled, irql);
        ExFreePoolWithTag(pooled, 'kcoL');
        again = ExAllocatePoolWithTag(NonPagedPool, sizeof(FAST_MUTEX), 'kcoL');
        if (again == NULL) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        ExInitializeFastMutex(again);
        ExAcquireFastMutex(again);
        ExReleaseFastMutex(again);
        DbgPrint("pool reused: %d\n", (PVOID)again == (PVOID)pooled);
        ExFreePoolWithTag(again, 'kcoL');
        KeInitializeSpinLock(&L.Spin);
        KeAcquireSpinLock(&L.Spin, &irql);
        KeReleaseSpinLock(&L.Spin, irql);
        KeInitializeMutex(&L.Mutex, 0);
        KeWaitForSingleObject(&L.Mutex, Executive, KernelMode, FALSE, NULL);
        KeReleaseMutex(&L.Mutex, FALSE);
        DbgPrint("clean\n");
    }
#endif
    UNREFERENCED_PARAMETER(irql);
    return STATUS_SUCCESS;
}
