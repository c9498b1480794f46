/*
 * pnp_start: a PnP function driver that prints what the PnP manager hands it —
 * AddDevice's PDO and the device stack, and IRP_MN_START_DEVICE's raw and
 * translated CM_RESOURCE_LISTs descriptor by descriptor — then removes cleanly.
 */
#include <ntddk.h>

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
} EXT, *PEXT;

static VOID Dump(const char *Name, PCM_RESOURCE_LIST List)
{
    PCM_PARTIAL_RESOURCE_LIST p = &List->List[0].PartialResourceList;
    ULONG i;

    DbgPrint("pnp: %s: Count %u, InterfaceType %d, Version %u, Revision %u, %u descriptors\n", Name, List->Count,
             List->List[0].InterfaceType, p->Version, p->Revision, p->Count);
    for (i = 0; i < p->Count; i++) {
        PCM_PARTIAL_RESOURCE_DESCRIPTOR d = &p->PartialDescriptors[i];
        switch (d->Type) {
        case CmResourceTypePort:
        case CmResourceTypeMemory:
            DbgPrint("pnp: %s[%u] %s share %u flags 0x%04x start 0x%llx length 0x%x\n", Name, i,
                     d->Type == CmResourceTypePort ? "Port" : "Memory", d->ShareDisposition, d->Flags,
                     (unsigned long long)d->u.Generic.Start.QuadPart, d->u.Generic.Length);
            break;
        case CmResourceTypeInterrupt:
            DbgPrint("pnp: %s[%u] Interrupt share %u flags 0x%04x level %u vector 0x%x affinity 0x%llx\n", Name, i,
                     d->ShareDisposition, d->Flags, d->u.Interrupt.Level, d->u.Interrupt.Vector,
                     (unsigned long long)d->u.Interrupt.Affinity);
            break;
        default:
            DbgPrint("pnp: %s[%u] type %u\n", Name, i, d->Type);
        }
    }
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    NTSTATUS status;

    DbgPrint("pnp: IRP_MJ_PNP 0x%x minor %u, IoStatus.Status 0x%08x on arrival\n", stack->MajorFunction,
             stack->MinorFunction, (unsigned)Irp->IoStatus.Status);
    switch (stack->MinorFunction) {
    case IRP_MN_START_DEVICE:
        Dump("raw", stack->Parameters.StartDevice.AllocatedResources);
        Dump("translated", stack->Parameters.StartDevice.AllocatedResourcesTranslated);
        Irp->IoStatus.Status = STATUS_SUCCESS;
        break;
    case IRP_MN_REMOVE_DEVICE:
        Irp->IoStatus.Status = STATUS_SUCCESS;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
        return STATUS_SUCCESS;
    }
    status = Irp->IoStatus.Status; /* the IRP may be gone once completed */
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo;
    PEXT ext;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_NETWORK, 0, FALSE, &fdo);

    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    ext->Self = fdo;
    ext->Lower = IoAttachDeviceToDeviceStack(fdo, Pdo);
    DbgPrint("pnp: AddDevice: PDO has no driver %d, attached to the PDO %d, PDO's AttachedDevice is the FDO %d, "
             "FDO StackSize %d\n",
             Pdo->DriverObject == NULL, ext->Lower == Pdo, Pdo->AttachedDevice == fdo, fdo->StackSize);
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    DbgPrint("pnp: unloaded, devices left %d\n", DriverObject->DeviceObject != NULL);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("pnp: DriverExtension->DriverObject is the driver %d\n",
             DriverObject->DriverExtension->DriverObject == DriverObject);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
