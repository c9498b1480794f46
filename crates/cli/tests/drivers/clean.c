/* A clean driver: allocates and frees tagged pool, takes a spin lock, prints. */
#include <ntddk.h>

static KSPIN_LOCK Lock;
static PVOID State;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExFreePoolWithTag(State, 'nlcC');
    KdPrint(("clean: unloaded\n"));
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("clean: DriverEntry at IRQL %u, registry path %u bytes\n", KeGetCurrentIrql(), RegistryPath->Length);
    State = ExAllocatePoolWithTag(NonPagedPool, 64, 'nlcC');
    if (State == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    KeInitializeSpinLock(&Lock);
    KeAcquireSpinLock(&Lock, &old);
    ((PUCHAR)State)[0] = (UCHAR)KeGetCurrentIrql();
    KeReleaseSpinLock(&Lock, old);
    DbgPrint("clean: IRQL under the lock was %u\n", ((PUCHAR)State)[0]);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
