/* Device objects are reference-counted, as RULE (a -D of the build) says:
 *   0 takes a reference, deletes the device, reads it (still there), drops the reference
 *   1 keeps the reference IoGetAttachedDeviceReference took (the device outlives the driver)
 *   2 drops one reference too many */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device, top;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 16, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    top = IoGetAttachedDeviceReference(device);
    DbgPrint("device_refs: top of the stack is the device: %d\n", top == device);
    IoDeleteDevice(device);
    DbgPrint("device_refs: deleted; Type still reads %d, DriverObject->DeviceObject %p\n", (int)top->Type,
             DriverObject->DeviceObject);
#if RULE == 0
    ObDereferenceObject(top);
#elif RULE == 2
    ObDereferenceObject(top);
    ObDereferenceObject(top);
#endif
    return STATUS_SUCCESS;
}
