/*
 * irp_three: a three-device stack (top over middle over bottom) inside one driver.
 *
 *   ORDER  top and middle each copy their location down with a completion routine;
 *          the bottom completes at once: the routines run bottom-up (middle's, then
 *          top's), each seeing the device of its own driver.
 *   PEND   the same, the bottom pending the IRP and completing it from a DPC:
 *          PendingReturned reaches both routines, each marks its location pending.
 *   FSD    the top reads from the bottom with an IRP from IoBuildSynchronousFsdRequest
 *          (DO_BUFFERED_IO: a system buffer copied back at final completion).
 *   ASSOC  (METHOD_NEITHER) the top splits the request into two associated IRPs sent
 *          to the bottom; the request completes when both have.
 *   INIT   the top initializes an IRP in its own pool (IoInitializeIrp, IoSizeOfIrp),
 *          sends it to the bottom, reclaims it and frees the pool itself.
 *   ASYNC  the top flushes the bottom with an IRP from IoBuildAsynchronousFsdRequest,
 *          freed by its completion routine (IoFreeIrp, STATUS_MORE_PROCESSING_REQUIRED).
 * The middle device sets its completion routine with IoSetCompletionRoutineEx.
 */
#include <ntddk.h>

#define IOCTL_ORDER CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_PEND CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FSD CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_ASSOC CTL_CODE(FILE_DEVICE_UNKNOWN, 0x803, METHOD_NEITHER, FILE_ANY_ACCESS)
#define IOCTL_INIT CTL_CODE(FILE_DEVICE_UNKNOWN, 0x804, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_ASYNC CTL_CODE(FILE_DEVICE_UNKNOWN, 0x805, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_PIECE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_NEITHER, FILE_ANY_ACCESS)

typedef struct _EXT {
    ULONG Id; /* 1 bottom, 2 middle, 3 top */
    PDEVICE_OBJECT Lower;
    KDPC Dpc;
    PIRP Pended;
} EXT, *PEXT;

static PDEVICE_OBJECT g_dev[4];
static const char *g_name[4] = {"NULL", "bottom", "middle", "top"};

static const char *Name(PDEVICE_OBJECT Device)
{
    ULONG i;
    for (i = 1; i < 4; i++)
        if (Device == g_dev[i])
            return g_name[i];
    return Device == NULL ? "NULL" : "other";
}

static VOID BottomDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
    PEXT ext = (PEXT)Context;
    PIRP irp = ext->Pended;
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Arg1);
    UNREFERENCED_PARAMETER(Arg2);
    DbgPrint("bottom: DPC completes\n");
    *(PULONG)irp->AssociatedIrp.SystemBuffer = 1;
    irp->IoStatus.Status = STATUS_SUCCESS;
    irp->IoStatus.Information = sizeof(ULONG);
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

static NTSTATUS Bottom(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;

    if (sp->MajorFunction == IRP_MJ_FLUSH_BUFFERS) {
        DbgPrint("bottom: flush, location %d of %d\n", Irp->CurrentLocation, Irp->StackCount);
        Irp->IoStatus.Information = 0;
    } else if (sp->MajorFunction == IRP_MJ_READ) {
        DbgPrint("bottom: read %u bytes at %lld, location %d of %d\n", sp->Parameters.Read.Length,
                 sp->Parameters.Read.ByteOffset.QuadPart, Irp->CurrentLocation, Irp->StackCount);
        RtlCopyMemory(Irp->AssociatedIrp.SystemBuffer, "BTM!", 4);
        Irp->IoStatus.Information = 4;
    } else if (sp->Parameters.DeviceIoControl.IoControlCode == IOCTL_PIECE) {
        DbgPrint("bottom: piece of master %s, location %d of %d\n",
                 Irp->AssociatedIrp.MasterIrp == (PIRP)sp->Parameters.DeviceIoControl.Type3InputBuffer ? "ok" : "wrong",
                 Irp->CurrentLocation, Irp->StackCount);
        Irp->IoStatus.Information = 0;
    } else if (sp->Parameters.DeviceIoControl.IoControlCode == IOCTL_PEND) {
        DbgPrint("bottom: pends\n");
        IoMarkIrpPending(Irp);
        ext->Pended = Irp;
        KeInsertQueueDpc(&ext->Dpc, NULL, NULL);
        return STATUS_PENDING;
    } else {
        DbgPrint("bottom: completes at location %d of %d\n", Irp->CurrentLocation, Irp->StackCount);
        *(PULONG)Irp->AssociatedIrp.SystemBuffer = 1;
        Irp->IoStatus.Information = sizeof(ULONG);
    }
    Irp->IoStatus.Status = STATUS_SUCCESS;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static NTSTATUS Order(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    PEXT ext = (PEXT)Context;
    PULONG value = (PULONG)Irp->AssociatedIrp.SystemBuffer;
    DbgPrint("completion of %s: device %s, location %d, PendingReturned %u\n", g_name[ext->Id], Name(DeviceObject),
             Irp->CurrentLocation, Irp->PendingReturned);
    if (Irp->PendingReturned)
        IoMarkIrpPending(Irp);
    *value = *value * 16 + ext->Id;
    return STATUS_SUCCESS;
}

static NTSTATUS Reclaim(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS FreeIt(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    DbgPrint("top: async flush done: 0x%x, status block 0x%x\n", (unsigned)Irp->IoStatus.Status,
             (unsigned)Irp->UserIosb->Status);
    IoFreeIrp(Irp);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS Top(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    PDEVICE_OBJECT bottom = g_dev[1];
    KEVENT event;
    IO_STATUS_BLOCK iosb;
    LARGE_INTEGER offset;
    NTSTATUS status;
    PIRP irp;
    int i;

    switch (sp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_FSD:
        KeInitializeEvent(&event, NotificationEvent, FALSE);
        offset.QuadPart = 512;
        irp = IoBuildSynchronousFsdRequest(IRP_MJ_READ, bottom, Irp->AssociatedIrp.SystemBuffer, 4, &offset, &event,
                                           &iosb);
        status = IoCallDriver(bottom, irp);
        if (status == STATUS_PENDING)
            KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, NULL);
        DbgPrint("top: read returned 0x%x, iosb 0x%x/%u, event %d\n", (unsigned)status, (unsigned)iosb.Status,
                 (unsigned)iosb.Information, (int)KeReadStateEvent(&event));
        Irp->IoStatus.Status = iosb.Status;
        Irp->IoStatus.Information = iosb.Information;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return iosb.Status;
    case IOCTL_ASSOC:
        IoMarkIrpPending(Irp);
        Irp->IoStatus.Status = STATUS_SUCCESS;
        Irp->IoStatus.Information = 0;
        Irp->AssociatedIrp.IrpCount = 2;
        for (i = 0; i < 2; i++) {
            PIO_STACK_LOCATION next;
            irp = IoMakeAssociatedIrp(Irp, bottom->StackSize);
            DbgPrint("top: associated IRP %d: flags 0x%x\n", i, (unsigned)irp->Flags);
            next = IoGetNextIrpStackLocation(irp);
            next->MajorFunction = IRP_MJ_INTERNAL_DEVICE_CONTROL;
            next->Parameters.DeviceIoControl.IoControlCode = IOCTL_PIECE;
            next->Parameters.DeviceIoControl.Type3InputBuffer = Irp;
            IoCallDriver(bottom, irp);
        }
        return STATUS_PENDING;
    case IOCTL_ASYNC:
        KeInitializeEvent(&event, NotificationEvent, FALSE);
        iosb.Status = 0x12345;
        irp = IoBuildAsynchronousFsdRequest(IRP_MJ_FLUSH_BUFFERS, bottom, NULL, 0, NULL, &iosb);
        IoSetCompletionRoutine(irp, FreeIt, &event, TRUE, TRUE, TRUE);
        if (IoCallDriver(bottom, irp) == STATUS_PENDING)
            KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, NULL);
        Irp->IoStatus.Status = STATUS_SUCCESS;
        Irp->IoStatus.Information = 0;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    case IOCTL_INIT: {
        USHORT size = IoSizeOfIrp(bottom->StackSize);
        ULONG value = 0;
        PIO_STACK_LOCATION next;
        irp = (PIRP)ExAllocatePoolWithTag(NonPagedPool, size, 'pRwO');
        if (irp == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
        IoInitializeIrp(irp, size, bottom->StackSize);
        DbgPrint("top: initialized %u bytes, location %d of %d\n", irp->Size, irp->CurrentLocation, irp->StackCount);
        KeInitializeEvent(&event, NotificationEvent, FALSE);
        irp->AssociatedIrp.SystemBuffer = &value;
        next = IoGetNextIrpStackLocation(irp);
        next->MajorFunction = IRP_MJ_DEVICE_CONTROL;
        next->Parameters.DeviceIoControl.IoControlCode = IOCTL_INIT;
        next->Parameters.DeviceIoControl.OutputBufferLength = sizeof(ULONG);
        IoSetCompletionRoutine(irp, Reclaim, &event, TRUE, TRUE, TRUE);
        if (IoCallDriver(bottom, irp) == STATUS_PENDING)
            KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, NULL);
        DbgPrint("top: reclaimed, value %u\n", value);
        ExFreePoolWithTag(irp, 'pRwO');
        *(PULONG)Irp->AssociatedIrp.SystemBuffer = value;
        Irp->IoStatus.Status = STATUS_SUCCESS;
        Irp->IoStatus.Information = sizeof(ULONG);
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    }
    }
    IoCopyCurrentIrpStackLocationToNext(Irp);
    IoSetCompletionRoutine(Irp, Order, ext, TRUE, TRUE, TRUE);
    return IoCallDriver(ext->Lower, Irp);
}

static NTSTATUS Middle(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    NTSTATUS status;
    IoCopyCurrentIrpStackLocationToNext(Irp);
    status = IoSetCompletionRoutineEx(DeviceObject, Irp, Order, ext, TRUE, TRUE, TRUE);
    if (!NT_SUCCESS(status))
        return status;
    return IoCallDriver(ext->Lower, Irp);
}

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);

    if (sp->MajorFunction == IRP_MJ_CREATE || sp->MajorFunction == IRP_MJ_CLOSE ||
        sp->MajorFunction == IRP_MJ_CLEANUP) {
        Irp->IoStatus.Status = STATUS_SUCCESS;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    }
    DbgPrint("%s: major 0x%x at location %d of %d\n", g_name[ext->Id], sp->MajorFunction, Irp->CurrentLocation,
             Irp->StackCount);
    switch (ext->Id) {
    case 3:
        return Top(DeviceObject, Irp);
    case 2:
        return Middle(DeviceObject, Irp);
    default:
        return Bottom(DeviceObject, Irp);
    }
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    IoDetachDevice(g_dev[2]);
    IoDetachDevice(g_dev[1]);
    IoDeleteDevice(g_dev[3]);
    IoDeleteDevice(g_dev[2]);
    IoDeleteDevice(g_dev[1]);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ULONG i;
    UNREFERENCED_PARAMETER(RegistryPath);

    for (i = 1; i < 4; i++) {
        PEXT ext;
        NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &g_dev[i]);
        if (!NT_SUCCESS(status))
            return status;
        g_dev[i]->Flags |= DO_BUFFERED_IO;
        ext = (PEXT)g_dev[i]->DeviceExtension;
        ext->Id = i;
        if (i > 1)
            ext->Lower = IoAttachDeviceToDeviceStack(g_dev[i], g_dev[1]);
    }
    KeInitializeDpc(&((PEXT)g_dev[1]->DeviceExtension)->Dpc, BottomDpc, g_dev[1]->DeviceExtension);
    DbgPrint("stack sizes %d %d %d; top attached over %s\n", g_dev[1]->StackSize, g_dev[2]->StackSize,
             g_dev[3]->StackSize, Name(((PEXT)g_dev[3]->DeviceExtension)->Lower));
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_READ] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_FLUSH_BUFFERS] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_INTERNAL_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
