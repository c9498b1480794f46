/* Code in a PAGE section is pageable: fine at PASSIVE_LEVEL, but once trimmed
 * (Driver Verifier's force IRQL checking trims on every raise) running it at
 * DISPATCH_LEVEL is DRIVER_IRQL_NOT_LESS_OR_EQUAL at its address. */
#include <ntddk.h>

static ULONG PagedWork(VOID);
#pragma alloc_text(PAGE, PagedWork)

static volatile ULONG Calls;

__declspec(noinline) static ULONG PagedWork(VOID)
{
    return ++Calls;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("page_at_dispatch: at PASSIVE_LEVEL %lu\n", PagedWork());
    KeRaiseIrql(DISPATCH_LEVEL, &old);
    DbgPrint("page_at_dispatch: at DISPATCH_LEVEL %lu\n", PagedWork());
    KeLowerIrql(old);
    return STATUS_SUCCESS;
}
