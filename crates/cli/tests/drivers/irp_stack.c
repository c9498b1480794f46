/*
 * irp_stack: a device stack inside one driver, and IRPs passed down it. DriverEntry
 * creates a lower device and an upper one attached over it
 * (IoAttachDeviceToDeviceStack); requests reach the upper device, the top of the
 * stack, which passes each down as its control code says:
 *
 *   SKIP   IoSkipCurrentIrpStackLocation + IoCallDriver (no completion routine)
 *   COPY   IoCopyCurrentIrpStackLocationToNext + a completion routine that adds 1
 *   SYNC   the same with a routine that signals an event and returns
 *          STATUS_MORE_PROCESSING_REQUIRED; the upper driver completes again
 *   OWN    an IRP of its own (IoAllocateIrp), sent down, reclaimed, reused, freed
 *   BUILD  an IRP from IoBuildDeviceIoControlRequest, with event and status block
 *   PEND   as COPY, but the lower device pends the IRP and completes it from a DPC
 *   HOLD   as COPY, the lower device pends the IRP with a cancel routine; cancelled
 *          (IoCancelIrp), the cancel routine gets the lower device and completes it
 *          as STATUS_CANCELLED, and the upper routine runs (invoke on cancel)
 *   NONE   a read the lower device's driver has no routine for (IoBuildSynchronousFsdRequest):
 *          the I/O manager's default completes it with STATUS_INVALID_DEVICE_REQUEST
 *
 * Built with -DRULE=n it breaks one of Windows' rules instead:
 *   1  the lower device completes a SKIP request twice (0x44)
 *   2  the lower device passes a SKIP request down again with no location left (0x35)
 *   3  OWN with no completion routine: the IRP reaches the I/O manager (0x0A)
 */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

#define IOCTL_SKIP CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_COPY CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SYNC CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_OWN CTL_CODE(FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_BUILD CTL_CODE(FILE_DEVICE_UNKNOWN, 0x804, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_PEND CTL_CODE(FILE_DEVICE_UNKNOWN, 0x805, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_NONE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x806, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_HOLD CTL_CODE(FILE_DEVICE_UNKNOWN, 0x807, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_INTERNAL CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _EXT {
    BOOLEAN Upper;
    PDEVICE_OBJECT Lower;
    KDPC Dpc;
    PIRP Pended;
} EXT, *PEXT;

static PDEVICE_OBJECT g_lower, g_upper;

static const char *Name(PDEVICE_OBJECT Device)
{
    return Device == g_upper ? "upper" : Device == g_lower ? "lower" : Device == NULL ? "NULL" : "other";
}

/* The lower device's answer: 0x100 * the location it saw + the IRP's stack count. */
static VOID Answer(PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    if (sp->Parameters.DeviceIoControl.OutputBufferLength >= sizeof(ULONG)) {
        *(PULONG)Irp->AssociatedIrp.SystemBuffer = 0x100 * (ULONG)Irp->CurrentLocation + (ULONG)Irp->StackCount;
        Irp->IoStatus.Information = sizeof(ULONG);
    }
    Irp->IoStatus.Status = STATUS_SUCCESS;
}

static VOID LowerDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
    PEXT ext = (PEXT)Context;
    PIRP irp = ext->Pended;
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Arg1);
    UNREFERENCED_PARAMETER(Arg2);
    ext->Pended = NULL;
    DbgPrint("lower: DPC completes the pended IRP\n");
    Answer(irp);
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

static VOID LowerCancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    DbgPrint("lower: cancel routine, device %s, Cancel %u\n", Name(DeviceObject), Irp->Cancel);
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static NTSTATUS Lower(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    ULONG code = sp->Parameters.DeviceIoControl.IoControlCode;
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;

    DbgPrint("lower: major 0x%x code 0x%x at location %d of %d, device %s\n", sp->MajorFunction, code,
             Irp->CurrentLocation, Irp->StackCount, Name(sp->DeviceObject));
    if (code == IOCTL_PEND) {
        IoMarkIrpPending(Irp);
        ext->Pended = Irp;
        KeInsertQueueDpc(&ext->Dpc, NULL, NULL);
        return STATUS_PENDING;
    }
    if (code == IOCTL_HOLD) {
        IoMarkIrpPending(Irp);
        IoSetCancelRoutine(Irp, LowerCancel);
        return STATUS_PENDING;
    }
    if (RULE == 2 && code == IOCTL_SKIP) {
        IoCopyCurrentIrpStackLocationToNext(Irp);
        return IoCallDriver(DeviceObject, Irp); /* the bug: no location left */
    }
    Answer(Irp);
    if (RULE == 1 && code == IOCTL_SKIP) {
        DbgPrint("lower: completing %p twice\n", (PVOID)Irp);
        IoCompleteRequest(Irp, IO_NO_INCREMENT); /* the bug: completed twice */
    }
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static NTSTATUS AddOne(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    DbgPrint("completion: device %s, PendingReturned %u, location %d, status 0x%x\n", Name(DeviceObject),
             Irp->PendingReturned, Irp->CurrentLocation, (unsigned)Irp->IoStatus.Status);
    if (Irp->PendingReturned)
        IoMarkIrpPending(Irp);
    if (Irp->Cancel)
        DbgPrint("completion: cancelled\n");
    else
        *(PULONG)Irp->AssociatedIrp.SystemBuffer += 1;
    return STATUS_SUCCESS;
}

static NTSTATUS Signal(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    DbgPrint("signal: device %s, location %d\n", Name(DeviceObject), Irp->CurrentLocation);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS Wait(PKEVENT Event, NTSTATUS Status)
{
    if (Status == STATUS_PENDING)
        KeWaitForSingleObject(Event, Executive, KernelMode, FALSE, NULL);
    return Status;
}

static NTSTATUS Own(PDEVICE_OBJECT Lower, PULONG Value)
{
    KEVENT event;
    PIO_STACK_LOCATION next;
    NTSTATUS status;
    PIRP irp = IoAllocateIrp(Lower->StackSize, FALSE);

    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    DbgPrint("own: size %u, stack count %d, location %d, flags 0x%x\n", irp->Size, irp->StackCount,
             irp->CurrentLocation, irp->AllocationFlags);
    KeInitializeEvent(&event, NotificationEvent, FALSE);
    irp->AssociatedIrp.SystemBuffer = Value;
    next = IoGetNextIrpStackLocation(irp);
    next->MajorFunction = IRP_MJ_INTERNAL_DEVICE_CONTROL;
    next->Parameters.DeviceIoControl.IoControlCode = IOCTL_INTERNAL;
    next->Parameters.DeviceIoControl.OutputBufferLength = sizeof(ULONG);
    if (RULE != 3)
        IoSetCompletionRoutine(irp, Signal, &event, TRUE, TRUE, TRUE);
    status = Wait(&event, IoCallDriver(Lower, irp));
    DbgPrint("own: returned 0x%x, status 0x%x, information %u, location %d\n", (unsigned)status,
             (unsigned)irp->IoStatus.Status, (unsigned)irp->IoStatus.Information, irp->CurrentLocation);
    status = irp->IoStatus.Status;
    IoReuseIrp(irp, STATUS_NOT_SUPPORTED);
    DbgPrint("own: reused: status 0x%x, location %d, flags 0x%x\n", (unsigned)irp->IoStatus.Status,
             irp->CurrentLocation, irp->AllocationFlags);
    IoFreeIrp(irp);
    return status;
}

static NTSTATUS Build(PDEVICE_OBJECT Lower, PULONG Value)
{
    KEVENT event;
    IO_STATUS_BLOCK iosb;
    ULONG in = 5;
    NTSTATUS status;
    PIRP irp;

    KeInitializeEvent(&event, NotificationEvent, FALSE);
    iosb.Status = -1;
    iosb.Information = 0;
    irp = IoBuildDeviceIoControlRequest(IOCTL_COPY, Lower, &in, sizeof in, Value, sizeof(ULONG), FALSE, &event, &iosb);
    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    DbgPrint("build: stack count %d, location %d, next major 0x%x, flags 0x%x\n", irp->StackCount,
             irp->CurrentLocation, IoGetNextIrpStackLocation(irp)->MajorFunction, (unsigned)irp->Flags);
    status = Wait(&event, IoCallDriver(Lower, irp));
    DbgPrint("build: returned 0x%x, iosb 0x%x/%u, event %d, value 0x%x\n", (unsigned)status, (unsigned)iosb.Status,
             (unsigned)iosb.Information, (int)KeReadStateEvent(&event), (unsigned)*Value);
    return iosb.Status;
}

static NTSTATUS NoRoutine(PDEVICE_OBJECT Lower, PULONG Value)
{
    KEVENT event;
    IO_STATUS_BLOCK iosb;
    NTSTATUS status;
    PIRP irp;

    KeInitializeEvent(&event, NotificationEvent, FALSE);
    irp = IoBuildSynchronousFsdRequest(IRP_MJ_READ, Lower, Value, sizeof(ULONG), NULL, &event, &iosb);
    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    status = Wait(&event, IoCallDriver(Lower, irp));
    DbgPrint("none: returned 0x%x, iosb 0x%x/%u, event %d\n", (unsigned)status, (unsigned)iosb.Status,
             (unsigned)iosb.Information, (int)KeReadStateEvent(&event));
    return STATUS_SUCCESS;
}

static NTSTATUS Upper(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    ULONG code = sp->Parameters.DeviceIoControl.IoControlCode;
    NTSTATUS status;
    KEVENT event;
    ULONG value = 0;

    DbgPrint("upper: code 0x%x at location %d of %d\n", code, Irp->CurrentLocation, Irp->StackCount);
    switch (code) {
    case IOCTL_SKIP:
        IoSkipCurrentIrpStackLocation(Irp);
        return IoCallDriver(ext->Lower, Irp);
    case IOCTL_COPY:
    case IOCTL_PEND:
    case IOCTL_HOLD:
        IoCopyCurrentIrpStackLocationToNext(Irp);
        IoSetCompletionRoutine(Irp, AddOne, NULL, TRUE, TRUE, TRUE);
        status = IoCallDriver(ext->Lower, Irp);
        DbgPrint("upper: IoCallDriver returned 0x%x\n", (unsigned)status);
        return status;
    case IOCTL_SYNC:
        KeInitializeEvent(&event, NotificationEvent, FALSE);
        IoCopyCurrentIrpStackLocationToNext(Irp);
        IoSetCompletionRoutine(Irp, Signal, &event, TRUE, TRUE, TRUE);
        status = Wait(&event, IoCallDriver(ext->Lower, Irp));
        DbgPrint("upper: reclaimed at location %d, status 0x%x\n", Irp->CurrentLocation,
                 (unsigned)Irp->IoStatus.Status);
        *(PULONG)Irp->AssociatedIrp.SystemBuffer |= 0x10000;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return status;
    case IOCTL_OWN:
    case IOCTL_BUILD:
    case IOCTL_NONE:
        status = code == IOCTL_OWN     ? Own(ext->Lower, &value)
                 : code == IOCTL_BUILD ? Build(ext->Lower, &value)
                                       : NoRoutine(ext->Lower, &value);
        *(PULONG)Irp->AssociatedIrp.SystemBuffer = value;
        Irp->IoStatus.Status = status;
        Irp->IoStatus.Information = sizeof(ULONG);
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return status;
    }
    Irp->IoStatus.Status = STATUS_INVALID_DEVICE_REQUEST;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_INVALID_DEVICE_REQUEST;
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
    return ext->Upper ? Upper(DeviceObject, Irp) : Lower(DeviceObject, Irp);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    IoDetachDevice(g_lower);
    IoDeleteDevice(g_upper);
    IoDeleteDevice(g_lower);
    DbgPrint("unload\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT attached;
    PEXT ext;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &g_lower);
    if (!NT_SUCCESS(status))
        return status;
    status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &g_upper);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(g_lower);
        return status;
    }
    g_lower->Flags |= DO_BUFFERED_IO;
    g_upper->Flags |= DO_BUFFERED_IO;
    ext = (PEXT)g_lower->DeviceExtension;
    ext->Upper = FALSE;
    KeInitializeDpc(&ext->Dpc, LowerDpc, ext);
    attached = IoAttachDeviceToDeviceStack(g_upper, g_lower);
    ext = (PEXT)g_upper->DeviceExtension;
    ext->Upper = TRUE;
    ext->Lower = attached;
    DbgPrint("attached over %s: stack sizes %d and %d\n", Name(attached), g_lower->StackSize, g_upper->StackSize);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_INTERNAL_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
