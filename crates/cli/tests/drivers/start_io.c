/*
 * start_io: requests serialized through StartIo and the device queue. Each device
 * control is marked pending and handed to IoStartPacket with a cancel routine and, if
 * the request carries one, a sort key (its 4 input bytes). StartIo starts a 10 ms
 * timer; the timer's DPC completes the current request with the number of requests
 * StartIo has seen, and starts the next (IoStartNextPacketByKey with key 4 when the
 * driver is built with -DBYKEY, else IoStartNextPacket). The cancel routine takes a
 * queued request out of the device queue (KeRemoveEntryDeviceQueue).
 */
#include <ntddk.h>

typedef struct _EXT {
    KTIMER Timer;
    KDPC Dpc;
    ULONG Started;
} EXT, *PEXT;

static PDEVICE_OBJECT g_device;

static VOID Cancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    BOOLEAN queued;
    if (Irp == DeviceObject->CurrentIrp) {
        /* Running: the timer completes it. */
        IoReleaseCancelSpinLock(Irp->CancelIrql);
        DbgPrint("cancel: the current request runs on\n");
        return;
    }
    queued = KeRemoveEntryDeviceQueue(&DeviceObject->DeviceQueue, &Irp->Tail.Overlay.DeviceQueueEntry);
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    DbgPrint("cancel: taken out of the device queue %d\n", queued);
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static VOID StartIo(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    LARGE_INTEGER due;
    KIRQL irql;

    ext->Started++;
    DbgPrint("startio: request %u at IRQL %u, current %d, key %u\n", ext->Started, KeGetCurrentIrql(),
             DeviceObject->CurrentIrp == Irp, Irp->Tail.Overlay.DeviceQueueEntry.SortKey);
    IoAcquireCancelSpinLock(&irql);
    IoSetCancelRoutine(Irp, NULL);
    IoReleaseCancelSpinLock(irql);
    due.QuadPart = -10 * 1000 * 10; /* 10 ms */
    KeSetTimer(&ext->Timer, due, &ext->Dpc);
}

static VOID Done(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
    PEXT ext = (PEXT)Context;
    PIRP irp = g_device->CurrentIrp;
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Arg1);
    UNREFERENCED_PARAMETER(Arg2);
    *(PULONG)irp->AssociatedIrp.SystemBuffer = ext->Started;
    irp->IoStatus.Status = STATUS_SUCCESS;
    irp->IoStatus.Information = sizeof(ULONG);
#ifdef BYKEY
    IoStartNextPacketByKey(g_device, TRUE, 4);
#else
    IoStartNextPacket(g_device, TRUE);
#endif
    DbgPrint("done: request %u completed\n", *(PULONG)irp->AssociatedIrp.SystemBuffer);
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    ULONG key;

    if (sp->MajorFunction != IRP_MJ_DEVICE_CONTROL) {
        Irp->IoStatus.Status = STATUS_SUCCESS;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    }
    IoMarkIrpPending(Irp);
    if (sp->Parameters.DeviceIoControl.InputBufferLength >= sizeof(ULONG)) {
        key = *(PULONG)Irp->AssociatedIrp.SystemBuffer;
        IoStartPacket(DeviceObject, Irp, &key, Cancel);
    } else {
        IoStartPacket(DeviceObject, Irp, NULL, Cancel);
    }
    DbgPrint("dispatch: queue busy %d\n", DeviceObject->DeviceQueue.Busy);
    return STATUS_PENDING;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PEXT ext;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &g_device);
    if (!NT_SUCCESS(status))
        return status;
    g_device->Flags |= DO_BUFFERED_IO;
    ext = (PEXT)g_device->DeviceExtension;
    KeInitializeTimer(&ext->Timer);
    KeInitializeDpc(&ext->Dpc, Done, ext);
    DbgPrint("device queue: type %d size %d busy %d\n", g_device->DeviceQueue.Type, g_device->DeviceQueue.Size,
             g_device->DeviceQueue.Busy);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverStartIo = StartIo;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
