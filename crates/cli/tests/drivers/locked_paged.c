/* Issue 9 item 1: paged pool locked by MmProbeAndLockPages stays resident. Run
 * under Driver Verifier's force IRQL checking, every raise to DISPATCH_LEVEL trims
 * pageable memory; the locked pages must keep their frames, a write through the
 * MDL's system mapping must be read back through the pool address (at
 * DISPATCH_LEVEL too, where touching a paged-out page is fatal), and unlocking
 * must find every page still locked. */
#include <ntddk.h>

#define PAGES 64

static VOID Trim(VOID)
{
    KIRQL old;
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    KeLowerIrql(old);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    SIZE_T size = PAGES * PAGE_SIZE;
    PUCHAR block = ExAllocatePoolWithTag(PagedPool, size, 'kcoL');
    PHYSICAL_ADDRESS before[PAGES];
    PUCHAR system;
    PMDL mdl;
    KIRQL old;
    ULONG i, bad = 0;

    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (block == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    RtlFillMemory(block, size, 0x5A);
    mdl = IoAllocateMdl(block, (ULONG)size, FALSE, FALSE, NULL);
    if (mdl == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    try {
        MmProbeAndLockPages(mdl, KernelMode, IoWriteAccess);
    } except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    for (i = 0; i < PAGES; i++)
        before[i] = MmGetPhysicalAddress(block + i * PAGE_SIZE);
    Trim();
    system = MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority);
    if (system == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    Trim();
    for (i = 0; i < PAGES; i++)
        *(volatile ULONG *)(system + i * PAGE_SIZE + 8) = 0x1000 + i;
    Trim();
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    for (i = 0; i < PAGES; i++) {
        PHYSICAL_ADDRESS now = MmGetPhysicalAddress(block + i * PAGE_SIZE);
        if (now.QuadPart == 0 || now.QuadPart != before[i].QuadPart)
            bad++;
        if (*(volatile ULONG *)(block + i * PAGE_SIZE + 8) != 0x1000 + i)
            bad++;
    }
    KeLowerIrql(old);
    MmUnlockPages(mdl);
    IoFreeMdl(mdl);
    Trim();
    for (i = 0; i < PAGES; i++)
        if (*(volatile ULONG *)(block + i * PAGE_SIZE + 8) != 0x1000 + i)
            bad++;
    ExFreePoolWithTag(block, 'kcoL');
    DbgPrint("locked_paged: %u bad pages\n", bad);
    return bad == 0 ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
