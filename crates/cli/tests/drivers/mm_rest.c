/* The rest of the memory routines at the C boundary (issue 11 item 5):
 * MmQuerySystemSize, MmIsThisAnNtAsSystem, MmAllocateContiguousNodeMemory,
 * MmGetVirtualForPhysical, ExAllocatePool3, MmProtectMdlSystemAddress and
 * MmSecureVirtualMemory / MmUnsecureVirtualMemory (from a METHOD_NEITHER request, in
 * the caller's process). Each CHECK prints the line of a failed check; the last line
 * of each part counts them. */
#include <ntddk.h>

#define IOCTL_SECURE 0x222003 /* METHOD_NEITHER */

static ULONG checks, failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("mm_rest: FAIL line %d: %s\n", __LINE__, #cond);    \
        }                                                                 \
    } while (0)

static PHYSICAL_ADDRESS Phys(LONGLONG v)
{
    PHYSICAL_ADDRESS p;
    p.QuadPart = v;
    return p;
}

static VOID NodeMemory(VOID)
{
    PUCHAR p, q;
    PHYSICAL_ADDRESS pa;
    p = (PUCHAR)MmAllocateContiguousNodeMemory(3 * PAGE_SIZE, Phys(0), Phys(-1), Phys(0), PAGE_READWRITE, 0);
    CHECK(p != NULL);
    if (p) {
        pa = MmGetPhysicalAddress(p);
        CHECK(MmGetPhysicalAddress(p + 2 * PAGE_SIZE).QuadPart == pa.QuadPart + 2 * PAGE_SIZE);
        p[3 * PAGE_SIZE - 1] = 7;
        /* Physical back to the system address, offset included. */
        CHECK(MmGetVirtualForPhysical(Phys(pa.QuadPart + PAGE_SIZE + 5)) == p + PAGE_SIZE + 5);
        MmFreeContiguousMemory(p);
        CHECK(MmGetVirtualForPhysical(pa) == NULL);
    }
    q = (PUCHAR)MmAllocateContiguousNodeMemory(PAGE_SIZE, Phys(0), Phys(0xFFFFFF), Phys(0),
                                                PAGE_EXECUTE_READWRITE | PAGE_NOCACHE, MM_ANY_NODE_OK);
    CHECK(q != NULL && MmGetPhysicalAddress(q).QuadPart < 0x1000000);
    if (q)
        MmFreeContiguousMemory(q);
    CHECK(MmAllocateContiguousNodeMemory(PAGE_SIZE, Phys(0), Phys(-1), Phys(0), PAGE_READONLY, 0) == NULL);
    CHECK(MmAllocateContiguousNodeMemory(PAGE_SIZE, Phys(0), Phys(-1), Phys(0),
                                         PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE, 0) == NULL);
    CHECK(MmAllocateContiguousNodeMemory(PAGE_SIZE, Phys(0), Phys(-1), Phys(0), PAGE_READWRITE, 1) == NULL);
    CHECK(MmAllocateContiguousNodeMemory(0, Phys(0), Phys(-1), Phys(0), PAGE_READWRITE, 0) == NULL);
}

static VOID VirtualForPhysical(VOID)
{
    PUCHAR pool = (PUCHAR)ExAllocatePoolWithTag(NonPagedPoolNx, 64, 'tseR');
    CHECK(pool != NULL);
    if (pool) {
        CHECK(MmGetVirtualForPhysical(MmGetPhysicalAddress(pool + 10)) == pool + 10);
        ExFreePoolWithTag(pool, 'tseR');
    }
}

static VOID Pool3(VOID)
{
    POOL_EXTENDED_PARAMETER params[2];
    PUCHAR p;
    ULONG i, zero = 1;
    BOOLEAN raised = FALSE;

    p = (PUCHAR)ExAllocatePool3(POOL_FLAG_NON_PAGED, 100, 'tseR', NULL, 0);
    CHECK(p != NULL);
    for (i = 0; p && i < 100; i++)
        zero &= p[i] == 0;
    CHECK(zero);
    if (p)
        ExFreePoolWithTag(p, 'tseR');

    RtlZeroMemory(params, sizeof(params));
    params[0].Type = PoolExtendedParameterPriority;
    params[0].Priority = LowPoolPriority;
    params[1].Type = PoolExtendedParameterNumaNode;
    params[1].PreferredNode = 0;
    p = (PUCHAR)ExAllocatePool3(POOL_FLAG_PAGED, 32, 'tseR', params, 2);
    CHECK(p != NULL);
    if (p)
        ExFreePoolWithTag(p, 'tseR');

    params[0].Priority = (EX_POOL_PRIORITY)7; /* no such priority */
    CHECK(ExAllocatePool3(POOL_FLAG_NON_PAGED, 32, 'tseR', params, 1) == NULL);
    params[1].PreferredNode = 1; /* no such node */
    CHECK(ExAllocatePool3(POOL_FLAG_NON_PAGED, 32, 'tseR', &params[1], 1) == NULL);
    params[0].Type = PoolExtendedParameterSecurePool;
    params[0].SecurePoolParams = NULL;
    CHECK(ExAllocatePool3(POOL_FLAG_NON_PAGED, 32, 'tseR', params, 1) == NULL);
    params[0].Optional = 1; /* the caller can do without it */
    p = (PUCHAR)ExAllocatePool3(POOL_FLAG_NON_PAGED, 32, 'tseR', params, 1);
    CHECK(p != NULL);
    if (p)
        ExFreePoolWithTag(p, 'tseR');
    params[0].Type = PoolExtendedParameterInvalidType;
    params[0].Optional = 0;
    CHECK(ExAllocatePool3(POOL_FLAG_NON_PAGED, 32, 'tseR', params, 1) == NULL);
    __try {
        ExAllocatePool3(POOL_FLAG_NON_PAGED | POOL_FLAG_RAISE_ON_FAILURE, 32, 'tseR', params, 1);
    } __except (GetExceptionCode() == STATUS_INSUFFICIENT_RESOURCES ? EXCEPTION_EXECUTE_HANDLER
                                                                     : EXCEPTION_CONTINUE_SEARCH) {
        raised = TRUE;
    }
    CHECK(raised);
}

static VOID ProtectMdl(VOID)
{
    PUCHAR pool = (PUCHAR)ExAllocatePoolWithTag(NonPagedPoolNx, PAGE_SIZE, 'tseR');
    PMDL mdl;
    PUCHAR va;
    if (pool) {
        mdl = IoAllocateMdl(pool, PAGE_SIZE, FALSE, FALSE, NULL);
        CHECK(mdl != NULL);
        if (mdl) {
            MmBuildMdlForNonPagedPool(mdl);
            CHECK(MmProtectMdlSystemAddress(mdl, PAGE_READONLY) == STATUS_NOT_MAPPED_VIEW);
            IoFreeMdl(mdl);
        }
        ExFreePoolWithTag(pool, 'tseR');
    }
    mdl = MmAllocatePagesForMdl(Phys(0), Phys(-1), Phys(0), 2 * PAGE_SIZE);
    CHECK(mdl != NULL);
    if (mdl == NULL)
        return;
    CHECK(MmProtectMdlSystemAddress(mdl, PAGE_READONLY) == STATUS_NOT_MAPPED_VIEW);
    va = (PUCHAR)MmMapLockedPagesSpecifyCache(mdl, KernelMode, MmCached, NULL, FALSE, NormalPagePriority);
    CHECK(va != NULL);
    if (va) {
        va[PAGE_SIZE + 1] = 0x42;
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_WRITECOPY) == STATUS_INVALID_PAGE_PROTECTION);
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_READWRITE | PAGE_NOCACHE) == STATUS_INVALID_PAGE_PROTECTION);
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_READONLY) == STATUS_SUCCESS);
        CHECK(va[PAGE_SIZE + 1] == 0x42 && MmIsAddressValid(va));
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_EXECUTE_READWRITE) == STATUS_SUCCESS);
        va[PAGE_SIZE + 2] = 0x43;
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_NOACCESS) == STATUS_SUCCESS);
        CHECK(MmProtectMdlSystemAddress(mdl, PAGE_READWRITE) == STATUS_SUCCESS);
        CHECK(va[PAGE_SIZE + 2] == 0x43);
        MmUnmapLockedPages(va, mdl);
    }
    MmFreePagesFromMdl(mdl);
    ExFreePool(mdl);
}

static VOID SecureOutsideAProcess(VOID)
{
    PUCHAR pool = (PUCHAR)ExAllocatePoolWithTag(NonPagedPoolNx, 64, 'tseR');
    CHECK(MmSecureVirtualMemory(pool, 64, PAGE_READWRITE) == NULL);
    CHECK(MmSecureVirtualMemory((PVOID)(ULONG_PTR)0x10000, 64, PAGE_READONLY) == NULL);
    if (pool)
        ExFreePoolWithTag(pool, 'tseR');
}

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION s = IoGetCurrentIrpStackLocation(Irp);
    ULONG length = s->Parameters.DeviceIoControl.OutputBufferLength;
    HANDLE h;
    UNREFERENCED_PARAMETER(DeviceObject);
    checks = failures = 0;
    if (s->Parameters.DeviceIoControl.IoControlCode == IOCTL_SECURE) {
        h = MmSecureVirtualMemory(Irp->UserBuffer, length, PAGE_READWRITE);
        CHECK(h != NULL);
        CHECK(MmSecureVirtualMemory(Irp->UserBuffer, length, 0x40) == NULL);
        CHECK(MmSecureVirtualMemory(Irp->UserBuffer, 0, PAGE_READONLY) == NULL);
        CHECK(MmSecureVirtualMemory((PUCHAR)MmHighestUserAddress - 8, 64, PAGE_READONLY) == NULL);
        if (h) {
            __try {
                ((PUCHAR)Irp->UserBuffer)[0] = 0x5E;
            } __except (EXCEPTION_EXECUTE_HANDLER) {
                CHECK(FALSE);
            }
            MmUnsecureVirtualMemory(h);
        }
        DbgPrint("mm_rest: secure %lu checks, %lu failed\n", checks, failures);
    }
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = length;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
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
    DbgPrint("mm_rest: size %d as %d\n", (int)MmQuerySystemSize(), (int)MmIsThisAnNtAsSystem());
    NodeMemory();
    VirtualForPhysical();
    Pool3();
    ProtectMdl();
    SecureOutsideAProcess();
    DbgPrint("mm_rest: %lu checks, %lu failed\n", checks, failures);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
