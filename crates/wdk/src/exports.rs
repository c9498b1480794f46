//! The export table: every routine and variable ntmem exports to drivers, once.
//!
//! Each row names the DLL a driver imports it from (`ntoskrnl.exe` or `HAL.dll`,
//! as the WDK's import libraries do), its WDK name, whether it is a routine or a
//! variable, the highest IRQL Microsoft's documentation allows a caller (the
//! "IRQL" row of each routine's page on learn.microsoft.com), and where ntmem
//! differs from Windows, if anywhere. From it come the import libraries drivers
//! link against ([`import_libraries`]), the check that `include/` declares
//! exactly what is exported, and `ntmem api`.
//!
//! The routines themselves live in the module of their prefix ([`crate::ex`],
//! [`crate::ke`], [`crate::mm`], …).

use ntmem_toolchain::ImportLibrary;

/// The DLL a driver imports a name from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Dll {
    /// `ntoskrnl.exe`: the kernel.
    Ntoskrnl,
    /// `HAL.dll`: the hardware abstraction layer (I/O ports, stalls).
    Hal,
}

impl Dll {
    /// The name drivers import it by.
    pub fn file_name(self) -> &'static str {
        match self {
            Dll::Ntoskrnl => "ntoskrnl.exe",
            Dll::Hal => "HAL.dll",
        }
    }
}

/// How an export is bound into a driver's import slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    /// A routine called through an import thunk that records the caller's context
    /// (`ntmem_host::thunk`): an exception the routine raises, or a fault inside
    /// it on a user address, is dispatched from the driver's frame.
    Routine,
    /// A routine bound to its own address: one that captures its caller's context
    /// itself (the raise and unwind routines), is called by the dispatcher rather
    /// than the driver (`__C_specific_handler`), or takes arguments in registers a
    /// thunk would not expect (`__chkstk`, size in rax).
    Direct,
    /// A variable: the import slot holds its address ([`crate::loader::KernelData`]).
    Data,
}

/// The highest IRQL a caller may be at, as documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MaxIrql {
    /// Any IRQL.
    Any,
    /// PASSIVE_LEVEL.
    Passive,
    /// APC_LEVEL or below.
    Apc,
    /// DISPATCH_LEVEL or below.
    Dispatch,
    /// Below DISPATCH_LEVEL for paged memory or user buffers, DISPATCH_LEVEL otherwise.
    DependsOnMemory,
    /// Below DISPATCH_LEVEL for paged memory, any IRQL for nonpaged memory (the
    /// bitmap routines, `RtlCompareMemory`, `RtlFillMemoryUlong`).
    AnyIfNonpaged,
    /// Exactly DISPATCH_LEVEL (a release that lowers).
    AtDispatch,
}

impl MaxIrql {
    /// As the documentation writes it.
    pub fn text(self) -> &'static str {
        match self {
            MaxIrql::Any => "any",
            MaxIrql::Passive => "PASSIVE_LEVEL",
            MaxIrql::Apc => "<= APC_LEVEL",
            MaxIrql::Dispatch => "<= DISPATCH_LEVEL",
            MaxIrql::DependsOnMemory => "<= APC_LEVEL (<= DISPATCH_LEVEL for nonpaged memory)",
            MaxIrql::AnyIfNonpaged => "<= APC_LEVEL (any for nonpaged memory)",
            MaxIrql::AtDispatch => "DISPATCH_LEVEL",
        }
    }
}

/// One exported name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Export {
    /// Where drivers import it from.
    pub dll: Dll,
    /// Its WDK name.
    pub name: &'static str,
    /// Routine or variable.
    pub kind: Kind,
    /// The highest IRQL a caller may be at.
    pub irql: MaxIrql,
    /// Where ntmem differs from Windows ("" when it does not).
    pub differs: &'static str,
}

impl Export {
    /// The NT component its prefix names (`Ex`, `Ke`, `Mm`, `Io`, `Rtl`, …).
    pub fn component(&self) -> &'static str {
        const PREFIXES: &[&str] =
            &["Rtl", "Ex", "Ke", "Kf", "Ki", "Mm", "Io", "Ob", "Ps", "Zw", "Po", "Dbg", "Kd", "Probe"];
        let prefix = PREFIXES.iter().find(|p| self.name.starts_with(*p)).copied();
        match prefix {
            Some("Kf" | "Ki") => "Ke",
            Some("Probe") => "Mm",
            Some(p) => p,
            None if self.name.starts_with("READ_") || self.name.starts_with("WRITE_") => "Hal",
            None => "CRT",
        }
    }
}

macro_rules! exports {
    ($($dll:ident $kind:ident $name:ident $(($($module:ident)::+))? $irql:ident $($differs:literal)?;)*) => {
        /// Every exported name, in the order of this file.
        pub const EXPORTS: &[Export] = &[$(Export {
            dll: Dll::$dll,
            name: stringify!($name),
            kind: Kind::$kind,
            irql: MaxIrql::$irql,
            differs: concat!("" $(, $differs)?),
        }),*];

        /// The address of the routine exported as `name` (its Microsoft-x64 entry
        /// point); `None` for variables and names not exported.
        pub fn routine_address(name: &str) -> Option<usize> {
            match name {
                $($(stringify!($name) => Some(crate::$($module)::+::$name as *const () as usize),)?)*
                _ => None,
            }
        }
    };
}

exports! {
    Ntoskrnl Routine ExAllocatePoolWithTag(ex) DependsOnMemory;
    Ntoskrnl Routine ExAllocatePool(ex) DependsOnMemory;
    Ntoskrnl Routine ExAllocatePoolWithTagPriority(ex) DependsOnMemory;
    Ntoskrnl Routine ExAllocatePoolWithQuotaTag(ex) DependsOnMemory "quota is charged to the System process";
    Ntoskrnl Routine ExAllocatePool2(ex) DependsOnMemory;
    Ntoskrnl Routine ExFreePoolWithTag(ex) DependsOnMemory;
    Ntoskrnl Routine ExFreePool(ex) DependsOnMemory;
    Ntoskrnl Routine ExQueryPoolBlockSize(ex) Dispatch;
    Ntoskrnl Routine ExInitializeNPagedLookasideList(lookaside) Dispatch;
    Ntoskrnl Routine ExInitializePagedLookasideList(lookaside) Apc;
    Ntoskrnl Routine ExInitializeLookasideListEx(lookaside) Dispatch;
    Ntoskrnl Routine ExAllocateFromLookasideListEx(lookaside) Dispatch;
    Ntoskrnl Routine ExFreeToLookasideListEx(lookaside) Dispatch;
    Ntoskrnl Routine ExDeleteLookasideListEx(lookaside) Dispatch;
    Ntoskrnl Direct ExRaiseStatus(seh) Dispatch;
    Ntoskrnl Direct ExRaiseAccessViolation(seh) Dispatch;
    Ntoskrnl Direct ExRaiseDatatypeMisalignment(seh) Dispatch;
    Ntoskrnl Direct RtlRaiseException(except::dispatch) Any;
    Ntoskrnl Direct RtlRaiseStatus(except::dispatch) Any;
    Ntoskrnl Direct RtlCaptureContext(except) Any;
    Ntoskrnl Direct RtlUnwindEx(except::unwind) Any;
    Ntoskrnl Direct RtlVirtualUnwind(except::unwind) Any;
    Ntoskrnl Direct RtlLookupFunctionEntry(except::unwind) Any;
    Ntoskrnl Direct __C_specific_handler(except::c_specific) Any;
    Ntoskrnl Direct __chkstk(crt) Any;
    Ntoskrnl Routine memcpy(crt) Any;
    Ntoskrnl Routine memmove(crt) Any;
    Ntoskrnl Routine memset(crt) Any;
    Ntoskrnl Routine memcmp(crt) Any;
    Ntoskrnl Data MmSystemRangeStart Any;
    Ntoskrnl Data MmHighestUserAddress Any;
    Ntoskrnl Data MmUserProbeAddress Any;
    Ntoskrnl Data NtBuildNumber Any;
    Ntoskrnl Data KeNumberProcessors Any;
    Ntoskrnl Routine KeGetCurrentIrql(ke) Any;
    Ntoskrnl Routine KfRaiseIrql(ke) Any;
    Ntoskrnl Routine KeLowerIrql(ke) Any;
    Ntoskrnl Routine KeInitializeSpinLock(ke) Any;
    Ntoskrnl Routine KeAcquireSpinLockRaiseToDpc(ke) Dispatch;
    Ntoskrnl Routine KeReleaseSpinLock(ke) AtDispatch;
    Ntoskrnl Routine IoCreateDevice(io) Passive;
    Ntoskrnl Routine IoDeleteDevice(io) Passive;
    Ntoskrnl Routine IofCompleteRequest(io_stack) Dispatch "an IRP from IoAllocateIrp that reaches the I/O manager stops the machine with 0x0A (Windows touches its NULL thread)";
    Ntoskrnl Routine IoCreateSymbolicLink(io) Passive;
    Ntoskrnl Routine IoCreateUnprotectedSymbolicLink(io) Passive "no security model: the same link as IoCreateSymbolicLink";
    Ntoskrnl Routine IoIsWdmVersionAvailable(io) Any;
    Ntoskrnl Routine IoGetDeviceObjectPointer(io) Passive "no security checks; a create left pending is waited for";
    Ntoskrnl Routine IoDeleteSymbolicLink(io) Passive;
    Ntoskrnl Routine IoAttachDeviceToDeviceStack(pnp) Passive;
    Ntoskrnl Routine IoDetachDevice(pnp) Passive;
    // DMA (issue 13): the one export; the DMA_OPERATIONS routines are table slots.
    Ntoskrnl Routine IoGetDmaAdapter(hal_dma) Passive "description version 3 only on a Windows 8 machine; BuildMdlFromScatterGatherList's slot is NULL; version 3 follows only the first MDL of a chain, its list routines need an ExecutionRoutine, ConfigureAdapterChannel is not implemented";
    Ntoskrnl Routine IoAttachDeviceToDeviceStackSafe(pnp) Passive;
    Ntoskrnl Routine IoGetAttachedDeviceReference(pnp) Dispatch;
    Ntoskrnl Routine IoAllocateMdl(mdl) Dispatch;
    Ntoskrnl Routine IoFreeMdl(mdl) Dispatch;
    Ntoskrnl Routine MmBuildMdlForNonPagedPool(mdl) Dispatch;
    Ntoskrnl Routine MmProbeAndLockPages(mdl) DependsOnMemory;
    Ntoskrnl Routine MmUnlockPages(mdl) Dispatch;
    Ntoskrnl Routine MmMapLockedPagesSpecifyCache(mdl) DependsOnMemory;
    Ntoskrnl Routine MmUnmapLockedPages(mdl) DependsOnMemory;
    Ntoskrnl Routine MmAllocateMappingAddress(mdl) Apc;
    Ntoskrnl Routine MmFreeMappingAddress(mdl) Apc;
    Ntoskrnl Routine MmMapLockedPagesWithReservedMapping(mdl) Dispatch;
    Ntoskrnl Routine MmUnmapReservedMapping(mdl) Dispatch;
    Ntoskrnl Routine ProbeForRead(mdl) Apc;
    Ntoskrnl Routine ProbeForWrite(mdl) Apc;
    Ntoskrnl Routine MmAllocateContiguousMemory(mm) Dispatch;
    Ntoskrnl Routine MmAllocateContiguousMemorySpecifyCache(mm) Dispatch;
    Ntoskrnl Routine MmFreeContiguousMemory(mm) Dispatch;
    Ntoskrnl Routine MmFreeContiguousMemorySpecifyCache(mm) Dispatch;
    Ntoskrnl Routine MmAllocateNonCachedMemory(mm) Apc;
    Ntoskrnl Routine MmFreeNonCachedMemory(mm) Apc;
    Ntoskrnl Routine MmGetPhysicalAddress(mm) Any;
    Ntoskrnl Routine MmIsAddressValid(mm) Dispatch;
    Ntoskrnl Routine MmLockPagableDataSection(mm) Apc;
    Ntoskrnl Routine MmLockPagableSectionByHandle(mm) Apc;
    Ntoskrnl Routine MmUnlockPagableImageSection(mm) Apc;
    Ntoskrnl Routine MmPageEntireDriver(mm) Apc;
    Ntoskrnl Routine MmResetDriverPaging(mm) Apc;
    Ntoskrnl Routine MmMapIoSpace(mm) Dispatch;
    Ntoskrnl Routine MmUnmapIoSpace(mm) Dispatch;
    Ntoskrnl Routine DbgPrint(dbg) Any;
    Ntoskrnl Routine DbgPrintEx(dbg) Any;
    Ntoskrnl Routine vDbgPrintEx(dbg) Any;
    Ntoskrnl Routine vDbgPrintExWithPrefix(dbg) Any;
    Ntoskrnl Routine RtlInitUnicodeString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlInitAnsiString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlInitString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlCopyUnicodeString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlAppendUnicodeToString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlAppendUnicodeStringToString(rtl) DependsOnMemory;
    Ntoskrnl Routine RtlCompareUnicodeString(rtl) Passive "case-insensitive comparison uses Unicode's simple uppercase, not Windows' table";
    Ntoskrnl Routine RtlEqualUnicodeString(rtl) Passive "case-insensitive comparison uses Unicode's simple uppercase, not Windows' table";
    Hal Routine READ_PORT_UCHAR(mm) Any;
    Hal Routine READ_PORT_USHORT(mm) Any;
    Hal Routine READ_PORT_ULONG(mm) Any;
    Hal Routine WRITE_PORT_UCHAR(mm) Any;
    Hal Routine WRITE_PORT_USHORT(mm) Any;
    Hal Routine WRITE_PORT_ULONG(mm) Any;
    Hal Routine READ_PORT_BUFFER_UCHAR(mm) Any;
    Hal Routine READ_PORT_BUFFER_USHORT(mm) Any;
    Hal Routine READ_PORT_BUFFER_ULONG(mm) Any;
    Hal Routine WRITE_PORT_BUFFER_UCHAR(mm) Any;
    Hal Routine WRITE_PORT_BUFFER_USHORT(mm) Any;
    Hal Routine WRITE_PORT_BUFFER_ULONG(mm) Any;
    // The C run time's string routines (issue 11).
    Ntoskrnl Routine strlen(crt_string) Any;
    Ntoskrnl Routine strnlen(crt_string) Any;
    Ntoskrnl Routine wcslen(crt_string) Any;
    Ntoskrnl Routine wcsnlen(crt_string) Any;
    Ntoskrnl Routine strcmp(crt_string) Any;
    Ntoskrnl Routine strncmp(crt_string) Any;
    Ntoskrnl Routine _stricmp(crt_string) Any;
    Ntoskrnl Routine _strnicmp(crt_string) Any;
    Ntoskrnl Routine wcscmp(crt_string) Any;
    Ntoskrnl Routine wcsncmp(crt_string) Any;
    Ntoskrnl Routine _wcsicmp(crt_string) Any;
    Ntoskrnl Routine _wcsnicmp(crt_string) Any;
    Ntoskrnl Routine strcpy(crt_string) Any;
    Ntoskrnl Routine strncpy(crt_string) Any;
    Ntoskrnl Routine wcscpy(crt_string) Any;
    Ntoskrnl Routine wcsncpy(crt_string) Any;
    Ntoskrnl Routine strcat(crt_string) Any;
    Ntoskrnl Routine strncat(crt_string) Any;
    Ntoskrnl Routine wcscat(crt_string) Any;
    Ntoskrnl Routine wcsncat(crt_string) Any;
    Ntoskrnl Routine strchr(crt_string) Any;
    Ntoskrnl Routine strrchr(crt_string) Any;
    Ntoskrnl Routine wcschr(crt_string) Any;
    Ntoskrnl Routine wcsrchr(crt_string) Any;
    Ntoskrnl Routine strstr(crt_string) Any;
    Ntoskrnl Routine wcsstr(crt_string) Any;
    Ntoskrnl Routine memchr(crt_string) Any;
    Ntoskrnl Routine toupper(crt_string) Any;
    Ntoskrnl Routine tolower(crt_string) Any;
    Ntoskrnl Routine towupper(crt_string) Any;
    Ntoskrnl Routine towlower(crt_string) Any;
    Ntoskrnl Routine _vsnprintf(crt_printf) Any "Windows' format language as DbgPrint reads it; no floating point";
    Ntoskrnl Routine _vsnwprintf(crt_printf) Any "as _vsnprintf";
    Ntoskrnl Routine _snprintf(crt_printf) Any "as _vsnprintf";
    Ntoskrnl Routine _snwprintf(crt_printf) Any "as _vsnprintf";
    Ntoskrnl Routine sprintf(crt_printf) Any "as _vsnprintf";
    Ntoskrnl Routine swprintf(crt_printf) Any "as _vsnprintf; the legacy form without a count, as ntoskrnl exports it";
    // Time, critical regions, breakpoints and assertions (issue 11).
    Ntoskrnl Routine KeQueryInterruptTime(ke) Any "simulated time: it advances by scenario steps, not by itself";
    Ntoskrnl Routine KeQuerySystemTime(ke) Any "a routine, not the x64 WDK's KUSER_SHARED_DATA macro; machines boot at 2005-01-01 00:00 UTC, simulated time";
    Ntoskrnl Routine KeQuerySystemTimePrecise(ke) Any "as KeQuerySystemTime";
    Ntoskrnl Routine KeQueryTickCount(ke) Any "a routine, not the x64 WDK's macro; simulated time";
    Ntoskrnl Routine KeQueryTimeIncrement(ke) Any;
    Ntoskrnl Routine KeQueryPerformanceCounter(ke) Any "10 MHz of simulated time";
    Ntoskrnl Routine KeEnterCriticalRegion(ke) Apc;
    Ntoskrnl Routine KeLeaveCriticalRegion(ke) Apc;
    Ntoskrnl Routine KeAreApcsDisabled(ke) Any;
    Ntoskrnl Routine DbgBreakPoint(dbg) Any "without /DEBUG the breakpoint exception is unhandled unless the driver's __except takes it; with /DEBUG ntmem's debugger continues";
    Ntoskrnl Routine DbgBreakPointWithStatus(dbg) Any "as DbgBreakPoint";
    Ntoskrnl Routine RtlAssert(dbg) Any "without /DEBUG prints, then breaks as DbgBreakPoint; with /DEBUG the debugger answers Ignore";
    Ntoskrnl Routine KdRefreshDebuggerNotPresent(dbg) Any;
    // Dispatcher objects, timers and DPCs on simulated time (issue 11).
    Ntoskrnl Routine KeInitializeEvent(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeSetEvent(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeResetEvent(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeClearEvent(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeReadStateEvent(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeInitializeSemaphore(ke_dispatcher) Passive;
    Ntoskrnl Routine KeReleaseSemaphore(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeReadStateSemaphore(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeInitializeTimer(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeInitializeTimerEx(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeSetTimer(ke_dispatcher) Dispatch "fires only when simulated time moves";
    Ntoskrnl Routine KeSetTimerEx(ke_dispatcher) Dispatch "fires only when simulated time moves";
    Ntoskrnl Routine KeCancelTimer(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeReadStateTimer(ke_dispatcher) Dispatch;
    Ntoskrnl Routine KeInitializeDpc(ke_dispatcher) Any;
    Ntoskrnl Routine KeInsertQueueDpc(ke_dispatcher) Any "the DPC runs when the queuing routine has returned, in a wait, or at KeFlushQueuedDpcs";
    Ntoskrnl Routine KeRemoveQueueDpc(ke_dispatcher) Any;
    Ntoskrnl Routine KeSetImportanceDpc(ke_dispatcher) Any;
    Ntoskrnl Routine KeFlushQueuedDpcs(ke_dispatcher) Passive;
    Ntoskrnl Routine KeWaitForSingleObject(ke_wait) Dispatch "one processor, cooperative scheduler: an unsatisfied wait blocks the thread until another thread, a DPC, a timer or a later step signals it; one nothing can ever satisfy stops the run";
    Ntoskrnl Routine KeDelayExecutionThread(ke_wait) Apc "blocks until simulated time passes its due time (other threads run meanwhile)";
    Ntoskrnl Routine KeAcquireSpinLockAtDpcLevel(ke) AtDispatch;
    Ntoskrnl Routine KeReleaseSpinLockFromDpcLevel(ke) AtDispatch;
    Ntoskrnl Routine RtlPrefixUnicodeString(rtl_convert) Passive "case-insensitive comparison uses Unicode's simple uppercase, not Windows' table";
    Ntoskrnl Routine RtlUpcaseUnicodeString(rtl_convert) Passive "Unicode's simple uppercase, not Windows' table";
    Ntoskrnl Routine RtlUnicodeStringToAnsiString(rtl_convert) Passive "the ANSI code page is Latin-1 (other characters become ?), not the system's";
    Ntoskrnl Routine RtlAnsiStringToUnicodeString(rtl_convert) Passive "the ANSI code page is Latin-1 (other characters become ?), not the system's";
    Ntoskrnl Routine RtlFreeUnicodeString(rtl_convert) Apc;
    Ntoskrnl Routine RtlFreeAnsiString(rtl_convert) Apc;
    Ntoskrnl Routine RtlCreateUnicodeString(rtl_convert) Passive;
    Ntoskrnl Routine RtlIntegerToUnicodeString(rtl_convert) Passive;
    Ntoskrnl Routine RtlUnicodeStringToInteger(rtl_convert) Passive;
    Ntoskrnl Routine RtlUpcaseUnicodeChar(rtl_convert) Apc "Unicode's simple uppercase, not Windows' table";
    Ntoskrnl Routine RtlDowncaseUnicodeChar(rtl_convert) Passive "Unicode's simple lowercase, not Windows' table";
    Ntoskrnl Routine RtlCompareString(rtl_convert) Passive;
    Ntoskrnl Routine RtlEqualString(rtl_convert) Passive;
    Ntoskrnl Routine RtlCompareMemory(rtl_memory) AnyIfNonpaged;
    Ntoskrnl Routine RtlFillMemoryUlong(rtl_memory) AnyIfNonpaged;
    Ntoskrnl Routine RtlGetVersion(rtl_memory) Passive;
    Ntoskrnl Routine RtlIsNtDdiVersionAvailable(rtl_memory) Passive "exported for every edition (Windows links it from Rtlver.lib before Vista)";
    // Bitmaps (issue 11).
    Ntoskrnl Routine RtlInitializeBitMap(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlClearAllBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlSetAllBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlSetBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlClearBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlFindClearBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlFindSetBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlFindClearBitsAndSet(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlFindSetBitsAndClear(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlAreBitsClear(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlAreBitsSet(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlNumberOfSetBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlNumberOfClearBits(rtl_bitmap) AnyIfNonpaged;
    Ntoskrnl Routine RtlTestBit(rtl_bitmap) AnyIfNonpaged;
    // Mutexes, multiple waits, work items, system threads, handles (issue 11, issue 12 item 2).
    Ntoskrnl Routine KeWaitForMultipleObjects(ke_wait) Dispatch "as KeWaitForSingleObject; no alertable waits";
    Ntoskrnl Routine KeInitializeMutex(ke_mutex) Passive;
    Ntoskrnl Routine KeReleaseMutex(ke_mutex) Dispatch;
    Ntoskrnl Routine KeReadStateMutex(ke_mutex) Dispatch;
    Ntoskrnl Routine ExAcquireFastMutex(ke_mutex) Apc "re-acquiring one the thread owns is 0xBF (Windows deadlocks)";
    Ntoskrnl Routine ExTryToAcquireFastMutex(ke_mutex) Apc;
    Ntoskrnl Routine ExReleaseFastMutex(ke_mutex) Apc "releasing one not owned raises STATUS_MUTANT_NOT_OWNED (Windows does not check)";
    Ntoskrnl Routine ExAcquireFastMutexUnsafe(ke_mutex) Apc "the caller's critical region is not checked";
    Ntoskrnl Routine ExReleaseFastMutexUnsafe(ke_mutex) Apc;
    Ntoskrnl Routine KeInitializeGuardedMutex(ke_mutex) Apc;
    Ntoskrnl Routine KeAcquireGuardedMutex(ke_mutex) Apc "re-acquiring one the thread owns is 0xBF (Windows deadlocks)";
    Ntoskrnl Routine KeTryToAcquireGuardedMutex(ke_mutex) Apc;
    Ntoskrnl Routine KeReleaseGuardedMutex(ke_mutex) Apc "releasing one not owned raises STATUS_MUTANT_NOT_OWNED (Windows does not check)";
    Ntoskrnl Routine KeEnterGuardedRegion(ke_mutex) Apc;
    Ntoskrnl Routine KeLeaveGuardedRegion(ke_mutex) Apc;
    Ntoskrnl Routine IoAllocateWorkItem(io_workitem) Dispatch;
    Ntoskrnl Routine IoQueueWorkItem(io_workitem) Dispatch "runs at the next settle point or inside a wait that needs it, in queueing order";
    Ntoskrnl Routine IoFreeWorkItem(io_workitem) Dispatch;
    Ntoskrnl Routine ExQueueWorkItem(io_workitem) Dispatch "as IoQueueWorkItem";
    Ntoskrnl Routine PsCreateSystemThread(ps) Passive "the thread first runs at the next switch point (a settle point, or a thread blocking) and blocks and resumes like any thread; priorities are not used";
    Ntoskrnl Routine PsTerminateSystemThread(ps) Passive;
    Ntoskrnl Routine KeGetCurrentThread(ps) Any "the requesting and worker threads are fixed addresses in the kernel-image region, nothing mapped there";
    Ntoskrnl Routine PsGetCurrentThread(ps) Any "as KeGetCurrentThread";
    Ntoskrnl Routine PsGetCurrentThreadId(ps) Any;
    Ntoskrnl Routine PsGetCurrentProcessId(ps) Any;
    Ntoskrnl Routine IoGetCurrentProcess(ps) Any "an opaque EPROCESS: no field of it is laid out";
    Ntoskrnl Routine PsGetProcessId(ps) Any "0 for a pointer that is no process's object";
    Ntoskrnl Data PsInitialSystemProcess Any "an opaque EPROCESS";
    Ntoskrnl Routine PsIsSystemThread(ps) Any;
    Ntoskrnl Routine PsGetVersion(ps) Passive "FALSE: a free build";
    Ntoskrnl Routine KeSetPriorityThread(ps) Dispatch "recorded, never used: threads run in creation order";
    Ntoskrnl Routine ZwClose(ob) Passive "handles to objects ntmem creates (threads, registry keys, a scenario's events)";
    Ntoskrnl Routine ObReferenceObjectByHandle(ob) Passive "handles to threads, registry keys and the events a scenario creates";
    Ntoskrnl Routine ObReferenceObjectByPointer(ob) Dispatch;
    Ntoskrnl Routine ObfReferenceObject(ob) Dispatch "objects ntmem does not count (file objects) are left alone";
    Ntoskrnl Routine ObfDereferenceObject(ob) Dispatch "objects ntmem does not count (file objects) are left alone";
    Ntoskrnl Routine ObfReferenceObjectWithTag(ob) Dispatch "as ObfReferenceObject";
    Ntoskrnl Routine ObfDereferenceObjectWithTag(ob) Dispatch "as ObfDereferenceObject";
    Ntoskrnl Routine ExInitializeResourceLite(ex_resource) Dispatch;
    Ntoskrnl Routine ExAcquireResourceExclusiveLite(ex_resource) Apc "APCs need not be disabled (ntmem has none)";
    Ntoskrnl Routine ExAcquireResourceSharedLite(ex_resource) Apc "APCs need not be disabled (ntmem has none)";
    Ntoskrnl Routine ExReleaseResourceLite(ex_resource) Dispatch;
    Ntoskrnl Routine ExDeleteResourceLite(ex_resource) Dispatch;
    Ntoskrnl Routine ExIsResourceAcquiredExclusiveLite(ex_resource) Dispatch;
    Ntoskrnl Routine ExIsResourceAcquiredSharedLite(ex_resource) Dispatch;
    Ntoskrnl Data PsThreadType Any;
    Ntoskrnl Data ExEventObjectType Any;
    Ntoskrnl Data PsProcessType Any;
    Ntoskrnl Data IoFileObjectType Any;
    // Cancellation and cancel-safe queues (issue 12).
    Ntoskrnl Routine IoAcquireCancelSpinLock(io_cancel) Dispatch;
    Ntoskrnl Routine IoReleaseCancelSpinLock(io_cancel) AtDispatch;
    Ntoskrnl Routine IoCancelIrp(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqInitialize(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqInitializeEx(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqInsertIrp(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqInsertIrpEx(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqRemoveIrp(io_cancel) Dispatch;
    Ntoskrnl Routine IoCsqRemoveNextIrp(io_cancel) Dispatch;
    // IRPs drivers allocate, device stacks and completion (issue 12).
    Ntoskrnl Routine IoAllocateIrp(io_stack) Dispatch "quota is not charged";
    Ntoskrnl Routine IoFreeIrp(io_stack) Dispatch;
    Ntoskrnl Routine IoReuseIrp(io_stack) Dispatch;
    Ntoskrnl Routine IoInitializeIrp(io_stack) Dispatch;
    Ntoskrnl Routine IoMakeAssociatedIrp(io_stack) Dispatch;
    Ntoskrnl Routine IofCallDriver(io_stack) Dispatch "a PDO stands in for its bus driver: start, stop, removal, set-power and query-power succeed, other PnP and power IRPs keep their status";
    Ntoskrnl Routine IoSetCompletionRoutineEx(io_stack) Dispatch "no context keeps the driver loaded until the routine runs";
    Ntoskrnl Routine IoBuildDeviceIoControlRequest(io_stack) Passive "Thread stays NULL; a bad buffer gives NULL, not an exception (0xC9/0x09 under I/O verification)";
    Ntoskrnl Routine IoBuildSynchronousFsdRequest(io_stack) Passive "Thread stays NULL; a bad buffer gives NULL, not an exception";
    Ntoskrnl Routine IoBuildAsynchronousFsdRequest(io_stack) Dispatch "Thread stays NULL; a bad buffer gives NULL, not an exception (0xC9/0x08 under I/O verification)";
    // Device queues and StartIo (issue 12).
    Ntoskrnl Routine KeInitializeDeviceQueue(io_start) Passive;
    Ntoskrnl Routine KeInsertDeviceQueue(io_start) Dispatch;
    Ntoskrnl Routine KeInsertByKeyDeviceQueue(io_start) Dispatch;
    Ntoskrnl Routine KeRemoveDeviceQueue(io_start) Dispatch;
    Ntoskrnl Routine KeRemoveByKeyDeviceQueue(io_start) Dispatch;
    Ntoskrnl Routine KeRemoveEntryDeviceQueue(io_start) Dispatch;
    Ntoskrnl Routine IoStartPacket(io_start) Dispatch;
    Ntoskrnl Routine IoStartNextPacket(io_start) Dispatch;
    Ntoskrnl Routine IoStartNextPacketByKey(io_start) Dispatch;
    // The registry (issue 11 item 4).
    Ntoskrnl Routine ZwOpenKey(cm) Passive;
    Ntoskrnl Routine ZwCreateKey(cm) Passive "the class and REG_OPTION_* are not kept; every key is volatile";
    Ntoskrnl Routine ZwQueryValueKey(cm) Passive;
    Ntoskrnl Routine ZwEnumerateValueKey(cm) Passive;
    Ntoskrnl Routine ZwEnumerateKey(cm) Passive;
    Ntoskrnl Routine ZwQueryKey(cm) Passive "keys have no class";
    Ntoskrnl Routine ZwSetValueKey(cm) Passive;
    Ntoskrnl Routine ZwDeleteValueKey(cm) Passive;
    Ntoskrnl Routine RtlQueryRegistryValues(rtl_registry) Passive "with no Environment, REG_EXPAND_SZ values expand from SystemRoot, windir and SystemDrive";
    Ntoskrnl Routine RtlWriteRegistryValue(rtl_registry) Passive;
    Ntoskrnl Routine RtlCheckRegistryKey(rtl_registry) Passive;
    Ntoskrnl Routine RtlCreateRegistryKey(rtl_registry) Passive;
    Ntoskrnl Routine RtlDeleteRegistryValue(rtl_registry) Passive;
    Ntoskrnl Routine IoOpenDeviceRegistryKey(io_registry) Passive "one instance path (ROOT\\NTMEM\\0000) and the Net class for the machine's bus device";
    // stdlib.h (issue 11 item 1).
    Ntoskrnl Routine abs(crt_stdlib) Any;
    Ntoskrnl Routine labs(crt_stdlib) Any;
    Ntoskrnl Routine qsort(crt_stdlib) Any "a heapsort: bounded comparisons whatever the comparator answers";
    Ntoskrnl Routine bsearch(crt_stdlib) Any;
    // Memory routines at the C boundary (issue 11 item 5).
    Ntoskrnl Routine IoBuildPartialMdl(mdl) Dispatch;
    Ntoskrnl Routine MmAllocatePagesForMdl(mdl) Apc "at DISPATCH_LEVEL: 0x0A, as a pageable routine";
    Ntoskrnl Routine MmAllocatePagesForMdlEx(mdl) Apc "at DISPATCH_LEVEL: 0x0A, as a pageable routine";
    Ntoskrnl Routine MmFreePagesFromMdl(mdl) Apc "at DISPATCH_LEVEL: 0x0A, as a pageable routine";
    Ntoskrnl Routine MmAdvanceMdl(mdl) Dispatch;
    Ntoskrnl Routine MmSizeOfMdl(mdl) Any;
    Ntoskrnl Routine MmMapLockedPages(mdl) DependsOnMemory;
    Ntoskrnl Routine MmIsNonPagedSystemAddressValid(mm) Any "resident pageable image sections count as nonpaged";
    Ntoskrnl Routine MmGetSystemRoutineAddress(mm) Passive "variables give NULL (each image has its own copy)";
    Ntoskrnl Routine MmIsThisAnNtAsSystem(mm) Any;
    Ntoskrnl Routine KeGetRecommendedSharedDataAlignment(ke) Any;
    Ntoskrnl Routine IoGetRemainingStackSize(io_kernel_stack) Any;
    Ntoskrnl Routine IoGetStackLimits(io_kernel_stack) Any;
    // Remove locks, power and PnP pass-through, I/O verification (issue 12 items 4-5, issue 14 item 6).
    Ntoskrnl Routine IoInitializeRemoveLockEx(io_remove_lock) Passive "the free build's lock: tags, file and line are not tracked";
    Ntoskrnl Routine IoAcquireRemoveLockEx(io_remove_lock) Dispatch "the free build's lock: tags, file and line are not tracked";
    Ntoskrnl Routine IoReleaseRemoveLockEx(io_remove_lock) Dispatch "the free build's lock: a release without an acquire is not caught";
    Ntoskrnl Routine IoReleaseRemoveLockAndWaitEx(io_remove_lock) Passive;
    Ntoskrnl Routine PoCallDriver(pnp) Dispatch "power IRPs are not held back until PoStartNextPowerIrp";
    Ntoskrnl Routine PoStartNextPowerIrp(pnp) Dispatch "nothing to release: ntmem sends one power IRP at a time";
    Ntoskrnl Routine PoSetPowerState(pnp) Dispatch "a device starts at PowerDeviceD0 and PowerSystemWorking; nothing is notified";
    // Lists under a spin lock, SLists, processors (issue 11 items 2-3).
    Ntoskrnl Routine ExInterlockedInsertHeadList(ex_interlocked) Any "above DISPATCH_LEVEL no lock is taken (one processor)";
    Ntoskrnl Routine ExInterlockedInsertTailList(ex_interlocked) Any "above DISPATCH_LEVEL no lock is taken (one processor)";
    Ntoskrnl Routine ExInterlockedRemoveHeadList(ex_interlocked) Any "above DISPATCH_LEVEL no lock is taken (one processor)";
    Ntoskrnl Routine ExInterlockedPushEntryList(ex_interlocked) Any "above DISPATCH_LEVEL no lock is taken (one processor)";
    Ntoskrnl Routine ExInterlockedPopEntryList(ex_interlocked) Any "above DISPATCH_LEVEL no lock is taken (one processor)";
    Ntoskrnl Routine ExpInterlockedPushEntrySList(ex_interlocked) Any;
    Ntoskrnl Routine ExpInterlockedPopEntrySList(ex_interlocked) Any;
    Ntoskrnl Routine ExpInterlockedFlushSList(ex_interlocked) Any;
    Ntoskrnl Routine KeGetCurrentProcessorNumberEx(ke_processor) Any "one processor group";
    Ntoskrnl Routine KeQueryActiveProcessorCountEx(ke_processor) Any "one processor group";
    Ntoskrnl Routine KeQueryActiveProcessorCount(ke_processor) Any;
    Ntoskrnl Routine KeQueryActiveProcessors(ke_processor) Any;
    Ntoskrnl Routine ExInitializeRundownProtection(ex_rundown) Any;
    Ntoskrnl Routine ExReInitializeRundownProtection(ex_rundown) Any;
    Ntoskrnl Routine ExAcquireRundownProtection(ex_rundown) Dispatch;
    Ntoskrnl Routine ExAcquireRundownProtectionEx(ex_rundown) Dispatch;
    Ntoskrnl Routine ExReleaseRundownProtection(ex_rundown) Dispatch;
    Ntoskrnl Routine ExReleaseRundownProtectionEx(ex_rundown) Dispatch;
    Ntoskrnl Routine ExWaitForRundownProtectionRelease(ex_rundown) Apc "Count holds the references, not the waiter's block, while it waits";
    Ntoskrnl Routine ExRundownCompleted(ex_rundown) Any;
    Ntoskrnl Routine ExAcquirePushLockExclusiveEx(ex_push_lock) Apc "waiters take the lock when they next run, not in queue order";
    Ntoskrnl Routine ExAcquirePushLockSharedEx(ex_push_lock) Apc "waiters take the lock when they next run, not in queue order";
    Ntoskrnl Routine ExReleasePushLockExclusiveEx(ex_push_lock) Apc;
    Ntoskrnl Routine ExReleasePushLockSharedEx(ex_push_lock) Apc;
    Hal Routine KeStallExecutionProcessor(ke_processor) Any "returns at once: simulated time does not move";
    Ntoskrnl Routine PoRequestPowerIrp(pnp) Dispatch "the PDO does not support wake: IRP_MN_WAIT_WAKE completes with STATUS_NOT_SUPPORTED";
    // Queued spin locks and releases for another thread, for deadlock detection (issue 14 item 7).
    Ntoskrnl Routine KeAcquireInStackQueuedSpinLock(ke) Dispatch "waiters spin on the lock word, not in a queue";
    Ntoskrnl Routine KeReleaseInStackQueuedSpinLock(ke) AtDispatch;
    Ntoskrnl Routine KeAcquireInStackQueuedSpinLockAtDpcLevel(ke) AtDispatch "waiters spin on the lock word, not in a queue";
    Ntoskrnl Routine KeReleaseInStackQueuedSpinLockFromDpcLevel(ke) AtDispatch;
    Ntoskrnl Routine ExReleaseResourceForThreadLite(ex_resource) Dispatch;
    // The rest of the memory routines at the C boundary (issue 11 item 5).
    Ntoskrnl Routine MmQuerySystemSize(mm) Any;
    Ntoskrnl Routine MmProtectMdlSystemAddress(mdl) Dispatch "PAGE_NOACCESS is made in the host alone: the PTEs stay valid, so MmIsAddressValid answers TRUE";
    Ntoskrnl Routine MmSecureVirtualMemory(mm) Apc;
    Ntoskrnl Routine MmUnsecureVirtualMemory(mm) Apc "a handle the current process does not hold is ignored";
    Ntoskrnl Routine MmAllocateContiguousNodeMemory(mm) Dispatch "one NUMA node; PAGE_EXECUTE_READWRITE memory cannot run code in the host";
    Ntoskrnl Routine MmGetVirtualForPhysical(mm) Any "NULL for a page with no system mapping (Windows returns a stale address)";
    Ntoskrnl Routine ExAllocatePool3(ex) DependsOnMemory "secure pool is not supported: NULL unless its parameter is Optional";
    Ntoskrnl Data KiUserSharedData Any "ntmem's own variable: where KUSER_SHARED_DATA is mapped, read by the header's KI_USER_SHARED_DATA (Windows: the constant 0xFFFFF78000000000, which a Linux process cannot map)";
}

/// The export named `name` from `dll` (DLL names compare without case, as the
/// Windows loader compares them).
pub fn find(dll: &str, name: &str) -> Option<&'static Export> {
    EXPORTS.iter().find(|e| e.name == name && e.dll.file_name().eq_ignore_ascii_case(dll))
}

/// The import libraries drivers link against, one per DLL, made from [`EXPORTS`].
pub fn import_libraries() -> Vec<ImportLibrary> {
    [Dll::Ntoskrnl, Dll::Hal]
        .into_iter()
        .map(|dll| {
            let of = |data| {
                EXPORTS
                    .iter()
                    .filter(move |e| e.dll == dll && (e.kind == Kind::Data) == data)
                    .map(|e| e.name.to_string())
            };
            ImportLibrary { dll: dll.file_name().to_string(), routines: of(false).collect(), data: of(true).collect() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_exported_once() {
        let mut names: Vec<_> = EXPORTS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name is listed twice");
    }

    #[test]
    fn lookups_ignore_the_dlls_case_and_components_follow_prefixes() {
        assert_eq!(find("NTOSKRNL.EXE", "ExAllocatePoolWithTag").map(Export::component), Some("Ex"));
        assert_eq!(find("hal.dll", "READ_PORT_UCHAR").map(Export::component), Some("Hal"));
        assert_eq!(find("hal.dll", "ExAllocatePoolWithTag"), None, "not exported from the HAL");
        assert_eq!(find("ntoskrnl.exe", "KfRaiseIrql").map(Export::component), Some("Ke"));
        assert_eq!(find("ntoskrnl.exe", "ProbeForRead").map(Export::component), Some("Mm"));
    }

    #[test]
    fn import_libraries_list_every_export_under_its_dll() {
        let libs = import_libraries();
        let total: usize = libs.iter().map(|l| l.routines.len() + l.data.len()).sum();
        assert_eq!(total, EXPORTS.len());
        assert!(libs[1].routines.contains(&"WRITE_PORT_ULONG".to_string()));
    }
}
