/* Low resources simulation filtered by process name (verifier /faults' App list):
 * DriverEntry, in the System process, allocates pool; each METHOD_NEITHER request,
 * in its caller's process, allocates pool and locks the caller's output buffer with
 * MmProbeAndLockPages through an MDL built in DriverEntry's block (so that no
 * allocation in the request comes before the lock). The output is three ULONGs: the
 * request's pool allocation (1 allocated, 0 failed), the status the lock raised (0:
 * none), and whether DriverEntry's allocation succeeded. */
#include <ntddk.h>

#define IOCTL_NEITHER CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_NEITHER, FILE_ANY_ACCESS)

static PVOID EntryBlock;
static PMDL LockMdl;
static PDEVICE_OBJECT Device;

static NTSTATUS Create(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static NTSTATUS Control(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    ULONG out[3] = { 0, 0, EntryBlock != NULL };
    NTSTATUS status = STATUS_SUCCESS;
    PVOID p;

    UNREFERENCED_PARAMETER(DeviceObject);
    if (sp->Parameters.DeviceIoControl.IoControlCode != IOCTL_NEITHER ||
        sp->Parameters.DeviceIoControl.OutputBufferLength < sizeof(out) || LockMdl == NULL) {
        status = STATUS_INVALID_PARAMETER;
        goto done;
    }
    p = ExAllocatePoolWithTag(NonPagedPoolNx, 32, 'qeRL');
    out[0] = p != NULL;
    if (p != NULL) {
        ExFreePoolWithTag(p, 'qeRL');
    }
    MmInitializeMdl(LockMdl, Irp->UserBuffer, sizeof(out));
    __try {
        MmProbeAndLockPages(LockMdl, UserMode, IoWriteAccess);
        MmUnlockPages(LockMdl);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        out[1] = (ULONG)GetExceptionCode();
    }
    __try {
        RtlCopyMemory(Irp->UserBuffer, out, sizeof(out));
        Irp->IoStatus.Information = sizeof(out);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
done:
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (EntryBlock != NULL) {
        ExFreePoolWithTag(EntryBlock, 'rtnE');
    }
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    /* Room for an MDL of one page, or two when the buffer crosses a page. */
    EntryBlock = ExAllocatePoolWithTag(NonPagedPoolNx, 0x100, 'rtnE');
    LockMdl = (PMDL)EntryBlock;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = Create;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = Create;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
