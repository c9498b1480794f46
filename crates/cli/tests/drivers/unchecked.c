/* One allocation checked, one not: the second writes through whatever
 * ExAllocatePoolWithTag returned (seed 000 section 12's "Failure to check the status
 * after attempting to allocate"). */
#include <ntddk.h>

typedef struct _CONTEXT_BLOCK {
    ULONG Count;
    ULONG Flags;
} CONTEXT_BLOCK;

static CONTEXT_BLOCK *Checked;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExFreePoolWithTag(Checked, 'kchC');
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    CONTEXT_BLOCK *scratch;

    UNREFERENCED_PARAMETER(RegistryPath);
    Checked = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(CONTEXT_BLOCK), 'kchC');
    if (Checked == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    Checked->Count = 0;
    scratch = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(CONTEXT_BLOCK), 'rcsU');
    scratch->Count = 1;
    scratch->Flags = 2;
    Checked->Flags = scratch->Flags;
    ExFreePoolWithTag(scratch, 'rcsU');
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
