/*
 * dma_1g: seed 001 (Jungo TechDoc #58) in driver form. A 32-bit scatter/gather bus
 * master asks AllocateCommonBuffer for a 1 GB buffer; on a machine without that much
 * physically contiguous memory below 4 GB the routine returns NULL and ntmem's
 * report says why (the largest free run there). A smaller buffer succeeds, as the
 * TechDoc advises ("try decreasing the size of the buffer").
 */
#include <ntddk.h>

typedef struct _EXT {
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT Lower;
} EXT, *PEXT;

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PEXT ext = (PEXT)DeviceObject->DeviceExtension;
    UCHAR minor = stack->MinorFunction; /* the IRP is gone once completed */

    Irp->IoStatus.Status = STATUS_SUCCESS;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    if (minor == IRP_MN_REMOVE_DEVICE) {
        IoDetachDevice(ext->Lower);
        IoDeleteDevice(ext->Self);
    }
    return STATUS_SUCCESS;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    PDEVICE_OBJECT fdo;
    PEXT ext;
    DEVICE_DESCRIPTION desc;
    PDMA_ADAPTER adapter;
    PHYSICAL_ADDRESS logical;
    PVOID big, small;
    ULONG n = 0;
    NTSTATUS status = IoCreateDevice(DriverObject, sizeof(EXT), NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &fdo);

    if (!NT_SUCCESS(status))
        return status;
    ext = (PEXT)fdo->DeviceExtension;
    ext->Self = fdo;
    ext->Lower = IoAttachDeviceToDeviceStack(fdo, Pdo);
    RtlZeroMemory(&desc, sizeof(desc));
    desc.Version = DEVICE_DESCRIPTION_VERSION2;
    desc.Master = TRUE;
    desc.ScatterGather = TRUE;
    desc.Dma32BitAddresses = TRUE;
    desc.InterfaceType = PCIBus;
    desc.MaximumLength = 0x10000;
    adapter = IoGetDmaAdapter(Pdo, &desc, &n);
    if (adapter != NULL) {
        big = adapter->DmaOperations->AllocateCommonBuffer(adapter, 0x40000000, &logical, FALSE);
        DbgPrint("dma_1g: 1 GB common buffer is NULL %d\n", big == NULL);
        small = adapter->DmaOperations->AllocateCommonBuffer(adapter, 0x10000, &logical, FALSE);
        DbgPrint("dma_1g: 64 KB common buffer is NULL %d\n", small == NULL);
        if (small != NULL)
            adapter->DmaOperations->FreeCommonBuffer(adapter, 0x10000, logical, small, FALSE);
        if (big != NULL)
            adapter->DmaOperations->FreeCommonBuffer(adapter, 0x40000000, logical, big, FALSE);
        adapter->DmaOperations->PutDmaAdapter(adapter);
    }
    fdo->Flags &= ~DO_DEVICE_INITIALIZING;
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
