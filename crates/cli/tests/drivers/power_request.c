/* A power policy owner: on a system set-power IRP (S-IRP) it passes the IRP down
 * with a completion routine that asks for the matching device set-power IRP
 * (PoRequestPowerIrp: D0 for S0, D3 otherwise) and completes the S-IRP from that
 * D-IRP's completion callback, as Microsoft's "Handling a System Set-Power IRP"
 * describes. The D-IRP reaches its own IRP_MJ_POWER routine, which records the
 * state (PoSetPowerState) and passes it to the PDO.
 * At start it also asks for a wait/wake IRP and for an invalid minor function.
 * RULE 1: the S-IRP completion routine raises to DISPATCH_LEVEL before asking, as
 * a completion routine running at DISPATCH_LEVEL would. */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
    PDEVICE_OBJECT Pdo;
} EXT, *PEXT;

static VOID DeviceDone(PDEVICE_OBJECT Device, UCHAR Minor, POWER_STATE State, PVOID Context, PIO_STATUS_BLOCK IoStatus)
{
    PIRP sirp = (PIRP)Context;
    DbgPrint("D-IRP done: minor %d D%d status 0x%x at IRQL %d\n", Minor, (int)State.DeviceState - 1,
             IoStatus->Status, KeGetCurrentIrql());
    if (sirp != NULL) {
        sirp->IoStatus.Status = IoStatus->Status;
        PoStartNextPowerIrp(sirp);
        IoCompleteRequest(sirp, IO_NO_INCREMENT);
    }
    UNREFERENCED_PARAMETER(Device);
}

static NTSTATUS SystemDone(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    POWER_STATE d;
    NTSTATUS status;
    KIRQL irql = PASSIVE_LEVEL, asked_at;
    int system = (int)stack->Parameters.Power.State.SystemState - 1;
    UNREFERENCED_PARAMETER(Context);
    d.DeviceState = stack->Parameters.Power.State.SystemState == PowerSystemWorking ? PowerDeviceD0 : PowerDeviceD3;
#if RULE == 1
    KeRaiseIrql(DISPATCH_LEVEL, &irql);
#endif
    asked_at = KeGetCurrentIrql();
    status = PoRequestPowerIrp(ext->Pdo, IRP_MN_SET_POWER, d, DeviceDone, Irp, NULL);
#if RULE == 1
    KeLowerIrql(irql);
#endif
    /* The S-IRP may be completed (and gone) already: only locals from here on. */
    DbgPrint("S-IRP S%d: asked for D%d at IRQL %d: 0x%x\n", system, (int)d.DeviceState - 1, asked_at, status);
    if (!NT_SUCCESS(status)) {
        PoStartNextPowerIrp(Irp);
        return STATUS_CONTINUE_COMPLETION;
    }
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static NTSTATUS Power(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    if (stack->MinorFunction == IRP_MN_SET_POWER && stack->Parameters.Power.Type == SystemPowerState) {
        IoMarkIrpPending(Irp);
        IoCopyCurrentIrpStackLocationToNext(Irp);
        IoSetCompletionRoutine(Irp, SystemDone, NULL, TRUE, TRUE, TRUE);
        PoCallDriver(ext->Lower, Irp);
        return STATUS_PENDING;
    }
    if (stack->MinorFunction == IRP_MN_SET_POWER) {
        POWER_STATE old = PoSetPowerState(DeviceObject, DevicePowerState, stack->Parameters.Power.State);
        DbgPrint("D-IRP: D%d -> D%d at IRQL %d, %d locations\n", (int)old.DeviceState - 1,
                 (int)stack->Parameters.Power.State.DeviceState - 1, KeGetCurrentIrql(), Irp->StackCount);
    } else if (stack->MinorFunction == IRP_MN_WAIT_WAKE) {
        DbgPrint("wait/wake for S%d\n", (int)stack->Parameters.WaitWake.PowerState - 1);
    }
    PoStartNextPowerIrp(Irp);
    IoSkipCurrentIrpStackLocation(Irp);
    return PoCallDriver(ext->Lower, Irp);
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    UCHAR minor = stack->MinorFunction;
    NTSTATUS status;
    if (minor == IRP_MN_START_DEVICE) {
        POWER_STATE s;
        PIRP wake = NULL;
        s.SystemState = PowerSystemSleeping3;
        status = PoRequestPowerIrp(ext->Pdo, IRP_MN_WAIT_WAKE, s, DeviceDone, NULL, &wake);
        DbgPrint("wait/wake asked: 0x%x, IRP %s\n", status, wake != NULL ? "returned" : "NULL");
        status = PoRequestPowerIrp(ext->Pdo, 0x07, s, DeviceDone, NULL, NULL);
        DbgPrint("minor 7 asked: 0x%x\n", status);
    }
    if (minor == IRP_MN_QUERY_REMOVE_DEVICE || minor == IRP_MN_REMOVE_DEVICE)
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
    ext->Pdo = Pdo;
    status = IoAttachDeviceToDeviceStackSafe(fdo, Pdo, &ext->Lower);
    fdo->Flags |= DO_POWER_PAGABLE;
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
