/* A system thread that ends holding a lock: 0xC4/0x100A (the thread) under deadlock
 * detection. -DRETURN: the thread takes a fast mutex and its start routine returns.
 * -DTERMINATE: the thread takes a KMUTEX by a wait and calls PsTerminateSystemThread.
 * Without either the thread releases what it took before it returns: clean.
 * DriverEntry waits for the thread object to be signalled (the thread's end).
 * Without Driver Verifier, -DTERMINATE is THREAD_TERMINATE_HELD_MUTEX (0x4000008A:
 * the thread, the KMUTEX). */
#include <ntddk.h>

static FAST_MUTEX F;
static KMUTEX M;

static VOID Thread(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    DbgPrint("thread %p\n", KeGetCurrentThread());
#ifdef TERMINATE
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    PsTerminateSystemThread(STATUS_SUCCESS);
#else
    ExAcquireFastMutex(&F);
#ifndef RETURN
    ExReleaseFastMutex(&F);
    DbgPrint("released\n");
#endif
#endif
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE handle;
    PVOID thread;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeFastMutex(&F);
    KeInitializeMutex(&M, 0);
    DbgPrint("M %p\n", &M);
    if (!NT_SUCCESS(PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Thread, NULL))) {
        return STATUS_UNSUCCESSFUL;
    }
    if (NT_SUCCESS(ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL))) {
        KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(thread);
    }
    ZwClose(handle);
    DbgPrint("thread ended\n");
    return STATUS_SUCCESS;
}
