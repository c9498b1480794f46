/*
 * ntmem: the version of the running system (RtlGetVersion,
 * RtlIsNtDdiVersionAvailable; wdm.h), answering the simulated machine's edition.
 * Included by wdm.h; declares only what ntmem implements.
 */
#ifndef NTMEM_VERSION_H
#define NTMEM_VERSION_H

typedef struct _OSVERSIONINFOW {
    ULONG dwOSVersionInfoSize;
    ULONG dwMajorVersion;
    ULONG dwMinorVersion;
    ULONG dwBuildNumber;
    ULONG dwPlatformId;
    WCHAR szCSDVersion[128];
} OSVERSIONINFOW, *POSVERSIONINFOW, *LPOSVERSIONINFOW, RTL_OSVERSIONINFOW, *PRTL_OSVERSIONINFOW;

typedef struct _OSVERSIONINFOEXW {
    ULONG dwOSVersionInfoSize;
    ULONG dwMajorVersion;
    ULONG dwMinorVersion;
    ULONG dwBuildNumber;
    ULONG dwPlatformId;
    WCHAR szCSDVersion[128];
    USHORT wServicePackMajor;
    USHORT wServicePackMinor;
    USHORT wSuiteMask;
    UCHAR wProductType;
    UCHAR wReserved;
} OSVERSIONINFOEXW, *POSVERSIONINFOEXW, *LPOSVERSIONINFOEXW, RTL_OSVERSIONINFOEXW, *PRTL_OSVERSIONINFOEXW;
_Static_assert(sizeof(RTL_OSVERSIONINFOW) == 0x114, "RTL_OSVERSIONINFOW is 0x114 bytes");
_Static_assert(sizeof(RTL_OSVERSIONINFOEXW) == 0x11C, "RTL_OSVERSIONINFOEXW is 0x11C bytes");

#define VER_PLATFORM_WIN32_NT 2
#define VER_NT_WORKSTATION 0x0000001
#define VER_NT_DOMAIN_CONTROLLER 0x0000002
#define VER_NT_SERVER 0x0000003
#define VER_SUITE_SMALLBUSINESS 0x00000001
#define VER_SUITE_ENTERPRISE 0x00000002
#define VER_SUITE_DATACENTER 0x00000080
#define VER_SUITE_PERSONAL 0x00000200
#define VER_SUITE_BLADE 0x00000400

/* PASSIVE_LEVEL. Fills an RTL_OSVERSIONINFOEXW when dwOSVersionInfoSize is its
 * size, else the RTL_OSVERSIONINFOW part; STATUS_SUCCESS. */
NTSYSAPI NTSTATUS RtlGetVersion(PRTL_OSVERSIONINFOW lpVersionInformation);
/* TRUE when the running release is Version (an NTDDI_* value) or later. */
NTSYSAPI BOOLEAN RtlIsNtDdiVersionAvailable(ULONG Version);

#endif /* NTMEM_VERSION_H */
