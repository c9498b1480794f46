/* Prints what RtlGetVersion, RtlIsNtDdiVersionAvailable and PsGetVersion answer: the
 * machine's edition. */
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
    {
        ULONG major = 0, minor = 0, build = 0;
        WCHAR small[4], large[32];
        UNICODE_STRING csd = {0, sizeof(small), small}, csd_large = {0, sizeof(large), large};
        BOOLEAN checked = PsGetVersion(&major, &minor, &build, &csd);
        PsGetVersion(NULL, NULL, NULL, &csd_large);
        DbgPrint("ps: version %lu.%lu.%lu checked %u csd '%wZ' (%u bytes) '%wZ'\n", major, minor, build, checked,
                 &csd, csd.Length, &csd_large);
    }
    return STATUS_SUCCESS;
}
