/*
 * ntmem: MDLs, user buffers and I/O requests (seed 000 sections 4 and 9).
 * Included by wdm.h; declares only what ntmem implements. Written from Microsoft's
 * public documentation of wdm.h: names, types and values are the WDK's.
 *
 * The structures are the AMD64 layouts (drivers are 64-bit host code); the parts
 * of IRP and DEVICE_OBJECT that drivers must not touch are padding here, and the
 * offsets of the rest are checked below.
 */
#ifndef NTMEM_IO_H
#define NTMEM_IO_H

#ifndef STATUS_DATATYPE_MISALIGNMENT
#define STATUS_DATATYPE_MISALIGNMENT ((NTSTATUS)0x80000002L)
#endif
#ifndef STATUS_BUFFER_OVERFLOW
#define STATUS_BUFFER_OVERFLOW ((NTSTATUS)0x80000005L)
#endif
#ifndef STATUS_NO_SUCH_DEVICE
#define STATUS_NO_SUCH_DEVICE ((NTSTATUS)0xC000000EL)
#endif
#ifndef STATUS_DEVICE_CONFIGURATION_ERROR
#define STATUS_DEVICE_CONFIGURATION_ERROR ((NTSTATUS)0xC0000182L)
#endif
#ifndef STATUS_INVALID_USER_BUFFER
#define STATUS_INVALID_USER_BUFFER ((NTSTATUS)0xC00000E8L)
#endif

typedef CCHAR KPROCESSOR_MODE;
typedef enum _MODE { KernelMode, UserMode, MaximumMode } MODE;

/* ---- MDLs --------------------------------------------------------------- */

typedef ULONG_PTR PFN_NUMBER, *PPFN_NUMBER;

typedef struct _MDL {
    struct _MDL *Next;
    CSHORT Size;
    CSHORT MdlFlags;
    struct _EPROCESS *Process;
    PVOID MappedSystemVa;
    PVOID StartVa;
    ULONG ByteCount;
    ULONG ByteOffset;
} MDL, *PMDL;
_Static_assert(sizeof(MDL) == 0x30, "MDL size");
_Static_assert(__builtin_offsetof(MDL, ByteCount) == 0x28, "MDL layout");

#define MDL_MAPPED_TO_SYSTEM_VA 0x0001
#define MDL_PAGES_LOCKED 0x0002
#define MDL_SOURCE_IS_NONPAGED_POOL 0x0004
#define MDL_ALLOCATED_FIXED_SIZE 0x0008
#define MDL_PARTIAL 0x0010
#define MDL_PARTIAL_HAS_BEEN_MAPPED 0x0020
#define MDL_IO_PAGE_READ 0x0040
#define MDL_WRITE_OPERATION 0x0080
#define MDL_PARENT_MAPPED_SYSTEM_VA 0x0100
#define MDL_FREE_EXTRA_PTES 0x0200
#define MDL_IO_SPACE 0x0800
#define MDL_MAPPING_CAN_FAIL 0x2000

typedef enum _LOCK_OPERATION { IoReadAccess, IoWriteAccess, IoModifyAccess } LOCK_OPERATION;

typedef enum _MM_PAGE_PRIORITY {
    LowPagePriority = 0,
    NormalPagePriority = 16,
    HighPagePriority = 32
} MM_PAGE_PRIORITY;
/* Flags ORed into a Priority argument (accepted; ntmem does not change the
 * mapping's protection for them). */
#define MdlMappingNoWrite 0x80000000
#define MdlMappingNoExecute 0x40000000

#define MmGetMdlVirtualAddress(Mdl) ((PVOID)((PCHAR)((Mdl)->StartVa) + (Mdl)->ByteOffset))
#define MmGetMdlByteCount(Mdl) ((Mdl)->ByteCount)
#define MmGetMdlByteOffset(Mdl) ((Mdl)->ByteOffset)
#define MmGetMdlPfnArray(Mdl) ((PPFN_NUMBER)((Mdl) + 1))
#define ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size) \
    ((ULONG)((((ULONG_PTR)(Va) & (PAGE_SIZE - 1)) + (Size) + (PAGE_SIZE - 1)) >> PAGE_SHIFT))

struct _IRP;
/* SecondaryBuffer and ChargeQuota: with an Irp, a primary buffer's MDL becomes
 * Irp->MdlAddress, a secondary one goes at the end of its chain. Quota is not charged. */
NTKERNELAPI PMDL IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer,
                               BOOLEAN ChargeQuota, struct _IRP *Irp);
NTKERNELAPI VOID IoFreeMdl(PMDL Mdl);
NTKERNELAPI VOID MmBuildMdlForNonPagedPool(PMDL MemoryDescriptorList);
/* Raises STATUS_ACCESS_VIOLATION (an SEH exception) when the buffer cannot be locked. */
NTKERNELAPI VOID MmProbeAndLockPages(PMDL MemoryDescriptorList, KPROCESSOR_MODE AccessMode,
                                     LOCK_OPERATION Operation);
NTKERNELAPI VOID MmUnlockPages(PMDL MemoryDescriptorList);
NTKERNELAPI PVOID MmMapLockedPagesSpecifyCache(PMDL MemoryDescriptorList, KPROCESSOR_MODE AccessMode,
                                               MEMORY_CACHING_TYPE CacheType, PVOID RequestedAddress,
                                               ULONG BugCheckOnFailure, ULONG Priority);
NTKERNELAPI VOID MmUnmapLockedPages(PVOID BaseAddress, PMDL MemoryDescriptorList);
/* Reserved mappings: system PTEs set aside up front (plus two invisible header PTEs),
 * mapped and unmapped later; misuse stops the machine with SYSTEM_PTE_MISUSE (0xDA). */
NTKERNELAPI PVOID MmAllocateMappingAddress(SIZE_T NumberOfBytes, ULONG PoolTag);
NTKERNELAPI VOID MmFreeMappingAddress(PVOID BaseAddress, ULONG PoolTag);
NTKERNELAPI PVOID MmMapLockedPagesWithReservedMapping(PVOID MappingAddress, ULONG PoolTag,
                                                      PMDL MemoryDescriptorList,
                                                      MEMORY_CACHING_TYPE CacheType);
NTKERNELAPI VOID MmUnmapReservedMapping(PVOID BaseAddress, ULONG PoolTag, PMDL MemoryDescriptorList);

/* A macro, as in the WDK: the MDL's own mapping if it has one, else a new system mapping. */
#define MmGetSystemAddressForMdlSafe(Mdl, Priority)                                          \
    (((Mdl)->MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL))             \
         ? ((Mdl)->MappedSystemVa)                                                           \
         : MmMapLockedPagesSpecifyCache((Mdl), KernelMode, MmCached, NULL, FALSE, (Priority)))

/* Raise STATUS_ACCESS_VIOLATION or STATUS_DATATYPE_MISALIGNMENT as documented. */
NTKERNELAPI VOID ProbeForRead(const volatile VOID *Address, SIZE_T Length, ULONG Alignment);
NTKERNELAPI VOID ProbeForWrite(volatile VOID *Address, SIZE_T Length, ULONG Alignment);

/* ---- I/O control codes and device types: devioctl.h ---------------------- */

#include "devioctl.h"

#define FILE_DEVICE_SECURE_OPEN 0x00000100

/* ---- Devices ------------------------------------------------------------ */

#define DO_VERIFY_VOLUME 0x00000002
#define DO_BUFFERED_IO 0x00000004
#define DO_EXCLUSIVE 0x00000008
#define DO_DIRECT_IO 0x00000010
#define DO_MAP_IO_BUFFER 0x00000020
#define DO_DEVICE_INITIALIZING 0x00000080
#define DO_POWER_PAGABLE 0x00002000

/* A device queue (KDEVICE_QUEUE, x64) and its entries: the queue behind IoStartPacket. */
typedef struct _KDEVICE_QUEUE_ENTRY {
    LIST_ENTRY DeviceListEntry;
    ULONG SortKey;
    BOOLEAN Inserted;
} KDEVICE_QUEUE_ENTRY, *PKDEVICE_QUEUE_ENTRY, *PRKDEVICE_QUEUE_ENTRY;
_Static_assert(sizeof(KDEVICE_QUEUE_ENTRY) == 0x18, "KDEVICE_QUEUE_ENTRY size");

typedef struct _KDEVICE_QUEUE {
    CSHORT Type;
    CSHORT Size;
    LIST_ENTRY DeviceListHead;
    KSPIN_LOCK Lock;
    union {
        BOOLEAN Busy;
        struct {
            LONG64 Reserved : 8;
            LONG64 Hint : 56;
        };
    };
} KDEVICE_QUEUE, *PKDEVICE_QUEUE, *PRKDEVICE_QUEUE;
_Static_assert(sizeof(KDEVICE_QUEUE) == 0x28, "KDEVICE_QUEUE size");
_Static_assert(__builtin_offsetof(KDEVICE_QUEUE, Busy) == 0x20, "KDEVICE_QUEUE layout");

NTKERNELAPI VOID KeInitializeDeviceQueue(PKDEVICE_QUEUE DeviceQueue);
/* FALSE: the queue was idle (now busy) and the entry is not queued; TRUE: queued. */
NTKERNELAPI BOOLEAN KeInsertDeviceQueue(PKDEVICE_QUEUE DeviceQueue, PKDEVICE_QUEUE_ENTRY DeviceQueueEntry);
NTKERNELAPI BOOLEAN KeInsertByKeyDeviceQueue(PKDEVICE_QUEUE DeviceQueue, PKDEVICE_QUEUE_ENTRY DeviceQueueEntry,
                                             ULONG SortKey);
/* NULL when empty (the queue is then idle). */
NTKERNELAPI PKDEVICE_QUEUE_ENTRY KeRemoveDeviceQueue(PKDEVICE_QUEUE DeviceQueue);
NTKERNELAPI PKDEVICE_QUEUE_ENTRY KeRemoveByKeyDeviceQueue(PKDEVICE_QUEUE DeviceQueue, ULONG SortKey);
NTKERNELAPI BOOLEAN KeRemoveEntryDeviceQueue(PKDEVICE_QUEUE DeviceQueue, PKDEVICE_QUEUE_ENTRY DeviceQueueEntry);

typedef struct DECLSPEC_ALIGN(16) _DEVICE_OBJECT {
    CSHORT Type;
    USHORT Size;
    LONG ReferenceCount;
    struct _DRIVER_OBJECT *DriverObject;
    struct _DEVICE_OBJECT *NextDevice;
    struct _DEVICE_OBJECT *AttachedDevice;
    struct _IRP *CurrentIrp;
    PVOID Timer;
    ULONG Flags;
    ULONG Characteristics;
    PVOID Vpb;
    PVOID DeviceExtension;
    DEVICE_TYPE DeviceType;
    CCHAR StackSize;
    ULONG_PTR ntmemQueue[9];       /* Queue (LIST_ENTRY / WAIT_CONTEXT_BLOCK) */
    ULONG AlignmentRequirement;
    KDEVICE_QUEUE DeviceQueue;
    ULONG_PTR ntmemDpc[8];         /* KDPC Dpc */
    ULONG ActiveThreadCount;
    PVOID SecurityDescriptor;
    ULONG_PTR ntmemDeviceLock[3];  /* KEVENT DeviceLock */
    USHORT SectorSize;
    USHORT Spare1;
    PVOID DeviceObjectExtension;
    PVOID Reserved;
} DEVICE_OBJECT, *PDEVICE_OBJECT;
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, Flags) == 0x30, "DEVICE_OBJECT layout");
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, DeviceExtension) == 0x40, "DEVICE_OBJECT layout");
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, AlignmentRequirement) == 0x98, "DEVICE_OBJECT layout");
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, CurrentIrp) == 0x20, "DEVICE_OBJECT layout");
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, DeviceQueue) == 0xa0, "DEVICE_OBJECT layout");
_Static_assert(__builtin_offsetof(DEVICE_OBJECT, SectorSize) == 0x130, "DEVICE_OBJECT layout");
_Static_assert(sizeof(DEVICE_OBJECT) == 0x150, "DEVICE_OBJECT size");

/* DeviceName is accepted and ignored: ntmem has no object namespace yet. */
NTKERNELAPI NTSTATUS IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize,
                                    PUNICODE_STRING DeviceName, DEVICE_TYPE DeviceType,
                                    ULONG DeviceCharacteristics, BOOLEAN Exclusive,
                                    PDEVICE_OBJECT *DeviceObject);
NTKERNELAPI VOID IoDeleteDevice(PDEVICE_OBJECT DeviceObject);
/* \DosDevices\X (the same link as \??\X) -> a device name; PASSIVE_LEVEL.
 * STATUS_OBJECT_NAME_COLLISION when the link exists; the link outlives the driver
 * unless deleted (the run's report lists the ones left). */
NTKERNELAPI NTSTATUS IoCreateSymbolicLink(PUNICODE_STRING SymbolicLinkName, PUNICODE_STRING DeviceName);
/* As IoCreateSymbolicLink (ntmem has no security model to leave the link unprotected in). */
NTKERNELAPI NTSTATUS IoCreateUnprotectedSymbolicLink(PUNICODE_STRING SymbolicLinkName, PUNICODE_STRING DeviceName);
/* Whether the machine supports WDM MajorVersion.MinorVersion: 1.10 Windows 2000, 1.20 XP,
 * 1.30 Server 2003, 6.00 Vista, 6.01 Windows 7, 6.02 Windows 8. */
NTKERNELAPI BOOLEAN IoIsWdmVersionAvailable(UCHAR MajorVersion, UCHAR MinorVersion);
/* STATUS_OBJECT_NAME_NOT_FOUND when it is not a link. */
NTKERNELAPI NTSTATUS IoDeleteSymbolicLink(PUNICODE_STRING SymbolicLinkName);

/* ---- IRPs --------------------------------------------------------------- */

#ifndef IRP_MJ_INTERNAL_DEVICE_CONTROL
#define IRP_MJ_INTERNAL_DEVICE_CONTROL 0x0f
#endif

/* Minor functions of IRP_MJ_PNP (ntmem sends START_DEVICE and REMOVE_DEVICE). */
#define IRP_MN_START_DEVICE 0x00
#define IRP_MN_QUERY_REMOVE_DEVICE 0x01
#define IRP_MN_REMOVE_DEVICE 0x02
#define IRP_MN_CANCEL_REMOVE_DEVICE 0x03
#define IRP_MN_STOP_DEVICE 0x04
#define IRP_MN_QUERY_STOP_DEVICE 0x05
#define IRP_MN_CANCEL_STOP_DEVICE 0x06
#define IRP_MN_SURPRISE_REMOVAL 0x17

/* Minor functions of IRP_MJ_POWER. */
#define IRP_MN_WAIT_WAKE 0x00
#define IRP_MN_POWER_SEQUENCE 0x01
#define IRP_MN_SET_POWER 0x02
#define IRP_MN_QUERY_POWER 0x03

typedef enum _SYSTEM_POWER_STATE {
    PowerSystemUnspecified = 0,
    PowerSystemWorking = 1,
    PowerSystemSleeping1 = 2,
    PowerSystemSleeping2 = 3,
    PowerSystemSleeping3 = 4,
    PowerSystemHibernate = 5,
    PowerSystemShutdown = 6,
    PowerSystemMaximum = 7
} SYSTEM_POWER_STATE, *PSYSTEM_POWER_STATE;

typedef enum _DEVICE_POWER_STATE {
    PowerDeviceUnspecified = 0,
    PowerDeviceD0,
    PowerDeviceD1,
    PowerDeviceD2,
    PowerDeviceD3,
    PowerDeviceMaximum
} DEVICE_POWER_STATE, *PDEVICE_POWER_STATE;

typedef union _POWER_STATE {
    SYSTEM_POWER_STATE SystemState;
    DEVICE_POWER_STATE DeviceState;
} POWER_STATE, *PPOWER_STATE;

typedef enum _POWER_STATE_TYPE { SystemPowerState = 0, DevicePowerState } POWER_STATE_TYPE, *PPOWER_STATE_TYPE;

typedef enum _POWER_ACTION {
    PowerActionNone = 0,
    PowerActionReserved,
    PowerActionSleep,
    PowerActionHibernate,
    PowerActionShutdown,
    PowerActionShutdownReset,
    PowerActionShutdownOff,
    PowerActionWarmEject,
    PowerActionDisplayOff
} POWER_ACTION, *PPOWER_ACTION;

typedef struct _IO_STATUS_BLOCK {
    union {
        NTSTATUS Status;
        PVOID Pointer;
    };
    ULONG_PTR Information;
} IO_STATUS_BLOCK, *PIO_STATUS_BLOCK;

/* CompletionRoutine (PIO_COMPLETION_ROUTINE, wdm.h): called as the IRP completes back up
 * to the driver that set it, with that driver's device (NULL if the IRP was its own
 * with no location for it). STATUS_MORE_PROCESSING_REQUIRED stops the completion. */
typedef struct _IO_STACK_LOCATION {
    UCHAR MajorFunction;
    UCHAR MinorFunction;
    UCHAR Flags;
    UCHAR Control;
    union {
        struct {
            ULONG Length;
            ULONG Key __attribute__((aligned(8)));
            ULONG Flags;
            LARGE_INTEGER ByteOffset;
        } Read;
        struct {
            ULONG Length;
            ULONG Key __attribute__((aligned(8)));
            ULONG Flags;
            LARGE_INTEGER ByteOffset;
        } Write;
        struct {
            ULONG OutputBufferLength;
            ULONG InputBufferLength __attribute__((aligned(8)));
            ULONG IoControlCode __attribute__((aligned(8)));
            PVOID Type3InputBuffer;
        } DeviceIoControl;
        struct {
            struct _IO_SECURITY_CONTEXT *SecurityContext;
            ULONG Options;
            USHORT FileAttributes __attribute__((aligned(8)));
            USHORT ShareAccess;
            ULONG EaLength __attribute__((aligned(8)));
        } Create;
        struct {
            PCM_RESOURCE_LIST AllocatedResources;
            PCM_RESOURCE_LIST AllocatedResourcesTranslated;
        } StartDevice;
        struct {
            ULONG SystemContext;
            POWER_STATE_TYPE Type __attribute__((aligned(8)));
            POWER_STATE State __attribute__((aligned(8)));
            POWER_ACTION ShutdownType __attribute__((aligned(8)));
        } Power;
        struct {
            SYSTEM_POWER_STATE PowerState;
        } WaitWake;
        struct {
            PVOID Argument1;
            PVOID Argument2;
            PVOID Argument3;
            PVOID Argument4;
        } Others;
    } Parameters;
    PDEVICE_OBJECT DeviceObject;
    struct _FILE_OBJECT *FileObject;
    PIO_COMPLETION_ROUTINE CompletionRoutine;
    PVOID Context;
} IO_STACK_LOCATION, *PIO_STACK_LOCATION;
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode) == 0x18,
               "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.Read.ByteOffset) == 0x18, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.StartDevice.AllocatedResourcesTranslated) == 0x10,
               "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.Create.ShareAccess) == 0x1a, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.Power.State) == 0x18, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.Power.ShutdownType) == 0x20, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Parameters.WaitWake.PowerState) == 0x08, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, DeviceObject) == 0x28, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, FileObject) == 0x30, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, CompletionRoutine) == 0x38, "IO_STACK_LOCATION layout");
_Static_assert(__builtin_offsetof(IO_STACK_LOCATION, Context) == 0x40, "IO_STACK_LOCATION layout");

/* Parameters.Create.SecurityContext: NULL in ntmem (no security model). */
typedef struct _IO_SECURITY_CONTEXT {
    PVOID SecurityQos;
    PVOID AccessState;
    ULONG DesiredAccess;
    ULONG FullCreateOptions;
} IO_SECURITY_CONTEXT, *PIO_SECURITY_CONTEXT;

/* A file object: one per open of a device (CreateFile / ZwCreateFile). FsContext and
 * FsContext2 are the driver's, to keep per-handle state; FileName is what follows
 * the device's name in the name opened (empty when the device itself was opened).
 * The x64 layout; Lock and Event are KEVENTs (not used by ntmem). */
typedef struct _FILE_OBJECT {
    CSHORT Type;
    CSHORT Size;
    PDEVICE_OBJECT DeviceObject;
    PVOID Vpb;
    PVOID FsContext;
    PVOID FsContext2;
    PVOID SectionObjectPointer;
    PVOID PrivateCacheMap;
    NTSTATUS FinalStatus;
    struct _FILE_OBJECT *RelatedFileObject;
    BOOLEAN LockOperation;
    BOOLEAN DeletePending;
    BOOLEAN ReadAccess;
    BOOLEAN WriteAccess;
    BOOLEAN DeleteAccess;
    BOOLEAN SharedRead;
    BOOLEAN SharedWrite;
    BOOLEAN SharedDelete;
    ULONG Flags;
    UNICODE_STRING FileName;
    LARGE_INTEGER CurrentByteOffset;
    ULONG Waiters;
    ULONG Busy;
    PVOID LastLock;
    UCHAR ntmemLock[0x18];
    UCHAR ntmemEvent[0x18];
    PVOID CompletionContext;
    ULONG_PTR IrpListLock;
    PVOID ntmemIrpList[2];
    PVOID FileObjectExtension;
} FILE_OBJECT, *PFILE_OBJECT;

/* The access rights of a file object (wdm.h). */
#define FILE_READ_DATA 0x0001
#define FILE_WRITE_DATA 0x0002
#define FILE_APPEND_DATA 0x0004

/* Opens the device ObjectName reaches (IRP_MJ_CREATE to the top of its stack, then
 * IRP_MJ_CLEANUP as the handle closes) and returns the referenced file object and the
 * device at the top of the stack; ObDereferenceObject(*FileObject) sends IRP_MJ_CLOSE. */
NTKERNELAPI NTSTATUS IoGetDeviceObjectPointer(PUNICODE_STRING ObjectName, ULONG DesiredAccess,
                                              PFILE_OBJECT *FileObject, PDEVICE_OBJECT *DeviceObject);
_Static_assert(__builtin_offsetof(FILE_OBJECT, FsContext) == 0x18, "FILE_OBJECT layout");
_Static_assert(__builtin_offsetof(FILE_OBJECT, ReadAccess) == 0x4a, "FILE_OBJECT layout");
_Static_assert(__builtin_offsetof(FILE_OBJECT, FileName) == 0x58, "FILE_OBJECT layout");
_Static_assert(__builtin_offsetof(FILE_OBJECT, ntmemIrpList) == 0xc0, "FILE_OBJECT layout");
_Static_assert(sizeof(FILE_OBJECT) == 0xd8, "FILE_OBJECT size");
_Static_assert(sizeof(IO_STACK_LOCATION) == 0x48, "IO_STACK_LOCATION size");

typedef struct _IRP {
    CSHORT Type;
    USHORT Size;
    PMDL MdlAddress;
    ULONG Flags;
    union {
        struct _IRP *MasterIrp;
        LONG IrpCount;
        PVOID SystemBuffer;
    } AssociatedIrp;
    LIST_ENTRY ThreadListEntry;
    IO_STATUS_BLOCK IoStatus;
    KPROCESSOR_MODE RequestorMode;
    BOOLEAN PendingReturned;
    CHAR StackCount;
    CHAR CurrentLocation;
    BOOLEAN Cancel;
    KIRQL CancelIrql;
    CCHAR ApcEnvironment;
    UCHAR AllocationFlags;
    PIO_STATUS_BLOCK UserIosb;
    struct _KEVENT *UserEvent;
    union {
        struct {
            PVOID UserApcRoutine;
            PVOID UserApcContext;
        } AsynchronousParameters;
        LARGE_INTEGER AllocationSize;
    } Overlay;
    PDRIVER_CANCEL CancelRoutine;
    PVOID UserBuffer;
    union {
        struct {
            union {
                KDEVICE_QUEUE_ENTRY DeviceQueueEntry;
                PVOID DriverContext[4];
            };
            PVOID Thread;
            PCHAR AuxiliaryBuffer;
            LIST_ENTRY ListEntry;
            PIO_STACK_LOCATION CurrentStackLocation;
            struct _FILE_OBJECT *OriginalFileObject;
        } Overlay;
        ULONG_PTR ntmemApc[11];
    } Tail;
} IRP, *PIRP;
_Static_assert(__builtin_offsetof(IRP, IoStatus) == 0x30, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, UserBuffer) == 0x70, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.ListEntry) == 0xa8, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.DriverContext) == 0x78, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.DeviceQueueEntry) == 0x78, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.CurrentStackLocation) == 0xb8, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, StackCount) == 0x42, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, CurrentLocation) == 0x43, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, UserIosb) == 0x48, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, UserEvent) == 0x50, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Overlay.AsynchronousParameters.UserApcContext) == 0x60, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, CancelRoutine) == 0x68, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.Thread) == 0x98, "IRP layout");
_Static_assert(__builtin_offsetof(IRP, Tail.Overlay.OriginalFileObject) == 0xc0, "IRP layout");
_Static_assert(sizeof(IRP) == 0xd0, "IRP size");

/* IRP.Flags (the ones drivers read or set). */
#define IRP_NOCACHE 0x00000001
#define IRP_PAGING_IO 0x00000002
#define IRP_SYNCHRONOUS_API 0x00000004
#define IRP_ASSOCIATED_IRP 0x00000008
#define IRP_BUFFERED_IO 0x00000010
#define IRP_DEALLOCATE_BUFFER 0x00000020
#define IRP_INPUT_OPERATION 0x00000040
#define IRP_CREATE_OPERATION 0x00000080
#define IRP_READ_OPERATION 0x00000100
#define IRP_WRITE_OPERATION 0x00000200
#define IRP_CLOSE_OPERATION 0x00000400

/* IRP.AllocationFlags. */
#define IRP_QUOTA_CHARGED 0x01
#define IRP_ALLOCATED_MUST_SUCCEED 0x02
#define IRP_ALLOCATED_FIXED_SIZE 0x04
#define IRP_LOOKASIDE_ALLOCATION 0x08

#define IO_NO_INCREMENT 0

static inline PIO_STACK_LOCATION IoGetCurrentIrpStackLocation(PIRP Irp)
{
    return Irp->Tail.Overlay.CurrentStackLocation;
}

/* ---- IRPs drivers allocate, device stacks and completion ---------------- */

#define SL_PENDING_RETURNED 0x01
#define SL_INVOKE_ON_CANCEL 0x20
#define SL_INVOKE_ON_SUCCESS 0x40
#define SL_INVOKE_ON_ERROR 0x80

#ifndef STATUS_MORE_PROCESSING_REQUIRED
#define STATUS_MORE_PROCESSING_REQUIRED ((NTSTATUS)0xC0000016L)
#endif
/* What a completion routine returns to let completion go on (wdm.h: STATUS_SUCCESS). */
#define STATUS_CONTINUE_COMPLETION STATUS_SUCCESS

/* The bytes of an IRP with StackSize stack locations (a macro, as in the WDK). */
#define IoSizeOfIrp(StackSize) ((USHORT)(sizeof(IRP) + ((StackSize) * (sizeof(IO_STACK_LOCATION)))))

/* An IRP of StackSize stack locations from nonpaged pool, or NULL; no location is
 * current until IoCallDriver. ChargeQuota is recorded (IRP_QUOTA_CHARGED), not charged. */
NTKERNELAPI PIRP IoAllocateIrp(CCHAR StackSize, BOOLEAN ChargeQuota);
/* Frees an IRP; one that is not an IRP (freed before) is MULTIPLE_IRP_COMPLETE_REQUESTS (0x44). */
NTKERNELAPI VOID IoFreeIrp(PIRP Irp);
/* Initializes an IRP again (AllocationFlags kept), IoStatus.Status = Iostatus. */
NTKERNELAPI VOID IoReuseIrp(PIRP Irp, NTSTATUS Iostatus);
/* Initializes PacketSize bytes of the caller's memory as an IRP of StackSize locations. */
NTKERNELAPI VOID IoInitializeIrp(PIRP Irp, USHORT PacketSize, CCHAR StackSize);
/* An IRP associated with Irp (the master): freed when it completes; the master
 * completes when its AssociatedIrp.IrpCount (set by the driver) reaches zero. */
NTKERNELAPI PIRP IoMakeAssociatedIrp(PIRP Irp, CCHAR StackSize);

/* Passes Irp to DeviceObject's driver: the next stack location becomes current and the
 * driver's dispatch routine for its MajorFunction is called. No location left is
 * NO_MORE_IRP_STACK_LOCATIONS (0x35). */
NTKERNELAPI NTSTATUS IofCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp);
#define IoCallDriver(a, b) IofCallDriver(a, b)

static inline PIO_STACK_LOCATION IoGetNextIrpStackLocation(PIRP Irp)
{
    return Irp->Tail.Overlay.CurrentStackLocation - 1;
}

/* The next driver gets this driver's stack location as it is. */
static inline VOID IoSkipCurrentIrpStackLocation(PIRP Irp)
{
    Irp->CurrentLocation++;
    Irp->Tail.Overlay.CurrentStackLocation++;
}

/* The next stack location gets a copy of the current one, without its completion routine. */
static inline VOID IoCopyCurrentIrpStackLocationToNext(PIRP Irp)
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    PIO_STACK_LOCATION nextIrpSp = IoGetNextIrpStackLocation(Irp);
    __builtin_memcpy(nextIrpSp, irpSp, __builtin_offsetof(IO_STACK_LOCATION, CompletionRoutine));
    nextIrpSp->Control = 0;
}

static inline VOID IoSetNextIrpStackLocation(PIRP Irp)
{
    Irp->CurrentLocation--;
    Irp->Tail.Overlay.CurrentStackLocation--;
}

/* Sets the routine called when the next driver completes the IRP (an inline in the WDK). */
static inline VOID IoSetCompletionRoutine(PIRP Irp, PIO_COMPLETION_ROUTINE CompletionRoutine, PVOID Context,
                                          BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError, BOOLEAN InvokeOnCancel)
{
    PIO_STACK_LOCATION irpSp = IoGetNextIrpStackLocation(Irp);
    irpSp->CompletionRoutine = CompletionRoutine;
    irpSp->Context = Context;
    irpSp->Control = 0;
    if (InvokeOnSuccess)
        irpSp->Control = SL_INVOKE_ON_SUCCESS;
    if (InvokeOnError)
        irpSp->Control |= SL_INVOKE_ON_ERROR;
    if (InvokeOnCancel)
        irpSp->Control |= SL_INVOKE_ON_CANCEL;
}

/* As IoSetCompletionRoutine; STATUS_SUCCESS. ntmem allocates nothing to keep the
 * driver loaded until the routine has run. */
NTKERNELAPI NTSTATUS IoSetCompletionRoutineEx(PDEVICE_OBJECT DeviceObject, PIRP Irp,
                                              PIO_COMPLETION_ROUTINE CompletionRoutine, PVOID Context,
                                              BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError,
                                              BOOLEAN InvokeOnCancel);

/* IRPs the I/O manager builds for the caller to send with IoCallDriver (the request in
 * the next stack location, buffers prepared as for a kernel caller); NULL when a buffer
 * cannot be prepared. At final completion *IoStatusBlock gets the status, Event (if
 * any) is signalled and the IRP is freed. */
NTKERNELAPI PIRP IoBuildDeviceIoControlRequest(ULONG IoControlCode, PDEVICE_OBJECT DeviceObject, PVOID InputBuffer,
                                               ULONG InputBufferLength, PVOID OutputBuffer, ULONG OutputBufferLength,
                                               BOOLEAN InternalDeviceIoControl, struct _KEVENT *Event,
                                               PIO_STATUS_BLOCK IoStatusBlock);
/* IRP_MJ_READ / IRP_MJ_WRITE (buffers by DO_BUFFERED_IO / DO_DIRECT_IO), or
 * IRP_MJ_FLUSH_BUFFERS, IRP_MJ_SHUTDOWN, IRP_MJ_POWER, IRP_MJ_PNP. */
NTKERNELAPI PIRP IoBuildSynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer,
                                              ULONG Length, PLARGE_INTEGER StartingOffset, struct _KEVENT *Event,
                                              PIO_STATUS_BLOCK IoStatusBlock);
/* The same without an event: the caller's completion routine frees the IRP. */
NTKERNELAPI PIRP IoBuildAsynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer,
                                               ULONG Length, PLARGE_INTEGER StartingOffset,
                                               PIO_STATUS_BLOCK IoStatusBlock);

/* StartIo: an idle device gets the IRP at once (DeviceObject->CurrentIrp, the driver's
 * DriverStartIo at DISPATCH_LEVEL); a busy one queues it in DeviceObject->DeviceQueue
 * (by *Key if given). CancelFunction, if any, is set as the IRP's cancel routine. */
NTKERNELAPI VOID IoStartPacket(PDEVICE_OBJECT DeviceObject, PIRP Irp, PULONG Key, PDRIVER_CANCEL CancelFunction);
/* The next queued IRP to DriverStartIo, or the device left idle (CurrentIrp NULL). */
NTKERNELAPI VOID IoStartNextPacket(PDEVICE_OBJECT DeviceObject, BOOLEAN Cancelable);
NTKERNELAPI VOID IoStartNextPacketByKey(PDEVICE_OBJECT DeviceObject, BOOLEAN Cancelable, ULONG Key);

/* ---- Pending and cancelled IRPs ------------------------------------------ */

/* The dispatch routine will return STATUS_PENDING and complete the IRP later. */
static inline VOID IoMarkIrpPending(PIRP Irp)
{
    IoGetCurrentIrpStackLocation(Irp)->Control |= SL_PENDING_RETURNED;
}

/* Sets Irp->CancelRoutine atomically and returns the previous one (an inline in the
 * WDK too). */
static inline PDRIVER_CANCEL IoSetCancelRoutine(PIRP Irp, PDRIVER_CANCEL CancelRoutine)
{
    return __atomic_exchange_n(&Irp->CancelRoutine, CancelRoutine, __ATOMIC_SEQ_CST);
}

/* The system-wide cancel spin lock: raises to DISPATCH_LEVEL. A cancel routine is
 * called holding it and releases it with IoReleaseCancelSpinLock(Irp->CancelIrql). */
NTKERNELAPI VOID IoAcquireCancelSpinLock(PKIRQL Irql);
NTKERNELAPI VOID IoReleaseCancelSpinLock(KIRQL Irql);
/* Sets Irp->Cancel and calls its cancel routine if it has one (TRUE), else FALSE. */
NTKERNELAPI BOOLEAN IoCancelIrp(PIRP Irp);

/* ---- Cancel-safe IRP queues ---------------------------------------------- */

#define IO_TYPE_CSQ_IRP_CONTEXT 1
#define IO_TYPE_CSQ 2
#define IO_TYPE_CSQ_EX 3

struct _IO_CSQ;
typedef VOID IO_CSQ_INSERT_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_INSERT_IRP *PIO_CSQ_INSERT_IRP;
typedef NTSTATUS IO_CSQ_INSERT_IRP_EX(struct _IO_CSQ *Csq, PIRP Irp, PVOID InsertContext);
typedef IO_CSQ_INSERT_IRP_EX *PIO_CSQ_INSERT_IRP_EX;
typedef VOID IO_CSQ_REMOVE_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_REMOVE_IRP *PIO_CSQ_REMOVE_IRP;
typedef PIRP IO_CSQ_PEEK_NEXT_IRP(struct _IO_CSQ *Csq, PIRP Irp, PVOID PeekContext);
typedef IO_CSQ_PEEK_NEXT_IRP *PIO_CSQ_PEEK_NEXT_IRP;
typedef VOID IO_CSQ_ACQUIRE_LOCK(struct _IO_CSQ *Csq, PKIRQL Irql);
typedef IO_CSQ_ACQUIRE_LOCK *PIO_CSQ_ACQUIRE_LOCK;
typedef VOID IO_CSQ_RELEASE_LOCK(struct _IO_CSQ *Csq, KIRQL Irql);
typedef IO_CSQ_RELEASE_LOCK *PIO_CSQ_RELEASE_LOCK;
typedef VOID IO_CSQ_COMPLETE_CANCELED_IRP(struct _IO_CSQ *Csq, PIRP Irp);
typedef IO_CSQ_COMPLETE_CANCELED_IRP *PIO_CSQ_COMPLETE_CANCELED_IRP;

typedef struct _IO_CSQ {
    ULONG Type;
    PIO_CSQ_INSERT_IRP CsqInsertIrp;
    PIO_CSQ_REMOVE_IRP CsqRemoveIrp;
    PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp;
    PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock;
    PIO_CSQ_RELEASE_LOCK CsqReleaseLock;
    PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp;
    PVOID ReservePointer;
} IO_CSQ, *PIO_CSQ;
_Static_assert(sizeof(IO_CSQ) == 0x40, "IO_CSQ size");

typedef struct _IO_CSQ_IRP_CONTEXT {
    ULONG Type;
    PIRP Irp;
    PIO_CSQ Csq;
} IO_CSQ_IRP_CONTEXT, *PIO_CSQ_IRP_CONTEXT;
_Static_assert(sizeof(IO_CSQ_IRP_CONTEXT) == 0x18, "IO_CSQ_IRP_CONTEXT size");

NTKERNELAPI NTSTATUS IoCsqInitialize(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP CsqInsertIrp, PIO_CSQ_REMOVE_IRP CsqRemoveIrp,
                                     PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp, PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock,
                                     PIO_CSQ_RELEASE_LOCK CsqReleaseLock,
                                     PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp);
NTKERNELAPI NTSTATUS IoCsqInitializeEx(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP_EX CsqInsertIrp,
                                       PIO_CSQ_REMOVE_IRP CsqRemoveIrp, PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp,
                                       PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock, PIO_CSQ_RELEASE_LOCK CsqReleaseLock,
                                       PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp);
NTKERNELAPI VOID IoCsqInsertIrp(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context);
NTKERNELAPI NTSTATUS IoCsqInsertIrpEx(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context, PVOID InsertContext);
NTKERNELAPI PIRP IoCsqRemoveIrp(PIO_CSQ Csq, PIO_CSQ_IRP_CONTEXT Context);
NTKERNELAPI PIRP IoCsqRemoveNextIrp(PIO_CSQ Csq, PVOID PeekContext);

/* ---- Device stacks (Plug and Play) -------------------------------------- */

/* Attaches SourceDevice above the highest device of TargetDevice's stack and returns
 * that device (what the driver passes IRPs down to with IoCallDriver); SourceDevice's
 * StackSize becomes that device's plus one. Requests for any device of the stack go
 * to its top. A PDO has no driver in ntmem: it completes the start, stop and removal
 * IRPs and IRP_MN_SET_POWER / IRP_MN_QUERY_POWER with STATUS_SUCCESS, other PnP and
 * power IRPs with their status. */
NTKERNELAPI PDEVICE_OBJECT IoAttachDeviceToDeviceStack(PDEVICE_OBJECT SourceDevice, PDEVICE_OBJECT TargetDevice);
/* As IoAttachDeviceToDeviceStack, the device attached to stored first; STATUS_SUCCESS or
 * STATUS_NO_SUCH_DEVICE. */
NTKERNELAPI NTSTATUS IoAttachDeviceToDeviceStackSafe(PDEVICE_OBJECT SourceDevice, PDEVICE_OBJECT TargetDevice,
                                                     PDEVICE_OBJECT *AttachedToDeviceObject);
/* The highest device of DeviceObject's stack. ntmem does not count references to device
 * objects: the ObDereferenceObject the caller owes changes nothing. */
NTKERNELAPI PDEVICE_OBJECT IoGetAttachedDeviceReference(PDEVICE_OBJECT DeviceObject);
/* Detaches the device attached above TargetDevice (call with the device AddDevice got back). */
NTKERNELAPI VOID IoDetachDevice(PDEVICE_OBJECT TargetDevice);

/* ---- Power ----------------------------------------------------------------- */

/* Passes a power IRP down, as IoCallDriver (before Vista the power manager also
 * holds back the next power IRP until PoStartNextPowerIrp: not modelled). */
NTKERNELAPI NTSTATUS PoCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp);
/* Lets the next power IRP through (Windows before Vista); nothing to do in ntmem. */
NTKERNELAPI VOID PoStartNextPowerIrp(PIRP Irp);
/* Records the device's new power state; returns the one recorded before (a device
 * starts at PowerDeviceD0 and PowerSystemWorking). */
NTKERNELAPI POWER_STATE PoSetPowerState(PDEVICE_OBJECT DeviceObject, POWER_STATE_TYPE Type, POWER_STATE State);

/* Called once a PoRequestPowerIrp IRP has completed, before it is freed. */
typedef VOID REQUEST_POWER_COMPLETE(PDEVICE_OBJECT DeviceObject, UCHAR MinorFunction, POWER_STATE PowerState,
                                    PVOID Context, PIO_STATUS_BLOCK IoStatus);
typedef REQUEST_POWER_COMPLETE *PREQUEST_POWER_COMPLETE;
/* Sends IRP_MN_SET_POWER / IRP_MN_QUERY_POWER (a device power state) or IRP_MN_WAIT_WAKE
 * (a system power state) to the top of DeviceObject's stack and returns STATUS_PENDING;
 * CompletionFunction runs when it completes. Above PASSIVE_LEVEL the IRP is sent from a
 * system worker thread. ntmem's PDO does not support wake (STATUS_NOT_SUPPORTED). */
NTKERNELAPI NTSTATUS PoRequestPowerIrp(PDEVICE_OBJECT DeviceObject, UCHAR MinorFunction, POWER_STATE PowerState,
                                       PREQUEST_POWER_COMPLETE CompletionFunction, PVOID Context, PIRP *Irp);

/* IoCompleteRequest is a macro over IofCompleteRequest, as in the WDK. */
NTKERNELAPI VOID IofCompleteRequest(PIRP Irp, CCHAR PriorityBoost);
#define IoCompleteRequest(a, b) IofCompleteRequest(a, b)

#endif /* NTMEM_IO_H */
