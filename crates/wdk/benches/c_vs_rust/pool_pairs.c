/* The C half of `cargo bench -p ntmem-wdk --bench c_vs_rust` (issue 5 item 8):
 * DriverEntry allocates and frees PAIRS blocks of 64 bytes of nonpaged pool,
 * one at a time, through the WDK routines. PAIRS is set on the compiler's
 * command line by the benchmark, which times each call of DriverEntry. */
#include <wdm.h>

#ifndef PAIRS
#define PAIRS 100000
#endif

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ULONG i;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    for (i = 0; i < PAIRS; i++) {
        PVOID p = ExAllocatePoolWithTag(NonPagedPool, 64, 'hcnB');
        if (p == NULL) {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        ExFreePool(p);
    }
    return STATUS_SUCCESS;
}
