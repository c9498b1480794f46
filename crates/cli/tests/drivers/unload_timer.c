/* Leaves a timer (and its DPC) queued in its own image when it unloads: when the
 * timer comes due the kernel touches the KTIMER in the unloaded image. */
#include <ntddk.h>
static KTIMER Timer;
static KDPC Dpc;
static VOID Tick(PKDPC Dpc_, PVOID C, PVOID A1, PVOID A2)
{
    UNREFERENCED_PARAMETER(Dpc_); UNREFERENCED_PARAMETER(C); UNREFERENCED_PARAMETER(A1); UNREFERENCED_PARAMETER(A2);
    DbgPrint("tick\n");
}
static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject); /* the bug: no KeCancelTimer */
}
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LARGE_INTEGER due;
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeTimer(&Timer);
    KeInitializeDpc(&Dpc, Tick, NULL);
    due.QuadPart = -50 * 10000;
    KeSetTimer(&Timer, due, &Dpc);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
