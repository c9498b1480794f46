/*
 * dma_leak: releases its DMA adapter with a common buffer still allocated (issue
 * 13). Without Driver Verifier the buffer is simply lost; with DMA checking
 * (`--verifier dma`) PutDmaAdapter stops the machine with 0xE6, subcode 0x07
 * (adapter, common buffers outstanding).
 */
#include <ntddk.h>

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    DEVICE_DESCRIPTION desc;
    PDMA_ADAPTER adapter;
    PHYSICAL_ADDRESS logical;
    ULONG n;

    UNREFERENCED_PARAMETER(DriverObject);
    RtlZeroMemory(&desc, sizeof(desc));
    desc.Version = DEVICE_DESCRIPTION_VERSION2;
    desc.Master = TRUE;
    desc.ScatterGather = TRUE;
    desc.Dma32BitAddresses = TRUE;
    desc.InterfaceType = PCIBus;
    desc.MaximumLength = 0x10000;
    adapter = IoGetDmaAdapter(Pdo, &desc, &n);
    if (adapter == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    DbgPrint("dma_leak: common buffer %d\n",
             adapter->DmaOperations->AllocateCommonBuffer(adapter, PAGE_SIZE, &logical, FALSE) != NULL);
    adapter->DmaOperations->PutDmaAdapter(adapter);
    DbgPrint("dma_leak: adapter released\n");
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
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
