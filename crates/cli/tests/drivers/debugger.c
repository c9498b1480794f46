/* Breakpoints and a failed checked-build assertion, for a machine booted with and
 * without /DEBUG: a DbgBreakPoint (the routine), a __debugbreak (an int 3 in the
 * driver's own code) inside and outside a __try, and ASSERT. */
#include <ntddk.h>

static int Breaks(void)
{
    int handled = 0;
    __try {
        __debugbreak();
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        handled = 1;
    }
    return handled;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    DbgPrint("debugger not present %d\n", KdRefreshDebuggerNotPresent());
    DbgBreakPoint();
    DbgPrint("after DbgBreakPoint\n");
    DbgPrint("__except ran %d\n", Breaks());
    __debugbreak();
    DbgPrint("after __debugbreak\n");
    ASSERTMSG("never ", DriverObject == NULL);
    DbgPrint("after the assertion\n");
    return STATUS_SUCCESS;
}
