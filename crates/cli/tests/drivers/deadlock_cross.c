/* A cycle across lock kinds: DriverEntry waits on a kernel mutex M and takes a spin
 * lock S under it (M before S); a system thread then takes S without raising the IRQL
 * (KeAcquireSpinLockAtDpcLevel at PASSIVE_LEVEL, a bug of its own that Verifier's IRQL
 * checking would stop first) and waits on M while holding S. Under deadlock detection
 * alone the wait closes the cycle: 0xC4/0x1001 (M). */
#include <ntddk.h>

static KMUTEX M;
static KSPIN_LOCK S;

static VOID Second(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    KeAcquireSpinLockAtDpcLevel(&S);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    KeReleaseMutex(&M, FALSE);
    KeReleaseSpinLockFromDpcLevel(&S);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE handle;
    PVOID thread;
    KIRQL old;
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeMutex(&M, 0);
    KeInitializeSpinLock(&S);
    DbgPrint("M %p S %p\n", &M, &S);
    KeWaitForSingleObject(&M, Executive, KernelMode, FALSE, NULL);
    KeAcquireSpinLock(&S, &old);
    KeReleaseSpinLock(&S, old);
    KeReleaseMutex(&M, FALSE);
    if (NT_SUCCESS(PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Second, NULL))) {
        if (NT_SUCCESS(ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL))) {
            KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
            ObDereferenceObject(thread);
        }
        ZwClose(handle);
    }
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
