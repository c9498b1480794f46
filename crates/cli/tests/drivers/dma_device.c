/*
 * dma_device: the device side of DMA (issue 13). A 32-bit scatter/gather bus master
 * (the NIC) with a buffer above 4 GB on an 8 GB x64 machine: the driver builds a
 * scatter/gather list and programs the one element into the NIC's DMA registers
 * (ntmem's NIC model: CSR 0x100 address low, 0x104 high, 0x108 length); a
 * scenario's `dma` step makes the device transfer there.
 *
 * The adapter is made at the first ARM, whose input byte 1 (if given) makes the
 * driver describe the NIC as reaching 64 bits (Dma64BitAddresses) — a lie when the
 * scenario declares the NIC with 32 address lines. An ARM's second input byte, if
 * given, is added to the length programmed into the NIC: a device set up to move
 * more than was mapped (an overrun Driver Verifier's DMA checking catches).
 *
 * IOCTLs (METHOD_BUFFERED):
 *   ARM_READ     map the buffer for a read from the device (WriteToDevice FALSE)
 *   FINISH_READ  input byte 1: PutScatterGatherList, then count the bytes the
 *                device wrote (0xA5) in the buffer; 0: count first, then Put (a
 *                forgotten flush: the bounced data is not there yet). Output ULONG.
 *   ARM_WRITE    fill the buffer with 0x3C and map it for a write to the device
 *   FINISH_WRITE PutScatterGatherList
 */
#include <ntddk.h>

#define IOCTL_ARM_READ CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FINISH_READ CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_ARM_WRITE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FINISH_WRITE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)

#define FOUR_GB 0x100000000ULL
#define TRANSFER 0x1800
#define REG_ADDRESS_LOW 0x100
#define REG_ADDRESS_HIGH 0x104
#define REG_LENGTH 0x108

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
    PDEVICE_OBJECT Pdo;
    PDMA_ADAPTER Adapter;
    PUCHAR Csr;
    PUCHAR Buffer;
    PMDL Mdl;
    PSCATTER_GATHER_LIST List;
} EXT, *PEXT;

static VOID ListControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PSCATTER_GATHER_LIST ScatterGather, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    *(PSCATTER_GATHER_LIST *)Context = ScatterGather;
}

static NTSTATUS Arm(PEXT ext, BOOLEAN WriteToDevice, BOOLEAN Claim64, ULONG Extra)
{
    KIRQL old;
    NTSTATUS status;
    PSCATTER_GATHER_ELEMENT e;
    DEVICE_DESCRIPTION desc;
    ULONG n;

    if (ext->List != NULL || ext->Csr == NULL || ext->Buffer == NULL)
        return STATUS_INVALID_DEVICE_REQUEST;
    if (ext->Adapter == NULL) {
        RtlZeroMemory(&desc, sizeof(desc));
        desc.Version = DEVICE_DESCRIPTION_VERSION2;
        desc.Master = TRUE;
        desc.ScatterGather = TRUE;
        desc.Dma32BitAddresses = TRUE;
        desc.Dma64BitAddresses = Claim64;
        desc.InterfaceType = PCIBus;
        desc.MaximumLength = 0x10000;
        ext->Adapter = IoGetDmaAdapter(ext->Pdo, &desc, &n);
        if (ext->Adapter == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlFillMemory(ext->Buffer, 2 * PAGE_SIZE, WriteToDevice ? 0x3C : 0x00);
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    status = ext->Adapter->DmaOperations->GetScatterGatherList(ext->Adapter, ext->Self, ext->Mdl,
                                                               MmGetMdlVirtualAddress(ext->Mdl), TRANSFER,
                                                               ListControl, &ext->List, WriteToDevice);
    KeLowerIrql(old);
    if (!NT_SUCCESS(status) || ext->List == NULL)
        return NT_SUCCESS(status) ? STATUS_UNSUCCESSFUL : status;
    e = &ext->List->Elements[0];
    DbgPrint("dma_device: %s: %u element(s), first at logical 0x%llx length 0x%x\n",
             WriteToDevice ? "to device" : "from device", ext->List->NumberOfElements,
             (unsigned long long)e->Address.QuadPart, e->Length);
    if (ext->List->NumberOfElements != 1)
        return STATUS_DEVICE_CONFIGURATION_ERROR; /* the NIC takes one descriptor */
    WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_ADDRESS_LOW), e->Address.LowPart);
    WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_ADDRESS_HIGH), (ULONG)e->Address.HighPart);
    WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_LENGTH), e->Length + Extra);
    return STATUS_SUCCESS;
}

static VOID Put(PEXT ext, BOOLEAN WriteToDevice)
{
    KIRQL old;

    if (ext->List == NULL)
        return;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    ext->Adapter->DmaOperations->PutScatterGatherList(ext->Adapter, ext->List, WriteToDevice);
    KeLowerIrql(old);
    ext->List = NULL;
}

static ULONG DeviceBytes(PEXT ext)
{
    ULONG i, n = 0;

    for (i = 0; i < TRANSFER; i++)
        n += ext->Buffer[i] == 0xA5;
    return n;
}

static NTSTATUS Ioctl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    PUCHAR system = (PUCHAR)Irp->AssociatedIrp.SystemBuffer;
    NTSTATUS status = STATUS_SUCCESS;
    ULONG count;

    Irp->IoStatus.Information = 0;
    switch (stack->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_ARM_READ:
    case IOCTL_ARM_WRITE:
        status = Arm(ext, stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_ARM_WRITE,
                     stack->Parameters.DeviceIoControl.InputBufferLength >= 1 && system[0] == 1,
                     stack->Parameters.DeviceIoControl.InputBufferLength >= 2 ? system[1] : 0);
        break;
    case IOCTL_FINISH_WRITE:
        Put(ext, TRUE);
        break;
    case IOCTL_FINISH_READ:
        if (stack->Parameters.DeviceIoControl.InputBufferLength < 1 ||
            stack->Parameters.DeviceIoControl.OutputBufferLength < sizeof(ULONG)) {
            status = STATUS_BUFFER_TOO_SMALL;
            break;
        }
        if (system[0] != 0) {
            Put(ext, FALSE);
            count = DeviceBytes(ext);
        } else {
            count = DeviceBytes(ext);
            Put(ext, FALSE);
        }
        DbgPrint("dma_device: %s, the buffer holds %u of the device's bytes\n",
                 system[0] ? "after PutScatterGatherList" : "before PutScatterGatherList", count);
        *(PULONG)system = count;
        Irp->IoStatus.Information = sizeof(ULONG);
        break;
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID Start(PEXT ext, PCM_RESOURCE_LIST translated)
{
    PCM_PARTIAL_RESOURCE_LIST list = &translated->List[0].PartialResourceList;
    PHYSICAL_ADDRESS lowest, highest, none;
    ULONG i;

    for (i = 0; i < list->Count; i++) {
        PCM_PARTIAL_RESOURCE_DESCRIPTOR d = &list->PartialDescriptors[i];
        if (d->Type == CmResourceTypeMemory && ext->Csr == NULL)
            ext->Csr = (PUCHAR)MmMapIoSpace(d->u.Memory.Start, d->u.Memory.Length, MmNonCached);
    }
    lowest.QuadPart = FOUR_GB;
    highest.QuadPart = -1;
    none.QuadPart = 0;
    ext->Buffer = (PUCHAR)MmAllocateContiguousMemorySpecifyCache(2 * PAGE_SIZE, lowest, highest, none, MmCached);
    if (ext->Buffer == NULL)
        return;
    ext->Mdl = IoAllocateMdl(ext->Buffer, TRANSFER, FALSE, FALSE, NULL);
    MmProbeAndLockPages(ext->Mdl, KernelMode, IoModifyAccess);
    DbgPrint("dma_device: CSRs mapped %d, buffer above 4 GB %d\n", ext->Csr != NULL,
             MmGetPhysicalAddress(ext->Buffer).QuadPart >= (LONGLONG)FOUR_GB);
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    UCHAR minor = stack->MinorFunction;

    if (minor == IRP_MN_START_DEVICE)
        Start(ext, stack->Parameters.StartDevice.AllocatedResourcesTranslated);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    if (minor == IRP_MN_REMOVE_DEVICE) {
        Put(ext, FALSE);
        if (ext->Mdl != NULL) {
            MmUnlockPages(ext->Mdl);
            IoFreeMdl(ext->Mdl);
        }
        if (ext->Buffer != NULL)
            MmFreeContiguousMemory(ext->Buffer);
        if (ext->Csr != NULL)
            MmUnmapIoSpace(ext->Csr, PAGE_SIZE);
        if (ext->Adapter != NULL)
            ext->Adapter->DmaOperations->PutDmaAdapter(ext->Adapter);
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
    }
    return STATUS_SUCCESS;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo;
    PEXT ext;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &fdo);

    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    RtlZeroMemory(ext, sizeof(EXT));
    ext->Self = fdo;
    ext->Pdo = Pdo;
    ext->Lower = IoAttachDeviceToDeviceStack(fdo, Pdo);
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
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
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Ioctl;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
