/* A bitmap routine given a NULL header: the access violation a driver's own touch
 * of it gives, not a host crash. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("rtl: set bits %lu\n", RtlNumberOfSetBits((PRTL_BITMAP)NULL));
    return STATUS_SUCCESS;
}
