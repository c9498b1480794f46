/* KUSER_SHARED_DATA (issue 11 item 5): the WDK's SharedUserData and the x64 inline
 * forms of KeQueryTickCount / KeQuerySystemTime / KeQueryInterruptTime read the page;
 * they agree with the routines, and the times move with simulated time (the
 * ioctl of shared_data.toml comes after an advance_ms step); a process has the page
 * at 0x7FFE0000 too, read-only. */
#include <ntddk.h>

static ULONG checks, failures;
static ULONG64 entry_ticks;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("shared: FAIL line %d: %s\n", __LINE__, #cond);     \
        }                                                                 \
    } while (0)

static VOID SameTimes(VOID)
{
    LARGE_INTEGER ticks, system;
    KeQueryTickCount(&ticks);
    KeQuerySystemTime(&system);
    CHECK(*(volatile ULONG64 *)SharedTickCount == (ULONG64)ticks.QuadPart);
    CHECK(SharedUserData->TickCountQuad == (ULONG64)ticks.QuadPart);
    CHECK(*(volatile ULONG64 *)SharedSystemTime == (ULONG64)system.QuadPart);
    CHECK(*(volatile ULONG64 *)SharedInterruptTime == KeQueryInterruptTime());
    CHECK(SharedUserData->SystemTime.High1Time == SharedUserData->SystemTime.High2Time);
}

static NTSTATUS Dispatch(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
    ULONG64 now = *(volatile ULONG64 *)SharedTickCount;
    UNREFERENCED_PARAMETER(DeviceObject);
    KUSER_SHARED_DATA *user = (KUSER_SHARED_DATA *)(ULONG_PTR)0x7FFE0000;
    BOOLEAN refused = FALSE;
    checks = failures = 0;
    SameTimes();
    /* The caller's process has the same page at the user address, read-only. */
    CHECK(user->TickCountQuad == now && user->NtMajorVersion == SharedUserData->NtMajorVersion);
    __try {
        *(volatile ULONG *)&user->TickCountMultiplier = 1;
    } __except (GetExceptionCode() == STATUS_ACCESS_VIOLATION ? EXCEPTION_EXECUTE_HANDLER : EXCEPTION_CONTINUE_SEARCH) {
        refused = TRUE;
    }
    CHECK(refused && SharedUserData->TickCountMultiplier == 0x0FA00000);
    DbgPrint("shared: %I64u ticks later, %lu checks, %lu failed\n", now - entry_ticks, checks, failures);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    IoDeleteDevice(DriverObject->DeviceObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    RTL_OSVERSIONINFOW version;
    PDEVICE_OBJECT device;
    UNREFERENCED_PARAMETER(RegistryPath);
    version.dwOSVersionInfoSize = sizeof(version);
    CHECK(RtlGetVersion(&version) == STATUS_SUCCESS);
    CHECK(SharedUserData->NtMajorVersion == version.dwMajorVersion);
    CHECK(SharedUserData->NtMinorVersion == version.dwMinorVersion);
    CHECK(SharedUserData->ProductTypeIsValid);
    CHECK((SharedUserData->NtProductType == NtProductWinNt) == !MmIsThisAnNtAsSystem());
    CHECK(SharedUserData->TickCountMultiplier == 0x0FA00000);
    CHECK(SharedUserData->ProcessorFeatures[PF_XMMI64_INSTRUCTIONS_AVAILABLE]);
    CHECK(SharedUserData->NumberOfPhysicalPages > 0x4000);
    SameTimes();
    entry_ticks = *(volatile ULONG64 *)SharedTickCount;
    DbgPrint("shared: at %p, %ws, version %lu.%lu, image %04x, NX %d, product %d, pages %lu\n",
             (PVOID)KI_USER_SHARED_DATA, SharedUserData->NtSystemRoot, SharedUserData->NtMajorVersion,
             SharedUserData->NtMinorVersion, SharedUserData->ImageNumberLow,
             SharedUserData->ProcessorFeatures[PF_NX_ENABLED], SharedUserData->NtProductType,
             SharedUserData->NumberOfPhysicalPages);
    DbgPrint("shared: entry %lu checks, %lu failed\n", checks, failures);
    if (!NT_SUCCESS(IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, 0, FALSE, &device)))
        return STATUS_UNSUCCESSFUL;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = Dispatch;
    DriverObject->DriverUnload = Unload;
    return STATUS_SUCCESS;
}
