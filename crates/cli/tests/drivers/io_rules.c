/* Breaks one of the I/O manager's rules, as RULE (a -D of the build) says; the
 * IRP_MJ_DEVICE_CONTROL dispatch routine (one METHOD_BUFFERED IOCTL of the scenario)
 * or DriverEntry does it:
 *   1 completes the IRP and returns STATUS_PENDING without IoMarkIrpPending
 *   2 marks it pending, completes it and returns STATUS_SUCCESS
 *   3 sets IoStatus.Information beyond the output buffer
 *   4 completes the IRP with its cancel routine still set
 *   5 calls IoCallDriver above DISPATCH_LEVEL (DriverEntry)
 *   6 completes the IRP above DISPATCH_LEVEL
 *   7 frees an IRP its own dispatch routine holds pending (DriverEntry)
 *   8 frees an IRP IoBuildDeviceIoControlRequest made (DriverEntry)
 *   9 gives IoBuildDeviceIoControlRequest an input buffer it cannot read (DriverEntry)
 *  10 gives IoBuildAsynchronousFsdRequest a buffer it cannot read (DriverEntry)
 *  11 reads an IRP after IoFreeIrp (DriverEntry)
 *  12 builds an IRP with an I/O status block on its stack and returns before it
 *     completes (DriverEntry completes it)
 *  13 the same with the event on its stack
 *  14 leaves the IRP pending with its cancel routine set (a scenario may unload the
 *     driver before the caller's process ends and cancels it)
 *   0 breaks none: marks, pends and completes the IRP later, as it should. */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

#define IOCTL_RULE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

static PIRP Held;

static VOID Cancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static NTSTATUS Complete(PIRP Irp, NTSTATUS status, ULONG_PTR information)
{
    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = information;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    if (IoGetCurrentIrpStackLocation(Irp)->MajorFunction == IRP_MJ_INTERNAL_DEVICE_CONTROL) {
        /* Held for rule 7: marked and pending, as it should be. */
        IoMarkIrpPending(Irp);
        Held = Irp;
        return STATUS_PENDING;
    }
#if RULE == 1
    Complete(Irp, STATUS_SUCCESS, 0);
    return STATUS_PENDING;
#elif RULE == 2
    IoMarkIrpPending(Irp);
    return Complete(Irp, STATUS_SUCCESS, 0);
#elif RULE == 3
    return Complete(Irp, STATUS_SUCCESS, 64);
#elif RULE == 4
    IoSetCancelRoutine(Irp, Cancel);
    return Complete(Irp, STATUS_SUCCESS, 0);
#elif RULE == 6
    {
        KIRQL old;
        NTSTATUS status;
        KeRaiseIrql(DISPATCH_LEVEL + 1, &old);
        status = Complete(Irp, STATUS_SUCCESS, 0);
        KeLowerIrql(old);
        return status;
    }
#elif RULE == 14
    /* Left pending with a cancel routine in the image; nothing cancels it at unload. */
    IoMarkIrpPending(Irp);
    IoSetCancelRoutine(Irp, Cancel);
    return STATUS_PENDING;
#else
    IoMarkIrpPending(Irp);
    IoSetCancelRoutine(Irp, Cancel);
    if (IoSetCancelRoutine(Irp, NULL) != NULL)
        Complete(Irp, STATUS_SUCCESS, 4);
    return STATUS_PENDING;
#endif
}

static NTSTATUS CreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    return Complete(Irp, STATUS_SUCCESS, 0);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

#if RULE == 12 || RULE == 13
static IO_STATUS_BLOCK GlobalIosb;
static KEVENT GlobalEvent;

/* Sends an internal IOCTL to `device` and returns without waiting: the status block
 * (12) or the event (13) is a local of this frame. */
static __attribute__((noinline)) NTSTATUS SendAndForget(PDEVICE_OBJECT device)
{
    IO_STATUS_BLOCK iosb;
    KEVENT event;
    PIO_STATUS_BLOCK pick_iosb = RULE == 12 ? &iosb : &GlobalIosb;
    PKEVENT pick_event = RULE == 13 ? &event : &GlobalEvent;
    PIRP irp;
    KeInitializeEvent(pick_event, NotificationEvent, FALSE);
    irp = IoBuildDeviceIoControlRequest(IOCTL_RULE, device, NULL, 0, NULL, 0, TRUE, pick_event, pick_iosb);
    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    return IoCallDriver(device, irp);
}
#endif

/* The rules DriverEntry breaks, on its own device. */
static NTSTATUS BreakInEntry(PDEVICE_OBJECT device)
{
    UNREFERENCED_PARAMETER(device);
#if RULE == 5 || RULE == 7
    PIRP irp = IoAllocateIrp(device->StackSize, FALSE);
    PIO_STACK_LOCATION next;
    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    next = IoGetNextIrpStackLocation(irp);
    next->MajorFunction = IRP_MJ_INTERNAL_DEVICE_CONTROL;
#if RULE == 5
    {
        KIRQL old;
        KeRaiseIrql(DISPATCH_LEVEL + 1, &old);
        IoCallDriver(device, irp);
        KeLowerIrql(old);
    }
#else
    if (IoCallDriver(device, irp) == STATUS_PENDING)
        DbgPrint("io_rules: the IRP is pending below\n");
    IoFreeIrp(irp);
#endif
#elif RULE == 8 || RULE == 9
    {
        IO_STATUS_BLOCK iosb;
        KEVENT event;
        PIRP irp;
        KeInitializeEvent(&event, NotificationEvent, FALSE);
#if RULE == 8
        irp = IoBuildDeviceIoControlRequest(IOCTL_RULE, device, NULL, 0, NULL, 0, FALSE, &event, &iosb);
        if (irp == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
        IoFreeIrp(irp);
#else
        irp = IoBuildDeviceIoControlRequest(IOCTL_RULE, device, NULL, 16, NULL, 0, FALSE, &event, &iosb);
        DbgPrint("io_rules: IoBuildDeviceIoControlRequest returned %s\n", irp == NULL ? "NULL" : "an IRP");
#endif
    }
#elif RULE == 10
    {
        LARGE_INTEGER offset;
        PIRP irp;
        offset.QuadPart = 0;
        irp = IoBuildAsynchronousFsdRequest(IRP_MJ_WRITE, device, NULL, 16, &offset, NULL);
        DbgPrint("io_rules: IoBuildAsynchronousFsdRequest returned %s\n", irp == NULL ? "NULL" : "an IRP");
    }
#elif RULE == 12 || RULE == 13
    if (SendAndForget(device) == STATUS_PENDING && Held != NULL) {
        PIRP irp = Held;
        Held = NULL;
        Complete(irp, STATUS_SUCCESS, 0);
    }
#elif RULE == 11
    {
        PIRP irp = IoAllocateIrp(1, FALSE);
        if (irp == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
        IoFreeIrp(irp);
        DbgPrint("io_rules: the freed IRP's Type reads %d\n", (int)*(volatile CSHORT *)&irp->Type);
    }
#endif
    return STATUS_SUCCESS;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    device->Flags |= DO_BUFFERED_IO;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->MajorFunction[IRP_MJ_INTERNAL_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = Unload;
    status = BreakInEntry(device);
    if (!NT_SUCCESS(status))
        IoDeleteDevice(device);
    DbgPrint("io_rules: DriverEntry done\n");
    return status;
}
