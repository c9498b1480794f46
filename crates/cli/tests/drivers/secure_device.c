/* The headers drivers include beside ntddk.h: devioctl.h, initguid.h (a GUID
 * defined here), wdmsec.h (IoCreateDeviceSecure over IoCreateDevice), dontuse.h. */
#include <ntddk.h>
#include <devioctl.h>
#include <dontuse.h>
#include <initguid.h>
#include <wdmsec.h>

DEFINE_GUID(GUID_DEVCLASS_NTMEM_TEST, 0x8d3b4e2a, 0x1c7f, 0x4a55, 0x9e, 0x21, 0x3b, 0x6c, 0x77, 0x10, 0x2f, 0x90);

#define IOCTL_NTMEM_TEST CTL_CODE(FILE_DEVICE_UNKNOWN, 0x801, METHOD_OUT_DIRECT, FILE_READ_ACCESS)

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\Device\\NtmemSecure");
    UNICODE_STRING sddl = RTL_CONSTANT_STRING(SDDL_DEVOBJ_SYS_ALL_ADM_ALL);
    GUID copy = GUID_DEVCLASS_NTMEM_TEST;
    PDEVICE_OBJECT device = NULL;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDeviceSecure(DriverObject, 0, &name, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &sddl,
                                  &GUID_DEVCLASS_NTMEM_TEST, &device);
    DbgPrint("secure_device: %08x %d %08x %d\n", status, device != NULL, (ULONG)IOCTL_NTMEM_TEST,
             IsEqualGUID(&copy, &GUID_DEVCLASS_NTMEM_TEST));
    if (NT_SUCCESS(status)) {
        IoDeleteDevice(device);
    }
    return status;
}
