/* KeInitializeSpinLock and KeReleaseSpinLock on NULL at PASSIVE_LEVEL write to the
 * NULL page at the caller's IRQL: an access violation a __try catches (Windows
 * raises STATUS_ACCESS_VIOLATION there, not a bugcheck). KeAcquireSpinLock on NULL
 * raises to DISPATCH_LEVEL first: IRQL_NOT_LESS_OR_EQUAL (0x0A) at IRQL 2. */
#include <ntddk.h>

static NTSTATUS initialize_null(void)
{
    __try {
        KeInitializeSpinLock(NULL);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    return STATUS_SUCCESS;
}

static NTSTATUS release_null(void)
{
    __try {
        KeReleaseSpinLock(NULL, PASSIVE_LEVEL);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    return STATUS_SUCCESS;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("spin_null: initialize 0x%08X\n", initialize_null());
    DbgPrint("spin_null: release 0x%08X at IRQL %u\n", release_null(), KeGetCurrentIrql());
    KeAcquireSpinLock(NULL, &old);
    DbgPrint("spin_null: acquired NULL\n");
    return STATUS_SUCCESS;
}
