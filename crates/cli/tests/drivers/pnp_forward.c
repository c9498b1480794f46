/*
 * pnp_forward: a PnP function driver that passes its PnP IRPs down to the PDO, as
 * Microsoft's samples do: IRP_MN_START_DEVICE forwarded synchronously (the PDO — the
 * bus driver — starts the device first; a completion routine signals an event and
 * reclaims the IRP with STATUS_MORE_PROCESSING_REQUIRED), IRP_MN_REMOVE_DEVICE passed
 * down with IoSkipCurrentIrpStackLocation before detaching and deleting. AddDevice
 * attaches with IoAttachDeviceToDeviceStackSafe and finds the stack's top with
 * IoGetAttachedDeviceReference.
 */
#include <ntddk.h>

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
} EXT, *PEXT;

static NTSTATUS Started(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    KEVENT event;
    NTSTATUS status;

    switch (stack->MinorFunction) {
    case IRP_MN_START_DEVICE:
        KeInitializeEvent(&event, NotificationEvent, FALSE);
        IoCopyCurrentIrpStackLocationToNext(Irp);
        IoSetCompletionRoutine(Irp, Started, &event, TRUE, TRUE, TRUE);
        status = IoCallDriver(ext->Lower, Irp);
        if (status == STATUS_PENDING)
            KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, NULL);
        status = Irp->IoStatus.Status;
        DbgPrint("forward: the PDO started the device: 0x%x; resources %d\n", (unsigned)status,
                 stack->Parameters.StartDevice.AllocatedResourcesTranslated != NULL);
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return status;
    case IRP_MN_REMOVE_DEVICE:
        IoSkipCurrentIrpStackLocation(Irp);
        status = IoCallDriver(ext->Lower, Irp);
        DbgPrint("forward: the PDO removed the device: 0x%x\n", (unsigned)status);
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
        return status;
    }
    IoSkipCurrentIrpStackLocation(Irp);
    return IoCallDriver(ext->Lower, Irp);
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo, top;
    PEXT ext;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_NETWORK, 0, FALSE, &fdo);

    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    ext->Self = fdo;
    status = IoAttachDeviceToDeviceStackSafe(fdo, Pdo, &ext->Lower);
    top = IoGetAttachedDeviceReference(Pdo);
    DbgPrint("forward: attached 0x%x to the PDO %d; the stack's top is the FDO %d\n", (unsigned)status,
             ext->Lower == Pdo, top == fdo);
    ObDereferenceObject(top);
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    DbgPrint("forward: unloaded, devices left %d\n", DriverObject->DeviceObject != NULL);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
