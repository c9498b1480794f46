/* A cancel-safe queue (IoCsq*): IOCTL_QUEUE leaves its IRP pending in the queue,
 * IOCTL_COMPLETE_ONE completes the oldest queued IRP with 4 bytes, and a queued IRP
 * that is cancelled is completed with STATUS_CANCELLED by CsqCompleteCanceledIrp.
 * The queue is a small ring of IRP pointers under a spin lock. */
#include <ntddk.h>

#define IOCTL_QUEUE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_COMPLETE_ONE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define SLOTS 8

static IO_CSQ Queue;
static KSPIN_LOCK QueueLock;
static PIRP Slots[SLOTS];

static VOID Insert(PIO_CSQ Csq, PIRP Irp)
{
    ULONG i;
    UNREFERENCED_PARAMETER(Csq);
    for (i = 0; i < SLOTS && Slots[i] != NULL; i++) {
    }
    Slots[i] = Irp;
    DbgPrint("insert %p\n", Irp);
}

static VOID Remove(PIO_CSQ Csq, PIRP Irp)
{
    ULONG i;
    UNREFERENCED_PARAMETER(Csq);
    for (i = 0; i < SLOTS; i++) {
        if (Slots[i] == Irp) {
            Slots[i] = NULL;
        }
    }
    DbgPrint("remove %p\n", Irp);
}

static PIRP PeekNext(PIO_CSQ Csq, PIRP Irp, PVOID PeekContext)
{
    ULONG i = 0;
    UNREFERENCED_PARAMETER(Csq);
    UNREFERENCED_PARAMETER(PeekContext);
    if (Irp != NULL) {
        while (i < SLOTS && Slots[i] != Irp) {
            i++;
        }
        i++;
    }
    for (; i < SLOTS; i++) {
        if (Slots[i] != NULL) {
            return Slots[i];
        }
    }
    return NULL;
}

static VOID AcquireLock(PIO_CSQ Csq, PKIRQL Irql)
{
    UNREFERENCED_PARAMETER(Csq);
    KeAcquireSpinLock(&QueueLock, Irql);
}

static VOID ReleaseLock(PIO_CSQ Csq, KIRQL Irql)
{
    UNREFERENCED_PARAMETER(Csq);
    KeReleaseSpinLock(&QueueLock, Irql);
}

static VOID CompleteCanceled(PIO_CSQ Csq, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Csq);
    DbgPrint("cancelled %p at IRQL %d\n", Irp, KeGetCurrentIrql());
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static NTSTATUS Control(PDEVICE_OBJECT Device, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PIRP next;
    UNREFERENCED_PARAMETER(Device);
    switch (stack->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_QUEUE:
        IoCsqInsertIrp(&Queue, Irp, NULL);
        DbgPrint("pending %p: control %x\n", Irp, stack->Control);
        return STATUS_PENDING;
    case IOCTL_COMPLETE_ONE:
        next = IoCsqRemoveNextIrp(&Queue, NULL);
        DbgPrint("completing %p\n", next);
        if (next != NULL) {
            *(PULONG)next->AssociatedIrp.SystemBuffer = 0x600d;
            next->IoStatus.Status = STATUS_SUCCESS;
            next->IoStatus.Information = sizeof(ULONG);
            IoCompleteRequest(next, IO_NO_INCREMENT);
        }
        break;
    default:
        break;
    }
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    KeInitializeSpinLock(&QueueLock);
    status = IoCsqInitialize(&Queue, Insert, Remove, PeekNext, AcquireLock, ReleaseLock, CompleteCanceled);
    DbgPrint("IoCsqInitialize %08x type %lu\n", status, Queue.Type);
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
