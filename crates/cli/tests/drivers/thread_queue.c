/* A worker thread fed by later scenario steps (the scheduler, crates/wdk/src/sched.rs):
 * DriverEntry starts a system thread that loops waiting (KeWaitForMultipleObjects,
 * WaitAny) on a semaphore counting queued requests and a stop event. IOCTL_QUEUE
 * leaves its IRP pending in a cancel-safe queue and releases the semaphore; the thread
 * completes it with its input and a sequence number. IOCTL_SLOW makes the thread sleep
 * 100 ms (KeDelayExecutionThread) before completing it, so the requests queued meanwhile
 * wait, and one of them can be cancelled. IOCTL_SYNC is handled in the caller's thread,
 * which waits (KeWaitForSingleObject) for the system thread to answer through an event:
 * the requesting thread blocks inside a step. Unload sets the stop event and waits on
 * the thread object. IOCTL_DEFER hands its IRP to a work item that waits in its worker
 * thread until IOCTL_RELEASE sets an event, then completes it.
 * Variants: -DUNLOAD_FORGETS_STOP (unload waits for a thread nobody stops: every thread
 * waits for ever), -DUNLOAD_LEAVES_THREAD (unload returns with the thread still waiting),
 * -DPOLL_MS=n (the thread's wait times out every n ms: a thread left behind runs again,
 * in an unloaded image), -DCRASH_IN_THREAD (IOCTL_CRASH makes the thread touch NULL),
 * -DHANG_IN_THREAD (IOCTL_CRASH makes the thread loop for ever). */
#include <ntddk.h>

#define IOCTL_QUEUE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SLOW CTL_CODE(FILE_DEVICE_UNKNOWN, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_SYNC CTL_CODE(FILE_DEVICE_UNKNOWN, 0x902, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_CRASH CTL_CODE(FILE_DEVICE_UNKNOWN, 0x903, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_DEFER CTL_CODE(FILE_DEVICE_UNKNOWN, 0x910, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IOCTL_RELEASE CTL_CODE(FILE_DEVICE_UNKNOWN, 0x911, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define SLOTS 8

static PDEVICE_OBJECT Device;
static IO_CSQ Queue;
static KSPIN_LOCK QueueLock;
static PIRP Slots[SLOTS];
static KSEMAPHORE Pending;
static KEVENT Stop, Answered, Release;
static PIO_WORKITEM DeferItem;
static PVOID Thread;
static PVOID Requester;
static LONG Sequence, SyncValue;

static VOID Insert(PIO_CSQ Csq, PIRP Irp)
{
    ULONG i;
    UNREFERENCED_PARAMETER(Csq);
    for (i = 0; i < SLOTS && Slots[i] != NULL; i++) {
    }
    Slots[i] = Irp;
}

static VOID Remove(PIO_CSQ Csq, PIRP Irp)
{
    ULONG i;
    UNREFERENCED_PARAMETER(Csq);
    for (i = 0; i < SLOTS; i++) {
        if (Slots[i] == Irp) {
            Slots[i] = NULL;
        }
    }
}

static PIRP PeekNext(PIO_CSQ Csq, PIRP Irp, PVOID PeekContext)
{
    ULONG i = 0;
    UNREFERENCED_PARAMETER(Csq);
    UNREFERENCED_PARAMETER(PeekContext);
    if (Irp != NULL) {
        while (i < SLOTS && Slots[i] != Irp) {
            i++;
        }
        i++;
    }
    for (; i < SLOTS; i++) {
        if (Slots[i] != NULL) {
            return Slots[i];
        }
    }
    return NULL;
}

static VOID AcquireLock(PIO_CSQ Csq, PKIRQL Irql)
{
    UNREFERENCED_PARAMETER(Csq);
    KeAcquireSpinLock(&QueueLock, Irql);
}

static VOID ReleaseLock(PIO_CSQ Csq, KIRQL Irql)
{
    UNREFERENCED_PARAMETER(Csq);
    KeReleaseSpinLock(&QueueLock, Irql);
}

static VOID CompleteCanceled(PIO_CSQ Csq, PIRP Irp)
{
    UNREFERENCED_PARAMETER(Csq);
    DbgPrint("cancelled in thread %d\n", KeGetCurrentThread() == Thread);
    Irp->IoStatus.Status = STATUS_CANCELLED;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static VOID Work(PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    PUCHAR buffer = Irp->AssociatedIrp.SystemBuffer;
    LARGE_INTEGER delay;
    ULONG code = stack->Parameters.DeviceIoControl.IoControlCode;
    UCHAR input = stack->Parameters.DeviceIoControl.InputBufferLength > 0 ? buffer[0] : 0;
    LONG n = InterlockedIncrement(&Sequence);
    if (code == IOCTL_SLOW) {
        delay.QuadPart = -100 * 10000LL;
        DbgPrint("thread: request %ld sleeps at %lu ms\n", n, (ULONG)(KeQueryInterruptTime() / 10000));
        KeDelayExecutionThread(KernelMode, FALSE, &delay);
    }
#ifdef CRASH_IN_THREAD
    if (code == IOCTL_CRASH) {
        *(volatile LONG *)NULL = n;
    }
#endif
#ifdef HANG_IN_THREAD
    if (code == IOCTL_CRASH) {
        for (;;) {
            InterlockedIncrement(&SyncValue);
        }
    }
#endif
    DbgPrint("thread: request %ld (%02x) done at %lu ms, IRQL %d\n", n, input,
             (ULONG)(KeQueryInterruptTime() / 10000), KeGetCurrentIrql());
    buffer[0] = input;
    buffer[1] = (UCHAR)n;
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 2;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

static VOID Loop(PVOID Context)
{
    PVOID objects[2];
    NTSTATUS status;
    PIRP irp;
#ifdef POLL_MS
    LARGE_INTEGER poll;
    poll.QuadPart = -POLL_MS * 10000LL;
#endif
    objects[0] = &Pending;
    objects[1] = &Stop;
    DbgPrint("thread: started, context ok %d, mine %d, IRQL %d\n", Context == Device,
             KeGetCurrentThread() == Thread, KeGetCurrentIrql());
    for (;;) {
#ifdef POLL_MS
        status = KeWaitForMultipleObjects(2, objects, WaitAny, Executive, KernelMode, FALSE, &poll, NULL);
        if (status == STATUS_TIMEOUT) {
            continue;
        }
#else
        status = KeWaitForMultipleObjects(2, objects, WaitAny, Executive, KernelMode, FALSE, NULL, NULL);
#endif
        if (status == STATUS_WAIT_0 + 1) {
            DbgPrint("thread: stop\n");
            PsTerminateSystemThread(STATUS_SUCCESS);
        }
        if (SyncValue > 0) {
            DbgPrint("thread: answers %ld\n", SyncValue);
            SyncValue = -SyncValue;
            KeSetEvent(&Answered, 0, FALSE);
            continue;
        }
        irp = IoCsqRemoveNextIrp(&Queue, NULL);
        if (irp == NULL) {
            DbgPrint("thread: woken for a request that was cancelled\n");
            continue;
        }
        Work(irp);
    }
}

static VOID Deferred(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    PIRP irp = Context;
    PUCHAR buffer = irp->AssociatedIrp.SystemBuffer;
    UNREFERENCED_PARAMETER(DeviceObject);
    DbgPrint("worker: waits, id %lu, system %d, not the thread %d\n", (ULONG)(ULONG_PTR)PsGetCurrentThreadId(),
             PsIsSystemThread(PsGetCurrentThread()), KeGetCurrentThread() != Thread);
    KeWaitForSingleObject(&Release, Executive, KernelMode, FALSE, NULL);
    DbgPrint("worker: released at %lu ms\n", (ULONG)(KeQueryInterruptTime() / 10000));
    buffer[0] = 0xdd;
    buffer[1] = 0;
    IoFreeWorkItem(DeferItem);
    DeferItem = NULL;
    irp->IoStatus.Status = STATUS_SUCCESS;
    irp->IoStatus.Information = 2;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
}

static NTSTATUS CreateClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static NTSTATUS Control(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    NTSTATUS status;
    UNREFERENCED_PARAMETER(DeviceObject);
    if (stack->Parameters.DeviceIoControl.OutputBufferLength < 2) {
        status = STATUS_BUFFER_TOO_SMALL;
    } else if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_DEFER && DeferItem == NULL) {
        DeferItem = IoAllocateWorkItem(DeviceObject);
        if (DeferItem == NULL) {
            status = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            IoMarkIrpPending(Irp);
            IoQueueWorkItem(DeferItem, Deferred, DelayedWorkQueue, Irp);
            return STATUS_PENDING;
        }
    } else if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_RELEASE) {
        KeSetEvent(&Release, 0, FALSE);
        Irp->IoStatus.Information = 0;
        status = STATUS_SUCCESS;
    } else if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_SYNC) {
        PUCHAR buffer = Irp->AssociatedIrp.SystemBuffer;
        SyncValue = 7;
        KeReleaseSemaphore(&Pending, 0, 1, FALSE);
        status = KeWaitForSingleObject(&Answered, Executive, KernelMode, FALSE, NULL);
        DbgPrint("requester: answered %08x, value %ld, same thread %d\n", status, SyncValue,
                 KeGetCurrentThread() == Requester);
        buffer[0] = (UCHAR)-SyncValue;
        buffer[1] = 0;
        SyncValue = 0;
        Irp->IoStatus.Information = 2;
        status = STATUS_SUCCESS;
    } else {
        IoCsqInsertIrp(&Queue, Irp, NULL);
        KeReleaseSemaphore(&Pending, 0, 1, FALSE);
        return STATUS_PENDING;
    }
    Irp->IoStatus.Status = status;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(DriverObject);
#if !defined(UNLOAD_FORGETS_STOP) && !defined(UNLOAD_LEAVES_THREAD)
    KeSetEvent(&Stop, 0, FALSE);
#endif
#ifndef UNLOAD_LEAVES_THREAD
    status = KeWaitForSingleObject(Thread, Executive, KernelMode, FALSE, NULL);
    DbgPrint("unload: thread ended %08x\n", status);
#else
    UNREFERENCED_PARAMETER(status);
#endif
    ObDereferenceObject(Thread);
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE handle;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    Device->Flags |= DO_BUFFERED_IO;
    KeInitializeSpinLock(&QueueLock);
    KeInitializeSemaphore(&Pending, 0, MAXLONG);
    KeInitializeEvent(&Stop, NotificationEvent, FALSE);
    KeInitializeEvent(&Answered, SynchronizationEvent, FALSE);
    KeInitializeEvent(&Release, SynchronizationEvent, FALSE);
    IoCsqInitialize(&Queue, Insert, Remove, PeekNext, AcquireLock, ReleaseLock, CompleteCanceled);
    Requester = KeGetCurrentThread();
    status = PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Loop, Device);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(Device);
        return status;
    }
    ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &Thread, NULL);
    ZwClose(handle);
    DriverObject->MajorFunction[IRP_MJ_CREATE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = CreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Control;
    DriverObject->DriverUnload = Unload;
    DbgPrint("entry: thread created\n");
    return STATUS_SUCCESS;
}
