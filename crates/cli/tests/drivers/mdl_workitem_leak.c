/* Allocates an MDL (IoAllocateMdl) and a work item (IoAllocateWorkItem) for its
 * device in DriverEntry and frees neither at unload: under pool tracking, a leak of
 * two allocations, charged to this driver under Verifier's tags "VMdl" and "Vfwi". */
#include <ntddk.h>

static UCHAR Buffer[64];
static PDEVICE_OBJECT Device;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status;
    PMDL mdl;
    PIO_WORKITEM item;

    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    mdl = IoAllocateMdl(Buffer, sizeof(Buffer), FALSE, FALSE, NULL);
    item = IoAllocateWorkItem(Device);
    DbgPrint("mdl_workitem_leak: MDL %s, work item %s\n", mdl ? "allocated" : "failed",
             item ? "allocated" : "failed");
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
