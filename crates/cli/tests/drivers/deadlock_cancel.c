/* The system cancel spin lock under deadlock detection, as a spin lock of the
 * kernel's. Default build: DriverEntry takes its queue lock Q then the cancel spin
 * lock, releases both, then takes the cancel spin lock then Q: 0xC4/0x1001 (Q).
 * -DCANCEL_ROUTINE: IOCTL_PEND takes Q, then the cancel spin lock to set the IRP's
 * cancel routine, and leaves the IRP pending; when it is cancelled, IoCancelIrp calls
 * the cancel routine with the cancel spin lock held and the routine takes Q: 0x1001
 * (Q) again. With -DRELEASE_FIRST as well the routine releases the cancel spin lock
 * before it takes Q, as Microsoft's guidelines ask: clean. */
#include <ntddk.h>

#define IOCTL_PEND CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)

static KSPIN_LOCK Q;
static PIRP Pending;

static VOID Cancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    KIRQL irql;
    UNREFERENCED_PARAMETER(DeviceObject);
#ifdef RELEASE_FIRST
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    KeAcquireSpinLock(&Q, &irql);
    Pending = NULL;
    KeReleaseSpinLock(&Q, irql);
#else
    KeAcquireSpinLock(&Q, &irql);
    Pending = NULL;
    KeReleaseSpinLock(&Q, irql);
    IoReleaseCancelSpinLock(Irp->CancelIrql);
#endif
    DbgPrint("cancelled\n");
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static NTSTATUS Control(PDEVICE_OBJECT Device, PIRP Irp)
{
    KIRQL q, c;
    UNREFERENCED_PARAMETER(Device);
    KeAcquireSpinLock(&Q, &q);
    IoAcquireCancelSpinLock(&c);
    IoMarkIrpPending(Irp);
    IoSetCancelRoutine(Irp, Cancel);
    Pending = Irp;
    IoReleaseCancelSpinLock(c);
    KeReleaseSpinLock(&Q, q);
    return STATUS_PENDING;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL q, c;
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeSpinLock(&Q);
    DbgPrint("Q %p\n", &Q);
#ifdef CANCEL_ROUTINE
    {
        PDEVICE_OBJECT device;
        NTSTATUS status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
        if (!NT_SUCCESS(status)) {
            return status;
        }
        DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
        DriverObject->DriverUnload = Unload;
    }
#else
    UNREFERENCED_PARAMETER(DriverObject);
    KeAcquireSpinLock(&Q, &q);
    IoAcquireCancelSpinLock(&c);
    IoReleaseCancelSpinLock(c);
    KeReleaseSpinLock(&Q, q);
    DbgPrint("Q then the cancel spin lock\n");
    IoAcquireCancelSpinLock(&c);
    KeAcquireSpinLock(&Q, &q);
    KeReleaseSpinLock(&Q, q);
    IoReleaseCancelSpinLock(c);
#endif
    return STATUS_SUCCESS;
}
