/*
 * The most common off-by-one: a string copied into a block one byte too short, its
 * NUL landing one past the end. Under special pool the block (63 bytes, not a
 * multiple of the 16-byte alignment) does not end at the guard page, so the write
 * lands in the pattern after it and is found when the block is freed.
 */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    volatile CHAR *name = ExAllocatePoolWithTag(NonPagedPool, 63, 'luNn');
    if (name == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    for (int i = 0; i < 63; i++) {
        name[i] = 'x';
    }
    name[63] = 0;
    DbgPrint("nul_overrun: NUL written one past the end\n");
    ExFreePoolWithTag((PVOID)name, 'luNn');
    return STATUS_SUCCESS;
}
