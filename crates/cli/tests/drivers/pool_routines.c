/*
 * The pool routines beyond ExAllocatePoolWithTag: priorities, quota, ExAllocatePool2
 * and ExQueryPoolBlockSize, as a driver calls them.
 */
#include <ntddk.h>

#define TAG 'tooP'

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PUCHAR a, b, c, d;
    BOOLEAN charged = TRUE;
    SIZE_T size, i, nonzero = 0;
    NTSTATUS status = STATUS_SUCCESS;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);

    a = (PUCHAR)ExAllocatePoolWithTagPriority(NonPagedPoolNx, 100, TAG, NormalPoolPriority);
    size = a ? ExQueryPoolBlockSize(a, &charged) : 0;
    DbgPrint("pool: priority block %s, %u usable bytes, quota %u\n", a ? "yes" : "no", (ULONG)size, charged);

    b = (PUCHAR)ExAllocatePoolWithQuotaTag(PagedPool | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE, 40, TAG);
    size = b ? ExQueryPoolBlockSize(b, &charged) : 0;
    DbgPrint("pool: quota block %s, %u usable bytes, quota %u\n", b ? "yes" : "no", (ULONG)size, charged);

    c = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED, 256, TAG);
    for (i = 0; c && i < 256; i++) {
        nonzero += c[i] != 0;
    }
    DbgPrint("pool: ExAllocatePool2 block %s, %u nonzero bytes\n", c ? "yes" : "no", (ULONG)nonzero);

    d = (PUCHAR)ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 16, TAG);
    DbgPrint("pool: paged and nonpaged at once: %s\n", d ? "a block (wrong)" : "NULL");

    __try {
        ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_RAISE_ON_FAILURE, (SIZE_T)1 << 40, TAG);
        DbgPrint("pool: a terabyte did not raise (wrong)\n");
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
        DbgPrint("pool: a terabyte raised 0x%08X\n", (ULONG)status);
    }
    DbgPrint("pool: not a block: %u bytes\n", (ULONG)ExQueryPoolBlockSize(&status, NULL));

    if (a) ExFreePoolWithTag(a, TAG);
    if (b) ExFreePoolWithTag(b, TAG);
    if (c) ExFreePoolWithTag(c, TAG);
    return STATUS_SUCCESS;
}
