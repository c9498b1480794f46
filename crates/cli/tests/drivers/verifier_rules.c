/* Breaks one of Driver Verifier's rules per request: the first input byte of
 * IOCTL 0x222000 says which (each a DRIVER_VERIFIER_DETECTED_VIOLATION subcode). */
#include <ntddk.h>

static UNICODE_STRING LinkName = RTL_CONSTANT_STRING(L"\\DosDevices\\NtmemRules");

static KSPIN_LOCK LockA, LockB;
static FAST_MUTEX Fast;
static ERESOURCE Resource;
static KMUTEX Mutex;
static KDEVICE_QUEUE Queue;
/* A KEVENT the driver put in a pageable data section. */
#pragma data_seg("PAGEDATA")
static KEVENT PagedEvent = {0};
#pragma data_seg()
static KDEVICE_QUEUE_ENTRY Entry;

static NTSTATUS Complete(PIRP Irp, NTSTATUS Status)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return Status;
}

static NTSTATUS CreateClose(PDEVICE_OBJECT Device, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Device);
    return Complete(Irp, STATUS_SUCCESS);
}

static void Break(UCHAR Rule)
{
    KIRQL old;
    PVOID p;
    switch (Rule) {
    case 0x01: /* paged pool at DISPATCH_LEVEL */
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        p = ExAllocatePoolWithTag(PagedPool, 24, 'luRV');
        break;
    case 0x02: /* nonpaged pool at HIGH_LEVEL */
        KeRaiseIrql(HIGH_LEVEL, &old);
        p = ExAllocatePoolWithTag(NonPagedPoolNx, 40, 'luRV');
        break;
    case 0x11: /* paged pool freed at DISPATCH_LEVEL */
        p = ExAllocatePoolWithTag(PagedPool, 24, 'luRV');
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        ExFreePoolWithTag(p, 'luRV');
        break;
    case 0x12: /* nonpaged pool freed at HIGH_LEVEL */
        p = ExAllocatePoolWithTag(NonPagedPoolNx, 24, 'luRV');
        KeRaiseIrql(HIGH_LEVEL, &old);
        ExFreePoolWithTag(p, 'luRV');
        break;
    case 0x30: /* a raise to a lower IRQL */
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        KeRaiseIrql(APC_LEVEL, &old);
        break;
    case 0x31: /* a lower to a higher IRQL */
        KeLowerIrql(DISPATCH_LEVEL);
        break;
    case 0x1A: /* KeEnterCriticalRegion at DISPATCH_LEVEL */
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        KeEnterCriticalRegion();
        break;
    case 0x1B: /* KeLeaveCriticalRegion at DISPATCH_LEVEL */
        KeEnterCriticalRegion();
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        KeLeaveCriticalRegion();
        break;
    case 0x33: /* ExAcquireFastMutex at DISPATCH_LEVEL */
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        ExAcquireFastMutex(&Fast);
        break;
    case 0x34: /* ExReleaseFastMutex after lowering to PASSIVE_LEVEL */
        ExAcquireFastMutex(&Fast);
        KeLowerIrql(PASSIVE_LEVEL);
        ExReleaseFastMutex(&Fast);
        break;
    case 0x35: /* KeInsertDeviceQueue at PASSIVE_LEVEL (DISPATCH_LEVEL only) */
        KeInitializeDeviceQueue(&Queue);
        KeInsertDeviceQueue(&Queue, &Entry);
        break;
    case 0x36: /* the cancel spin lock released after lowering to PASSIVE_LEVEL */
        IoAcquireCancelSpinLock(&old);
        KeLowerIrql(PASSIVE_LEVEL);
        IoReleaseCancelSpinLock(old);
        break;
    case 0x37: /* a resource acquired outside a critical region */
        ExAcquireResourceExclusiveLite(&Resource, TRUE);
        break;
    case 0x38: /* ... and released after leaving it */
        KeEnterCriticalRegion();
        ExAcquireResourceSharedLite(&Resource, TRUE);
        KeLeaveCriticalRegion();
        ExReleaseResourceLite(&Resource);
        break;
    case 0x39: /* ExAcquireFastMutexUnsafe at PASSIVE_LEVEL, APCs enabled */
        ExAcquireFastMutexUnsafe(&Fast);
        break;
    case 0x3A: /* ... released after leaving the critical region */
        KeEnterCriticalRegion();
        ExAcquireFastMutexUnsafe(&Fast);
        KeLeaveCriticalRegion();
        ExReleaseFastMutexUnsafe(&Fast);
        break;
    case 0xC0: /* every one of them used as the WDK says */
        KeInitializeDeviceQueue(&Queue);
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        KeInsertDeviceQueue(&Queue, &Entry);
        KeRemoveDeviceQueue(&Queue);
        KeLowerIrql(old);
        ExAcquireFastMutex(&Fast);
        ExReleaseFastMutex(&Fast);
        KeEnterCriticalRegion();
        ExAcquireFastMutexUnsafe(&Fast);
        ExAcquireResourceExclusiveLite(&Resource, TRUE);
        ExReleaseResourceLite(&Resource);
        ExReleaseFastMutexUnsafe(&Fast);
        KeLeaveCriticalRegion();
        /* A kernel mutex held disables normal kernel APCs too. */
        KeWaitForSingleObject(&Mutex, Executive, KernelMode, FALSE, NULL);
        ExAcquireResourceSharedLite(&Resource, TRUE);
        ExReleaseResourceLite(&Resource);
        KeReleaseMutex(&Mutex, FALSE);
        /* So does APC_LEVEL. */
        KeRaiseIrql(APC_LEVEL, &old);
        ExAcquireFastMutexUnsafe(&Fast);
        ExReleaseFastMutexUnsafe(&Fast);
        KeLowerIrql(old);
        break;
    case 0xE1: /* a KEVENT in paged pool */
        p = ExAllocatePoolWithTag(PagedPool, sizeof(KEVENT), 'tvEV');
        if (p != NULL)
            KeInitializeEvent((PKEVENT)p, NotificationEvent, FALSE);
        break;
    case 0xD1: /* A then B, later B then A: a lock hierarchy violation */
        KeAcquireSpinLock(&LockA, &old);
        KeAcquireSpinLockAtDpcLevel(&LockB);
        KeReleaseSpinLockFromDpcLevel(&LockB);
        KeReleaseSpinLock(&LockA, old);
        KeAcquireSpinLock(&LockB, &old);
        KeAcquireSpinLockAtDpcLevel(&LockA);
        break;
    case 0xD3: /* A then B, A released first */
        KeAcquireSpinLock(&LockA, &old);
        KeAcquireSpinLockAtDpcLevel(&LockB);
        KeReleaseSpinLockFromDpcLevel(&LockA);
        break;
    case 0xE3: /* a FAST_MUTEX in paged pool, acquired (its initialization is inline) */
        p = ExAllocatePoolWithTag(PagedPool, sizeof(FAST_MUTEX), 'tmFV');
        if (p != NULL) {
            ExInitializeFastMutex((PFAST_MUTEX)p);
            ExAcquireFastMutex((PFAST_MUTEX)p);
        }
        break;
    case 0xE4: /* a KEVENT in the image's PAGEDATA section */
        KeInitializeEvent(&PagedEvent, NotificationEvent, FALSE);
        break;
    case 0xE2: /* a KSPIN_LOCK in paged pool */
        p = ExAllocatePoolWithTag(PagedPool, sizeof(KSPIN_LOCK), 'kpSV');
        if (p != NULL)
            KeInitializeSpinLock((PKSPIN_LOCK)p);
        break;
    }
}

static NTSTATUS Control(PDEVICE_OBJECT Device, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Device);
    Break(*(PUCHAR)Irp->AssociatedIrp.SystemBuffer);
    DbgPrint("verifier_rules: nothing stopped the machine\n");
    return Complete(Irp, STATUS_SUCCESS);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    ExDeleteResourceLite(&Resource);
    IoDeleteSymbolicLink(&LinkName);
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemRules");
    PDEVICE_OBJECT device;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&LockA);
    KeInitializeSpinLock(&LockB);
    ExInitializeFastMutex(&Fast);
    ExInitializeResourceLite(&Resource);
    KeInitializeMutex(&Mutex, 0);
    status = IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    status = IoCreateSymbolicLink(&LinkName, &name);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(device);
        return status;
    }
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
