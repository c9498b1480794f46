/*
 * dma_verifier: one DMA mistake per case, for Driver Verifier's DMA checking
 * (`--verifier dma`, issue 13): each case is a bug check 0xE6 subcode of
 * Microsoft's "Bug Check 0xE6" page. The device is a 32-bit scatter/gather PCI bus
 * master (the NIC: CSR 0x100 address low, 0x104 high, 0x108 length).
 *
 * IOCTL_CASE (METHOD_BUFFERED), input byte: the case below. Before the mistake the
 * driver prints what the stop's parameters name ("dma_verifier: adapter=... mdl=...
 * va=... base=... logical=... n=..."), in hex.
 *
 *   1 a common buffer freed twice (0x03)       2 the channel freed twice (0x04)
 *   3 map registers freed twice (0x05)         4 a S/G list put back twice (0x06)
 *   5 PutDmaAdapter holding the channel (0x08) 6 ... holding map registers (0x09)
 *   7 ... holding a S/G list (0x0A)            8 a second channel at once (0x0B)
 *   9 one register more than the adapter has (0x0C)
 *  10 three pages mapped through two registers without a flush (0x0D)
 *  11 MapTransfer of a paged buffer never locked (0x0E)
 *  12 FreeMapRegisters after MapTransfer without FlushAdapterBuffers (0x10)
 *  13 AllocateAdapterChannel at PASSIVE_LEVEL (0x13/1)
 *  14 MapTransfer at HIGH_LEVEL (0x13/2)
 *  15 two pages mapped through a one-register file (0x15)
 *  16 AllocateCommonBuffer on a released adapter (0x18)
 *  17 AllocateCommonBuffer on a NULL adapter (0x19)
 *  18 FlushAdapterBuffers with a CurrentVa outside the MDL (0x1B)
 *  19 the same page mapped twice without a flush (0x1D)
 *  20 MapTransfer from before the MDL (0x1F/1)   21 ... past its end (0x1F/2)
 *  22 FlushAdapterBuffers with nothing mapped (0x20)
 *  23 a zero-length MapTransfer (0x21)
 *  24 one byte written past a 100-byte common buffer, then freed (0x0F/2)
 *  25 one byte before it (0x0F/1)   26 at +0x80, in the padding after (0x0F/5)
 *  27 at -0x100, in the padding before (0x0F/4)
 *  28 a 100-byte common buffer programmed into the NIC with 16 bytes more (a `dma`
 *     step then makes the NIC write); 29 frees it (0x0F/2 if the NIC overran)
 *  30 PutDmaAdapter with a common buffer outstanding (0x07)
 */
#include <ntddk.h>

#define IOCTL_CASE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

#define PAGES 3
#define SMALL 100
#define REG_ADDRESS_LOW 0x100
#define REG_ADDRESS_HIGH 0x104
#define REG_LENGTH 0x108

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
    PDEVICE_OBJECT Pdo;
    PUCHAR Csr;
    PDMA_ADAPTER Adapter;
    ULONG Registers;
    PUCHAR Buffer;
    PMDL Mdl;
    PVOID Base;
    PSCATTER_GATHER_LIST List;
    PUCHAR Common;
    PHYSICAL_ADDRESS Logical;
} EXT, *PEXT;

static IO_ALLOCATION_ACTION Keep;

static IO_ALLOCATION_ACTION Control(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID MapRegisterBase, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    *(PVOID *)Context = MapRegisterBase;
    return Keep;
}

static VOID ListControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PSCATTER_GATHER_LIST ScatterGather, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    *(PSCATTER_GATHER_LIST *)Context = ScatterGather;
}

static PDMA_OPERATIONS Ops(PEXT ext)
{
    return ext->Adapter->DmaOperations;
}

static VOID Show(PEXT ext)
{
    DbgPrint("dma_verifier: adapter=%llx mdl=%llx va=%llx base=%llx logical=%llx common=%llx n=%lx\n",
             (ULONG64)(ULONG_PTR)ext->Adapter, (ULONG64)(ULONG_PTR)ext->Mdl,
             (ULONG64)(ULONG_PTR)MmGetMdlVirtualAddress(ext->Mdl), (ULONG64)(ULONG_PTR)ext->Base,
             (ULONG64)ext->Logical.QuadPart, (ULONG64)(ULONG_PTR)ext->Common, ext->Registers);
}

/* The adapter channel with `n` registers, at DISPATCH_LEVEL (the caller lowers);
 * the execution routine returns `action`. */
static VOID Channel(PEXT ext, ULONG n, IO_ALLOCATION_ACTION action)
{
    Keep = action;
    Ops(ext)->AllocateAdapterChannel(ext->Adapter, ext->Self, n, Control, &ext->Base);
}

static ULONG Map(PEXT ext, PVOID va, ULONG length)
{
    ULONG l = length;
    Ops(ext)->MapTransfer(ext->Adapter, ext->Mdl, ext->Base, va, &l, TRUE);
    return l;
}

static VOID GetList(PEXT ext)
{
    Ops(ext)->GetScatterGatherList(ext->Adapter, ext->Self, ext->Mdl, MmGetMdlVirtualAddress(ext->Mdl), PAGE_SIZE,
                                   ListControl, &ext->List, TRUE);
}

static VOID CommonBuffer(PEXT ext)
{
    ext->Common = (PUCHAR)Ops(ext)->AllocateCommonBuffer(ext->Adapter, SMALL, &ext->Logical, FALSE);
}

static VOID FreeCommon(PEXT ext)
{
    Ops(ext)->FreeCommonBuffer(ext->Adapter, SMALL, ext->Logical, ext->Common, FALSE);
}

static NTSTATUS Case(PEXT ext, UCHAR c)
{
    PUCHAR va = (PUCHAR)MmGetMdlVirtualAddress(ext->Mdl);
    PDMA_OPERATIONS ops = Ops(ext);
    PUCHAR paged;
    KIRQL old, high;

    if (c == 13) { /* below DISPATCH_LEVEL */
        Show(ext);
        Channel(ext, 1, KeepObject);
        return STATUS_SUCCESS;
    }
    if (c == 16) { /* the table lives in the adapter: keep the routine */
        PALLOCATE_COMMON_BUFFER allocate = ops->AllocateCommonBuffer;
        Show(ext);
        ops->PutDmaAdapter(ext->Adapter);
        allocate(ext->Adapter, SMALL, &ext->Logical, FALSE);
        return STATUS_SUCCESS;
    }
    if (c == 17) {
        ops->AllocateCommonBuffer(NULL, SMALL, &ext->Logical, FALSE);
        return STATUS_SUCCESS;
    }
    if (c == 1 || (c >= 24 && c <= 28) || c == 30) {
        CommonBuffer(ext);
        Show(ext);
        if (ext->Common == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
        switch (c) {
        case 1:
            FreeCommon(ext);
            FreeCommon(ext);
            break;
        case 24:
            ext->Common[SMALL] = 0x11;
            FreeCommon(ext);
            break;
        case 25:
            ext->Common[-1] = 0x11;
            FreeCommon(ext);
            break;
        case 26:
            ext->Common[0x80] = 0x11;
            FreeCommon(ext);
            break;
        case 27:
            ext->Common[-0x100] = 0x11;
            FreeCommon(ext);
            break;
        case 28:
            if (ext->Csr == NULL)
                return STATUS_UNSUCCESSFUL;
            WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_ADDRESS_LOW), ext->Logical.LowPart);
            WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_ADDRESS_HIGH), (ULONG)ext->Logical.HighPart);
            WRITE_REGISTER_ULONG((PULONG)(ext->Csr + REG_LENGTH), SMALL + 16);
            break;
        case 30:
            ops->PutDmaAdapter(ext->Adapter);
            break;
        }
        return STATUS_SUCCESS;
    }
    if (c == 29) {
        Show(ext);
        FreeCommon(ext);
        return STATUS_SUCCESS;
    }
    if (c == 11) {
        paged = (PUCHAR)ExAllocatePoolWithTag(PagedPool, PAGE_SIZE, 'fVmD');
        if (paged == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
        IoFreeMdl(ext->Mdl);
        ext->Mdl = IoAllocateMdl(paged, PAGE_SIZE, FALSE, FALSE, NULL); /* never locked */
        va = paged;
    }

    KeRaiseIrql(DISPATCH_LEVEL, &old);
    switch (c) {
    case 2:
        Channel(ext, 1, KeepObject);
        Show(ext);
        ops->FreeAdapterChannel(ext->Adapter);
        ops->FreeAdapterChannel(ext->Adapter);
        break;
    case 3:
        Channel(ext, 2, DeallocateObjectKeepRegisters);
        Show(ext);
        ops->FreeMapRegisters(ext->Adapter, ext->Base, 2);
        ops->FreeMapRegisters(ext->Adapter, ext->Base, 2);
        break;
    case 4:
        GetList(ext);
        Show(ext);
        ops->PutScatterGatherList(ext->Adapter, ext->List, TRUE);
        ops->PutScatterGatherList(ext->Adapter, ext->List, TRUE);
        break;
    case 5:
        Channel(ext, 1, KeepObject);
        Show(ext);
        ops->PutDmaAdapter(ext->Adapter);
        break;
    case 6:
        Channel(ext, 3, DeallocateObjectKeepRegisters);
        Show(ext);
        ops->PutDmaAdapter(ext->Adapter);
        break;
    case 7:
        GetList(ext);
        Show(ext);
        ops->PutDmaAdapter(ext->Adapter);
        break;
    case 8:
        Channel(ext, 1, KeepObject);
        Show(ext);
        Channel(ext, 1, KeepObject);
        break;
    case 9:
        Show(ext);
        Channel(ext, ext->Registers + 1, KeepObject);
        break;
    case 10:
        Channel(ext, 2, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, PAGE_SIZE);
        Map(ext, va + PAGE_SIZE, PAGE_SIZE);
        Map(ext, va + 2 * PAGE_SIZE, PAGE_SIZE);
        break;
    case 11:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, PAGE_SIZE);
        break;
    case 12:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, PAGE_SIZE);
        ops->FreeMapRegisters(ext->Adapter, ext->Base, 1);
        break;
    case 14:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        KeRaiseIrql(HIGH_LEVEL, &high);
        Map(ext, va, PAGE_SIZE);
        break;
    case 15:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, 2 * PAGE_SIZE);
        break;
    case 18:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, PAGE_SIZE);
        ops->FlushAdapterBuffers(ext->Adapter, ext->Mdl, ext->Base, va + PAGES * PAGE_SIZE, PAGE_SIZE, TRUE);
        break;
    case 19:
        Channel(ext, 2, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, PAGE_SIZE);
        Map(ext, va, PAGE_SIZE);
        break;
    case 20:
        Channel(ext, 2, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va - 0x10, PAGE_SIZE);
        break;
    case 21:
        Channel(ext, 2, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va + 2 * PAGE_SIZE, 2 * PAGE_SIZE);
        break;
    case 22:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        ops->FlushAdapterBuffers(ext->Adapter, ext->Mdl, ext->Base, va, PAGE_SIZE, TRUE);
        break;
    case 23:
        Channel(ext, 1, DeallocateObjectKeepRegisters);
        Show(ext);
        Map(ext, va, 0);
        break;
    }
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}

static NTSTATUS Prepare(PEXT ext)
{
    DEVICE_DESCRIPTION desc;

    if (ext->Adapter != NULL)
        return STATUS_SUCCESS;
    RtlZeroMemory(&desc, sizeof(desc));
    desc.Version = DEVICE_DESCRIPTION_VERSION2;
    desc.Master = TRUE;
    desc.ScatterGather = TRUE;
    desc.Dma32BitAddresses = TRUE;
    desc.InterfaceType = PCIBus;
    desc.MaximumLength = 0x10000;
    ext->Adapter = IoGetDmaAdapter(ext->Pdo, &desc, &ext->Registers);
    ext->Buffer = (PUCHAR)ExAllocatePoolWithTag(NonPagedPool, PAGES * PAGE_SIZE, 'fVmD');
    if (ext->Adapter == NULL || ext->Buffer == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    ext->Mdl = IoAllocateMdl(ext->Buffer, PAGES * PAGE_SIZE, FALSE, FALSE, NULL);
    if (ext->Mdl == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    MmBuildMdlForNonPagedPool(ext->Mdl);
    return STATUS_SUCCESS;
}

static NTSTATUS Ioctl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    NTSTATUS status = STATUS_INVALID_DEVICE_REQUEST;

    if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_CASE &&
        stack->Parameters.DeviceIoControl.InputBufferLength >= 1) {
        status = Prepare(ext);
        if (NT_SUCCESS(status))
            status = Case(ext, *(PUCHAR)Irp->AssociatedIrp.SystemBuffer);
    }
    Irp->IoStatus.Information = 0;
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    UCHAR minor = stack->MinorFunction;
    PCM_PARTIAL_RESOURCE_LIST list;
    ULONG i;

    if (minor == IRP_MN_START_DEVICE && stack->Parameters.StartDevice.AllocatedResourcesTranslated != NULL) {
        list = &stack->Parameters.StartDevice.AllocatedResourcesTranslated->List[0].PartialResourceList;
        for (i = 0; i < list->Count; i++) {
            PCM_PARTIAL_RESOURCE_DESCRIPTOR d = &list->PartialDescriptors[i];
            if (d->Type == CmResourceTypeMemory && ext->Csr == NULL)
                ext->Csr = (PUCHAR)MmMapIoSpace(d->u.Memory.Start, d->u.Memory.Length, MmNonCached);
        }
    }
    Irp->IoStatus.Status = STATUS_SUCCESS;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    if (minor == IRP_MN_REMOVE_DEVICE) {
        if (ext->Mdl != NULL)
            IoFreeMdl(ext->Mdl);
        if (ext->Buffer != NULL)
            ExFreePoolWithTag(ext->Buffer, 'fVmD');
        if (ext->Adapter != NULL)
            Ops(ext)->PutDmaAdapter(ext->Adapter);
        if (ext->Csr != NULL)
            MmUnmapIoSpace(ext->Csr, PAGE_SIZE);
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
