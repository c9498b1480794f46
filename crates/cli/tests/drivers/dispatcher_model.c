/* The dispatcher under a property test (tests/dispatcher_model.rs, issue 11): each
 * IOCTL carries a program of timer, DPC, event and wait operations; the driver runs
 * it on fresh objects and returns a trace of what each operation returned and when
 * (milliseconds of interrupt time since the program began), with every DPC run: which
 * DPC, when, and its system arguments (the expiry time a timer gives, or the marker
 * KeInsertQueueDpc passed). The test runs the same program on a reference model.
 *
 * Objects: events 0 (notification) and 1 (synchronization); timers 0-1
 * (notification) and 2-3 (synchronization); DPCs 0-3. DPC j sets event j & 1 when
 * j < 3; DPC 3 only records. Wait operands name an object: 0-1 the events, 2-5 the
 * timers.
 *
 * Output: a ULONG count of the words that follow, then the words (records of three).
 * A program's DPCs still queued when the IOCTL returns run before the next IOCTL
 * (the machine's settle point), so they open the next IOCTL's trace. */
#include <ntddk.h>

#define IOCTL_PROGRAM CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define TRACE_WORDS 6000
#define INSERTED 0xFFFFFFFFul

enum { OP_SET = 1, OP_CANCEL, OP_READ, OP_INSERT, OP_REMOVE, OP_SET_EVENT, OP_RESET_EVENT, OP_WAIT, OP_WAIT_TWO,
       OP_DELAY, OP_FLUSH, OP_IMPORTANCE };

static PDEVICE_OBJECT Device;
static KEVENT Events[2];
static KTIMER Timers[4];
static KDPC Dpcs[4];
static ULONG64 Start;
static ULONG Trace[TRACE_WORDS];
static ULONG Words;
static BOOLEAN Overflow;

static ULONG NowMs(VOID)
{
    return (ULONG)((KeQueryInterruptTime() - Start) / 10000);
}

static VOID Record(ULONG a, ULONG b, ULONG c)
{
    if (Words + 3 > TRACE_WORDS) {
        Overflow = TRUE;
        return;
    }
    Trace[Words++] = a;
    Trace[Words++] = b;
    Trace[Words++] = c;
}

static VOID DpcRoutine(PKDPC Dpc, PVOID Context, PVOID Argument1, PVOID Argument2)
{
    ULONG j = (ULONG)(ULONG_PTR)Context;
    ULONG argument;
    UNREFERENCED_PARAMETER(Dpc);
    if ((ULONG_PTR)Argument2 == 0xB0B && (ULONG_PTR)Argument1 == (0x1000 | j)) {
        argument = INSERTED;
    } else {
        /* A timer's expiry: interrupt time, low 32 bits in Argument1. */
        argument = ((ULONG)(ULONG_PTR)Argument1 - (ULONG)Start) / 10000;
    }
    Record(0x200 | j | (KeGetCurrentIrql() << 4), NowMs(), argument);
    if (j < 3) {
        KeSetEvent(&Events[j & 1], 0, FALSE);
    }
}

static PVOID ObjectOf(UCHAR operand)
{
    return operand < 2 ? (PVOID)&Events[operand] : (PVOID)&Timers[(operand - 2) & 3];
}

static LARGE_INTEGER Relative(ULONG ms)
{
    LARGE_INTEGER t;
    t.QuadPart = -(LONGLONG)ms * 10000;
    return t;
}

/* Runs the program; false when it is malformed. */
static BOOLEAN Run(const UCHAR *p, ULONG length)
{
    ULONG i = 0, k;
    for (k = 0; k < 2; k++) {
        KeInitializeEvent(&Events[k], k == 0 ? NotificationEvent : SynchronizationEvent, FALSE);
    }
    for (k = 0; k < 4; k++) {
        KeInitializeTimerEx(&Timers[k], k < 2 ? NotificationTimer : SynchronizationTimer);
        KeInitializeDpc(&Dpcs[k], DpcRoutine, (PVOID)(ULONG_PTR)k);
    }
    Start = KeQueryInterruptTime();
    while (i < length) {
        UCHAR op = p[i];
        ULONG result = 0;
        LARGE_INTEGER t;
        switch (op) {
        case OP_SET: /* timer, due ms, period ms, DPC (0xFF: none) */
            if (i + 5 > length) return FALSE;
            t = Relative(p[i + 2]);
            result = KeSetTimerEx(&Timers[p[i + 1] & 3], t, p[i + 3], p[i + 4] == 0xFF ? NULL : &Dpcs[p[i + 4] & 3]);
            i += 5;
            break;
        case OP_CANCEL:
        case OP_READ:
            if (i + 2 > length) return FALSE;
            result = op == OP_CANCEL ? KeCancelTimer(&Timers[p[i + 1] & 3]) : KeReadStateTimer(&Timers[p[i + 1] & 3]);
            i += 2;
            break;
        case OP_INSERT:
        case OP_REMOVE:
            if (i + 2 > length) return FALSE;
            k = p[i + 1] & 3;
            result = op == OP_INSERT ? KeInsertQueueDpc(&Dpcs[k], (PVOID)(ULONG_PTR)(0x1000 | k), (PVOID)0xB0B)
                                     : KeRemoveQueueDpc(&Dpcs[k]);
            i += 2;
            break;
        case OP_SET_EVENT:
        case OP_RESET_EVENT:
            if (i + 2 > length) return FALSE;
            result = (ULONG)(op == OP_SET_EVENT ? KeSetEvent(&Events[p[i + 1] & 1], 0, FALSE)
                                                : KeResetEvent(&Events[p[i + 1] & 1]));
            i += 2;
            break;
        case OP_WAIT: /* object, timeout ms */
            if (i + 3 > length) return FALSE;
            t = Relative(p[i + 2]);
            result = (ULONG)KeWaitForSingleObject(ObjectOf(p[i + 1]), Executive, KernelMode, FALSE, &t);
            i += 3;
            break;
        case OP_WAIT_TWO: { /* object, object, all, timeout ms */
            PVOID objects[2];
            if (i + 5 > length) return FALSE;
            objects[0] = ObjectOf(p[i + 1]);
            objects[1] = ObjectOf(p[i + 2]);
            t = Relative(p[i + 4]);
            result = (ULONG)KeWaitForMultipleObjects(2, objects, p[i + 3] ? WaitAll : WaitAny, Executive, KernelMode,
                                                     FALSE, &t, NULL);
            i += 5;
            break;
        }
        case OP_DELAY:
            if (i + 2 > length) return FALSE;
            t = Relative(p[i + 1]);
            result = (ULONG)KeDelayExecutionThread(KernelMode, FALSE, &t);
            i += 2;
            break;
        case OP_FLUSH:
            KeFlushQueuedDpcs();
            i += 1;
            break;
        case OP_IMPORTANCE:
            if (i + 3 > length) return FALSE;
            KeSetImportanceDpc(&Dpcs[p[i + 1] & 3], (KDPC_IMPORTANCE)(p[i + 2] & 3));
            i += 3;
            break;
        default:
            return FALSE;
        }
        Record(0x100 | op, result, NowMs());
    }
    /* Timers do not outlive their program; queued DPCs run when this IOCTL returns. */
    for (k = 0; k < 4; k++) {
        KeCancelTimer(&Timers[k]);
    }
    return TRUE;
}

static NTSTATUS Control(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    ULONG in = stack->Parameters.DeviceIoControl.InputBufferLength;
    ULONG out = stack->Parameters.DeviceIoControl.OutputBufferLength;
    PULONG buffer = Irp->AssociatedIrp.SystemBuffer;
    NTSTATUS status = STATUS_SUCCESS;
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Information = 0;
    if (stack->Parameters.DeviceIoControl.IoControlCode != IOCTL_PROGRAM || out < sizeof(Trace) + sizeof(ULONG)) {
        status = STATUS_INVALID_PARAMETER;
    } else {
        UCHAR program[256];
        if (in > sizeof(program)) {
            status = STATUS_INVALID_PARAMETER;
        } else {
            RtlCopyMemory(program, buffer, in);
            if (!Run(program, in)) {
                status = STATUS_INVALID_PARAMETER;
            }
        }
    }
    if (NT_SUCCESS(status)) {
        buffer[0] = Overflow ? 0xFFFFFFFF : Words;
        RtlCopyMemory(buffer + 1, Trace, Words * sizeof(ULONG));
        Irp->IoStatus.Information = (1 + Words) * sizeof(ULONG);
        Words = 0;
        Overflow = FALSE;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS CreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    ULONG k;
    UNREFERENCED_PARAMETER(DriverObject);
    for (k = 0; k < 4; k++) {
        KeCancelTimer(&Timers[k]);
        KeRemoveQueueDpc(&Dpcs[k]);
    }
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    Device->Flags |= DO_BUFFERED_IO;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
