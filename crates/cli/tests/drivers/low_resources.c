/* Checks every allocation, as a driver must (seed 000 section 12: "Failure to check
 * the status after attempting to allocate"), and says how many failed: 20 pool
 * allocations from one call site, 20 from another, and an MDL. Driver Verifier's
 * low resources simulation decides how many fail. */
#include <ntddk.h>

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

static ULONG AllocateMany(POOL_TYPE Type, ULONG Tag)
{
    ULONG failed = 0;
    for (int i = 0; i < 20; i++) {
        PVOID p = ExAllocatePoolWithTag(Type, 64, Tag);
        if (p == NULL) {
            failed++;
            continue;
        }
        ExFreePoolWithTag(p, Tag);
    }
    return failed;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    ULONG a = AllocateMany(NonPagedPoolNx, 'AseL');
    ULONG b = AllocateMany(PagedPool, 'BseL');
    PMDL mdl = IoAllocateMdl(&a, sizeof(a), FALSE, FALSE, NULL);
    DbgPrint("low_resources: site A failed %lu of 20, site B failed %lu of 20, MDL %s\n", a, b,
             mdl == NULL ? "failed" : "allocated");
    if (mdl != NULL) {
        IoFreeMdl(mdl);
    }
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
