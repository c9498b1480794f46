/* Remove locks, as RULE (a -D of the build) says:
 *   0 acquires twice, releases once, releases and waits (nothing else holds it),
 *     then acquires again: STATUS_DELETE_PENDING
 *   1 releases and waits while another acquisition is still held and nothing will
 *     release it: a wait that never ends */
#include <ntddk.h>

#ifndef RULE
#define RULE 0
#endif

static IO_REMOVE_LOCK Lock;

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS first, second, after;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    IoInitializeRemoveLock(&Lock, 'kLmR', 0, 0);
    first = IoAcquireRemoveLock(&Lock, NULL);
    second = IoAcquireRemoveLock(&Lock, (PVOID)2);
    DbgPrint("remove_lock: acquired 0x%x 0x%x, count %d\n", (unsigned)first, (unsigned)second, Lock.Common.IoCount);
#if RULE == 0
    IoReleaseRemoveLock(&Lock, (PVOID)2);
#endif
    IoReleaseRemoveLockAndWait(&Lock, NULL);
    after = IoAcquireRemoveLock(&Lock, (PVOID)3);
    DbgPrint("remove_lock: removed %d, count %d, acquire after the wait 0x%x\n", Lock.Common.Removed,
             Lock.Common.IoCount, (unsigned)after);
    return STATUS_SUCCESS;
}
