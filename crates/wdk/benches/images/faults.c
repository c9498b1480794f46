/* The C half of `cargo bench -p ntmem-wdk --bench images`: DriverEntry takes FAULTS
 * hardware faults, each a write to an unmapped address inside __try, handled by
 * __except (dispatched over the image's unwind and scope tables, unwound, resumed
 * in the handler). FAULTS is set on the compiler's command line. */
#include <wdm.h>

#ifndef FAULTS
#define FAULTS 1000
#endif

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    volatile ULONG handled = 0;
    ULONG i;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    for (i = 0; i < FAULTS; i++) {
        __try {
            *(volatile ULONG *)(ULONG_PTR)0x10 = i;
        } __except (EXCEPTION_EXECUTE_HANDLER) {
            handled++;
        }
    }
    return handled == FAULTS ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
