/*
 * Writes one byte past a 64-byte block, inside __try. Under Driver Verifier's special
 * pool the block ends at a never-mapped guard page: the write faults at once,
 * DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION (0xD6), which no handler may catch.
 */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    volatile UCHAR *p;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    p = (volatile UCHAR *)ExAllocatePoolWithTag(NonPagedPoolNx, 64, 'nrvO');
    if (p == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    DbgPrint("overrun: 64 bytes at %p\n", (PVOID)p);
    __try {
        p[64] = 1;
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrint("overrun: caught (wrong)\n");
    }
    ExFreePoolWithTag((PVOID)p, 'nrvO');
    DbgPrint("overrun: not reached under special pool\n");
    return STATUS_SUCCESS;
}
