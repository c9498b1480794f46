/*
 * nic: a network-adapter-style driver (seed 000 sections 5.2, 7.1, 7.2 and 8), a
 * Plug and Play function driver for the machine's NIC (an Intel 8255x-style
 * adapter: its control/status registers (CSRs) decode both through a 4 KB memory
 * BAR and a 32-byte I/O BAR).
 *
 * DriverEntry sets DriverExtension->AddDevice. AddDevice creates the FDO with the
 * device extension, allocates the long-lived adapter state from nonpaged pool,
 * tagged, sets up the seed's 'LciN' receive lookaside list and attaches to the
 * PDO. IRP_MN_START_DEVICE runs the seed's section 8 resource loop unmodified
 * over AllocatedResourcesTranslated: a CmResourceTypeMemory descriptor is mapped
 * with MmMapIoSpace and selects READ_REGISTER_USHORT, a CmResourceTypePort one
 * selects READ_PORT_USHORT; the last CSR descriptor wins, so on the default
 * machine (memory BAR, then I/O BAR, in BAR order) the memory CSRs are mapped and
 * the accessors are the PORT ones. The driver then issues a command through the
 * chosen accessors, reads the status register, and reads the command register
 * back through the memory mapping when there is one (the same registers).
 * IRP_MN_REMOVE_DEVICE unmaps the CSRs, frees the state and deletes the FDO.
 *
 * Each "receive" request (an IOCTL standing in for an interrupt's DPC) takes
 * receive blocks from the lookaside list at DISPATCH_LEVEL under a spin lock,
 * fills them with a frame and returns them; a statistics request reports the
 * list's counters as a debugger's !lookaside would show them.
 */
#include <ntddk.h>

#define IOCTL_NIC_RECEIVE CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_NIC_STATISTICS CTL_CODE(FILE_DEVICE_NETWORK, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)

#define RecvBlockSize 1514
#define RING 64

/* The 8255x's System Control Block, at the start of the CSRs. */
#define SCB_STATUS 0x00          /* USHORT */
#define SCB_COMMAND 0x02         /* USHORT */
#define SCB_CUC_START 0x0010     /* command unit: start */

/* The seed's sample uses the PCIDRV sample's debug macro. */
#define DebugPrint(Level, Area, ...) DbgPrint(__VA_ARGS__)

/* Accessors chosen by the resource loop. READ_PORT_USHORT and READ_REGISTER_USHORT
 * differ in their pointer's volatile (as in the WDK), hence a pointer without a
 * prototype; the WRITE_ pair also takes a USHORT, which such a pointer cannot
 * pass, so it is kept as a PVOID and called through WRITE_CSR. */
typedef USHORT (*PREAD_CSR)();
typedef VOID (*PWRITE_CSR)(volatile USHORT *Register, USHORT Value);
#define WRITE_CSR(FdoData, Register, Value) ((PWRITE_CSR)(FdoData)->WritePort)((Register), (Value))

typedef struct _NIC_STATE {      /* long-lived adapter state, tag 'AciN' */
    ULONG FramesReceived;
    ULONG BytesReceived;
    UCHAR Mac[6];
} NIC_STATE, *PNIC_STATE;

typedef struct _FDO_DATA {       /* the device extension */
    KSPIN_LOCK Lock;
    PNIC_STATE State;
    NPAGED_LOOKASIDE_LIST RecvLookasideList;
    PDEVICE_OBJECT Self;
    PDEVICE_OBJECT NextLowerDriver;
    /* What start-device found (the seed's names). */
    PVOID IoBaseAddress;
    ULONG IoRange;
    PHYSICAL_ADDRESS MemPhysAddress;
    PUCHAR CSRAddress;
    PREAD_CSR ReadPort;
    PVOID WritePort;
} FDO_DATA, *PFDO_DATA;

static NTSTATUS Receive(PFDO_DATA FdoData, ULONG Frames, PUCHAR Out, ULONG OutLength, PULONG_PTR Information)
{
    PVOID pRecvBlock[RING];
    KIRQL oldIrql;
    ULONG i, n = Frames < RING ? Frames : RING;

    KeAcquireSpinLock(&FdoData->Lock, &oldIrql);
    for (i = 0; i < n; i++) {
        pRecvBlock[i] = ExAllocateFromNPagedLookasideList (
                            &FdoData->RecvLookasideList);
        if (pRecvBlock[i] == NULL) {
            break;
        }
        RtlFillMemory(pRecvBlock[i], RecvBlockSize, (UCHAR)(0x40 + i));
        FdoData->State->FramesReceived++;
        FdoData->State->BytesReceived += RecvBlockSize;
    }
    if (OutLength > 0 && i > 0) {
        RtlCopyMemory(Out, pRecvBlock[0], OutLength < 8 ? OutLength : 8);
        *Information = OutLength < 8 ? OutLength : 8;
    }
    while (i-- > 0) {
        ExFreeToNPagedLookasideList (
                     &FdoData->RecvLookasideList,
                     pRecvBlock[i]);
    }
    KeReleaseSpinLock(&FdoData->Lock, oldIrql);
    return STATUS_SUCCESS;
}

static NTSTATUS DeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    PFDO_DATA FdoData = (PFDO_DATA)DeviceObject->DeviceExtension;
    PUCHAR buffer = Irp->AssociatedIrp.SystemBuffer;
    ULONG in = irpSp->Parameters.DeviceIoControl.InputBufferLength;
    ULONG out = irpSp->Parameters.DeviceIoControl.OutputBufferLength;
    NTSTATUS status = STATUS_SUCCESS;

    Irp->IoStatus.Information = 0;
    switch (irpSp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_NIC_RECEIVE:
        status = Receive(FdoData, in >= 1 ? buffer[0] : 1, buffer, out, &Irp->IoStatus.Information);
        break;
    case IOCTL_NIC_STATISTICS: {
        PGENERAL_LOOKASIDE L = &FdoData->RecvLookasideList.L;
        DbgPrint("nic: RecvLookasideList Depth %u/%u, allocates %u (misses %u), frees %u (misses %u), cached %u\n",
                 L->Depth, L->MaximumDepth, L->TotalAllocates, L->AllocateMisses, L->TotalFrees, L->FreeMisses,
                 ExQueryDepthSList(&L->ListHead));
        DbgPrint("nic: %u frames, %u bytes received\n", FdoData->State->FramesReceived,
                 FdoData->State->BytesReceived);
        if (out >= sizeof(USHORT)) {
            *(PUSHORT)buffer = L->Depth;
            Irp->IoStatus.Information = sizeof(USHORT);
        }
        break;
    }
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS StartDevice(PFDO_DATA FdoData, PIO_STACK_LOCATION stack)
{
    PCM_PARTIAL_RESOURCE_LIST partialResourceListTranslated;
    PCM_PARTIAL_RESOURCE_DESCRIPTOR resourceTrans;
    PCM_PARTIAL_RESOURCE_LIST raw = &stack->Parameters.StartDevice.AllocatedResources->List[0].PartialResourceList;
    NTSTATUS status = STATUS_SUCCESS;
    ULONG i;
    PUCHAR base;
    USHORT csrStatus;

    DbgPrint("nic: start-device: %u raw and %u translated resources\n", raw->Count,
             stack->Parameters.StartDevice.AllocatedResourcesTranslated->List[0].PartialResourceList.Count);

    /* ---- BEGIN seed 000 section 8 resource loop (unmodified) ---- */
    partialResourceListTranslated = 

           &stack->Parameters.StartDevice.

           AllocatedResourcesTranslated->List[0].

           PartialResourceList;

    resourceTrans = 

           &partialResourceListTranslated->PartialDescriptors[0];

    for (i = 0;

         i < partialResourceListTranslated->Count;

         i++, resourceTrans++) {

         switch (resourceTrans->Type) {

           case CmResourceTypePort:

              // The control and status (CSR) registers 
              // are in port space. 

              // Save the base address and length.

              FdoData->IoBaseAddress =

                 (PVOID)(ULONG_PTR)(
                     resourceTrans->u.Port.Start.QuadPart);

              FdoData->IoRange = resourceTrans->u.Port.Length;

              // All accesses are USHORT wide, so

              // create an accessor table to read and write 

              // the ports. 

              FdoData->ReadPort = READ_PORT_USHORT; 

              FdoData->WritePort = WRITE_PORT_USHORT;

            break;

           case CmResourceTypeMemory:

              // The CSR registers are in memory space. 

              // This device requires a CSR memory space that 

              // is 0x1000 in size. Assert if it’s not. 

              //

              ASSERT(resourceTrans->u.Memory.Length == 0x1000);

              // The driver can read and write registers in 

              // memory space by using the READ_REGISTER_* 

              // macros. 

              FdoData->ReadPort = READ_REGISTER_USHORT; 

              FdoData->WritePort = WRITE_REGISTER_USHORT; 

              // Save the starting address.

              FdoData->MemPhysAddress = 

                       resourceTrans->u.Memory.Start;

              // Map the returned physical address to a 
              // virtual address. We can use the VA to call

              // call READ_REGISTER* and WRITE_REGISTER* macros.
              // We can also define the CSRAddress structure that
              // maps on top of the registers. We can then
              // read and write registers directly by name.
               FdoData->CSRAddress = MmMapIoSpace(

                        resourceTrans->u.Memory.Start,

                        resourceTrans->u.Memory.Length,

                        MmNonCached);

               if (FdoData->CSRAddress == NULL) {

                  DebugPrint(ERROR, DBG_INIT,

                  "MmMapIoSpace failed\n");

               status = STATUS_INSUFFICIENT_RESOURCES;

               }

          break;

    }
    /* ---- END seed 000 section 8 resource loop ---- */
    }
    if (!NT_SUCCESS(status))
        return status;

    if (FdoData->CSRAddress != NULL)
        DbgPrint("nic: CSR memory BAR at physical %#llx mapped at %p\n",
                 (unsigned long long)FdoData->MemPhysAddress.QuadPart, FdoData->CSRAddress);
    if (FdoData->IoBaseAddress != NULL)
        DbgPrint("nic: CSR I/O BAR at port %#lx, %u ports\n", (unsigned long)(ULONG_PTR)FdoData->IoBaseAddress,
                 FdoData->IoRange);
    if (FdoData->ReadPort == NULL)
        return STATUS_DEVICE_CONFIGURATION_ERROR;

    if (FdoData->ReadPort == (PREAD_CSR)READ_PORT_USHORT) {
        DbgPrint("nic: register access through READ_PORT_USHORT / WRITE_PORT_USHORT\n");
        base = (PUCHAR)FdoData->IoBaseAddress;
    } else {
        DbgPrint("nic: register access through READ_REGISTER_USHORT / WRITE_REGISTER_USHORT\n");
        base = FdoData->CSRAddress;
    }
    WRITE_CSR(FdoData, (PUSHORT)(base + SCB_COMMAND), (USHORT)SCB_CUC_START);
    csrStatus = FdoData->ReadPort((PUSHORT)(base + SCB_STATUS));
    DbgPrint("nic: SCB command 0x%04x written, SCB status 0x%04x\n", SCB_CUC_START, csrStatus);
    if (FdoData->CSRAddress != NULL)
        DbgPrint("nic: SCB command read through the memory mapping: 0x%04x\n",
                 READ_REGISTER_USHORT((PUSHORT)(FdoData->CSRAddress + SCB_COMMAND)));
    return STATUS_SUCCESS;
}

static VOID RemoveDevice(PFDO_DATA FdoData)
{
    if (FdoData->CSRAddress != NULL) {
        MmUnmapIoSpace(FdoData->CSRAddress, 0x1000);
        FdoData->CSRAddress = NULL;
    }
    ExDeleteNPagedLookasideList (
                 &FdoData->RecvLookasideList);
    ExFreePoolWithTag(FdoData->State, 'AciN');
    IoDetachDevice(FdoData->NextLowerDriver);
    IoDeleteDevice(FdoData->Self);
    DbgPrint("nic: removed\n");
}

static NTSTATUS Pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PFDO_DATA FdoData = (PFDO_DATA)DeviceObject->DeviceExtension;
    NTSTATUS status;

    /* No IoCallDriver in ntmem yet: the PDO has nothing to do, so the FDO
     * completes PnP IRPs itself. */
    switch (stack->MinorFunction) {
    case IRP_MN_START_DEVICE:
        status = StartDevice(FdoData, stack);
        break;
    case IRP_MN_REMOVE_DEVICE:
        Irp->IoStatus.Status = STATUS_SUCCESS;
        IoCompleteRequest(Irp, IO_NO_INCREMENT);
        RemoveDevice(FdoData);
        return STATUS_SUCCESS;
    default:
        status = Irp->IoStatus.Status;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT PhysicalDeviceObject)
{
    PDEVICE_OBJECT device;
    PFDO_DATA FdoData;
    NTSTATUS status;

    status = IoCreateDevice(DriverObject, sizeof(FDO_DATA), NULL, FILE_DEVICE_NETWORK, 0, FALSE, &device);
    if (!NT_SUCCESS(status))
        return status;
    FdoData = (PFDO_DATA)device->DeviceExtension;
    FdoData->Self = device;
    KeInitializeSpinLock(&FdoData->Lock);
    FdoData->State = ExAllocatePoolWithTag(NonPagedPool, sizeof(NIC_STATE), 'AciN');
    if (FdoData->State == NULL) {
        IoDeleteDevice(device);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlZeroMemory(FdoData->State, sizeof(NIC_STATE));
    ExInitializeNPagedLookasideList
          (&FdoData->RecvLookasideList,
           NULL,
           NULL,
           0,
           RecvBlockSize,
           'LciN',
           0);
    FdoData->NextLowerDriver = IoAttachDeviceToDeviceStack(device, PhysicalDeviceObject);
    if (FdoData->NextLowerDriver == NULL) {
        ExDeleteNPagedLookasideList(&FdoData->RecvLookasideList);
        ExFreePoolWithTag(FdoData->State, 'AciN');
        IoDeleteDevice(device);
        return STATUS_NO_SUCH_DEVICE;
    }
    device->Flags |= DO_BUFFERED_IO;
    device->Flags &= ~DO_DEVICE_INITIALIZING;
    DbgPrint("nic: adapter state at %p, receive list head at %p\n", FdoData->State, &FdoData->RecvLookasideList);
    return STATUS_SUCCESS;
}

static VOID NicUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("nic: unloaded\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->MajorFunction[IRP_MJ_PNP] = Pnp;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = DeviceControl;
    DriverObject->DriverUnload = NicUnload;
    return STATUS_SUCCESS;
}
