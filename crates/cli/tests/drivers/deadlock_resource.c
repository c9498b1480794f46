/* An ERESOURCE cycle: a system thread takes R1 exclusive then R2 shared and waits on
 * (holding neither); DriverEntry then takes R2 exclusive and asks for R1 shared. The
 * two never meet, but under Driver Verifier's deadlock detection the request closes
 * a cycle: 0xC4/0x1001 (R1). Each acquisition is inside a critical region, as
 * Windows requires. */
#include <ntddk.h>

static ERESOURCE R1, R2;
static KEVENT FirstDone, Finish;

static VOID First(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    KeEnterCriticalRegion();
    ExAcquireResourceExclusiveLite(&R1, TRUE);
    ExAcquireResourceSharedLite(&R2, TRUE);
    ExReleaseResourceLite(&R2);
    ExReleaseResourceLite(&R1);
    KeLeaveCriticalRegion();
    KeSetEvent(&FirstDone, 0, FALSE);
    KeWaitForSingleObject(&Finish, Executive, KernelMode, FALSE, NULL);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExDeleteResourceLite(&R1);
    ExDeleteResourceLite(&R2);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeResourceLite(&R1);
    ExInitializeResourceLite(&R2);
    KeInitializeEvent(&FirstDone, NotificationEvent, FALSE);
    KeInitializeEvent(&Finish, NotificationEvent, FALSE);
    DbgPrint("R1 %p R2 %p\n", &R1, &R2);
    if (NT_SUCCESS(PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, First, NULL))) {
        ZwClose(thread);
    }
    KeWaitForSingleObject(&FirstDone, Executive, KernelMode, FALSE, NULL);
    KeEnterCriticalRegion();
    ExAcquireResourceExclusiveLite(&R2, TRUE);
    ExAcquireResourceSharedLite(&R1, TRUE);
    ExReleaseResourceLite(&R1);
    ExReleaseResourceLite(&R2);
    KeLeaveCriticalRegion();
    KeSetEvent(&Finish, 0, FALSE);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
