/* Writes eight bytes past a 48-byte block: the next block's POOL_HEADER is gone,
 * and freeing the block finds it (BAD_POOL_HEADER); the report shows the page's
 * blocks as !pool does. The pool hands out a page's blocks from its end down, so
 * the second block allocated lies just before the first. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PUCHAR a, b;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    a = (PUCHAR)ExAllocatePoolWithTag(NonPagedPoolNx, 48, 'AmsH');
    b = (PUCHAR)ExAllocatePoolWithTag(NonPagedPoolNx, 48, 'BmsH');
    if (a == NULL || b == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    DbgPrint("header_smash: a %p b %p\n", a, b);
    RtlFillMemory(b + 48, 8, 0x41);
    ExFreePoolWithTag(b, 'BmsH');
    return STATUS_SUCCESS;
}
