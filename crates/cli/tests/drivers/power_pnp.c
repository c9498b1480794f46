/* A PnP function driver that handles power IRPs as a WDM function driver of Windows
 * Server 2003 does — PoStartNextPowerIrp, IoSkipCurrentIrpStackLocation,
 * PoCallDriver to the PDO; PoSetPowerState for a device set-power — and logs each
 * PnP minor it is sent before passing it down. With RULE 1 (a -D of the build) it
 * vetoes IRP_MN_QUERY_REMOVE_DEVICE. */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
} EXT, *PEXT;

static NTSTATUS Power(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    if (stack->MinorFunction == IRP_MN_SET_POWER && stack->Parameters.Power.Type == DevicePowerState) {
        POWER_STATE old = PoSetPowerState(DeviceObject, DevicePowerState, stack->Parameters.Power.State);
        DbgPrint("power: D%d -> D%d\n", (int)old.DeviceState - 1, (int)stack->Parameters.Power.State.DeviceState - 1);
    } else {
        DbgPrint("power: minor %d type %d state %d action %d\n", stack->MinorFunction,
                 (int)stack->Parameters.Power.Type, (int)stack->Parameters.Power.State.SystemState,
                 (int)stack->Parameters.Power.ShutdownType);
    }
    PoStartNextPowerIrp(Irp);
    IoSkipCurrentIrpStackLocation(Irp);
    return PoCallDriver(ext->Lower, Irp);
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    NTSTATUS status;
    UCHAR minor = stack->MinorFunction;

    DbgPrint("pnp: minor 0x%x\n", minor);
#if RULE == 1
    if (minor == IRP_MN_QUERY_REMOVE_DEVICE) {
        Irp->IoStatus.Status = STATUS_UNSUCCESSFUL;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        return STATUS_UNSUCCESSFUL;
    }
#endif
    if (minor == IRP_MN_QUERY_REMOVE_DEVICE || minor == IRP_MN_CANCEL_REMOVE_DEVICE ||
        minor == IRP_MN_SURPRISE_REMOVAL || minor == IRP_MN_REMOVE_DEVICE)
        Irp->IoStatus.Status = STATUS_SUCCESS;
    IoSkipCurrentIrpStackLocation(Irp);
    status = IoCallDriver(ext->Lower, Irp);
    if (minor == IRP_MN_REMOVE_DEVICE) {
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
    }
    return status;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo;
    PEXT ext;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &fdo);
    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    ext->Self = fdo;
    status = IoAttachDeviceToDeviceStackSafe(fdo, Pdo, &ext->Lower);
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return status;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->MajorFunction[IRP_MJ_POWER] = Power;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
