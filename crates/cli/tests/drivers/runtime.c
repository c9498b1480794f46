/* Simulated time, a critical region, a breakpoint the driver's __except takes, the
 * zeroing pool helpers; then an ASSERT that holds and, in a checked build (-DDBG=1),
 * one that fails. */
#include <ntddk.h>

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    LARGE_INTEGER system, ticks, frequency, counter;
    PULONG zeroed;
    NTSTATUS caught = 0;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    ExInitializeDriverRuntime(DrvRtPoolNxOptIn);
    KeQuerySystemTime(&system);
    KeQueryTickCount(&ticks);
    counter = KeQueryPerformanceCounter(&frequency);
    DbgPrint("system %I64d ticks %I64d interrupt %I64u frequency %I64d counter %I64d increment %lu\n",
             system.QuadPart, ticks.QuadPart, KeQueryInterruptTime(), frequency.QuadPart, counter.QuadPart,
             KeQueryTimeIncrement());
    KeEnterCriticalRegion();
    DbgPrint("apcs disabled %d\n", KeAreApcsDisabled());
    KeLeaveCriticalRegion();
    DbgPrint("apcs disabled %d\n", KeAreApcsDisabled());
    __try {
        DbgBreakPoint();
    } __except (GetExceptionCode() == STATUS_BREAKPOINT ? EXCEPTION_EXECUTE_HANDLER : EXCEPTION_CONTINUE_SEARCH) {
        caught = GetExceptionCode();
    }
    DbgPrint("breakpoint caught %08x\n", caught);
    zeroed = (PULONG)ExAllocatePoolZero(NonPagedPool, 64, 'oreZ');
    DbgPrint("zeroed %lu %I64d %d\n", zeroed != NULL ? zeroed[15] : 99, Int32x32To64(-3, 0x40000000), MAXLONG);
    if (zeroed != NULL) {
        ExFreePoolWithTag(zeroed, 'oreZ');
    }
    ASSERT(caught == STATUS_BREAKPOINT);
    ASSERTMSG("the second check ", caught == 0);
    DbgPrint("after the assertions\n");
    return STATUS_SUCCESS;
}
