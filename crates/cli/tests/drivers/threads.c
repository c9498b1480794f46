/* System threads, work items and handles: a thread created in DriverEntry that
 * DriverEntry waits for (it runs inside the wait), ends with PsTerminateSystemThread
 * and is waited on through the object ObReferenceObjectByHandle gave; an I/O work
 * item and an executive work item that run after DriverEntry returns, at
 * PASSIVE_LEVEL in a worker thread. Misuse, one per build: -DLEAK_HANDLE (the thread
 * object leaks), -DLEAK_WORKITEM (the IO_WORKITEM leaks), -DWORKER_HOLDS_MUTEX
 * (0x39), -DTHREAD_WAITS_FOREVER (a wait that can never end), -DCLOSE_TWICE (0x93),
 * -DDEREFERENCE_TWICE (0x18), -DCRITICAL_REGION_KEPT (DriverEntry returns with APCs
 * disabled: 0x01), -DTHREAD_FAULTS (an access violation no handler takes
 * in a system thread: 0x7E). A second thread, not waited for, runs after the work
 * items, in its own thread state (the critical region DriverEntry held is not its). */
#include <ntddk.h>

static KEVENT Go;
static KMUTEX Mutex;
static PDEVICE_OBJECT Device;
static WORK_QUEUE_ITEM ExItem;
static PIO_WORKITEM IoItem;
static volatile LONG Ran;

static VOID ThreadStart(PVOID Context)
{
    KPRIORITY old = KeSetPriorityThread(KeGetCurrentThread(), LOW_REALTIME_PRIORITY);
    DbgPrint("thread: context %p, IRQL %d, priority was %ld, system %d, other thread %d\n", Context,
             KeGetCurrentIrql(), old, PsIsSystemThread(PsGetCurrentThread()), PsGetCurrentThreadId() != (HANDLE)8);
#ifdef THREAD_WAITS_FOREVER
    KeResetEvent(&Go);
#endif
#ifdef THREAD_FAULTS
    *(volatile LONG *)Context = 1;
#endif
    KeWaitForSingleObject(&Go, Executive, KernelMode, FALSE, NULL);
    InterlockedIncrement(&Ran);
    PsTerminateSystemThread(STATUS_SUCCESS);
    DbgPrint("thread: not reached\n");
}

static VOID IoWorker(PDEVICE_OBJECT DeviceObject, PVOID Context)
{
    DbgPrint("io work item: device ok %d, context %p, IRQL %d, worker %d\n", DeviceObject == Device, Context,
             KeGetCurrentIrql(), PsIsSystemThread(PsGetCurrentThread()));
#ifdef WORKER_HOLDS_MUTEX
    KeWaitForSingleObject(&Mutex, Executive, KernelMode, FALSE, NULL);
#endif
#ifndef LEAK_WORKITEM
    IoFreeWorkItem(IoItem);
#endif
}

static VOID ExWorker(PVOID Parameter)
{
    DbgPrint("ex work item: parameter %p, IRQL %d\n", Parameter, KeGetCurrentIrql());
}

static VOID Detached(PVOID Context)
{
    DbgPrint("detached thread: context %p, IRQL %d, apcs-disabled %d\n", Context, KeGetCurrentIrql(),
             KeAreApcsDisabled());
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    DbgPrint("unload: thread ran %ld\n", Ran);
    IoDeleteDevice(Device);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    PVOID object = NULL, wrong = NULL;
    CLIENT_ID id;
    OBJECT_ATTRIBUTES attributes;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(RegistryPath);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    KeInitializeEvent(&Go, NotificationEvent, FALSE);
    KeInitializeMutex(&Mutex, 0);
    InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, &attributes, NULL, &id, ThreadStart, (PVOID)0x1234);
    DbgPrint("create: %08x, process %p, kernel handle %d\n", status, id.UniqueProcess, (LONG_PTR)thread < 0);
    status = ObReferenceObjectByHandle(thread, THREAD_ALL_ACCESS, *ExEventObjectType, KernelMode, &wrong, NULL);
    DbgPrint("as an event: %08x\n", status);
    status = ObReferenceObjectByHandle(thread, 0, *IoFileObjectType, KernelMode, &wrong, NULL);
    DbgPrint("as a file: %08x, as a process: %08x, bad handle: %08x\n", status,
             ObReferenceObjectByHandle(thread, 0, *PsProcessType, KernelMode, &wrong, NULL),
             ObReferenceObjectByHandle((HANDLE)(LONG_PTR)-100, 0, NULL, KernelMode, &wrong, NULL));
    status = ObReferenceObjectByHandle(thread, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &object, NULL);
    DbgPrint("as a thread: %08x, not mine %d\n", status, object != (PVOID)KeGetCurrentThread());
#ifndef LEAK_HANDLE
    ZwClose(thread);
#endif
#ifdef CLOSE_TWICE
    ZwClose(thread);
#endif
    DbgPrint("thread running before the wait: %ld\n", Ran);
    KeSetEvent(&Go, 0, FALSE);
    status = KeWaitForSingleObject(object, Executive, KernelMode, FALSE, NULL);
    DbgPrint("thread ended: %08x, ran %ld, signalled %ld\n", status, Ran,
             ((DISPATCHER_HEADER *)object)->SignalState);
#ifndef LEAK_HANDLE
    ObDereferenceObject(object);
#endif
#ifdef DEREFERENCE_TWICE
    ObDereferenceObject(object);
#endif
    IoItem = IoAllocateWorkItem(Device);
    IoQueueWorkItem(IoItem, IoWorker, DelayedWorkQueue, (PVOID)0x5678);
    ExInitializeWorkItem(&ExItem, ExWorker, (PVOID)0x9abc);
    ExQueueWorkItem(&ExItem, DelayedWorkQueue);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, Detached, (PVOID)0xdef0);
    if (NT_SUCCESS(status)) {
        ZwClose(thread);
    }
    KeEnterCriticalRegion();
    DbgPrint("queued at IRQL %d\n", KeGetCurrentIrql());
#ifndef CRITICAL_REGION_KEPT
    KeLeaveCriticalRegion();
#endif
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
