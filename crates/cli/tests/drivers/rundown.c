/* Run-down protection: references granted and released, a system thread holding one
 * while DriverEntry waits for the run-down (it releases after 10 ms of simulated
 * time), acquires refused afterwards, re-initialization. RULE 1: a reference that is
 * never released: the wait can never end. */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

static EX_RUNDOWN_REF Ref;

static VOID Holder(PVOID Context)
{
    LARGE_INTEGER ten_ms;
    UNREFERENCED_PARAMETER(Context);
    ten_ms.QuadPart = -100000;
    KeDelayExecutionThread(KernelMode, FALSE, &ten_ms);
    DbgPrint("holder: releasing, Count %llu\n", (ULONGLONG)Ref.Count);
#if RULE == 0
    ExReleaseRundownProtection(&Ref);
#endif
    PsTerminateSystemThread(STATUS_SUCCESS);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    PVOID object;
    NTSTATUS status;
    BOOLEAN one, three;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);

    ExInitializeRundownProtection(&Ref);
    one = ExAcquireRundownProtection(&Ref);
    three = ExAcquireRundownProtectionEx(&Ref, 3);
    DbgPrint("acquire %d, acquire 3 %d, Count %llu\n", one, three, (ULONGLONG)Ref.Count);
    ExReleaseRundownProtectionEx(&Ref, 3);
    DbgPrint("after releasing 3: Count %llu\n", (ULONGLONG)Ref.Count);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Holder, NULL);
    if (!NT_SUCCESS(status))
        return status;
    status = ObReferenceObjectByHandle(thread, SYNCHRONIZE, *PsThreadType, KernelMode, &object, NULL);
    ZwClose(thread);
    if (!NT_SUCCESS(status))
        return status;
    ExWaitForRundownProtectionRelease(&Ref);
    one = ExAcquireRundownProtection(&Ref);
    DbgPrint("run down: Count %llu, acquire %d\n", (ULONGLONG)Ref.Count, one);
    ExRundownCompleted(&Ref);
    KeWaitForSingleObject(object, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(object);
    ExReInitializeRundownProtection(&Ref);
    DbgPrint("again: acquire %d\n", ExAcquireRundownProtection(&Ref));
    ExReleaseRundownProtection(&Ref);
    return STATUS_SUCCESS;
}
