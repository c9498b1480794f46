/* Code in INIT is freed once DriverEntry returns: calling it later (here from
 * DriverUnload) is PAGE_FAULT_IN_NONPAGED_AREA at that address. */
#include <ntddk.h>

DRIVER_INITIALIZE DriverEntry;
static ULONG InitOnly(VOID);
#pragma alloc_text(INIT, DriverEntry)
#pragma alloc_text(INIT, InitOnly)

static ULONG (*volatile Later)(VOID);

__declspec(noinline) static ULONG InitOnly(VOID)
{
    return 42;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("init_discarded: calling INIT code after DriverEntry\n");
    Later();
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    Later = InitOnly;
    DbgPrint("init_discarded: INIT code answers %lu during DriverEntry\n", Later());
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
