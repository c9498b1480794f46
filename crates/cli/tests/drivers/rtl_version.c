/* Prints what RtlGetVersion and RtlIsNtDdiVersionAvailable answer: the machine's
 * edition. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    RTL_OSVERSIONINFOEXW v;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    RtlZeroMemory(&v, sizeof(v));
    v.dwOSVersionInfoSize = sizeof(v);
    RtlGetVersion((PRTL_OSVERSIONINFOW)&v);
    DbgPrint("rtl: version %lu.%lu.%lu sp %u '%ws' product %u suite %#x vista %u\n", v.dwMajorVersion,
             v.dwMinorVersion, v.dwBuildNumber, v.wServicePackMajor, v.szCSDVersion, v.wProductType, v.wSuiteMask,
             RtlIsNtDdiVersionAvailable(NTDDI_VISTA));
    return STATUS_SUCCESS;
}
