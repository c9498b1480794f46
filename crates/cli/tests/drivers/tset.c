/* Seed 000 §7.1: the NonPagedPoolCacheAligned 'tseT' buffer, the sample's text
 * unmodified inside DriverEntry; and §5.4.1's DECLSPEC_ALIGN and pshpack2.h. */
#include <ntddk.h>

#define MAX_BUFFER_SIZE 200
/* The sample's DebugPrint((level, format, ...)), as drivers commonly define it. */
static VOID DebugPrintLevel(ULONG Level, PCSTR Message)
{
    DbgPrint("[%u]%s", Level, Message);
}
#define DebugPrint(_x_) DebugPrintLevel _x_

typedef DECLSPEC_ALIGN(16) ULONG ULONG_A16;

typedef struct {

    ULONG_A16 a;

    ULONG_A16 b;

} TEST;

#include <pshpack2.h>

typedef struct _STRUCT_THAT_NEEDS_TWO_BYTE_PACKING {
    UCHAR c;
    ULONG l;
} STRUCT_THAT_NEEDS_TWO_BYTE_PACKING;

#include <poppack.h>

static PVOID Saved;

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    ExFreePoolWithTag(Saved, 'tseT');
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PVOID MyBuffer;
    UNREFERENCED_PARAMETER(RegistryPath);

MyBuffer = ExAllocatePoolWithTag(NonPagedPoolCacheAligned,

                 MAX_BUFFER_SIZE,

                 'tseT');

if (MyBuffer == NULL)

{

    DebugPrint((1, " Can't allocate MyBuffer \n"));

    return(STATUS_INSUFFICIENT_RESOURCES);

    }

    DbgPrint("tset: buffer %s cache-aligned; TEST.b at %d; packed struct %u bytes\n",
             ((ULONG_PTR)MyBuffer & 63) == 0 ? "is" : "is NOT",
             FIELD_OFFSET(TEST, b), (ULONG)sizeof(STRUCT_THAT_NEEDS_TWO_BYTE_PACKING));
    Saved = MyBuffer;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
