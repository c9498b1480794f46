/* Issue 9 item 2 from C: ExInitializeLookasideListEx writes only the 0x60 bytes
 * of a LOOKASIDE_LIST_EX (the caller's next bytes survive, and with special pool
 * the list can end at the page end), and SIZE_MAX never wraps into a small block:
 * ExAllocatePoolWithQuotaTag returns NULL with POOL_QUOTA_FAIL_INSTEAD_OF_RAISE
 * and raises STATUS_INSUFFICIENT_RESOURCES without it. */
#include <ntddk.h>

typedef struct _STATE {
    LOOKASIDE_LIST_EX List;
    UCHAR After[32];
} STATE;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    STATE *s = ExAllocatePoolWithTag(NonPagedPool, sizeof(STATE), 'tatS');
    LOOKASIDE_LIST_EX *alone = ExAllocatePoolWithTag(NonPagedPool, sizeof(LOOKASIDE_LIST_EX), 'enlA');
    volatile NTSTATUS raised = STATUS_SUCCESS;
    PVOID p;
    ULONG i, bad = 0;

    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (s == NULL || alone == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;
    RtlFillMemory(s->After, sizeof(s->After), 0xA5);
    if (ExInitializeLookasideListEx(&s->List, NULL, NULL, NonPagedPool, 0, 64, 'tsiL', 0) != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    for (i = 0; i < sizeof(s->After); i++)
        if (s->After[i] != 0xA5)
            bad++;
    if (ExInitializeLookasideListEx(alone, NULL, NULL, NonPagedPool, 0, 64, 'tsiL', 0) != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    ExDeleteLookasideListEx(alone);
    ExDeleteLookasideListEx(&s->List);

    p = ExAllocatePoolWithQuotaTag((POOL_TYPE)(NonPagedPool | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE), (SIZE_T)-1, 'atoQ');
    if (p != NULL)
        bad++;
    try {
        p = ExAllocatePoolWithQuotaTag(NonPagedPool, (SIZE_T)-1, 'atoQ');
        bad++;
    } except (EXCEPTION_EXECUTE_HANDLER) {
        raised = GetExceptionCode();
    }
    if (raised != STATUS_INSUFFICIENT_RESOURCES)
        bad++;
    ExFreePoolWithTag(alone, 'enlA');
    ExFreePoolWithTag(s, 'tatS');
    DbgPrint("hostile_sizes: %u bad, raised 0x%08X\n", bad, (ULONG)raised);
    return bad == 0 ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
