/* IoGetDeviceObjectPointer: a request asks the driver to open its own device by name
 * (\Device\NtmemPointer, or through its link); the create, cleanup and close it gets
 * are logged with their file object, and the close comes with the last
 * ObDereferenceObject. A name nothing has fails. */
#include <ntddk.h>

static PDEVICE_OBJECT Device;
static UNICODE_STRING Link = RTL_CONSTANT_STRING(L"\\DosDevices\\NtmemPointer");

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    NTSTATUS status = STATUS_SUCCESS;
    UNREFERENCED_PARAMETER(DeviceObject);
    if (sp->MajorFunction == IRP_MJ_DEVICE_CONTROL) {
        UNICODE_STRING names[2] = {RTL_CONSTANT_STRING(L"\\Device\\NtmemPointer"),
                                   RTL_CONSTANT_STRING(L"\\DosDevices\\NtmemPointer")};
        UNICODE_STRING missing = RTL_CONSTANT_STRING(L"\\Device\\Nothing");
        PFILE_OBJECT file = NULL;
        PDEVICE_OBJECT top = NULL;
        ULONG i;
        for (i = 0; i < 2; i++) {
            status = IoGetDeviceObjectPointer(&names[i], FILE_READ_DATA, &file, &top);
            DbgPrint("open %lu: 0x%x, device %s, file on it %d\n", i, status, top == Device ? "ours" : "other",
                     file != NULL && file->DeviceObject == Device);
            if (NT_SUCCESS(status)) {
                DbgPrint("dereference\n");
                ObDereferenceObject(file);
            }
        }
        status = IoGetDeviceObjectPointer(&missing, FILE_READ_DATA, &file, &top);
        DbgPrint("missing: 0x%x\n", status);
        status = STATUS_SUCCESS;
    } else if (sp->FileObject != NULL && sp->FileObject->FsContext2 == NULL) {
        DbgPrint("major %d, requestor %s\n", sp->MajorFunction, Irp->RequestorMode == KernelMode ? "kernel" : "user");
    }
    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    IoDeleteSymbolicLink(&Link);
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemPointer");
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status))
        return status;
    status = IoCreateSymbolicLink(&Link, &name);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(Device);
        return status;
    }
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    Device->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
}
