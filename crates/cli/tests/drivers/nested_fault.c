/* A write through NULL two calls deep: the report names each frame and its line. */
#include <ntddk.h>

__declspec(noinline) static void Inner(volatile PULONG p)
{
    *p = 7;
}

__declspec(noinline) static void Outer(volatile PULONG p)
{
    Inner(p);
    DbgPrint("nested_fault: not reached\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    Outer((PULONG)(ULONG_PTR)0x10);
    return STATUS_SUCCESS;
}
