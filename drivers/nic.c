/*
 * nic: a network-adapter-style driver (seed 000 sections 5.2, 7.1, 7.2). In
 * DriverEntry it allocates its long-lived state from nonpaged pool, tagged, and
 * sets up the seed's 'LciN' receive lookaside list in its device extension. Each
 * "receive" request (an IOCTL standing in for an interrupt's DPC) takes receive
 * blocks from the lookaside list at DISPATCH_LEVEL under a spin lock, fills them
 * with a frame and returns them; a statistics request reports the list's counters
 * as a debugger's !lookaside would show them.
 *
 * Device registers come with start-device (IRP_MN_START_DEVICE and its
 * CM_RESOURCE_LIST), which ntmem's driver host does not send yet; this demo keeps
 * to what runs today.
 */
#include <ntddk.h>

#define IOCTL_NIC_RECEIVE CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_NIC_STATISTICS CTL_CODE(FILE_DEVICE_NETWORK, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)

#define RecvBlockSize 1514
#define RING 64

typedef struct _NIC_STATE {      /* long-lived adapter state, tag 'AciN' */
    ULONG FramesReceived;
    ULONG BytesReceived;
    UCHAR Mac[6];
} NIC_STATE, *PNIC_STATE;

typedef struct _FDO_DATA {       /* the device extension */
    KSPIN_LOCK Lock;
    PNIC_STATE State;
    NPAGED_LOOKASIDE_LIST RecvLookasideList;
} FDO_DATA, *PFDO_DATA;

static NTSTATUS Receive(PFDO_DATA FdoData, ULONG Frames, PUCHAR Out, ULONG OutLength, PULONG_PTR Information)
{
    PVOID pRecvBlock[RING];
    KIRQL oldIrql;
    ULONG i, n = Frames < RING ? Frames : RING;

    KeAcquireSpinLock(&FdoData->Lock, &oldIrql);
    for (i = 0; i < n; i++) {
        pRecvBlock[i] = ExAllocateFromNPagedLookasideList (
                            &FdoData->RecvLookasideList);
        if (pRecvBlock[i] == NULL) {
            break;
        }
        RtlFillMemory(pRecvBlock[i], RecvBlockSize, (UCHAR)(0x40 + i));
        FdoData->State->FramesReceived++;
        FdoData->State->BytesReceived += RecvBlockSize;
    }
    if (OutLength > 0 && i > 0) {
        RtlCopyMemory(Out, pRecvBlock[0], OutLength < 8 ? OutLength : 8);
        *Information = OutLength < 8 ? OutLength : 8;
    }
    while (i-- > 0) {
        ExFreeToNPagedLookasideList (
                     &FdoData->RecvLookasideList,
                     pRecvBlock[i]);
    }
    KeReleaseSpinLock(&FdoData->Lock, oldIrql);
    return STATUS_SUCCESS;
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    PFDO_DATA FdoData = (PFDO_DATA)DeviceObject->DeviceExtension;
    PUCHAR buffer = Irp->AssociatedIrp.SystemBuffer;
    ULONG in = irpSp->Parameters.DeviceIoControl.InputBufferLength;
    ULONG out = irpSp->Parameters.DeviceIoControl.OutputBufferLength;
    NTSTATUS status = STATUS_SUCCESS;

    Irp->IoStatus.Information = 0;
    switch (irpSp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_NIC_RECEIVE:
        status = Receive(FdoData, in >= 1 ? buffer[0] : 1, buffer, out, &Irp->IoStatus.Information);
        break;
    case IOCTL_NIC_STATISTICS: {
        PGENERAL_LOOKASIDE L = &FdoData->RecvLookasideList.L;
        DbgPrint("nic: RecvLookasideList Depth %u/%u, allocates %u (misses %u), frees %u (misses %u), cached %u\n",
                 L->Depth, L->MaximumDepth, L->TotalAllocates, L->AllocateMisses, L->TotalFrees, L->FreeMisses,
                 ExQueryDepthSList(&L->ListHead));
        DbgPrint("nic: %u frames, %u bytes received\n", FdoData->State->FramesReceived,
                 FdoData->State->BytesReceived);
        if (out >= sizeof(USHORT)) {
            *(PUSHORT)buffer = L->Depth;
            Irp->IoStatus.Information = sizeof(USHORT);
        }
        break;
    }
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID NicUnload(PDRIVER_OBJECT DriverObject)
{
    PFDO_DATA FdoData = (PFDO_DATA)DriverObject->DeviceObject->DeviceExtension;
    ExDeleteNPagedLookasideList (
                 &FdoData->RecvLookasideList);
    ExFreePoolWithTag(FdoData->State, 'AciN');
    IoDeleteDevice(DriverObject->DeviceObject);
    DbgPrint("nic: unloaded\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device;
    PFDO_DATA FdoData;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, sizeof(FDO_DATA), NULL, FILE_DEVICE_NETWORK, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    device->Flags |= DO_BUFFERED_IO;
    FdoData = (PFDO_DATA)device->DeviceExtension;
    KeInitializeSpinLock(&FdoData->Lock);
    FdoData->State = ExAllocatePoolWithTag(NonPagedPool, sizeof(NIC_STATE), 'AciN');
    if (FdoData->State == NULL) {
        IoDeleteDevice(device);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlZeroMemory(FdoData->State, sizeof(NIC_STATE));
    ExInitializeNPagedLookasideList
          (&FdoData->RecvLookasideList,
           NULL,
           NULL,
           0,
           RecvBlockSize,
           'LciN',
           0);
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = NicUnload;
    DbgPrint("nic: adapter state at %p, receive list head at %p\n", FdoData->State, &FdoData->RecvLookasideList);
    return STATUS_SUCCESS;
}
