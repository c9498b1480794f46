/* IoCreateUnprotectedSymbolicLink, IoIsWdmVersionAvailable and PsGetCurrentProcessId:
 * DriverEntry makes an unprotected link to its device and prints the WDM versions the
 * machine supports and its process id (the System process); a request from a user
 * process prints the caller's id (the process the request runs in), and
 * IoGetCurrentProcess / PsGetProcessId / PsInitialSystemProcess agree with it. */
#include <ntddk.h>

static UNICODE_STRING Link = RTL_CONSTANT_STRING(L"\\DosDevices\\NtmemNames");

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    UNREFERENCED_PARAMETER(DeviceObject);
    PEPROCESS process = PsGetCurrentProcess();
    DbgPrint("major %d in process %s (object %s, id %s)\n", sp->MajorFunction,
             PsGetCurrentProcessId() == (HANDLE)4 ? "System" : "of the caller",
             process == PsInitialSystemProcess ? "System's" : "another",
             PsGetProcessId(process) == PsGetCurrentProcessId() ? "matches" : "differs");
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteSymbolicLink(&Link);
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemNames");
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("WDM 1.10 %d, 1.30 %d, 6.00 %d, 6.02 %d; DriverEntry in process %d\n", IoIsWdmVersionAvailable(1, 0x10),
             IoIsWdmVersionAvailable(1, 0x30), IoIsWdmVersionAvailable(6, 0), IoIsWdmVersionAvailable(6, 2),
             (int)(ULONG_PTR)PsGetCurrentProcessId());
    status = IoCreateDevice(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    status = IoCreateUnprotectedSymbolicLink(&Link, &name);
    DbgPrint("link: 0x%x, again: 0x%x\n", status, IoCreateUnprotectedSymbolicLink(&Link, &name));
    DbgPrint("DriverEntry's process is the System process: %d, id %d\n", IoGetCurrentProcess() == PsInitialSystemProcess,
             (int)(ULONG_PTR)PsGetProcessId(PsInitialSystemProcess));
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(device);
        return status;
    }
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Dispatch;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
