/*
 * wdm.h -- ntmem's Windows Driver Kit header.
 *
 * Written for ntmem from Microsoft's public documentation of the WDK: the names,
 * types and values are the WDK's; the text is ours. Only what ntmem implements is
 * declared: a driver that calls anything else fails to compile, it never links to
 * a silent stub.
 *
 * Drivers are built with clang for the Windows x64 target (x86_64-pc-windows-msvc:
 * LLP64, 16-bit wchar_t, the compiler's table-based __try/__except/__finally) and
 * linked into a PE image (`ntmem build`, `ntmem run`). The constants are those of
 * the AMD64 WDK (PAGE_SIZE 4096, HIGH_LEVEL 15), except PAGE_SIZE and PAGE_SHIFT on
 * an IA-64 machine (_IA64_: 8192 and 13).
 */
#ifndef NTMEM_WDM_H
#define NTMEM_WDM_H

/* Multi-character pool tags ('tseT') are how drivers spell tags. */
#pragma GCC diagnostic ignored "-Wmultichar"
#ifdef __clang__
/* pshpackN.h / poppack.h change the packing inside an included file by design. */
#pragma clang diagnostic ignored "-Wpragma-pack"
#endif

#if !defined(_WIN64) || !defined(_MSC_VER)
#error "ntmem's WDK headers are for the Windows x64 target: build drivers with ntmem build or ntmem run (clang --target=x86_64-pc-windows-msvc)"
#endif

#include <stdarg.h>
#include <stddef.h>

/* ---- Target ------------------------------------------------------------- */

/* `ntmem build` and `ntmem run` define these for the machine chosen, as the WDK's
 * build environment does for its target: _AMD64_ (or _IA64_ on an IA-64 machine),
 * NTDDI_VERSION and _WIN32_WINNT of its release. Without them: the default machine,
 * Windows Server 2003 SP1 x64. Values as sdkddkver.h gives them. */
#if !defined(_AMD64_) && !defined(_IA64_)
#define _AMD64_
#endif
#define NTDDI_WIN2K 0x05000000
#define NTDDI_WINXP 0x05010000
#define NTDDI_WINXPSP2 0x05010200
#define NTDDI_WS03 0x05020000
#define NTDDI_WS03SP1 0x05020100
#define NTDDI_VISTA 0x06000000
#define NTDDI_WIN7 0x06010000
#define NTDDI_WIN8 0x06020000
#define NTDDI_WINBLUE 0x06030000
#define NTDDI_WIN10 0x0A000000
#define _WIN32_WINNT_WIN2K 0x0500
#define _WIN32_WINNT_WINXP 0x0501
#define _WIN32_WINNT_WS03 0x0502
#define _WIN32_WINNT_VISTA 0x0600
#define _WIN32_WINNT_WIN7 0x0601
#define _WIN32_WINNT_WIN8 0x0602
#define _WIN32_WINNT_WIN10 0x0A00
#ifndef NTDDI_VERSION
#define NTDDI_VERSION NTDDI_WS03SP1
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT (NTDDI_VERSION >> 16)
#endif

#include "driverspecs.h"
#include "guiddef.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Basic types ------------------------------------------------------- */

#define VOID void
#define IN
#define OUT
#define OPTIONAL
#define NTAPI
#define NTSYSAPI
#define NTKERNELAPI __declspec(dllimport)
#define NTHALAPI __declspec(dllimport)
#define FASTCALL
#define CDECL
#define DECLSPEC_ALIGN(x) __attribute__((aligned(x)))

typedef char CHAR, CCHAR, *PCHAR, *PSTR;
typedef const char *PCSTR;
typedef unsigned char UCHAR, *PUCHAR;
typedef short SHORT, CSHORT, *PSHORT;
typedef unsigned short USHORT, *PUSHORT;
typedef long LONG, *PLONG;
typedef unsigned long ULONG, *PULONG;
typedef long long LONGLONG, LONG64, *PLONGLONG;
typedef unsigned long long ULONGLONG, ULONG64, *PULONGLONG, *PULONG64;
typedef signed char INT8;
typedef unsigned char UINT8;
typedef short INT16;
typedef unsigned short UINT16;
typedef int INT32;
typedef unsigned int UINT32;
typedef long long INT64;
typedef unsigned long long UINT64;
typedef int BOOL;
typedef unsigned char BOOLEAN, *PBOOLEAN;
typedef long long LONG_PTR, *PLONG_PTR;
typedef unsigned long long ULONG_PTR, *PULONG_PTR;
typedef ULONG_PTR SIZE_T, *PSIZE_T;
typedef LONG_PTR SSIZE_T;
typedef void *PVOID;
typedef wchar_t WCHAR, *PWCHAR, *PWSTR;
typedef const WCHAR *PCWSTR;
typedef LONG NTSTATUS;

_Static_assert(sizeof(LONG) == 4 && sizeof(ULONG) == 4, "LONG and ULONG are 32-bit");
_Static_assert(sizeof(ULONG_PTR) == sizeof(void *), "ULONG_PTR is pointer-sized");

#define TRUE 1
#define FALSE 0
#ifndef NULL
#define NULL ((void *)0)
#endif

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    struct {
        ULONG LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef LARGE_INTEGER PHYSICAL_ADDRESS, *PPHYSICAL_ADDRESS;

/* ---- NTSTATUS ----------------------------------------------------------- */

#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)
#define STATUS_SUCCESS ((NTSTATUS)0x00000000L)
#define STATUS_PENDING ((NTSTATUS)0x00000103L)
#define STATUS_GUARD_PAGE_VIOLATION ((NTSTATUS)0x80000001L)
#define STATUS_DATATYPE_MISALIGNMENT ((NTSTATUS)0x80000002L)
#define STATUS_BREAKPOINT ((NTSTATUS)0x80000003L)
#define STATUS_IN_PAGE_ERROR ((NTSTATUS)0xC0000006L)
#define STATUS_ILLEGAL_INSTRUCTION ((NTSTATUS)0xC000001DL)
#define STATUS_NONCONTINUABLE_EXCEPTION ((NTSTATUS)0xC0000025L)
#define STATUS_INVALID_DISPOSITION ((NTSTATUS)0xC0000026L)
#define STATUS_QUOTA_EXCEEDED ((NTSTATUS)0xC0000044L)
#define STATUS_INTEGER_DIVIDE_BY_ZERO ((NTSTATUS)0xC0000094L)
#define STATUS_STACK_OVERFLOW ((NTSTATUS)0xC00000FDL)
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xC0000001L)
#define STATUS_NOT_IMPLEMENTED ((NTSTATUS)0xC0000002L)
#define STATUS_ACCESS_VIOLATION ((NTSTATUS)0xC0000005L)
#define STATUS_INVALID_PARAMETER ((NTSTATUS)0xC000000DL)
#define STATUS_INVALID_DEVICE_REQUEST ((NTSTATUS)0xC0000010L)
#define STATUS_NO_MEMORY ((NTSTATUS)0xC0000017L)
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023L)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009AL)
#define STATUS_NOT_SUPPORTED ((NTSTATUS)0xC00000BBL)
#define STATUS_OBJECT_NAME_INVALID ((NTSTATUS)0xC0000033L)
#define STATUS_OBJECT_NAME_NOT_FOUND ((NTSTATUS)0xC0000034L)
#define STATUS_OBJECT_NAME_COLLISION ((NTSTATUS)0xC0000035L)
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120L)
#define STATUS_NO_MATCH ((NTSTATUS)0xC0000272L)

/* ---- Sizes and layout --------------------------------------------------- */

#if defined(_IA64_)
/* An IA-64 machine: its page size, though the driver's code is x64 code (ntmem). */
#define PAGE_SIZE 0x2000
#define PAGE_SHIFT 13L
#else
#define PAGE_SIZE 0x1000
#define PAGE_SHIFT 12L
#endif
#define BYTES_TO_PAGES(Size) (((Size) >> PAGE_SHIFT) + (((Size) & (PAGE_SIZE - 1)) != 0))
#define ROUND_TO_PAGES(Size) (((ULONG_PTR)(Size) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
#define PAGE_ALIGN(Va) ((PVOID)((ULONG_PTR)(Va) & ~(PAGE_SIZE - 1)))
#define BYTE_OFFSET(Va) ((ULONG)((LONG_PTR)(Va) & (PAGE_SIZE - 1)))
#define FIELD_OFFSET(type, field) ((LONG)__builtin_offsetof(type, field))
#define ARGUMENT_PRESENT(p) ((p) != NULL)
#define UNREFERENCED_PARAMETER(P) ((void)(P))

/* ---- Strings ------------------------------------------------------------ */

typedef struct _UNICODE_STRING {
    USHORT Length;        /* bytes, without a terminator */
    USHORT MaximumLength; /* bytes */
    PWSTR Buffer;
} UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;
typedef struct _STRING {
    USHORT Length;
    USHORT MaximumLength;
    PCHAR Buffer;
} STRING, *PSTRING, ANSI_STRING, *PANSI_STRING;
typedef const STRING *PCANSI_STRING;

/* ---- IRQL and spin locks ------------------------------------------------ */

typedef UCHAR KIRQL, *PKIRQL;
typedef ULONG_PTR KSPIN_LOCK, *PKSPIN_LOCK;

#define PASSIVE_LEVEL 0
#define LOW_LEVEL 0
#define APC_LEVEL 1
#define DISPATCH_LEVEL 2
#define CLOCK_LEVEL 13
#define IPI_LEVEL 14
#define POWER_LEVEL 14
#define PROFILE_LEVEL 15
#define HIGH_LEVEL 15

NTKERNELAPI KIRQL KeGetCurrentIrql(VOID);
/* KeRaiseIrql is a macro over KfRaiseIrql, as in the AMD64 WDK. */
NTKERNELAPI KIRQL KfRaiseIrql(KIRQL NewIrql);
#define KeRaiseIrql(NewIrql, OldIrql) (*(OldIrql) = KfRaiseIrql(NewIrql))
NTKERNELAPI VOID KeLowerIrql(KIRQL NewIrql);
NTKERNELAPI VOID KeInitializeSpinLock(PKSPIN_LOCK SpinLock);
/* KeAcquireSpinLock is a macro over KeAcquireSpinLockRaiseToDpc, as in the AMD64 WDK. */
NTKERNELAPI KIRQL KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK SpinLock);
#define KeAcquireSpinLock(SpinLock, OldIrql) (*(OldIrql) = KeAcquireSpinLockRaiseToDpc(SpinLock))
NTKERNELAPI VOID KeReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql);

/* ---- Pool --------------------------------------------------------------- */

typedef enum _POOL_TYPE {
    NonPagedPool = 0,
    NonPagedPoolExecute = NonPagedPool,
    PagedPool = 1,
    NonPagedPoolMustSucceed = 2,
    NonPagedPoolCacheAligned = 4,
    PagedPoolCacheAligned = 5,
    NonPagedPoolCacheAlignedMustS = 6,
    NonPagedPoolNx = 0x200,
    NonPagedPoolNxCacheAligned = 0x204
} POOL_TYPE;

NTKERNELAPI PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
/* Obsolete: tags the block 'enoN' ("None"), as Windows does. */
NTKERNELAPI PVOID ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes);
NTKERNELAPI VOID ExFreePoolWithTag(PVOID P, ULONG Tag);
NTKERNELAPI VOID ExFreePool(PVOID P);

typedef enum _EX_POOL_PRIORITY {
    LowPoolPriority = 0,
    LowPoolPrioritySpecialPoolOverrun = 8,
    LowPoolPrioritySpecialPoolUnderrun = 9,
    NormalPoolPriority = 16,
    NormalPoolPrioritySpecialPoolOverrun = 24,
    NormalPoolPrioritySpecialPoolUnderrun = 25,
    HighPoolPriority = 32,
    HighPoolPrioritySpecialPoolOverrun = 40,
    HighPoolPrioritySpecialPoolUnderrun = 41
} EX_POOL_PRIORITY;

NTKERNELAPI PVOID ExAllocatePoolWithTagPriority(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                                EX_POOL_PRIORITY Priority);

/* OR'ed into the PoolType of ExAllocatePoolWithQuotaTag: return NULL instead of raising. */
#define POOL_QUOTA_FAIL_INSTEAD_OF_RAISE 8
/* Quota is charged to the System process in ntmem (drivers run in system threads). */
NTKERNELAPI PVOID ExAllocatePoolWithQuotaTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);

typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_USE_QUOTA 0x0000000000000001ULL
#define POOL_FLAG_UNINITIALIZED 0x0000000000000002ULL
#define POOL_FLAG_SESSION 0x0000000000000004ULL
#define POOL_FLAG_CACHE_ALIGNED 0x0000000000000008ULL
#define POOL_FLAG_RAISE_ON_FAILURE 0x0000000000000020ULL
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
#define POOL_FLAG_NON_PAGED_EXECUTE 0x0000000000000080ULL
#define POOL_FLAG_PAGED 0x0000000000000100ULL
#define POOL_FLAG_SPECIAL_POOL 0x0000000100000000ULL
/* Zeroed unless POOL_FLAG_UNINITIALIZED. */
NTKERNELAPI PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);

/* ExAllocatePool3's extended parameters (16 bytes each). Secure pool needs a secure
 * kernel ntmem does not have: such a parameter fails the allocation unless it is
 * Optional; so does a NUMA node other than 0 or MM_ANY_NODE_OK. */
typedef enum POOL_EXTENDED_PARAMETER_TYPE {
    PoolExtendedParameterInvalidType = 0,
    PoolExtendedParameterPriority,
    PoolExtendedParameterSecurePool,
    PoolExtendedParameterNumaNode,
    PoolExtendedParameterMax
} POOL_EXTENDED_PARAMETER_TYPE, *PPOOL_EXTENDED_PARAMETER_TYPE;

#define POOL_EXTENDED_PARAMETER_TYPE_BITS 8
#define POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS 1
#define POOL_EXTENDED_PARAMETER_RESERVED_BITS (64 - POOL_EXTENDED_PARAMETER_TYPE_BITS - POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS)
#define SECURE_POOL_FLAGS_NONE 0x0
#define SECURE_POOL_FLAGS_FREEABLE 0x1
#define SECURE_POOL_FLAGS_MODIFIABLE 0x2

typedef struct _POOL_EXTENDED_PARAMS_SECURE_POOL {
    PVOID SecurePoolHandle;
    PVOID Buffer;
    ULONG_PTR Cookie;
    ULONG SecurePoolFlags;
} POOL_EXTENDED_PARAMS_SECURE_POOL;

typedef ULONG POOL_NODE_REQUIREMENT;

typedef struct _POOL_EXTENDED_PARAMETER {
    struct {
        ULONG64 Type : POOL_EXTENDED_PARAMETER_TYPE_BITS;
        ULONG64 Optional : POOL_EXTENDED_PARAMETER_REQUIRED_FIELD_BITS;
        ULONG64 Reserved : POOL_EXTENDED_PARAMETER_RESERVED_BITS;
    };
    union {
        ULONG64 Reserved2;
        PVOID Reserved3;
        EX_POOL_PRIORITY Priority;
        POOL_EXTENDED_PARAMS_SECURE_POOL *SecurePoolParams;
        POOL_NODE_REQUIREMENT PreferredNode;
    };
} POOL_EXTENDED_PARAMETER, *PPOOL_EXTENDED_PARAMETER;
_Static_assert(sizeof(POOL_EXTENDED_PARAMETER) == 16, "POOL_EXTENDED_PARAMETER size");
_Static_assert(__builtin_offsetof(POOL_EXTENDED_PARAMETER, Priority) == 8, "POOL_EXTENDED_PARAMETER layout");
typedef const POOL_EXTENDED_PARAMETER *PCPOOL_EXTENDED_PARAMETER;

NTKERNELAPI PVOID ExAllocatePool3(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag,
                                  PCPOOL_EXTENDED_PARAMETER ExtendedParameters, ULONG ExtendedParametersCount);

NTKERNELAPI SIZE_T ExQueryPoolBlockSize(PVOID PoolBlock, PBOOLEAN QuotaCharged);

/* ---- Structured exception handling --------------------------------------- */

/*
 * __try / __except / __finally / __leave are the compiler's (clang with
 * -fasync-exceptions), dispatched by ntmem from the image's own unwind tables as
 * Windows dispatches them: filters run innermost first before any __finally, a
 * hardware fault inside a __try (even one with no call in it) is an exception, and
 * EXCEPTION_CONTINUE_EXECUTION resumes the faulting instruction. Try/except in
 * lowercase, as the WDK samples spell them, unless NTMEM_NO_LOWERCASE_TRY is
 * defined before this header.
 */

#define EXCEPTION_EXECUTE_HANDLER 1
#define EXCEPTION_CONTINUE_SEARCH 0
#define EXCEPTION_CONTINUE_EXECUTION (-1)
#define EXCEPTION_NONCONTINUABLE 0x1
#define EXCEPTION_MAXIMUM_PARAMETERS 15

/* The AMD64 layout. ExceptionInformation[0..1] of STATUS_ACCESS_VIOLATION: 0 read,
 * 1 write, 8 execute; the address. */
typedef struct _EXCEPTION_RECORD {
    NTSTATUS ExceptionCode;
    ULONG ExceptionFlags;
    struct _EXCEPTION_RECORD *ExceptionRecord;
    PVOID ExceptionAddress;
    ULONG NumberParameters;
    ULONG_PTR ExceptionInformation[EXCEPTION_MAXIMUM_PARAMETERS];
} EXCEPTION_RECORD, *PEXCEPTION_RECORD;

_Static_assert(sizeof(EXCEPTION_RECORD) == 0x98, "EXCEPTION_RECORD size");

/* The AMD64 CONTEXT (0x4D0 bytes), opaque here: drivers reach it through
 * EXCEPTION_POINTERS and RtlCaptureContext. */
typedef struct _CONTEXT CONTEXT, *PCONTEXT;
typedef struct _EXCEPTION_POINTERS {
    PEXCEPTION_RECORD ExceptionRecord;
    PCONTEXT ContextRecord;
} EXCEPTION_POINTERS, *PEXCEPTION_POINTERS;

/* x64 exception dispatch and unwinding, for drivers that walk their own stack. */
typedef struct _RUNTIME_FUNCTION {
    ULONG BeginAddress;
    ULONG EndAddress;
    ULONG UnwindData;
} RUNTIME_FUNCTION, *PRUNTIME_FUNCTION;
typedef struct _UNWIND_HISTORY_TABLE UNWIND_HISTORY_TABLE, *PUNWIND_HISTORY_TABLE;
typedef struct _KNONVOLATILE_CONTEXT_POINTERS KNONVOLATILE_CONTEXT_POINTERS, *PKNONVOLATILE_CONTEXT_POINTERS;
typedef LONG EXCEPTION_DISPOSITION;
typedef EXCEPTION_DISPOSITION (*PEXCEPTION_ROUTINE)(PEXCEPTION_RECORD ExceptionRecord, PVOID EstablisherFrame,
                                                    PCONTEXT ContextRecord, PVOID DispatcherContext);
#define UNW_FLAG_NHANDLER 0x0
#define UNW_FLAG_EHANDLER 0x1
#define UNW_FLAG_UHANDLER 0x2
NTKERNELAPI VOID RtlCaptureContext(PCONTEXT ContextRecord);
NTKERNELAPI VOID RtlRaiseException(PEXCEPTION_RECORD ExceptionRecord);
NTKERNELAPI VOID RtlRaiseStatus(NTSTATUS Status) __attribute__((noreturn));
NTKERNELAPI VOID RtlUnwindEx(PVOID TargetFrame, PVOID TargetIp, PEXCEPTION_RECORD ExceptionRecord, PVOID ReturnValue,
                             PCONTEXT ContextRecord, PUNWIND_HISTORY_TABLE HistoryTable);
NTKERNELAPI PRUNTIME_FUNCTION RtlLookupFunctionEntry(ULONG64 ControlPc, PULONG64 ImageBase,
                                                     PUNWIND_HISTORY_TABLE HistoryTable);
NTKERNELAPI PEXCEPTION_ROUTINE RtlVirtualUnwind(ULONG HandlerType, ULONG64 ImageBase, ULONG64 ControlPc,
                                                PRUNTIME_FUNCTION FunctionEntry, PCONTEXT ContextRecord,
                                                PVOID *HandlerData, PULONG64 EstablisherFrame,
                                                PKNONVOLATILE_CONTEXT_POINTERS ContextPointers);

/* Raises Status as a noncontinuable exception (EXCEPTION_NONCONTINUABLE, no parameters). */
NTKERNELAPI VOID ExRaiseStatus(NTSTATUS Status) __attribute__((noreturn));
NTKERNELAPI VOID ExRaiseAccessViolation(VOID) __attribute__((noreturn));
NTKERNELAPI VOID ExRaiseDatatypeMisalignment(VOID) __attribute__((noreturn));

/* The compiler's own __try/__except/__finally/__leave, dispatched from the image's
 * unwind tables; the intrinsics as the WDK's excpt.h names them. */
#define GetExceptionCode() ((NTSTATUS)_exception_code())
#define GetExceptionInformation() ((PEXCEPTION_POINTERS)_exception_info())
#define AbnormalTermination _abnormal_termination
#ifndef NTMEM_NO_LOWERCASE_TRY
#define try __try
#define except __except
#define finally __finally
#define leave __leave
#endif

/* ---- Debug output ------------------------------------------------------- */

/* Windows' printf language (%wZ, %Z, %ws, %S, %I64x, %Ix, %p, ...), not glibc's:
 * no format attribute, so gcc does not judge it. A message is cut at 512 bytes. */
typedef enum _DPFLTR_TYPE {
    DPFLTR_IHVVIDEO_ID = 78,
    DPFLTR_IHVAUDIO_ID = 79,
    DPFLTR_IHVNETWORK_ID = 80,
    DPFLTR_IHVSTREAMING_ID = 81,
    DPFLTR_IHVBUS_ID = 82,
    DPFLTR_IHVDRIVER_ID = 77,
    DPFLTR_DEFAULT_ID = 101
} DPFLTR_TYPE;
#define DPFLTR_ERROR_LEVEL 0
#define DPFLTR_WARNING_LEVEL 1
#define DPFLTR_TRACE_LEVEL 2
#define DPFLTR_INFO_LEVEL 3
#define DPFLTR_MASK 0x80000000

ULONG DbgPrint(PCSTR Format, ...);
ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...);
ULONG vDbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, va_list arglist);
ULONG vDbgPrintExWithPrefix(PCSTR Prefix, ULONG ComponentId, ULONG Level, PCSTR Format, va_list arglist);
#define KdPrint(_x_) DbgPrint _x_
#define KdPrintEx(_x_) DbgPrintEx _x_
#define vKdPrintEx(_x_) vDbgPrintEx _x_
#define vKdPrintExWithPrefix(_x_) vDbgPrintExWithPrefix _x_


/* ---- Drivers ------------------------------------------------------------ */

/* Opaque until ntmem implements the I/O manager. */
struct _DEVICE_OBJECT;
struct _IRP;
struct _DRIVER_OBJECT;

typedef NTSTATUS DRIVER_INITIALIZE(struct _DRIVER_OBJECT *DriverObject, PUNICODE_STRING RegistryPath);
typedef DRIVER_INITIALIZE *PDRIVER_INITIALIZE;
typedef VOID DRIVER_UNLOAD(struct _DRIVER_OBJECT *DriverObject);
typedef DRIVER_UNLOAD *PDRIVER_UNLOAD;
typedef NTSTATUS DRIVER_DISPATCH(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_DISPATCH *PDRIVER_DISPATCH;
/* The other role types drivers declare their routines with (wdm.h). */
typedef VOID DRIVER_CANCEL(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_CANCEL *PDRIVER_CANCEL;
typedef VOID DRIVER_STARTIO(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp);
typedef DRIVER_STARTIO *PDRIVER_STARTIO;
typedef NTSTATUS IO_COMPLETION_ROUTINE(struct _DEVICE_OBJECT *DeviceObject, struct _IRP *Irp, PVOID Context);
typedef IO_COMPLETION_ROUTINE *PIO_COMPLETION_ROUTINE;

#define IRP_MJ_CREATE 0x00
#define IRP_MJ_CLOSE 0x02
#define IRP_MJ_READ 0x03
#define IRP_MJ_WRITE 0x04
#define IRP_MJ_FLUSH_BUFFERS 0x09
#define IRP_MJ_DEVICE_CONTROL 0x0e
#define IRP_MJ_SHUTDOWN 0x10
#define IRP_MJ_CLEANUP 0x12
#define IRP_MJ_POWER 0x16
#define IRP_MJ_PNP 0x1b
#define IRP_MJ_MAXIMUM_FUNCTION 0x1b

/* AddDevice: the PnP manager calls it with the device's PDO after DriverEntry. */
typedef NTSTATUS DRIVER_ADD_DEVICE(struct _DRIVER_OBJECT *DriverObject, struct _DEVICE_OBJECT *PhysicalDeviceObject);
typedef DRIVER_ADD_DEVICE *PDRIVER_ADD_DEVICE;

/* The AMD64 layout of the WDK's DRIVER_EXTENSION (DRIVER_OBJECT.DriverExtension). */
typedef struct _DRIVER_EXTENSION {
    struct _DRIVER_OBJECT *DriverObject;
    PDRIVER_ADD_DEVICE AddDevice;
    ULONG Count;
    UNICODE_STRING ServiceKeyName;
} DRIVER_EXTENSION, *PDRIVER_EXTENSION;
_Static_assert(__builtin_offsetof(DRIVER_EXTENSION, AddDevice) == 0x08, "DRIVER_EXTENSION layout");
_Static_assert(sizeof(DRIVER_EXTENSION) == 0x28, "DRIVER_EXTENSION size");

/* The AMD64 layout of the WDK's DRIVER_OBJECT. */
typedef struct _DRIVER_OBJECT {
    CSHORT Type;
    CSHORT Size;
    struct _DEVICE_OBJECT *DeviceObject;
    ULONG Flags;
    PVOID DriverStart;
    ULONG DriverSize;
    PVOID DriverSection;
    PDRIVER_EXTENSION DriverExtension;
    UNICODE_STRING DriverName;
    PUNICODE_STRING HardwareDatabase;
    PVOID FastIoDispatch;
    PDRIVER_INITIALIZE DriverInit;
    PDRIVER_STARTIO DriverStartIo;
    PDRIVER_UNLOAD DriverUnload;
    PDRIVER_DISPATCH MajorFunction[IRP_MJ_MAXIMUM_FUNCTION + 1];
} DRIVER_OBJECT, *PDRIVER_OBJECT;

_Static_assert(__builtin_offsetof(DRIVER_OBJECT, DriverUnload) == 0x68, "DRIVER_OBJECT layout");
_Static_assert(__builtin_offsetof(DRIVER_OBJECT, DriverExtension) == 0x30, "DRIVER_OBJECT layout");
_Static_assert(sizeof(DRIVER_OBJECT) == 0x150, "DRIVER_OBJECT size");

#include "ntmem/lists.h"
#include "ntmem/memory.h"
#include "ntmem/resources.h"
#include "ntmem/io.h"
#include "ntmem/dma.h"
#include "ntmem/lookaside.h"
#include "ntmem/interlocked.h"
#include "ntmem/rtl.h"
#include "ntmem/bitmap.h"
#include "ntmem/version.h"
#include "ntmem/ke.h"
#include "ntmem/ps.h"
#include "ntmem/registry.h"
#include "ntmem/mdl.h"

/* Every driver defines it; the driver host calls it at PASSIVE_LEVEL. */
DRIVER_INITIALIZE DriverEntry;

#ifdef __cplusplus
}
#endif

#endif /* NTMEM_WDM_H */
