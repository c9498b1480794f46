/* Two threads take two fast mutexes in opposite orders: the first thread A then B,
 * the second (started once the first has released both and waits on, so they never
 * actually deadlock) B then A. Under Driver Verifier's deadlock detection the second thread's request
 * for A closes a cycle in the lock hierarchy: 0xC4/0x1001 (A). With -DSAME_ORDER the
 * second thread takes A then B too, and the run is clean. */
#include <ntddk.h>

static FAST_MUTEX A, B;
static KEVENT FirstDone, Finish;

static __declspec(noinline) VOID TakeAThenB(VOID);

/* Starts a system thread at Start and waits until it has ended. */
static VOID RunAndWait(PKSTART_ROUTINE Start)
{
    HANDLE handle;
    PVOID thread;
    if (!NT_SUCCESS(PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Start, NULL))) {
        return;
    }
    if (NT_SUCCESS(ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL))) {
        KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(thread);
    }
    ZwClose(handle);
}

/* The first thread: A then B, then it stays alive until Finish. */
static VOID First(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    TakeAThenB();
    KeSetEvent(&FirstDone, 0, FALSE);
    KeWaitForSingleObject(&Finish, Executive, KernelMode, FALSE, NULL);
}

static __declspec(noinline) VOID TakeAThenB(VOID)
{
    ExAcquireFastMutex(&A);
    ExAcquireFastMutex(&B);
    ExReleaseFastMutex(&B);
    ExReleaseFastMutex(&A);
    DbgPrint("thread 1: A then B\n");
}

static VOID TakeBThenA(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
#ifdef SAME_ORDER
    ExAcquireFastMutex(&A);
    ExAcquireFastMutex(&B);
    ExReleaseFastMutex(&B);
    ExReleaseFastMutex(&A);
#else
    ExAcquireFastMutex(&B);
    ExAcquireFastMutex(&A);
    ExReleaseFastMutex(&A);
    ExReleaseFastMutex(&B);
#endif
    DbgPrint("thread 2: done\n");
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeFastMutex(&A);
    ExInitializeFastMutex(&B);
    DbgPrint("A %p B %p\n", &A, &B);
    KeInitializeEvent(&FirstDone, NotificationEvent, FALSE);
    KeInitializeEvent(&Finish, NotificationEvent, FALSE);
    {
        HANDLE first;
        if (NT_SUCCESS(PsCreateSystemThread(&first, THREAD_ALL_ACCESS, NULL, NULL, NULL, First, NULL))) {
            ZwClose(first);
        }
    }
    KeWaitForSingleObject(&FirstDone, Executive, KernelMode, FALSE, NULL);
    RunAndWait(TakeBThenA);
    KeSetEvent(&Finish, 0, FALSE);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
