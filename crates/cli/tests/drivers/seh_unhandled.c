/* ExRaiseStatus with no handler in DriverEntry (a system thread): 0x7E. */
#include <ntddk.h>

/* Not inlined: clang 19 stretches an inlined __try region over the code that follows
 * it (here the raise), which Windows would then dispatch to, as ntmem does. */
__declspec(noinline) static NTSTATUS helper(void)
{
    __try {
        return STATUS_SUCCESS; /* pops the frame: the raise below finds none */
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        DbgPrint("seh_unhandled: wrong handler\n");
    }
    return STATUS_UNSUCCESSFUL;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (helper() != STATUS_SUCCESS)
        return STATUS_UNSUCCESSFUL;
    DbgPrint("seh_unhandled: raising\n");
    ExRaiseStatus(STATUS_INSUFFICIENT_RESOURCES);
}
