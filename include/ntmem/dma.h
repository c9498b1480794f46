/*
 * ntmem: DMA adapters, common buffers, map registers and scatter/gather lists
 * (IoGetDmaAdapter and DMA_OPERATIONS). Included by wdm.h; declares only what
 * ntmem implements. Written from Microsoft's public documentation of wdm.h
 * ("DEVICE_DESCRIPTION", "DMA_ADAPTER", "DMA_OPERATIONS", "SCATTER_GATHER_LIST",
 * "IO_ALLOCATION_ACTION"): names, types and values are the WDK's. AMD64 layouts,
 * offsets checked below.
 *
 * The DMA routines are reached only through the adapter's DMA_OPERATIONS table;
 * IoGetDmaAdapter is the one export. A version-2 or 3 table has
 * BuildMdlFromScatterGatherList NULL (ntmem does not implement it). Version 3
 * (Windows 8 machines only) ends at CancelMappedTransfer; the Windows 10 slots
 * after it are not declared.
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

/* Version 3 (Windows 8). */
#define DMA_ADAPTER_INFO_VERSION1 1
#define ADAPTER_INFO_SYNCHRONOUS_CALLBACK 0x0001
#define ADAPTER_INFO_API_BYPASS 0x0002
#define DMA_TRANSFER_INFO_VERSION1 1
#define DMA_TRANSFER_CONTEXT_VERSION1 1
#define DMA_TRANSFER_CONTEXT_SIZE_V1 128
#define DMA_SYNCHRONOUS_CALLBACK 0x01

typedef struct _DMA_ADAPTER_INFO_V1 {
    ULONG ReadDmaCounterAvailable;
    ULONG ScatterGatherLimit;
    ULONG DmaAddressWidth;
    ULONG Flags;
    ULONG MinimumTransferUnit;
} DMA_ADAPTER_INFO_V1, *PDMA_ADAPTER_INFO_V1;
_Static_assert(sizeof(DMA_ADAPTER_INFO_V1) == 0x14, "DMA_ADAPTER_INFO_V1 size");

typedef struct _DMA_ADAPTER_INFO {
    ULONG Version;
    union {
        DMA_ADAPTER_INFO_V1 V1;
    };
} DMA_ADAPTER_INFO, *PDMA_ADAPTER_INFO;
_Static_assert(__builtin_offsetof(DMA_ADAPTER_INFO, V1) == 0x04, "DMA_ADAPTER_INFO layout");
_Static_assert(sizeof(DMA_ADAPTER_INFO) == 0x18, "DMA_ADAPTER_INFO size");

typedef struct _DMA_TRANSFER_INFO_V1 {
    ULONG MapRegisterCount;
    ULONG ScatterGatherElementCount;
    ULONG ScatterGatherListSize;
} DMA_TRANSFER_INFO_V1, *PDMA_TRANSFER_INFO_V1;
_Static_assert(sizeof(DMA_TRANSFER_INFO_V1) == 0x0C, "DMA_TRANSFER_INFO_V1 size");

typedef struct _DMA_TRANSFER_INFO {
    ULONG Version;
    union {
        DMA_TRANSFER_INFO_V1 V1;
    };
} DMA_TRANSFER_INFO, *PDMA_TRANSFER_INFO;
_Static_assert(__builtin_offsetof(DMA_TRANSFER_INFO, V1) == 0x04, "DMA_TRANSFER_INFO layout");
_Static_assert(sizeof(DMA_TRANSFER_INFO) == 0x10, "DMA_TRANSFER_INFO size");

typedef enum _DMA_COMPLETION_STATUS { DmaComplete, DmaAborted, DmaError, DmaCancelled } DMA_COMPLETION_STATUS,
    *PDMA_COMPLETION_STATUS;

typedef ULONG NODE_REQUIREMENT;
#define MM_ANY_NODE_OK 0x80000000

typedef VOID DMA_COMPLETION_ROUTINE(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                    PVOID CompletionContext, DMA_COMPLETION_STATUS Status);
typedef DMA_COMPLETION_ROUTINE *PDMA_COMPLETION_ROUTINE;

typedef NTSTATUS (*PGET_DMA_ADAPTER_INFO)(struct _DMA_ADAPTER *DmaAdapter, PDMA_ADAPTER_INFO AdapterInfo);
typedef NTSTATUS (*PGET_DMA_TRANSFER_INFO)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, ULONGLONG Offset, ULONG Length,
                                           BOOLEAN WriteOnly, PDMA_TRANSFER_INFO TransferInfo);
typedef NTSTATUS (*PINITIALIZE_DMA_TRANSFER_CONTEXT)(struct _DMA_ADAPTER *DmaAdapter, PVOID DmaTransferContext);
typedef PVOID (*PALLOCATE_COMMON_BUFFER_EX)(struct _DMA_ADAPTER *DmaAdapter, PPHYSICAL_ADDRESS MaximumAddress,
                                            ULONG Length, PPHYSICAL_ADDRESS LogicalAddress, BOOLEAN CacheEnabled,
                                            NODE_REQUIREMENT PreferredNode);
typedef NTSTATUS (*PALLOCATE_ADAPTER_CHANNEL_EX)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                                 PVOID DmaTransferContext, ULONG NumberOfMapRegisters, ULONG Flags,
                                                 PDRIVER_CONTROL ExecutionRoutine, PVOID ExecutionContext,
                                                 PVOID *MapRegisterBase);
typedef NTSTATUS (*PCONFIGURE_ADAPTER_CHANNEL)(struct _DMA_ADAPTER *DmaAdapter, ULONG FunctionNumber, PVOID Context);
typedef BOOLEAN (*PCANCEL_ADAPTER_CHANNEL)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                           PVOID DmaTransferContext);
typedef NTSTATUS (*PMAP_TRANSFER_EX)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
                                     ULONGLONG Offset, ULONG DeviceOffset, PULONG Length, BOOLEAN WriteToDevice,
                                     PSCATTER_GATHER_LIST ScatterGatherBuffer, ULONG ScatterGatherBufferLength,
                                     PDMA_COMPLETION_ROUTINE DmaCompletionRoutine, PVOID CompletionContext);
typedef NTSTATUS (*PGET_SCATTER_GATHER_LIST_EX)(struct _DMA_ADAPTER *DmaAdapter, struct _DEVICE_OBJECT *DeviceObject,
                                                PVOID DmaTransferContext, PMDL Mdl, ULONGLONG Offset, ULONG Length,
                                                ULONG Flags, PDRIVER_LIST_CONTROL ExecutionRoutine, PVOID Context,
                                                BOOLEAN WriteToDevice, PDMA_COMPLETION_ROUTINE DmaCompletionRoutine,
                                                PVOID CompletionContext, PSCATTER_GATHER_LIST *ScatterGatherList);
typedef NTSTATUS (*PBUILD_SCATTER_GATHER_LIST_EX)(struct _DMA_ADAPTER *DmaAdapter,
                                                  struct _DEVICE_OBJECT *DeviceObject, PVOID DmaTransferContext,
                                                  PMDL Mdl, ULONGLONG Offset, ULONG Length, ULONG Flags,
                                                  PDRIVER_LIST_CONTROL ExecutionRoutine, PVOID Context,
                                                  BOOLEAN WriteToDevice, PVOID ScatterGatherBuffer,
                                                  ULONG ScatterGatherLength,
                                                  PDMA_COMPLETION_ROUTINE DmaCompletionRoutine,
                                                  PVOID CompletionContext, PVOID ScatterGatherList);
typedef NTSTATUS (*PFLUSH_ADAPTER_BUFFERS_EX)(struct _DMA_ADAPTER *DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
                                              ULONGLONG Offset, ULONG Length, BOOLEAN WriteToDevice);
typedef VOID (*PFREE_ADAPTER_OBJECT)(struct _DMA_ADAPTER *DmaAdapter, IO_ALLOCATION_ACTION AllocationAction);
typedef NTSTATUS (*PCANCEL_MAPPED_TRANSFER)(struct _DMA_ADAPTER *DmaAdapter, PVOID DmaTransferContext);

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
    PGET_DMA_ADAPTER_INFO GetDmaAdapterInfo;
    PGET_DMA_TRANSFER_INFO GetDmaTransferInfo;
    PINITIALIZE_DMA_TRANSFER_CONTEXT InitializeDmaTransferContext;
    PALLOCATE_COMMON_BUFFER_EX AllocateCommonBufferEx;
    PALLOCATE_ADAPTER_CHANNEL_EX AllocateAdapterChannelEx;
    PCONFIGURE_ADAPTER_CHANNEL ConfigureAdapterChannel;
    PCANCEL_ADAPTER_CHANNEL CancelAdapterChannel;
    PMAP_TRANSFER_EX MapTransferEx;
    PGET_SCATTER_GATHER_LIST_EX GetScatterGatherListEx;
    PBUILD_SCATTER_GATHER_LIST_EX BuildScatterGatherListEx;
    PFLUSH_ADAPTER_BUFFERS_EX FlushAdapterBuffersEx;
    PFREE_ADAPTER_OBJECT FreeAdapterObject;
    PCANCEL_MAPPED_TRANSFER CancelMappedTransfer;
} DMA_OPERATIONS, *PDMA_OPERATIONS;
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, PutDmaAdapter) == 0x08, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, MapTransfer) == 0x40, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, PutScatterGatherList) == 0x60, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, BuildMdlFromScatterGatherList) == 0x78, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, GetDmaAdapterInfo) == 0x80, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, MapTransferEx) == 0xB8, "DMA_OPERATIONS layout");
_Static_assert(__builtin_offsetof(DMA_OPERATIONS, FlushAdapterBuffersEx) == 0xD0, "DMA_OPERATIONS layout");
_Static_assert(sizeof(DMA_OPERATIONS) == 0xE8, "DMA_OPERATIONS size (version 3, Windows 8)");

typedef struct _DMA_ADAPTER {
    USHORT Version;
    USHORT Size;
    PDMA_OPERATIONS DmaOperations;
} DMA_ADAPTER, *PDMA_ADAPTER;
_Static_assert(__builtin_offsetof(DMA_ADAPTER, DmaOperations) == 0x08, "DMA_ADAPTER layout");
_Static_assert(sizeof(DMA_ADAPTER) == 0x10, "DMA_ADAPTER size");

/* IoGetDmaAdapter: PASSIVE_LEVEL. NULL for a description version this edition's HAL
 * does not support (2 before Windows XP, 3 before Windows 8). */
NTKERNELAPI PDMA_ADAPTER IoGetDmaAdapter(struct _DEVICE_OBJECT *PhysicalDeviceObject,
                                         PDEVICE_DESCRIPTION DeviceDescription, PULONG NumberOfMapRegisters);

/* On x86 and x64 DMA is cache-coherent: the WDK's AMD64 KeFlushIoBuffers is a macro
 * that does nothing. */
#define KeFlushIoBuffers(Mdl, ReadOperation, DmaOperation) ((void)(Mdl), (void)(ReadOperation), (void)(DmaOperation))

#endif
