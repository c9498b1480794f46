/*
 * A driver written the way Microsoft's samples are: role typedefs declare each
 * routine, SAL and driver annotations decorate them, _Use_decl_annotations_ on the
 * definitions. The annotations are for the code analyzer; the driver compiles and
 * runs unmodified.
 */
#include <ntddk.h>

DRIVER_INITIALIZE DriverEntry;
_Dispatch_type_(IRP_MJ_CREATE) _Dispatch_type_(IRP_MJ_CLOSE) DRIVER_DISPATCH AnnotatedCreateClose;
DRIVER_UNLOAD AnnotatedUnload;

_IRQL_requires_max_(DISPATCH_LEVEL) _Must_inspect_result_ _Success_(return != 0)
static ULONG AnnotatedSum(_In_reads_(Count) const ULONG *Values, _In_ ULONG Count, _Out_opt_ PULONG Largest)
{
    ULONG sum = 0, largest = 0;
    for (ULONG i = 0; i < Count; i++) {
        sum += Values[i];
        largest = Values[i] > largest ? Values[i] : largest;
    }
    if (Largest != NULL) {
        *Largest = largest;
    }
    return sum;
}

_Use_decl_annotations_
NTSTATUS AnnotatedCreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
VOID AnnotatedUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("annotated: unloaded\n");
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    static const ULONG values[] = {3, 9, 4};
    ULONG largest = 0;
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = AnnotatedCreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = AnnotatedCreateClose;
    DriverObject->DriverUnload = AnnotatedUnload;
    ULONG sum = AnnotatedSum(values, 3, &largest);
    DbgPrint("annotated: sum %lu, largest %lu\n", sum, largest);
    return STATUS_SUCCESS;
}
