/* Push locks: readers share, a writer waits for them. A system thread holds the lock
 * shared for 10 ms of simulated time while DriverEntry asks for it exclusively; then
 * shared twice, released twice. RULE 1: an exclusive acquire by a thread that holds it
 * already (nothing can release it: the wait never ends). */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

static EX_PUSH_LOCK Lock;
static volatile LONG ReaderDone;

static VOID Reader(PVOID Context)
{
    LARGE_INTEGER ten_ms;
    UNREFERENCED_PARAMETER(Context);
    ten_ms.QuadPart = -100000;
    KeEnterCriticalRegion();
    ExAcquirePushLockSharedEx(&Lock, 0);
    DbgPrint("reader: holding, word 0x%llx\n", (ULONGLONG)Lock);
    KeDelayExecutionThread(KernelMode, FALSE, &ten_ms);
    DbgPrint("reader: releasing\n");
    ReaderDone = 1;
    ExReleasePushLockSharedEx(&Lock, 0);
    KeLeaveCriticalRegion();
    PsTerminateSystemThread(STATUS_SUCCESS);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    PVOID object;
    NTSTATUS status;
    LARGE_INTEGER one_ms;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    one_ms.QuadPart = -10000;

    ExInitializePushLock(&Lock);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Reader, NULL);
    if (!NT_SUCCESS(status))
        return status;
    status = ObReferenceObjectByHandle(thread, SYNCHRONIZE, *PsThreadType, KernelMode, &object, NULL);
    ZwClose(thread);
    if (!NT_SUCCESS(status))
        return status;
    KeDelayExecutionThread(KernelMode, FALSE, &one_ms);
    KeEnterCriticalRegion();
    ExAcquirePushLockExclusiveEx(&Lock, 0);
    DbgPrint("writer: holding after the reader is done %d, word 0x%llx\n", ReaderDone, (ULONGLONG)Lock);
#if RULE == 1
    ExAcquirePushLockExclusiveEx(&Lock, 0);
#endif
    ExReleasePushLockExclusiveEx(&Lock, 0);
    ExAcquirePushLockSharedEx(&Lock, 0);
    ExAcquirePushLockSharedEx(&Lock, 0);
    DbgPrint("two readers: word 0x%llx\n", (ULONGLONG)Lock);
    ExReleasePushLockSharedEx(&Lock, 0);
    ExReleasePushLockSharedEx(&Lock, 0);
    KeLeaveCriticalRegion();
    DbgPrint("free: word 0x%llx\n", (ULONGLONG)Lock);
    KeWaitForSingleObject(object, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(object);
    return STATUS_SUCCESS;
}
