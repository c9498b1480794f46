/*
 * ntmem: DMA adapters, common buffers, map registers and scatter/gather lists
 * (IoGetDmaAdapter and DMA_OPERATIONS). Included by wdm.h; declares only what
 * ntmem implements. Written from Microsoft's public documentation of wdm.h
 * ("DEVICE_DESCRIPTION", "DMA_ADAPTER", "DMA_OPERATIONS", "SCATTER_GATHER_LIST",
 * "IO_ALLOCATION_ACTION"): names, types and values are the WDK's. AMD64 layouts,
 * offsets checked below.
 *
 * The DMA routines are reached only through the adapter's DMA_OPERATIONS table;
 * IoGetDmaAdapter is the one export. A version-2 table has
 * BuildMdlFromScatterGatherList NULL (ntmem does not implement it).
 */
#ifndef NTMEM_DMA_H
#define NTMEM_DMA_H

#ifndef STATUS_BUFFER_TOO_SMALL
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023L)
#endif

#define DEVICE_DESCRIPTION_VERSION 0
#define DEVICE_DESCRIPTION_VERSION1 1
#define DEVICE_DESCRIPTION_VERSION2 2
#define DEVICE_DESCRIPTION_VERSION3 3

typedef enum _DMA_WIDTH { Width8Bits, Width16Bits, Width32Bits, Width64Bits, WidthNoWrap, MaximumDmaWidth } DMA_WIDTH,
    *PDMA_WIDTH;

typedef enum _DMA_SPEED { Compatible, TypeA, TypeB, TypeC, TypeF, MaximumDmaSpeed } DMA_SPEED, *PDMA_SPEED;

typedef struct _DEVICE_DESCRIPTION {
    ULONG Version;
    BOOLEAN Master;
    BOOLEAN ScatterGather;
    BOOLEAN DemandMode;
    BOOLEAN AutoInitialize;
    BOOLEAN Dma32BitAddresses;
    BOOLEAN IgnoreCount;
    BOOLEAN Reserved1;
    BOOLEAN Dma64BitAddresses;
    ULONG BusNumber;
    ULONG DmaChannel;
    INTERFACE_TYPE InterfaceType;
    DMA_WIDTH DmaWidth;
    DMA_SPEED DmaSpeed;
    ULONG MaximumLength;
    ULONG DmaPort;
    ULONG DmaAddressWidth;
    ULONG DmaControllerInstance;
    ULONG DmaRequestLine;
    PHYSICAL_ADDRESS DeviceAddress;
} DEVICE_DESCRIPTION, *PDEVICE_DESCRIPTION;
_Static_assert(__builtin_offsetof(DEVICE_DESCRIPTION, InterfaceType) == 0x14, "DEVICE_DESCRIPTION layout");
_Static_assert(__builtin_offsetof(DEVICE_DESCRIPTION, MaximumLength) == 0x20, "DEVICE_DESCRIPTION layout");
_Static_assert(__builtin_offsetof(DEVICE_DESCRIPTION, DeviceAddress) == 0x38, "DEVICE_DESCRIPTION layout");
_Static_assert(sizeof(DEVICE_DESCRIPTION) == 0x40, "DEVICE_DESCRIPTION size");

typedef enum _IO_ALLOCATION_ACTION {
    KeepObject = 1,
    DeallocateObject,
    DeallocateObjectKeepRegisters
} IO_ALLOCATION_ACTION, *PIO_ALLOCATION_ACTION;

typedef IO_ALLOCATION_ACTION DRIVER_CONTROL(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp,
                                            PVOID MapRegisterBase, PVOID Context);
typedef DRIVER_CONTROL *PDRIVER_CONTROL;

typedef struct _SCATTER_GATHER_ELEMENT {
    PHYSICAL_ADDRESS Address;
    ULONG Length;
    ULONG_PTR Reserved;
} SCATTER_GATHER_ELEMENT, *PSCATTER_GATHER_ELEMENT;
_Static_assert(__builtin_offsetof(SCATTER_GATHER_ELEMENT, Reserved) == 0x10, "SCATTER_GATHER_ELEMENT layout");
_Static_assert(sizeof(SCATTER_GATHER_ELEMENT) == 0x18, "SCATTER_GATHER_ELEMENT size");

typedef struct _SCATTER_GATHER_LIST {
    ULONG NumberOfElements;
    ULONG_PTR Reserved;
    SCATTER_GATHER_ELEMENT Elements[];
} SCATTER_GATHER_LIST, *PSCATTER_GATHER_LIST;
_Static_assert(__builtin_offsetof(SCATTER_GATHER_LIST, Elements) == 0x10, "SCATTER_GATHER_LIST layout");

typedef VOID DRIVER_LIST_CONTROL(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp,
                                 struct _SCATTER_GATHER_LIST *ScatterGather, PVOID Context);
typedef DRIVER_LIST_CONTROL *PDRIVER_LIST_CONTROL;

struct _DMA_ADAPTER;

typedef VOID (*PPUT_DMA_ADAPTER)(struct _DMA_ADAPTER *DmaAdapter);
typedef PVOID (*PALLOCATE_COMMON_BUFFER)(struct _DMA_ADAPTER *DmaAdapter, ULONG Length,
                                         PPHYSICAL_ADDRESS LogicalAddress, BOOLEAN CacheEnabled);
typedef VOID (*PFREE_COMMON_BUFFER)(struct _DMA_ADAPTER *DmaAdapter, ULONG Length, PHYSICAL_ADDRESS LogicalAddress,
                                    PVOID VirtualAddress, BOOLEAN CacheEnabled);
typedef NTSTATUS (*PALLOCATE_ADAPTER_CHANNEL)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                              ULONG NumberOfMapRegisters, PDRIVER_CONTROL ExecutionRoutine,
                                              PVOID Context);
typedef BOOLEAN (*PFLUSH_ADAPTER_BUFFERS)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
                                          PVOID CurrentVa, ULONG Length, BOOLEAN WriteToDevice);
typedef VOID (*PFREE_ADAPTER_CHANNEL)(struct _DMA_ADAPTER *DmaAdapter);
typedef VOID (*PFREE_MAP_REGISTERS)(struct _DMA_ADAPTER *DmaAdapter, PVOID MapRegisterBase,
                                    ULONG NumberOfMapRegisters);
typedef PHYSICAL_ADDRESS (*PMAP_TRANSFER)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
                                          PVOID CurrentVa, PULONG Length, BOOLEAN WriteToDevice);
typedef ULONG (*PGET_DMA_ALIGNMENT)(struct _DMA_ADAPTER *DmaAdapter);
typedef ULONG (*PREAD_DMA_COUNTER)(struct _DMA_ADAPTER *DmaAdapter);
typedef NTSTATUS (*PGET_SCATTER_GATHER_LIST)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                             PMDL Mdl, PVOID CurrentVa, ULONG Length,
                                             PDRIVER_LIST_CONTROL ExecutionRoutine, PVOID Context,
                                             BOOLEAN WriteToDevice);
typedef VOID (*PPUT_SCATTER_GATHER_LIST)(struct _DMA_ADAPTER *DmaAdapter, PSCATTER_GATHER_LIST ScatterGather,
                                         BOOLEAN WriteToDevice);
typedef NTSTATUS (*PCALCULATE_SCATTER_GATHER_LIST_SIZE)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, PVOID CurrentVa,
                                                        ULONG Length, PULONG ScatterGatherListSize,
                                                        PULONG pNumberOfMapRegisters);
typedef NTSTATUS (*PBUILD_SCATTER_GATHER_LIST)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                               PMDL Mdl, PVOID CurrentVa, ULONG Length,
                                               PDRIVER_LIST_CONTROL ExecutionRoutine, PVOID Context,
                                               BOOLEAN WriteToDevice, PVOID ScatterGatherBuffer,
                                               ULONG ScatterGatherLength);
typedef NTSTATUS (*PBUILD_MDL_FROM_SCATTER_GATHER_LIST)(struct _DMA_ADAPTER *DmaAdapter,
                                                        PSCATTER_GATHER_LIST ScatterGather, PMDL OriginalMdl,
                                                        PMDL *TargetMdl);

typedef struct _DMA_OPERATIONS {
    ULONG Size;
    PPUT_DMA_ADAPTER PutDmaAdapter;
    PALLOCATE_COMMON_BUFFER AllocateCommonBuffer;
    PFREE_COMMON_BUFFER FreeCommonBuffer;
    PALLOCATE_ADAPTER_CHANNEL AllocateAdapterChannel;
    PFLUSH_ADAPTER_BUFFERS FlushAdapterBuffers;
    PFREE_ADAPTER_CHANNEL FreeAdapterChannel;
    PFREE_MAP_REGISTERS FreeMapRegisters;
    PMAP_TRANSFER MapTransfer;
    PGET_DMA_ALIGNMENT GetDmaAlignment;
    PREAD_DMA_COUNTER ReadDmaCounter;
    PGET_SCATTER_GATHER_LIST GetScatterGatherList;
    PPUT_SCATTER_GATHER_LIST PutScatterGatherList;
    PCALCULATE_SCATTER_GATHER_LIST_SIZE CalculateScatterGatherList;
    PBUILD_SCATTER_GATHER_LIST BuildScatterGatherList;
    PBUILD_MDL_FROM_SCATTER_GATHER_LIST BuildMdlFromScatterGatherList;
} DMA_OPERATIONS, *PDMA_OPERATIONS;
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, PutDmaAdapter) == 0x08, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, MapTransfer) == 0x40, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, PutScatterGatherList) == 0x60, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, BuildMdlFromScatterGatherList) == 0x78, "DMA_OPERATIONS layout");
_Static_assert(sizeof(DMA_OPERATIONS) == 0x80, "DMA_OPERATIONS size (version 2)");

typedef struct _DMA_ADAPTER {
    USHORT Version;
    USHORT Size;
    PDMA_OPERATIONS DmaOperations;
} DMA_ADAPTER, *PDMA_ADAPTER;
_Static_assert(__builtin_offsetof(DMA_ADAPTER, DmaOperations) == 0x08, "DMA_ADAPTER layout");
_Static_assert(sizeof(DMA_ADAPTER) == 0x10, "DMA_ADAPTER size");

/* IoGetDmaAdapter: PASSIVE_LEVEL. NULL for a description version this edition's HAL
 * does not support (2 before Windows XP, 3 before Windows 8: every ntmem edition). */
NTKERNELAPI PDMA_ADAPTER IoGetDmaAdapter(struct _DEVICE_OBJECT *PhysicalDeviceObject,
                                         PDEVICE_DESCRIPTION DeviceDescription, PULONG NumberOfMapRegisters);

/* On x86 and x64 DMA is cache-coherent: the WDK's AMD64 KeFlushIoBuffers is a macro
 * that does nothing. */
#define KeFlushIoBuffers(Mdl, ReadOperation, DmaOperation) ((void)(Mdl), (void)(ReadOperation), (void)(DmaOperation))

#endif
