/* The image `cargo bench -p ntmem-wdk --bench images` loads: about 100 KB, most of
 * it initialised data (a table DriverEntry sums, so the linker keeps it). */
#include <wdm.h>

#define BLOB_BYTES (96 * 1024)

static const UCHAR Blob[BLOB_BYTES] = { [0 ... BLOB_BYTES - 1] = 0x5a };

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    ULONG sum = 0;
    ULONG i;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    for (i = 0; i < BLOB_BYTES; i += PAGE_SIZE) {
        sum += ((const volatile UCHAR *)Blob)[i];
    }
    return sum == 0x5a * (BLOB_BYTES / PAGE_SIZE) ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}
