/* Frees IRPs the wrong way, as RULE (a -D of the build) says: 1 frees an IRP from
 * IoAllocateIrp with ExFreePool; 2 hands IoFreeIrp pool that is no IRP. */
#include <ntddk.h>

#ifndef RULE
#define RULE 1
#endif

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
#if RULE == 1
    PIRP irp = IoAllocateIrp(2, FALSE);
    if (irp == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    ExFreePool(irp);
#else
    PVOID block = ExAllocatePoolWithTag(NonPagedPoolNx, 0x100, 'trIN');
    if (block == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    RtlZeroMemory(block, 0x100);
    IoFreeIrp((PIRP)block);
#endif
    DbgPrint("irp_misuse: nothing stopped the machine\n");
    return STATUS_SUCCESS;
}
