/* The thread-switch benchmark's driver (benches/threads.rs): DriverEntry starts a
 * system thread and plays ROUNDS rounds of ping-pong with it through two
 * synchronization events; each round is two switches (the requesting thread blocks,
 * the system thread resumes, sets Pong and blocks, the requesting thread resumes).
 * Then it stops the thread and waits for it. */
#include <ntddk.h>

static KEVENT Ping, Pong;
static volatile LONG Stop;

static VOID Player(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    for (;;) {
        KeWaitForSingleObject(&Ping, Executive, KernelMode, FALSE, NULL);
        if (Stop) {
            PsTerminateSystemThread(STATUS_SUCCESS);
        }
        KeSetEvent(&Pong, 0, FALSE);
    }
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE handle;
    PVOID thread;
    LONG i;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeEvent(&Ping, SynchronizationEvent, FALSE);
    KeInitializeEvent(&Pong, SynchronizationEvent, FALSE);
    status = PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, NULL, NULL, NULL, Player, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    ObReferenceObjectByHandle(handle, THREAD_ALL_ACCESS, *PsThreadType, KernelMode, &thread, NULL);
    ZwClose(handle);
    for (i = 0; i < ROUNDS; i++) {
        KeSetEvent(&Ping, 0, FALSE);
        KeWaitForSingleObject(&Pong, Executive, KernelMode, FALSE, NULL);
    }
    Stop = 1;
    KeSetEvent(&Ping, 0, FALSE);
    KeWaitForSingleObject(thread, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(thread);
    return STATUS_SUCCESS;
}
