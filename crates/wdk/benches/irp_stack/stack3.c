/* Three devices in one stack (top over middle over bottom) for issue 12's IRP
 * throughput benchmark. Every request goes in at the top:
 *   top     copies its location down, completion routine (IoSetCompletionRoutine);
 *   middle  copies its location down, completion routine (IoSetCompletionRoutineEx);
 *   bottom  by the control code:
 *     NOW   completes at once (8 bytes of output);
 *     DPC   marks the IRP pending, queues it and a DPC that completes it;
 *     HOLD  marks the IRP pending with a cancel routine and keeps it until the
 *           caller cancels it (the cancel routine completes it STATUS_CANCELLED).
 * A fourth device, alone, completes at once like the bottom: the one-device
 * baseline (a request to a device in a stack goes to the stack's top).
 * Each completion routine counts, propagates PendingReturned and returns
 * STATUS_CONTINUE_COMPLETION; the counts are checked in Unload. */
#include <ntddk.h>

#define IOCTL_NOW CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_DPC CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_HOLD CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _EXT {
    PDEVICE_OBJECT Lower;
    volatile LONG Completions;
} EXT, *PEXT;

static PDEVICE_OBJECT Bottom, Middle, Top, Alone;
static LIST_ENTRY Queue;
static KSPIN_LOCK QueueLock;
static KDPC Dpc;
static volatile LONG Sent, Cancelled;

static VOID Finish(PIRP Irp, NTSTATUS Status)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = NT_SUCCESS(Status) ? sizeof(ULONGLONG) : 0;
    if (NT_SUCCESS(Status))
        *(PULONGLONG)Irp->AssociatedIrp.SystemBuffer = 0x5354414b33ULL;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static VOID CompleteQueued(PKDPC D, PVOID Context, PVOID A1, PVOID A2)
{
    PLIST_ENTRY e;
    UNREFERENCED_PARAMETER(D);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(A1);
    UNREFERENCED_PARAMETER(A2);
    KeAcquireSpinLockAtDpcLevel(&QueueLock);
    while ((e = RemoveHeadList(&Queue)) != &Queue) {
        PIRP irp = CONTAINING_RECORD(e, IRP, Tail.Overlay.ListEntry);
        KeReleaseSpinLockFromDpcLevel(&QueueLock);
        Finish(irp, STATUS_SUCCESS);
        KeAcquireSpinLockAtDpcLevel(&QueueLock);
    }
    KeReleaseSpinLockFromDpcLevel(&QueueLock);
}

static VOID CancelHeld(PDEVICE_OBJECT Device, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Device);
    IoReleaseCancelSpinLock(Irp->CancelIrql);
    InterlockedIncrement(&Cancelled);
    Finish(Irp, STATUS_CANCELLED);
}

static NTSTATUS BottomIoctl(PIRP Irp, ULONG Code)
{
    KIRQL irql;
    if (Code == IOCTL_NOW) {
        Finish(Irp, STATUS_SUCCESS);
        return STATUS_SUCCESS;
    }
    IoMarkIrpPending(Irp);
    if (Code == IOCTL_DPC) {
        KeAcquireSpinLock(&QueueLock, &irql);
        InsertTailList(&Queue, &Irp->Tail.Overlay.ListEntry);
        KeReleaseSpinLock(&QueueLock, irql);
        KeInsertQueueDpc(&Dpc, NULL, NULL);
    } else {
        IoSetCancelRoutine(Irp, CancelHeld);
    }
    return STATUS_PENDING;
}

static NTSTATUS Counted(PDEVICE_OBJECT Device, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    InterlockedIncrement(&((PEXT)Device->DeviceExtension)->Completions);
    if (Irp->PendingReturned)
        IoMarkIrpPending(Irp);
    return STATUS_CONTINUE_COMPLETION;
}

static NTSTATUS Dispatch(PDEVICE_OBJECT Device, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)Device->DeviceExtension;
    if (sp->MajorFunction != IRP_MJ_DEVICE_CONTROL) {
        Irp->IoStatus.Status = STATUS_SUCCESS;
        Irp->IoStatus.Information = 0;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_SUCCESS;
    }
    if (Device == Bottom || Device == Alone)
        return BottomIoctl(Irp, sp->Parameters.DeviceIoControl.IoControlCode);
    if (Device == Top)
        InterlockedIncrement(&Sent);
    IoCopyCurrentIrpStackLocationToNext(Irp);
    if (Device == Middle) {
        NTSTATUS s = IoSetCompletionRoutineEx(Device, Irp, Counted, NULL, TRUE, TRUE, TRUE);
        if (!NT_SUCCESS(s)) {
            Finish(Irp, s);
            return s;
        }
    } else {
        IoSetCompletionRoutine(Irp, Counted, NULL, TRUE, TRUE, TRUE);
    }
    return IoCallDriver(ext->Lower, Irp);
}

static VOID Unload(PDRIVER_OBJECT Driver)
{
    LONG sent = Sent;
    UNREFERENCED_PARAMETER(Driver);
    if (((PEXT)Top->DeviceExtension)->Completions != sent || ((PEXT)Middle->DeviceExtension)->Completions != sent)
        DbgPrint("stack3: %ld sent, top saw %ld completions, middle %ld\n", sent,
                 ((PEXT)Top->DeviceExtension)->Completions, ((PEXT)Middle->DeviceExtension)->Completions);
    else
        DbgPrint("stack3: %ld requests through the stack, %ld cancelled, every completion routine ran\n", sent,
                 Cancelled);
    IoDetachDevice(Middle);
    IoDeleteDevice(Top);
    IoDetachDevice(Bottom);
    IoDeleteDevice(Middle);
    IoDeleteDevice(Bottom);
    IoDeleteDevice(Alone);
}

static NTSTATUS Create(PDRIVER_OBJECT Driver, PDEVICE_OBJECT *Device)
{
    NTSTATUS s = IoCreateDevice(Driver, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, Device);
    if (NT_SUCCESS(s)) {
        RtlZeroMemory((*Device)->DeviceExtension, sizeof(EXT));
        (*Device)->Flags |= DO_BUFFERED_IO;
    }
    return s;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT Driver, PUNICODE_STRING RegistryPath)
{
    ULONG i;
    NTSTATUS s;
    UNREFERENCED_PARAMETER(RegistryPath);
    InitializeListHead(&Queue);
    KeInitializeSpinLock(&QueueLock);
    KeInitializeDpc(&Dpc, CompleteQueued, NULL);
    for (i = 0; i <= IRP_MJ_MAXIMUM_FUNCTION; i++)
        Driver->MajorFunction[i] = Dispatch;
    Driver->DriverUnload = Unload;
    if (!NT_SUCCESS(s = Create(Driver, &Bottom)))
        return s;
    if (!NT_SUCCESS(s = Create(Driver, &Middle))) {
        IoDeleteDevice(Bottom);
        return s;
    }
    ((PEXT)Middle->DeviceExtension)->Lower = IoAttachDeviceToDeviceStack(Middle, Bottom);
    if (!NT_SUCCESS(s = Create(Driver, &Top))) {
        IoDetachDevice(Bottom);
        IoDeleteDevice(Middle);
        IoDeleteDevice(Bottom);
        return s;
    }
    ((PEXT)Top->DeviceExtension)->Lower = IoAttachDeviceToDeviceStack(Top, Middle);
    if (!NT_SUCCESS(s = Create(Driver, &Alone))) {
        IoDetachDevice(Middle);
        IoDeleteDevice(Top);
        IoDetachDevice(Bottom);
        IoDeleteDevice(Middle);
        IoDeleteDevice(Bottom);
        return s;
    }
    return STATUS_SUCCESS;
}
