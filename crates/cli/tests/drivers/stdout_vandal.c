/* A driver that writes half a JSON object to the host's standard output and then
 * closes it: `--report FILE` must still get the whole report. */
#include <ntddk.h>

/* The host's C library (a driver has no business calling it). */
long write(int fd, const void *buf, unsigned long count);
int close(int fd);

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    static const char garbage[] = "{ \"exit\": \"not the report\", ";
    UNREFERENCED_PARAMETER(RegistryPath);
    write(1, garbage, sizeof garbage - 1);
    close(1);
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
