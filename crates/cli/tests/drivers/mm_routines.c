/* The memory routines at the C boundary (issue 11 item 5): MDLs that own their pages,
 * partial MDLs, MmAdvanceMdl, MmSizeOfMdl, MmInitializeMdl, MmMapLockedPages, the
 * kernel stack's limits, and the small queries. Each CHECK prints the line of a
 * failed check; the last line counts them. */
#include <ntddk.h>

static ULONG checks, failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("mm: FAIL line %d: %s\n", __LINE__, #cond);         \
        }                                                                 \
    } while (0)

static PHYSICAL_ADDRESS Phys(LONGLONG v)
{
    PHYSICAL_ADDRESS p;
    p.QuadPart = v;
    return p;
}

static VOID PagesForMdl(VOID)
{
    PMDL mdl;
    PUCHAR va;
    ULONG i, zero = 1;
    mdl = MmAllocatePagesForMdlEx(Phys(0), Phys(-1), Phys(0), 5 * PAGE_SIZE, MmCached, 0);
    CHECK(mdl != NULL);
    if (mdl == NULL)
        return;
    CHECK(MmGetMdlByteCount(mdl) == 5 * PAGE_SIZE && MmGetMdlByteOffset(mdl) == 0);
    CHECK((mdl->MdlFlags & MDL_PAGES_LOCKED) && !(mdl->MdlFlags & MDL_MAPPED_TO_SYSTEM_VA));
    va = (PUCHAR)MmMapLockedPages(mdl, KernelMode);
    CHECK(va != NULL && (mdl->MdlFlags & MDL_MAPPED_TO_SYSTEM_VA));
    for (i = 0; va && i < 5 * PAGE_SIZE; i++)
        zero &= va[i] == 0;
    CHECK(zero);
    if (va) {
        va[4 * PAGE_SIZE + 7] = 0x5A;
        CHECK(MmGetPhysicalAddress(va + PAGE_SIZE).QuadPart == (LONGLONG)MmGetMdlPfnArray(mdl)[1] * PAGE_SIZE);
        MmUnmapLockedPages(va, mdl);
    }
    MmFreePagesFromMdl(mdl);
    CHECK(!(mdl->MdlFlags & MDL_PAGES_LOCKED) && MmGetMdlPfnArray(mdl)[0] == (PFN_NUMBER)-1);
    ExFreePool(mdl);

    /* Below 16 MB there are not 64 MB: fewer pages, or NULL when all are required. */
    mdl = MmAllocatePagesForMdl(Phys(0), Phys(0xFFFFFF), Phys(0), 64 << 20);
    CHECK(mdl != NULL && MmGetMdlByteCount(mdl) > 0 && MmGetMdlByteCount(mdl) < (64 << 20));
    if (mdl) {
        ULONG pages = MmGetMdlByteCount(mdl) / PAGE_SIZE;
        CHECK(MmGetMdlPfnArray(mdl)[pages] == (PFN_NUMBER)-1 && MmGetMdlPfnArray(mdl)[0] < 0x1000);
        MmFreePagesFromMdl(mdl);
        ExFreePool(mdl);
    }
    CHECK(MmAllocatePagesForMdlEx(Phys(0), Phys(0xFFFFFF), Phys(0), 64 << 20, MmCached,
                                  MM_ALLOCATE_FULLY_REQUIRED) == NULL);
    CHECK(MmAllocatePagesForMdlEx(Phys(0), Phys(-1), Phys(0), PAGE_SIZE, MmCached, 0x100) == NULL);
    CHECK(MmAllocatePagesForMdlEx(Phys(0), Phys(-1), Phys(100), PAGE_SIZE, MmCached, 0) == NULL);
    mdl = MmAllocatePagesForMdlEx(Phys(0), Phys(-1), Phys(0), 2 * PAGE_SIZE, MmCached, MM_DONT_ZERO_ALLOCATION);
    CHECK(mdl != NULL);
    if (mdl) {
        MmFreePagesFromMdl(mdl);
        ExFreePool(mdl);
    }
}

static VOID Partial(VOID)
{
    PUCHAR buffer = (PUCHAR)ExAllocatePoolWithTag(NonPagedPool, 3 * PAGE_SIZE, 'tsmM');
    PMDL source, target;
    PMDL local = (PMDL)ExAllocatePoolWithTag(NonPagedPool, sizeof(MDL) + 4 * sizeof(PFN_NUMBER), 'tsmM');
    CHECK(buffer != NULL && local != NULL);
    if (buffer == NULL || local == NULL)
        return;
    source = IoAllocateMdl(buffer, 3 * PAGE_SIZE, FALSE, FALSE, NULL);
    target = IoAllocateMdl(buffer + PAGE_SIZE + 16, 100, FALSE, FALSE, NULL);
    CHECK(source != NULL && target != NULL);
    MmBuildMdlForNonPagedPool(source);
    IoBuildPartialMdl(source, target, buffer + PAGE_SIZE + 16, 100);
    CHECK((target->MdlFlags & MDL_PARTIAL) && MmGetMdlByteCount(target) == 100);
    CHECK(MmGetMdlByteOffset(target) == ((ULONG_PTR)(buffer + 16) & (PAGE_SIZE - 1)));
    CHECK(MmGetMdlPfnArray(target)[0] == MmGetMdlPfnArray(source)[1]);
    MmPrepareMdlForReuse(target);
    IoBuildPartialMdl(source, target, buffer + 2 * PAGE_SIZE, 0);
    CHECK(MmGetMdlByteCount(target) == PAGE_SIZE); /* Length 0: to the source's end */
    CHECK(MmAdvanceMdl(source, 16) == STATUS_SUCCESS && MmGetMdlByteCount(source) == 3 * PAGE_SIZE - 16);
    CHECK(MmAdvanceMdl(source, 4 * PAGE_SIZE) == STATUS_INVALID_PARAMETER_2);
    CHECK(MmSizeOfMdl((PVOID)(ULONG_PTR)0x10, 2 * PAGE_SIZE) == sizeof(MDL) + 3 * sizeof(PFN_NUMBER));
    CHECK(MmSizeOfMdl((PVOID)(ULONG_PTR)0x1000, PAGE_SIZE) == sizeof(MDL) + sizeof(PFN_NUMBER));
    MmInitializeMdl(local, buffer + 8, 2 * PAGE_SIZE);
    CHECK(local->Next == NULL && local->MdlFlags == 0 && local->ByteCount == 2 * PAGE_SIZE);
    CHECK(local->ByteOffset == ((ULONG_PTR)(buffer + 8) & (PAGE_SIZE - 1)));
    CHECK(local->Size == (CSHORT)MmSizeOfMdl(buffer + 8, 2 * PAGE_SIZE));
    IoFreeMdl(target);
    IoFreeMdl(source);
    CHECK(MmIsNonPagedSystemAddressValid(buffer) == TRUE);
    {
        PVOID paged = ExAllocatePoolWithTag(PagedPool, 64, 'tsmM');
        CHECK(paged != NULL && MmIsNonPagedSystemAddressValid(paged) == FALSE);
        ExFreePoolWithTag(paged, 'tsmM');
    }
    ExFreePoolWithTag(local, 'tsmM');
    ExFreePoolWithTag(buffer, 'tsmM');
}

static VOID Queries(VOID)
{
    ULONG_PTR low = 0, high = 0, remaining;
    UNICODE_STRING name;
    IoGetStackLimits(&low, &high);
    remaining = IoGetRemainingStackSize();
    CHECK(low < (ULONG_PTR)&low && (ULONG_PTR)&low < high && high - low == 24 * 1024);
    CHECK(remaining > 0 && remaining < high - low && remaining <= (ULONG_PTR)&low - low + 256);
    CHECK(KeGetRecommendedSharedDataAlignment() == 64);
    CHECK(MmIsThisAnNtAsSystem() == TRUE);
    RtlInitUnicodeString(&name, L"ExAllocatePoolWithTag");
    CHECK(MmGetSystemRoutineAddress(&name) == (PVOID)ExAllocatePoolWithTag);
    RtlInitUnicodeString(&name, L"NoSuchRoutine");
    CHECK(MmGetSystemRoutineAddress(&name) == NULL);
    RtlInitUnicodeString(&name, L"MmSystemRangeStart");
    CHECK(MmGetSystemRoutineAddress(&name) == NULL);
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverUnload = Unload;
    PagesForMdl();
    Partial();
    Queries();
    DbgPrint("mm: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}
