/*
 * dma_system: a subordinate (system DMA) device, through DMA_OPERATIONS version 1
 * or version 3 (issue 13). A legacy driver with one device, \Device\DmaSystem
 * (\\.\DmaSystem); the scenario's IOCTLs walk a transfer and `dma` steps make the
 * device move the data through the system DMA controller's channel.
 *
 * IOCTLs (METHOD_BUFFERED), input a REQUEST:
 *   OPEN     IoGetDmaAdapter for ISA channel `Channel` (or, version 3, request line
 *            `RequestLine`); output an OPENED (all zero when NULL)
 *   MAP      a Length-byte buffer physically at or above 16 MB (filled with `Fill`
 *            for a write), the channel (v1: AllocateAdapterChannel; v3:
 *            AllocateAdapterChannelEx, synchronous, no execution routine), and
 *            MapTransfer / MapTransferEx (v3 with a completion routine); output a
 *            MAPPED
 *   COUNTER  ReadDmaCounter; output ULONG
 *   FINISH   FlushAdapterBuffers(Ex), then count the buffer's bytes equal to `Fill`;
 *            FreeAdapterChannel; output a FINISHED
 *   CLOSE    PutDmaAdapter
 */
#include <ntddk.h>

#define IOCTL_OPEN CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_MAP CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_COUNTER CTL_CODE(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_FINISH CTL_CODE(FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_CLOSE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x804, METHOD_BUFFERED, FILE_ANY_ACCESS)

#define SIXTEEN_MB 0x1000000ULL

typedef struct _REQUEST {
    ULONG Version;
    ULONG Channel;
    ULONG RequestLine;
    ULONG Length;
    ULONG Write;
    ULONG Fill;
} REQUEST, *PREQUEST;

typedef struct _OPENED {
    ULONG Registers;
    ULONG OperationsSize;
    ULONG CounterAvailable; /* GetDmaAdapterInfo (version 3) */
    ULONG AddressWidth;
    ULONG MinimumTransferUnit;
    ULONG MissingSlots; /* version 3 slots that are NULL */
} OPENED;

typedef struct _MAPPED {
    ULONGLONG Logical;
    ULONGLONG Physical; /* of the driver's buffer */
    ULONG Length;
    LONG Status;
    ULONG Completions; /* completion routines run before MapTransferEx returned */
} MAPPED;

typedef struct _FINISHED {
    ULONG Matching;
    ULONG Completions;
    LONG LastCompletionStatus;
    LONG FlushStatus;
} FINISHED;

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDMA_ADAPTER Adapter;
    ULONG Version;
    ULONG Registers;
    PVOID Base;
    PUCHAR Buffer;
    ULONG Length;
    ULONG Write;
    PMDL Mdl;
    LONG Completions;
    LONG LastCompletionStatus;
    CHAR Context[DMA_TRANSFER_CONTEXT_SIZE_V1];
} EXT, *PEXT;

static IO_ALLOCATION_ACTION Control(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID MapRegisterBase, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    ((PEXT)Context)->Base = MapRegisterBase;
    return KeepObject; /* system DMA keeps the channel until FreeAdapterChannel */
}

static VOID Completion(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject, PVOID Context,
                       DMA_COMPLETION_STATUS Status)
{
    PEXT ext = (PEXT)Context;

    DbgPrint("dma_system: completion %d at IRQL %u, device %s\n", Status, KeGetCurrentIrql(),
             DeviceObject == ext->Self && DmaAdapter == ext->Adapter ? "ours" : "other");
    ext->Completions++;
    ext->LastCompletionStatus = Status;
}

static NTSTATUS Open(PEXT ext, PREQUEST r, OPENED *out)
{
    DEVICE_DESCRIPTION desc;
    DMA_ADAPTER_INFO info;
    PVOID *slot;
    ULONG i;

    RtlZeroMemory(out, sizeof(*out));
    RtlZeroMemory(&desc, sizeof(desc));
    desc.Version = r->Version;
    desc.Master = FALSE;
    desc.DmaChannel = r->Channel;
    desc.DmaRequestLine = r->RequestLine;
    desc.InterfaceType = r->RequestLine ? ACPIBus : Isa;
    desc.DmaWidth = r->Channel >= 5 ? Width16Bits : Width8Bits;
    desc.MaximumLength = 0x10000;
    ext->Adapter = IoGetDmaAdapter(ext->Self, &desc, &ext->Registers);
    if (ext->Adapter == NULL)
        return STATUS_NO_MATCH;
    ext->Version = r->Version;
    out->Registers = ext->Registers;
    out->OperationsSize = ext->Adapter->DmaOperations->Size;
    if (r->Version >= DEVICE_DESCRIPTION_VERSION3) {
        info.Version = DMA_ADAPTER_INFO_VERSION1;
        if (NT_SUCCESS(ext->Adapter->DmaOperations->GetDmaAdapterInfo(ext->Adapter, &info))) {
            out->CounterAvailable = info.V1.ReadDmaCounterAvailable;
            out->AddressWidth = info.V1.DmaAddressWidth;
            out->MinimumTransferUnit = info.V1.MinimumTransferUnit;
        }
        slot = (PVOID *)&ext->Adapter->DmaOperations->GetDmaAdapterInfo;
        for (i = 0; i < 13; i++)
            out->MissingSlots += slot[i] == NULL;
    }
    return STATUS_SUCCESS;
}

static NTSTATUS Map(PEXT ext, PREQUEST r, MAPPED *out)
{
    PHYSICAL_ADDRESS lowest, highest, none, logical;
    KIRQL old;
    NTSTATUS status = STATUS_SUCCESS;
    ULONG length = r->Length;
    ULONG i;

    RtlZeroMemory(out, sizeof(*out));
    if (ext->Adapter == NULL || ext->Buffer != NULL || length == 0)
        return STATUS_INVALID_DEVICE_REQUEST;
    lowest.QuadPart = SIXTEEN_MB;
    highest.QuadPart = -1;
    none.QuadPart = 0;
    ext->Buffer = (PUCHAR)MmAllocateContiguousMemorySpecifyCache(length, lowest, highest, none, MmCached);
    if (ext->Buffer == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    for (i = 0; i < length; i++)
        ext->Buffer[i] = r->Write ? (UCHAR)r->Fill : 0;
    ext->Length = length;
    ext->Write = r->Write;
    ext->Mdl = IoAllocateMdl(ext->Buffer, length, FALSE, FALSE, NULL);
    MmBuildMdlForNonPagedPool(ext->Mdl);
    out->Physical = (ULONGLONG)MmGetPhysicalAddress(ext->Buffer).QuadPart;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    if (ext->Version >= DEVICE_DESCRIPTION_VERSION3) {
        ext->Adapter->DmaOperations->InitializeDmaTransferContext(ext->Adapter, ext->Context);
        status = ext->Adapter->DmaOperations->AllocateAdapterChannelEx(
            ext->Adapter, ext->Self, ext->Context, BYTES_TO_PAGES(length), DMA_SYNCHRONOUS_CALLBACK, NULL, NULL,
            &ext->Base);
    } else {
        status = ext->Adapter->DmaOperations->AllocateAdapterChannel(ext->Adapter, ext->Self, BYTES_TO_PAGES(length),
                                                                    Control, ext);
    }
    KeLowerIrql(old);
    out->Status = status;
    if (!NT_SUCCESS(status) || ext->Base == NULL)
        return status;
    if (ext->Version >= DEVICE_DESCRIPTION_VERSION3) {
        status = ext->Adapter->DmaOperations->MapTransferEx(ext->Adapter, ext->Mdl, ext->Base, 0, 0x10, &length,
                                                           (BOOLEAN)r->Write, NULL, 0, Completion, ext);
        logical.QuadPart = 0;
    } else {
        logical = ext->Adapter->DmaOperations->MapTransfer(ext->Adapter, ext->Mdl, ext->Base,
                                                           MmGetMdlVirtualAddress(ext->Mdl), &length,
                                                           (BOOLEAN)r->Write);
    }
    out->Status = status;
    out->Logical = (ULONGLONG)logical.QuadPart;
    out->Length = length;
    out->Completions = ext->Completions;
    return status;
}

static NTSTATUS Finish(PEXT ext, PREQUEST r, FINISHED *out)
{
    KIRQL old;
    ULONG i;

    RtlZeroMemory(out, sizeof(*out));
    if (ext->Buffer == NULL)
        return STATUS_INVALID_DEVICE_REQUEST;
    if (ext->Version >= DEVICE_DESCRIPTION_VERSION3)
        out->FlushStatus = ext->Adapter->DmaOperations->FlushAdapterBuffersEx(ext->Adapter, ext->Mdl, ext->Base, 0,
                                                                              ext->Length, (BOOLEAN)ext->Write);
    else
        ext->Adapter->DmaOperations->FlushAdapterBuffers(ext->Adapter, ext->Mdl, ext->Base,
                                                         MmGetMdlVirtualAddress(ext->Mdl), ext->Length,
                                                         (BOOLEAN)ext->Write);
    for (i = 0; i < ext->Length; i++)
        out->Matching += ext->Buffer[i] == (UCHAR)r->Fill;
    out->Completions = ext->Completions;
    out->LastCompletionStatus = ext->LastCompletionStatus;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    ext->Adapter->DmaOperations->FreeAdapterChannel(ext->Adapter);
    KeLowerIrql(old);
    IoFreeMdl(ext->Mdl);
    MmFreeContiguousMemory(ext->Buffer);
    ext->Mdl = NULL;
    ext->Buffer = NULL;
    ext->Base = NULL;
    return STATUS_SUCCESS;
}

static NTSTATUS Ioctl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    PVOID system = Irp->AssociatedIrp.SystemBuffer;
    REQUEST r;
    NTSTATUS status;

    RtlZeroMemory(&r, sizeof(r));
    if (stack->Parameters.DeviceIoControl.InputBufferLength >= sizeof(r))
        RtlCopyMemory(&r, system, sizeof(r));
    Irp->IoStatus.Information = 0;
    switch (stack->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_OPEN:
        status = Open(ext, &r, (OPENED *)system);
        Irp->IoStatus.Information = sizeof(OPENED);
        break;
    case IOCTL_MAP:
        status = Map(ext, &r, (MAPPED *)system);
        Irp->IoStatus.Information = sizeof(MAPPED);
        break;
    case IOCTL_COUNTER:
        *(PULONG)system = ext->Adapter ? ext->Adapter->DmaOperations->ReadDmaCounter(ext->Adapter) : 0;
        Irp->IoStatus.Information = sizeof(ULONG);
        status = STATUS_SUCCESS;
        break;
    case IOCTL_FINISH:
        status = Finish(ext, &r, (FINISHED *)system);
        Irp->IoStatus.Information = sizeof(FINISHED);
        break;
    case IOCTL_CLOSE:
        if (ext->Adapter != NULL)
            ext->Adapter->DmaOperations->PutDmaAdapter(ext->Adapter);
        ext->Adapter = NULL;
        status = STATUS_SUCCESS;
        break;
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS CreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\DmaSystem");

    IoDeleteSymbolicLink(&link);
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\DmaSystem");
    UNICODE_STRING link = RTL_CONSTANT_STRING(L"\\DosDevices\\DmaSystem");
    PDEVICE_OBJECT device;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, sizeof(EXT), &name, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    ((PEXT)device->DeviceExtension)->Self = device;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Ioctl;
    DriverObject->DriverUnload = Unload;
    status = IoCreateSymbolicLink(&link, &name);
    if (!NT_SUCCESS(status))
        IoDeleteDevice(device);
    return status;
}
