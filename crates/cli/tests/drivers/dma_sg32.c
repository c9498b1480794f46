/*
 * dma_sg32: a 32-bit scatter/gather PCI bus master on a machine with RAM above
 * 4 GB (issue 13). At IRP_MN_START_DEVICE it gets a DMA adapter, allocates a common
 * buffer, and builds a scatter/gather list at DISPATCH_LEVEL for an MDL over a
 * buffer that lies above 4 GB: every logical address the device is given must be
 * below 4 GB (the HAL bounces the pages through its map registers). It also checks
 * that a version-3 description gets NULL on this pre-Windows 8 machine and that
 * asking for more map registers than the adapter has is refused.
 */
#include <ntddk.h>

#define FOUR_GB 0x100000000ULL
#define BUFFER_BYTES (3 * PAGE_SIZE - 0x200)

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
    PDEVICE_OBJECT Pdo;
    PDMA_ADAPTER Adapter;
    ULONG MapRegisters;
    PVOID Common;
    PHYSICAL_ADDRESS CommonLogical;
} EXT, *PEXT;

typedef struct _LIST_SEEN {
    int Calls;
    KIRQL Irql;
    ULONG Elements;
    ULONG Bytes;
    int AllBelow4G;
    PSCATTER_GATHER_LIST List;
} LIST_SEEN;

static VOID ListControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PSCATTER_GATHER_LIST ScatterGather, PVOID Context)
{
    LIST_SEEN *seen = (LIST_SEEN *)Context;
    ULONG i;

    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    seen->Calls++;
    seen->Irql = KeGetCurrentIrql();
    seen->Elements = ScatterGather->NumberOfElements;
    seen->AllBelow4G = 1;
    seen->Bytes = 0;
    for (i = 0; i < ScatterGather->NumberOfElements; i++) {
        PSCATTER_GATHER_ELEMENT e = &ScatterGather->Elements[i];
        seen->Bytes += e->Length;
        if ((ULONGLONG)e->Address.QuadPart + e->Length > FOUR_GB)
            seen->AllBelow4G = 0;
        DbgPrint("dma: element %u: logical 0x%llx length 0x%x\n", i, (unsigned long long)e->Address.QuadPart,
                 e->Length);
    }
    seen->List = ScatterGather;
}

static IO_ALLOCATION_ACTION AdapterControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID MapRegisterBase,
                                           PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    UNREFERENCED_PARAMETER(MapRegisterBase);
    *(KIRQL *)Context = KeGetCurrentIrql();
    return DeallocateObject;
}

static VOID Transfer(PEXT ext)
{
    PDMA_OPERATIONS ops = ext->Adapter->DmaOperations;
    PHYSICAL_ADDRESS lowest, highest, none;
    PUCHAR buffer;
    PMDL mdl;
    LIST_SEEN seen;
    KIRQL old, control_irql = 0;
    ULONG i;
    NTSTATUS status;

    lowest.QuadPart = FOUR_GB;
    highest.QuadPart = -1;
    none.QuadPart = 0;
    buffer = (PUCHAR)MmAllocateContiguousMemorySpecifyCache(3 * PAGE_SIZE, lowest, highest, none, MmCached);
    if (buffer == NULL) {
        DbgPrint("dma: no memory above 4 GB\n");
        return;
    }
    DbgPrint("dma: buffer above 4 GB %d\n", MmGetPhysicalAddress(buffer).QuadPart >= (LONGLONG)FOUR_GB);
    for (i = 0; i < BUFFER_BYTES; i++)
        buffer[0x100 + i] = (UCHAR)(i * 7);
    mdl = IoAllocateMdl(buffer + 0x100, BUFFER_BYTES, FALSE, FALSE, NULL);
    MmProbeAndLockPages(mdl, KernelMode, IoModifyAccess);

    RtlZeroMemory(&seen, sizeof(seen));
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    status = ops->GetScatterGatherList(ext->Adapter, ext->Self, mdl, MmGetMdlVirtualAddress(mdl), BUFFER_BYTES,
                                       ListControl, &seen, TRUE);
    DbgPrint("dma: GetScatterGatherList 0x%08x, list routine ran %d time(s) at IRQL %u\n", (unsigned)status,
             seen.Calls, seen.Irql);
    DbgPrint("dma: %u elements, %u bytes (asked %u), all below 4 GB %d\n", seen.Elements, seen.Bytes,
             (unsigned)BUFFER_BYTES, seen.AllBelow4G);
    if (seen.List != NULL)
        ops->PutScatterGatherList(ext->Adapter, seen.List, TRUE);

    status = ops->AllocateAdapterChannel(ext->Adapter, ext->Self, ext->MapRegisters + 1, AdapterControl,
                                         &control_irql);
    DbgPrint("dma: AllocateAdapterChannel(%u registers) 0x%08x\n", ext->MapRegisters + 1, (unsigned)status);
    status = ops->AllocateAdapterChannel(ext->Adapter, ext->Self, 2, AdapterControl, &control_irql);
    DbgPrint("dma: AllocateAdapterChannel(2 registers) 0x%08x, AdapterControl at IRQL %u\n", (unsigned)status,
             control_irql);
    KeLowerIrql(old);

    MmUnlockPages(mdl);
    IoFreeMdl(mdl);
    MmFreeContiguousMemory(buffer);
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    NTSTATUS status = STATUS_SUCCESS;

    switch (stack->MinorFunction) {
    case IRP_MN_START_DEVICE:
        ext->Common = ext->Adapter->DmaOperations->AllocateCommonBuffer(ext->Adapter, 5000, &ext->CommonLogical,
                                                                          FALSE);
        DbgPrint("dma: common buffer %d, logical page-aligned %d, below 4 GB %d\n", ext->Common != NULL,
                 (ext->CommonLogical.QuadPart & (PAGE_SIZE - 1)) == 0,
                 (ULONGLONG)ext->CommonLogical.QuadPart + 2 * PAGE_SIZE <= FOUR_GB);
        DbgPrint("dma: common buffer is what MmGetPhysicalAddress says %d\n",
                 MmGetPhysicalAddress(ext->Common).QuadPart == ext->CommonLogical.QuadPart);
        Transfer(ext);
        break;
    case IRP_MN_REMOVE_DEVICE:
        if (ext->Common != NULL)
            ext->Adapter->DmaOperations->FreeCommonBuffer(ext->Adapter, 5000, ext->CommonLogical, ext->Common, FALSE);
        ext->Adapter->DmaOperations->PutDmaAdapter(ext->Adapter);
        Irp->IoStatus.Status = STATUS_SUCCESS;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
        return STATUS_SUCCESS;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo;
    PEXT ext;
    DEVICE_DESCRIPTION desc;
    ULONG n = 0;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_NETWORK, 0, FALSE, &fdo);

    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    RtlZeroMemory(ext, sizeof(EXT));
    ext->Self = fdo;
    ext->Pdo = Pdo;
    ext->Lower = IoAttachDeviceToDeviceStack(fdo, Pdo);

    RtlZeroMemory(&desc, sizeof(desc));
    desc.Version = DEVICE_DESCRIPTION_VERSION3;
    desc.Master = TRUE;
    desc.ScatterGather = TRUE;
    desc.DmaAddressWidth = 32;
    desc.InterfaceType = PCIBus;
    desc.MaximumLength = 0x10000;
    DbgPrint("dma: version 3 adapter is NULL %d\n", IoGetDmaAdapter(Pdo, &desc, &n) == NULL);

    desc.Version = DEVICE_DESCRIPTION_VERSION2;
    desc.DmaAddressWidth = 0;
    desc.Dma32BitAddresses = TRUE;
    ext->Adapter = IoGetDmaAdapter(Pdo, &desc, &n);
    if (ext->Adapter == NULL) {
        DbgPrint("dma: no adapter\n");
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(fdo);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    ext->MapRegisters = n;
    DbgPrint("dma: adapter Version %u, Size 0x%x, DmaOperations->Size 0x%x, map registers %u\n",
             ext->Adapter->Version, ext->Adapter->Size, ext->Adapter->DmaOperations->Size, n);
    DbgPrint("dma: alignment %u\n", ext->Adapter->DmaOperations->GetDmaAlignment(ext->Adapter));
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("dma: unloaded\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
