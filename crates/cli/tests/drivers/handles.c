/* Per-handle state, as WDM drivers keep it: a named device and a symbolic link to
 * it; IRP_MJ_CREATE allocates a context into FileObject->FsContext, each device
 * control counts into the context of the handle it came through, IRP_MJ_CLEANUP and
 * IRP_MJ_CLOSE report and free it. Every step prints, so the order is visible. */
#include <ntddk.h>

/* EXCLUSIVE (a -D of the build) makes the device exclusive. */
#ifndef EXCLUSIVE
#define EXCLUSIVE FALSE
#endif

#define IOCTL_COUNT CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _HANDLE_CONTEXT {
    ULONG Number;
    ULONG Requests;
} HANDLE_CONTEXT, *PHANDLE_CONTEXT;

static ULONG Opened;
static UNICODE_STRING LinkName = RTL_CONSTANT_STRING(L"\\DosDevices\\NtmemHandles");

static NTSTATUS Complete(PIRP Irp, NTSTATUS Status, ULONG_PTR Information)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = Information;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return Status;
}

static NTSTATUS Create(PDEVICE_OBJECT Device, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PHANDLE_CONTEXT context;
    UNREFERENCED_PARAMETER(Device);
    context = (PHANDLE_CONTEXT)ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(*context), 'xtCH');
    if (context == NULL) {
        return Complete(Irp, STATUS_INSUFFICIENT_RESOURCES, 0);
    }
    context->Number = ++Opened;
    context->Requests = 0;
    stack->FileObject->FsContext = context;
    DbgPrint("create %lu: read %d write %d share %x name '%wZ' same device %d\n", context->Number,
             stack->FileObject->ReadAccess, stack->FileObject->WriteAccess, stack->Parameters.Create.ShareAccess,
             &stack->FileObject->FileName, stack->FileObject->DeviceObject == Device);
    return Complete(Irp, STATUS_SUCCESS, 0);
}

static NTSTATUS Control(PDEVICE_OBJECT Device, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PHANDLE_CONTEXT context;
    UNREFERENCED_PARAMETER(Device);
    if (stack->FileObject == NULL) {
        DbgPrint("control without a file object\n");
        return Complete(Irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    context = (PHANDLE_CONTEXT)stack->FileObject->FsContext;
    context->Requests++;
    DbgPrint("control on handle %lu: request %lu\n", context->Number, context->Requests);
    *(PULONG)Irp->AssociatedIrp.SystemBuffer = context->Requests;
    return Complete(Irp, STATUS_SUCCESS, sizeof(ULONG));
}

static NTSTATUS Cleanup(PDEVICE_OBJECT Device, PIRP Irp)
{
    PHANDLE_CONTEXT context = (PHANDLE_CONTEXT)IoGetCurrentIrpStackLocation(Irp)->FileObject->FsContext;
    UNREFERENCED_PARAMETER(Device);
    DbgPrint("cleanup %lu after %lu requests\n", context->Number, context->Requests);
    return Complete(Irp, STATUS_SUCCESS, 0);
}

static NTSTATUS Close(PDEVICE_OBJECT Device, PIRP Irp)
{
    PFILE_OBJECT file = IoGetCurrentIrpStackLocation(Irp)->FileObject;
    PHANDLE_CONTEXT context = (PHANDLE_CONTEXT)file->FsContext;
    UNREFERENCED_PARAMETER(Device);
    DbgPrint("close %lu\n", context->Number);
    file->FsContext = NULL;
    ExFreePoolWithTag(context, 'xtCH');
    return Complete(Irp, STATUS_SUCCESS, 0);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    DbgPrint("unload\n");
    IoDeleteSymbolicLink(&LinkName);
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemHandles");
    PDEVICE_OBJECT device, second;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, EXCLUSIVE, &device);
    DbgPrint("second device of that name: %08x\n", IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &second));
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = IoCreateSymbolicLink(&LinkName, &name);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(device);
        return status;
    }
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Create;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = Cleanup;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Close;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
