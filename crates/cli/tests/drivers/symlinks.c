/*
 * What a legacy driver's DriverEntry and Unload do with names: initialise counted
 * strings, create a named device and its \DosDevices link, delete the link at
 * unload; PAGED_CODE in pageable routines. Also the string routines' edge cases:
 * NULL, truncation, STATUS_BUFFER_TOO_SMALL, comparison without case.
 */
#include <ntddk.h>

#define TAG 'mySL'
#define NT_NAME L"\\Device\\NtmemLinks"
#define DOS_NAME L"\\DosDevices\\NtmemLinks"

DRIVER_UNLOAD LinksUnload;
DRIVER_DISPATCH LinksCreateClose;

static VOID Show(PCSTR what, PCUNICODE_STRING s)
{
    DbgPrint("links: %s %u/%u %wZ\n", what, s->Length, s->MaximumLength, s);
}

static VOID Strings(VOID)
{
    UNICODE_STRING s, d;
    ANSI_STRING a;
    WCHAR small[8];
    PWCH big;
    ULONG i;
    UNICODE_STRING k = RTL_CONSTANT_STRING(L"Key");

    PAGED_CODE();
    RtlInitUnicodeString(&s, NULL);
    DbgPrint("links: NULL %u/%u %s\n", s.Length, s.MaximumLength, s.Buffer ? "buffer" : "no buffer");
    RtlInitAnsiString(&a, "narrow");
    DbgPrint("links: ansi %u/%u %Z\n", a.Length, a.MaximumLength, &a);
    RtlInitString(&a, NULL);
    DbgPrint("links: ansi NULL %u/%u\n", a.Length, a.MaximumLength);
    Show("constant", &k);

    big = (PWCH)ExAllocatePoolWithTag(NonPagedPoolNx, 0x9000 * sizeof(WCHAR), TAG);
    if (big) {
        for (i = 0; i < 0x9000 - 1; i++) big[i] = L'x';
        big[0x9000 - 1] = 0;
        RtlInitUnicodeString(&s, big);
        DbgPrint("links: long %#x/%#x\n", s.Length, s.MaximumLength);
        ExFreePoolWithTag(big, TAG);
    }

    RtlInitUnicodeString(&s, L"\\Device\\NtmemLinks");
    d.Buffer = small;
    d.Length = 0;
    d.MaximumLength = sizeof(small);
    RtlCopyUnicodeString(&d, &s);
    Show("copy cut", &d);
    RtlCopyUnicodeString(&d, NULL);
    DbgPrint("links: copy NULL %u\n", d.Length);
    RtlInitUnicodeString(&s, L"ab");
    RtlCopyUnicodeString(&d, &s);
    DbgPrint("links: copy terminated %s\n", small[2] == 0 ? "yes" : "no");
    DbgPrint("links: append %#x\n", RtlAppendUnicodeToString(&d, L"cd"));
    DbgPrint("links: append string %#x\n", RtlAppendUnicodeStringToString(&d, &s));
    Show("appended", &d);
    DbgPrint("links: append too much %#x\n", RtlAppendUnicodeToString(&d, L"xyz"));
    Show("unchanged", &d);

    RtlInitUnicodeString(&s, L"\\DOSDEVICES\\ntmemlinks");
    RtlInitUnicodeString(&d, DOS_NAME);
    DbgPrint("links: equal nocase %u case %u\n", RtlEqualUnicodeString(&s, &d, TRUE), RtlEqualUnicodeString(&s, &d, FALSE));
    DbgPrint("links: compare nocase %d case %s\n", RtlCompareUnicodeString(&s, &d, TRUE),
             RtlCompareUnicodeString(&s, &d, FALSE) < 0 ? "below" : "not below");
}

NTSTATUS LinksCreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    PAGED_CODE();
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

VOID LinksUnload(PDRIVER_OBJECT DriverObject)
{
    UNICODE_STRING link;
    NTSTATUS status;

    PAGED_CODE();
    RtlInitUnicodeString(&link, DOS_NAME);
    status = IoDeleteSymbolicLink(&link);
    DbgPrint("links: delete %#x\n", status);
    status = IoDeleteSymbolicLink(&link);
    DbgPrint("links: delete again %#x\n", status);
    if (DriverObject->DeviceObject) IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING nt, dos, other;
    PDEVICE_OBJECT device = NULL;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    Strings();
    RtlInitUnicodeString(&nt, NT_NAME);
    status = IoCreateDevice(DriverObject, 0, &nt, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status)) return status;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = LinksCreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = LinksCreateClose;
    DriverObject->DriverUnload = LinksUnload;

    RtlInitUnicodeString(&dos, DOS_NAME);
    status = IoCreateSymbolicLink(&dos, &nt);
    DbgPrint("links: create %#x\n", status);
    RtlInitUnicodeString(&other, L"\\??\\NTMEMLINKS");
    DbgPrint("links: create again %#x\n", IoCreateSymbolicLink(&other, &nt));
    RtlInitUnicodeString(&other, L"\\DosDevices\\NtmemLeft");
#ifdef LEAVE_A_LINK
    DbgPrint("links: left %#x\n", IoCreateSymbolicLink(&other, &nt));
#endif
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(device);
        return status;
    }
    return STATUS_SUCCESS;
}
