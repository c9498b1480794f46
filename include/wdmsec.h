/*
 * wdmsec.h -- IoCreateDeviceSecure and the SDDL strings of the WDK's wdmsec.h
 * (written for ntmem from Microsoft's documentation: "IoCreateDeviceSecure
 * function", "SDDL for Device Objects").
 *
 * In the WDK, IoCreateDeviceSecure lives in wdmsec.lib, a static library linked
 * into the driver, not in ntoskrnl.exe; here it is an inline function over
 * IoCreateDevice in the same way. Where ntmem differs: the security descriptor
 * (DefaultSDDLString) and the class GUID are accepted and not applied — ntmem has
 * no security model — and an SDDL string is not parsed (Windows fails a malformed
 * one with STATUS_INVALID_PARAMETER).
 */
#ifndef _WDMSEC_H_
#define _WDMSEC_H_

#include "wdm.h"

#define SDDL_DEVOBJ_KERNEL_ONLY L"D:P"
#define SDDL_DEVOBJ_SYS_ALL L"D:P(A;;GA;;;SY)"
#define SDDL_DEVOBJ_SYS_ALL_ADM_ALL L"D:P(A;;GA;;;SY)(A;;GA;;;BA)"
#define SDDL_DEVOBJ_SYS_ALL_ADM_RX L"D:P(A;;GA;;;SY)(A;;GRGX;;;BA)"
#define SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_R L"D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GR;;;WD)"
#define SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RW_RES_R \
    L"D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GRGW;;;WD)(A;;GR;;;RC)"
#define SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RWX_RES_RWX \
    L"D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GRGWGX;;;WD)(A;;GRGWGX;;;RC)"

static __inline NTSTATUS IoCreateDeviceSecure(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize,
                                              PUNICODE_STRING DeviceName, DEVICE_TYPE DeviceType,
                                              ULONG DeviceCharacteristics, BOOLEAN Exclusive,
                                              PCUNICODE_STRING DefaultSDDLString, LPCGUID DeviceClassGuid,
                                              PDEVICE_OBJECT *DeviceObject)
{
    (void)DefaultSDDLString;
    (void)DeviceClassGuid;
    return IoCreateDevice(DriverObject, DeviceExtensionSize, DeviceName, DeviceType, DeviceCharacteristics,
                          Exclusive, DeviceObject);
}

#endif /* _WDMSEC_H_ */
