/*
 * Seed 000 §9: validating a METHOD_NEITHER buffer with ProbeForRead inside
 * try/except, whose `break` leaves the dispatch routine's switch. The sample's
 * lines between BEGIN and END are the seed's, unmodified except that two curly
 * quotes the document's typesetting put in a string literal are straight quotes.
 *
 * The IRP stack location and ProbeForRead are stand-ins of this test (the I/O
 * manager and ProbeForRead are other work items): ProbeForRead raises as
 * documented -- STATUS_ACCESS_VIOLATION for a range reaching past the user probe
 * address, STATUS_DATATYPE_MISALIGNMENT for a misaligned start -- and touches
 * nothing.
 */
#include <ntddk.h>

#define SIOCTL_KDPRINT(_x_) DbgPrint _x_
#define IOCTL_SIOCTL_METHOD_NEITHER 0x222003
#define TEST_USER_PROBE_ADDRESS ((ULONG_PTR)0x7FFFFFF0000)

static VOID TestProbeForRead(const volatile VOID *Address, SIZE_T Length, ULONG Alignment)
{
    ULONG_PTR start = (ULONG_PTR)Address;
    if (Length == 0)
        return;
    if (start & (Alignment - 1))
        ExRaiseStatus(STATUS_DATATYPE_MISALIGNMENT);
    if (start + Length < start || start + Length > TEST_USER_PROBE_ADDRESS)
        ExRaiseStatus(STATUS_ACCESS_VIOLATION);
}
#define ProbeForRead TestProbeForRead

typedef struct {
    struct {
        struct {
            PVOID Type3InputBuffer;
            ULONG InputBufferLength;
        } DeviceIoControl;
    } Parameters;
} TEST_STACK_LOCATION;

static NTSTATUS dispatch(ULONG code, PVOID userBuffer, ULONG length, int *touched)
{
    TEST_STACK_LOCATION stack = { { { userBuffer, length } } };
    TEST_STACK_LOCATION *irpSp = &stack;
    NTSTATUS ntStatus = STATUS_SUCCESS;
    PVOID inBuf;
    ULONG inBufLength;

    *touched = 0;
    switch (code) {
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
        *touched = 1;
        break;
    default:
        ntStatus = STATUS_INVALID_DEVICE_REQUEST;
        break;
    }
    return ntStatus;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    int touched;
    NTSTATUS user, system, misaligned;
    PVOID pool = ExAllocatePoolWithTag(NonPagedPool, 64, 'ePeS');
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    if (pool == NULL)
        return STATUS_INSUFFICIENT_RESOURCES;

    user = dispatch(IOCTL_SIOCTL_METHOD_NEITHER, (PVOID)(ULONG_PTR)0x10000, 64, &touched);
    DbgPrint("seed_probe: user buffer 0x%08X, went on %d\n", user, touched);
    system = dispatch(IOCTL_SIOCTL_METHOD_NEITHER, pool, 64, &touched);
    DbgPrint("seed_probe: system buffer 0x%08X, went on %d\n", system, touched);
    ExFreePoolWithTag(pool, 'ePeS');
    misaligned = STATUS_SUCCESS;
    try {
        TestProbeForRead((PVOID)(ULONG_PTR)0x10001, 4, sizeof(ULONG));
    } except (EXCEPTION_EXECUTE_HANDLER) {
        misaligned = GetExceptionCode();
    }
    DbgPrint("seed_probe: misaligned 0x%08X\n", misaligned);
    return user == STATUS_SUCCESS && system == STATUS_ACCESS_VIOLATION && misaligned == STATUS_DATATYPE_MISALIGNMENT
               ? STATUS_SUCCESS
               : STATUS_UNSUCCESSFUL;
}
