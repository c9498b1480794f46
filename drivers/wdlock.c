/*
 * What Jungo WinDriver's DMA buffer locks do on Windows, for a buffer whose size the
 * caller gives (seed 001 = Jungo Technical Document #58; research note
 * dma-verifier-views.md §4.1 and §4.2). This is not WinDriver's code: it is the
 * sequence of Windows routines such a lock has to go through.
 *
 * IOCTL_WDLOCK_CONTIG (METHOD_BUFFERED; input: ULONG size, ULONG address bits 32/64)
 * does WDC_DMAContigBufLock: a physically contiguous buffer inside the device's
 * reach (MmAllocateContiguousMemorySpecifyCache, which also maps it in system
 * space), an MDL over it (IoAllocateMdl, MmBuildMdlForNonPagedPool), and a mapping
 * into the calling process (MmMapLockedPagesSpecifyCache, UserMode, which raises).
 *
 * IOCTL_WDLOCK_SG (METHOD_NEITHER; the output buffer is the application's buffer)
 * does WDC_DMASGBufLock: an MDL over the caller's buffer (IoAllocateMdl), locked
 * (MmProbeAndLockPages, which raises), mapped into system space
 * (MmMapLockedPagesSpecifyCache, KernelMode, no bug check on failure), and the
 * physical page list with adjacent pages merged.
 *
 * Each lock says which step failed first, frees what it took and completes with
 * STATUS_NO_MEMORY (contiguous allocation), STATUS_INSUFFICIENT_RESOURCES (MDL or
 * system mapping) or the exception code (lock, user mapping). ntmem's `dma-plan`
 * gives the same verdict without a driver.
 */
#include <ntddk.h>

#define IOCTL_WDLOCK_CONTIG CTL_CODE(FILE_DEVICE_UNKNOWN, 0x910, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_WDLOCK_SG CTL_CODE(FILE_DEVICE_UNKNOWN, 0x911, METHOD_NEITHER, FILE_ANY_ACCESS)

typedef struct {
    ULONG Size;
    ULONG AddressBits;
} WDLOCK_REQUEST;

/* Page-list entries after merging physically adjacent pages (WinDriver merges
 * unless DMA_DISABLE_MERGE_ADJACENT_PAGES is set). */
static ULONG PageListEntries(PMDL Mdl)
{
    PPFN_NUMBER pfns = MmGetMdlPfnArray(Mdl);
    ULONG pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(MmGetMdlVirtualAddress(Mdl), MmGetMdlByteCount(Mdl));
    ULONG entries = 0;
    for (ULONG i = 0; i < pages; i++)
        if (i == 0 || pfns[i] != pfns[i - 1] + 1)
            entries++;
    return entries;
}

static NTSTATUS ContigLock(ULONG Size, ULONG AddressBits)
{
    PHYSICAL_ADDRESS lowest, highest, boundary;
    PVOID buffer, user = NULL;
    PMDL mdl;
    NTSTATUS status = STATUS_SUCCESS;

    lowest.QuadPart = 0;
    boundary.QuadPart = 0;
    highest.QuadPart = AddressBits >= 64 ? -1LL : 0xFFFFFFFFLL;
    buffer = MmAllocateContiguousMemorySpecifyCache(Size, lowest, highest, boundary, MmCached);
    if (!buffer) {
        DbgPrint("wdlock: contiguous %u bytes: FAILED at MmAllocateContiguousMemorySpecifyCache\n", Size);
        return STATUS_NO_MEMORY;
    }
    mdl = IoAllocateMdl(buffer, Size, FALSE, FALSE, NULL);
    if (!mdl) {
        DbgPrint("wdlock: contiguous %u bytes: FAILED at IoAllocateMdl\n", Size);
        MmFreeContiguousMemory(buffer);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    MmBuildMdlForNonPagedPool(mdl);
    __try {
        user = MmMapLockedPagesSpecifyCache(mdl, UserMode, MmCached, NULL, FALSE, NormalPagePriority);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
        user = NULL;
    }
    if (user) {
        DbgPrint("wdlock: contiguous %u bytes: locked, %u page-list entries, user mapping made\n", Size,
                 PageListEntries(mdl));
        MmUnmapLockedPages(user, mdl);
    } else {
        DbgPrint("wdlock: contiguous %u bytes: FAILED at MmMapLockedPagesSpecifyCache(UserMode)\n", Size);
        if (NT_SUCCESS(status))
            status = STATUS_INSUFFICIENT_RESOURCES;
    }
    IoFreeMdl(mdl);
    MmFreeContiguousMemory(buffer);
    return status;
}

static NTSTATUS SgLock(PVOID UserBuffer, ULONG Size)
{
    PMDL mdl;
    PVOID system;
    NTSTATUS status = STATUS_SUCCESS;

    mdl = IoAllocateMdl(UserBuffer, Size, FALSE, FALSE, NULL);
    if (!mdl) {
        DbgPrint("wdlock: scatter/gather %u bytes: FAILED at IoAllocateMdl\n", Size);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    __try {
        MmProbeAndLockPages(mdl, UserMode, IoModifyAccess);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    if (!NT_SUCCESS(status)) {
        DbgPrint("wdlock: scatter/gather %u bytes: FAILED at MmProbeAndLockPages\n", Size);
        IoFreeMdl(mdl);
        return status;
    }
    system = MmMapLockedPagesSpecifyCache(mdl, KernelMode, MmCached, NULL, FALSE, NormalPagePriority);
    if (system) {
        DbgPrint("wdlock: scatter/gather %u bytes: locked, %u page-list entries\n", Size, PageListEntries(mdl));
        MmUnmapLockedPages(system, mdl);
    } else {
        DbgPrint("wdlock: scatter/gather %u bytes: FAILED at MmMapLockedPagesSpecifyCache(KernelMode)\n", Size);
        status = STATUS_INSUFFICIENT_RESOURCES;
    }
    MmUnlockPages(mdl);
    IoFreeMdl(mdl);
    return status;
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
    NTSTATUS status;
    UNREFERENCED_PARAMETER(DeviceObject);

    Irp->IoStatus.Information = 0;
    switch (sp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_WDLOCK_CONTIG:
        if (sp->Parameters.DeviceIoControl.InputBufferLength < sizeof(WDLOCK_REQUEST)) {
            status = STATUS_BUFFER_TOO_SMALL;
        } else {
            WDLOCK_REQUEST *req = (WDLOCK_REQUEST *)Irp->AssociatedIrp.SystemBuffer;
            status = req->Size ? ContigLock(req->Size, req->AddressBits) : STATUS_INVALID_PARAMETER;
        }
        break;
    case IOCTL_WDLOCK_SG:
        if (!Irp->UserBuffer || !sp->Parameters.DeviceIoControl.OutputBufferLength)
            status = STATUS_INVALID_PARAMETER;
        else
            status = SgLock(Irp->UserBuffer, sp->Parameters.DeviceIoControl.OutputBufferLength);
        break;
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
        break;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
