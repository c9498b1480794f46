/*
 * Structured exceptions in a C driver: ExRaiseStatus and a user-address fault
 * caught by __except, break out of a switch from a handler, return out of a
 * __try, nesting with EXCEPTION_CONTINUE_SEARCH, __finally on both paths, and the
 * seed's lowercase try/except. Prints one line per check; DriverEntry fails if a
 * check does.
 */
#include <ntddk.h>

#define USER_ADDRESS ((ULONG_PTR)0x10000) /* user space, unmapped: no process yet */

static int failures;

static void check(int ok, const char *what)
{
    DbgPrint("seh: %s %s\n", ok ? "ok" : "FAILED", what);
    if (!ok)
        failures++;
}

static NTSTATUS raise_caught(void)
{
    NTSTATUS status = STATUS_SUCCESS;
    __try {
        ExRaiseStatus(STATUS_INSUFFICIENT_RESOURCES);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    return status;
}

static NTSTATUS fault_caught(ULONG_PTR *access, ULONG_PTR *address)
{
    NTSTATUS status = STATUS_SUCCESS;
    __try {
        *(volatile ULONG *)USER_ADDRESS = 1;
    } __except (*access = GetExceptionInformation()->ExceptionRecord->ExceptionInformation[0],
                *address = GetExceptionInformation()->ExceptionRecord->ExceptionInformation[1],
                EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    return status;
}

static int break_leaves_switch(int selector)
{
    int after = 0;
    switch (selector) {
    case 1:
        __try {
            ExRaiseStatus(STATUS_DATATYPE_MISALIGNMENT);
        } __except (EXCEPTION_EXECUTE_HANDLER) {
            break;
        }
        after = 99; /* not reached: break left the switch */
        break;
    default:
        after = -1;
    }
    return after;
}

static NTSTATUS return_inside_try(void)
{
    __try {
        return STATUS_SUCCESS;
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return STATUS_UNSUCCESSFUL;
    }
    return STATUS_UNSUCCESSFUL; /* not reached; C compilers cannot tell */
}

static LONG searched;

static LONG pass_on(void)
{
    searched++;
    return EXCEPTION_CONTINUE_SEARCH;
}

static NTSTATUS nested(void)
{
    volatile NTSTATUS outer = STATUS_SUCCESS;
    __try {
        __try {
            ExRaiseStatus(STATUS_QUOTA_EXCEEDED);
        } __except (pass_on()) {
            outer = STATUS_UNSUCCESSFUL; /* not reached */
        }
    } __except (GetExceptionCode() == STATUS_QUOTA_EXCEEDED ? EXCEPTION_EXECUTE_HANDLER
                                                             : EXCEPTION_CONTINUE_SEARCH) {
        if (outer == STATUS_SUCCESS)
            outer = GetExceptionCode();
    }
    return outer;
}

/*
 * Called through a pointer, so the compiler cannot see that it does not return:
 * clang 19 puts the __except block of a __try that ends in a call it knows never
 * returns right at that call's return address, inside the __try's range, and
 * Windows' __C_specific_handler then takes the unwind target to be inside the
 * __try and skips its __finally (ntmem does the same).
 */
static VOID (*volatile raise_status)(NTSTATUS);

static int finally_runs(void)
{
    volatile int normal = 0, unwound = 0, abnormal = 0;
    raise_status = ExRaiseStatus;
    __try {
        normal = 1;
    } __finally {
        normal += 1;
        abnormal += AbnormalTermination();
    }
    __try {
        __try {
            raise_status(STATUS_ACCESS_VIOLATION);
        } __finally {
            unwound = 1;
            abnormal += AbnormalTermination();
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        unwound += GetExceptionCode() == STATUS_ACCESS_VIOLATION;
    }
    return normal == 2 && unwound == 2 && abnormal == 1;
}

static NTSTATUS continue_execution(void)
{
    NTSTATUS status = STATUS_SUCCESS;
    __try {
        __try {
            ExRaiseStatus(STATUS_INSUFFICIENT_RESOURCES);
        } __except (GetExceptionCode() == STATUS_INSUFFICIENT_RESOURCES ? EXCEPTION_CONTINUE_EXECUTION
                                                                          : EXCEPTION_CONTINUE_SEARCH) {
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    return status;
}

static NTSTATUS lowercase(void)
{
    NTSTATUS status = STATUS_SUCCESS;
    try {
        ExRaiseDatatypeMisalignment();
    }
    except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }
    return status;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ULONG_PTR access = 7, address = 0;
    int i;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);

    check(raise_caught() == STATUS_INSUFFICIENT_RESOURCES, "ExRaiseStatus caught with its code");
    check(fault_caught(&access, &address) == STATUS_ACCESS_VIOLATION, "user-address fault caught");
    check(access == 1 && address == USER_ADDRESS, "fault parameters: write at the address");
    check(break_leaves_switch(1) == 0, "break in a handler leaves the switch");
    for (i = 0; i < 3; i++)
        check(return_inside_try() == STATUS_SUCCESS, "return inside __try");
    check(nested() == STATUS_QUOTA_EXCEEDED && searched == 1, "CONTINUE_SEARCH reaches the outer frame");
    check(finally_runs(), "__finally runs on normal exit and on unwind");
    check(continue_execution() == STATUS_NONCONTINUABLE_EXCEPTION, "CONTINUE_EXECUTION is noncontinuable");
    check(lowercase() == STATUS_DATATYPE_MISALIGNMENT, "lowercase try/except");
    check(raise_caught() == STATUS_INSUFFICIENT_RESOURCES, "frames still work after all that");
    return failures == 0 ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
