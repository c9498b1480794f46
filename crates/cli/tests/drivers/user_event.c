/* A user process's event handed to the driver in a device control, as event-based
 * notification works in WDM drivers: the driver references the handle
 * (ObReferenceObjectByHandle, UserMode, EVENT_MODIFY_STATE, *ExEventObjectType) in
 * the caller's context, sets a timer, and its DPC signals the event and drops the
 * reference. Misuse is reported as the statuses the object manager gives: a handle
 * that names nothing, an event asked for as a thread. LEAK (a -D of the build) keeps
 * the reference, so the event outlives its handle. */
#include <ntddk.h>

#define IOCTL_NOTIFY CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_AS_THREAD CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _NOTIFY {
    HANDLE Event;
    LARGE_INTEGER DueTime;
} NOTIFY;

static KTIMER Timer;
static KDPC Dpc;
static PKEVENT Event;

static VOID Expired(PKDPC D, PVOID Context, PVOID A1, PVOID A2)
{
    UNREFERENCED_PARAMETER(D);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(A1);
    UNREFERENCED_PARAMETER(A2);
    DbgPrint("dpc: signalling, previous state %ld\n", KeSetEvent(Event, IO_NO_INCREMENT, FALSE));
#ifndef LEAK
    ObDereferenceObject(Event);
#endif
    Event = NULL;
}

static NTSTATUS Complete(PIRP Irp, NTSTATUS Status)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return Status;
}

static NTSTATUS Control(PDEVICE_OBJECT Device, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    NOTIFY *notify = (NOTIFY *)Irp->AssociatedIrp.SystemBuffer;
    PVOID object = NULL;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(Device);
    if (stack->Parameters.DeviceIoControl.InputBufferLength < sizeof(NOTIFY)) {
        return Complete(Irp, STATUS_INVALID_PARAMETER);
    }
    if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_AS_THREAD) {
        status = ObReferenceObjectByHandle(notify->Event, SYNCHRONIZE, *PsThreadType, UserMode, &object, NULL);
        DbgPrint("as a thread: %08lx\n", status);
        return Complete(Irp, status);
    }
    status = ObReferenceObjectByHandle(notify->Event, EVENT_MODIFY_STATE, *ExEventObjectType, Irp->RequestorMode,
                                       &object, NULL);
    DbgPrint("reference %p: %08lx, state %ld\n", notify->Event, status,
             NT_SUCCESS(status) ? KeReadStateEvent((PKEVENT)object) : -1);
    if (NT_SUCCESS(status)) {
        Event = (PKEVENT)object;
        KeSetTimer(&Timer, notify->DueTime, &Dpc);
    }
    return Complete(Irp, status);
}

static NTSTATUS CreateClose(PDEVICE_OBJECT Device, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Device);
    return Complete(Irp, STATUS_SUCCESS);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    KeCancelTimer(&Timer);
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemUserEvent");
    PDEVICE_OBJECT device;
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeTimer(&Timer);
    KeInitializeDpc(&Dpc, Expired, NULL);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    return IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
}
