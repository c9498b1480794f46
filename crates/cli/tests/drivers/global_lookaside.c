/*
 * The most common WDK pattern: a lookaside list in a global, initialised in
 * DriverEntry and deleted in DriverUnload. The image lives in system space, so the
 * global is system memory: at or above MmSystemRangeStart, valid, with a physical
 * address whose page offset is its own.
 */
#include <ntddk.h>

static NPAGED_LOOKASIDE_LIST Lookaside;
static ULONG Counter = 7;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExDeleteNPagedLookasideList(&Lookaside);
    DbgPrint("global_lookaside: deleted\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PHYSICAL_ADDRESS pa;
    PVOID blocks[4];
    int i;

    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeNPagedLookasideList(&Lookaside, NULL, NULL, 0, 200, 'bolG', 0);
    for (i = 0; i < 4; i++) {
        blocks[i] = ExAllocateFromNPagedLookasideList(&Lookaside);
        if (blocks[i] == NULL)
            return STATUS_INSUFFICIENT_RESOURCES;
    }
    for (i = 0; i < 4; i++)
        ExFreeToNPagedLookasideList(&Lookaside, blocks[i]);
    pa = MmGetPhysicalAddress(&Counter);
    DbgPrint("global_lookaside: global in system space %d, valid %d, physical offset matches %d, value %lu\n",
             (PVOID)&Counter >= MmSystemRangeStart, MmIsAddressValid(&Counter),
             pa.QuadPart != 0 && (pa.LowPart & (PAGE_SIZE - 1)) == ((ULONG_PTR)&Counter & (PAGE_SIZE - 1)), Counter);
    DbgPrint("global_lookaside: %lu processors, build %lu\n", (ULONG)KeNumberProcessors, NtBuildNumber & 0xFFFF);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
