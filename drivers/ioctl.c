/*
 * An IOCTL driver in the style of the WDK's sioctl sample, with seed 000 §9's
 * three ways of receiving a user buffer: METHOD_BUFFERED (the system buffer),
 * METHOD_OUT_DIRECT (an MDL locked over the caller's output buffer, reached with
 * MmGetSystemAddressForMdlSafe) and METHOD_NEITHER (the caller's raw pointers,
 * validated with ProbeForRead / ProbeForWrite inside try/except and locked with
 * the seed's IoAllocateMdl / MmProbeAndLockPages / MmGetSystemAddressForMdlSafe
 * sequence, kept unmodified between BEGIN and END). Every method upper-cases the
 * input into the output.
 */
#include <ntddk.h>

#define SIOCTL_TYPE 40000
#define IOCTL_SIOCTL_METHOD_BUFFERED CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SIOCTL_METHOD_OUT_DIRECT CTL_CODE(FILE_DEVICE_UNKNOWN, 0x902, METHOD_OUT_DIRECT, FILE_ANY_ACCESS)
#define IOCTL_SIOCTL_METHOD_NEITHER CTL_CODE(FILE_DEVICE_UNKNOWN, 0x903, METHOD_NEITHER, FILE_ANY_ACCESS)
#define SIOCTL_KDPRINT(_x_) DbgPrint _x_

typedef struct {
    ULONG Requests;
} DEVICE_EXTENSION, *PDEVICE_EXTENSION;

static VOID Upcase(PUCHAR Out, const UCHAR *In, ULONG Length)
{
    for (ULONG i = 0; i < Length; i++)
        Out[i] = (In[i] >= 'a' && In[i] <= 'z') ? (UCHAR)(In[i] - 'a' + 'A') : In[i];
}

/* The seed's lock-and-map sequence (it is written for a VOID context: `return;`). */
static VOID LockAndMap(PVOID inBuf, ULONG inBufLength, PMDL *Locked, PVOID *Mapped, NTSTATUS *Status)
{
    PMDL mdl;
    PVOID buffer;
    NTSTATUS ntStatus = STATUS_SUCCESS;

    *Locked = NULL;
    *Mapped = NULL;
    *Status = STATUS_INSUFFICIENT_RESOURCES;
    /* BEGIN seed 000 §9 */
mdl = IoAllocateMdl(inBuf, inBufLength, FALSE, TRUE, NULL);

if(!mdl)

{

    ntStatus = STATUS_INSUFFICIENT_RESOURCES;

    return;

}

try 

{    

    MmProbeAndLockPages(mdl, UserMode, IoReadAccess);
}

except(EXCEPTION_EXECUTE_HANDLER) 

{

    ntStatus = GetExceptionCode();

    SIOCTL_KDPRINT((

        "Exception while locking inBuf 0X%08X in "
        "METHOD_NEITHER\n",

         ntStatus));

    IoFreeMdl(mdl);

}

// 

// Map the physical pages described by the MDL into system 
// space. Note that mapping a large buffer this way
// incurs a lot of system overhead. 

// 

buffer = 
      MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority );

if(!buffer) {

        ntStatus = STATUS_INSUFFICIENT_RESOURCES;

        MmUnlockPages(mdl);

        IoFreeMdl(mdl);

}
    /* END seed 000 §9 */
    *Status = ntStatus;
    if (NT_SUCCESS(ntStatus)) {
        *Locked = mdl;
        *Mapped = buffer;
    }
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    PDEVICE_EXTENSION ext = (PDEVICE_EXTENSION)DeviceObject->DeviceExtension;
    NTSTATUS ntStatus = STATUS_SUCCESS;
    ULONG inBufLength = irpSp->Parameters.DeviceIoControl.InputBufferLength;
    ULONG outBufLength = irpSp->Parameters.DeviceIoControl.OutputBufferLength;
    ULONG n = inBufLength < outBufLength ? inBufLength : outBufLength;
    PVOID inBuf, outBuf, buffer;
    PMDL mdl;

    ext->Requests++;
    Irp->IoStatus.Information = 0;
    switch (irpSp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_SIOCTL_METHOD_BUFFERED:
        inBuf = Irp->AssociatedIrp.SystemBuffer;
        outBuf = Irp->AssociatedIrp.SystemBuffer;
        SIOCTL_KDPRINT(("ioctl: METHOD_BUFFERED in %u out %u, system buffer %s\n", inBufLength, outBufLength,
                        (ULONG_PTR)inBuf >= 0x80000000000UL ? "in system space" : "NOT in system space"));
        Upcase(outBuf, inBuf, n);
        Irp->IoStatus.Information = n;
        break;
    case IOCTL_SIOCTL_METHOD_OUT_DIRECT:
        inBuf = Irp->AssociatedIrp.SystemBuffer;
        outBuf = MmGetSystemAddressForMdlSafe(Irp->MdlAddress, NormalPagePriority);
        if (!outBuf) {
            ntStatus = STATUS_INSUFFICIENT_RESOURCES;
            break;
        }
        SIOCTL_KDPRINT(("ioctl: METHOD_OUT_DIRECT MDL of %u bytes at offset %u, locked %s\n",
                        MmGetMdlByteCount(Irp->MdlAddress), MmGetMdlByteOffset(Irp->MdlAddress),
                        (Irp->MdlAddress->MdlFlags & MDL_PAGES_LOCKED) ? "yes" : "no"));
        Upcase(outBuf, inBuf, n);
        Irp->IoStatus.Information = n;
        break;
    case IOCTL_SIOCTL_METHOD_NEITHER:
        /* BEGIN seed 000 §9 */
inBuf = irpSp->Parameters.DeviceIoControl.Type3InputBuffer;

inBufLength = 

     irpSp->Parameters.DeviceIoControl.InputBufferLength; 
try {

    ProbeForRead( inBuf, inBufLength, sizeof( UCHAR ) );  

}

except(EXCEPTION_EXECUTE_HANDLER) 

{

    ntStatus = GetExceptionCode();

    SIOCTL_KDPRINT((

        "Exception while accessing inBuf 0X%08X in " 

        "METHOD_NEITHER\n",

         ntStatus));

    break;

}
        /* END seed 000 §9 */
        outBuf = Irp->UserBuffer;
        try {
            ProbeForWrite(outBuf, outBufLength, sizeof(UCHAR));
        } except(EXCEPTION_EXECUTE_HANDLER) {
            ntStatus = GetExceptionCode();
            SIOCTL_KDPRINT(("Exception while accessing outBuf 0X%08X in METHOD_NEITHER\n", ntStatus));
            break;
        }
        LockAndMap(inBuf, inBufLength, &mdl, &buffer, &ntStatus);
        if (!NT_SUCCESS(ntStatus))
            break;
        try {
            Upcase(outBuf, buffer, n);
            Irp->IoStatus.Information = n;
        } except(EXCEPTION_EXECUTE_HANDLER) {
            ntStatus = GetExceptionCode();
        }
        MmUnlockPages(mdl);
        IoFreeMdl(mdl);
        SIOCTL_KDPRINT(("ioctl: METHOD_NEITHER copied %u bytes in the caller's context\n", n));
        break;
    default:
        ntStatus = STATUS_INVALID_DEVICE_REQUEST;
        break;
    }
    Irp->IoStatus.Status = ntStatus;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return ntStatus;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    PDEVICE_EXTENSION ext = (PDEVICE_EXTENSION)DriverObject->DeviceObject->DeviceExtension;
    SIOCTL_KDPRINT(("ioctl: %u requests, unloading\n", ext->Requests));
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PDEVICE_OBJECT device;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);

    status = IoCreateDevice(DriverObject, sizeof(DEVICE_EXTENSION), NULL, FILE_DEVICE_UNKNOWN,
                            FILE_DEVICE_SECURE_OPEN, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = Unload;
    SIOCTL_KDPRINT(("ioctl: device created, initializing flag %s\n",
                    (device->Flags & DO_DEVICE_INITIALIZING) ? "set" : "clear"));
    return STATUS_SUCCESS;
}
