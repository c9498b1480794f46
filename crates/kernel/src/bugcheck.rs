//! The one bugcheck path (DESIGN.md, decision 4).
//!
//! Every violation the simulated kernel detects becomes a [`BugCheck`]: Windows'
//! code, name and four parameters in the documented order. The machine stops; the
//! report reads like `!analyze -v` ([`BugCheck::analysis`]) and serialises to JSON.
//! The table of codes, names and parameter meanings is [`BUGCHECKS`]; its rows come
//! from Microsoft's "Bug Check Code Reference" pages (learn.microsoft.com,
//! `windows-hardware/drivers/debugger/bug-check-0x..`) and
//! `shared/research/nt-algorithms.md` / `shared/research/peers.md` §7.3.

use std::fmt::{self, Write as _};

/// A bugcheck code (`BugCheckCode` in `KeBugCheckEx`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BugCheckCode(pub u32);

impl fmt::Debug for BugCheckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} {}", self.0, self.name())
    }
}

impl BugCheckCode {
    /// 0x09: KeRaiseIrql to a level below the current one, and similar.
    pub const IRQL_NOT_GREATER_OR_EQUAL: Self = Self(0x09);
    /// 0x0A: a fault on pageable or invalid memory at raised IRQL, no driver named.
    pub const IRQL_NOT_LESS_OR_EQUAL: Self = Self(0x0A);
    /// 0x10: a spin lock released by a processor that does not hold it.
    pub const SPIN_LOCK_NOT_OWNED: Self = Self(0x10);
    /// 0x19: a corrupted pool header.
    pub const BAD_POOL_HEADER: Self = Self(0x19);
    /// 0x1E: an unhandled kernel-mode exception.
    pub const KMODE_EXCEPTION_NOT_HANDLED: Self = Self(0x1E);
    /// 0x35: IoCallDriver with no stack location left for the next driver.
    pub const NO_MORE_IRP_STACK_LOCATIONS: Self = Self(0x35);
    /// 0x3F: no system PTEs left.
    pub const NO_MORE_SYSTEM_PTES: Self = Self(0x3F);
    /// 0x50: a reference to invalid system memory.
    pub const PAGE_FAULT_IN_NONPAGED_AREA: Self = Self(0x50);
    /// 0x76: a process ended with pages still locked.
    pub const PROCESS_HAS_LOCKED_PAGES: Self = Self(0x76);
    /// 0x7E: an unhandled exception in a system thread.
    pub const SYSTEM_THREAD_EXCEPTION_NOT_HANDLED: Self = Self(0x7E);
    /// 0x7F: a trap the kernel did not expect (double fault: kernel stack overflow).
    pub const UNEXPECTED_KERNEL_MODE_TRAP: Self = Self(0x7F);
    /// 0x8E: an unhandled kernel-mode exception.
    pub const KERNEL_MODE_EXCEPTION_NOT_HANDLED: Self = Self(0x8E);
    /// 0xBE: a write to read-only system memory.
    pub const ATTEMPTED_WRITE_TO_READONLY_MEMORY: Self = Self(0xBE);
    /// 0xC1: special pool found its pattern or header damaged, or a bad free.
    pub const SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION: Self = Self(0xC1);
    /// 0xC2: a bad pool request by the caller.
    pub const BAD_POOL_CALLER: Self = Self(0xC2);
    /// 0xCC: a touch of freed special pool, no driver named.
    pub const PAGE_FAULT_IN_FREED_SPECIAL_POOL: Self = Self(0xCC);
    /// 0xCD: a touch beyond the end of a special pool allocation, no driver named.
    pub const PAGE_FAULT_BEYOND_END_OF_ALLOCATION: Self = Self(0xCD);
    /// 0xD5: a driver touched freed special pool.
    pub const DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL: Self = Self(0xD5);
    /// 0xD6: a driver touched memory beyond the end of its special pool allocation.
    pub const DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION: Self = Self(0xD6);
    /// 0xD1: a driver touched pageable or invalid memory at raised IRQL.
    pub const DRIVER_IRQL_NOT_LESS_OR_EQUAL: Self = Self(0xD1);
    /// 0x41: a must-succeed pool request could not be satisfied.
    pub const MUST_SUCCEED_POOL_EMPTY: Self = Self(0x41);
    /// 0x4E: the PFN database is corrupt (a page unlocked more often than locked).
    pub const PFN_LIST_CORRUPT: Self = Self(0x4E);
    /// 0x44: an IRP was completed that was already complete.
    pub const MULTIPLE_IRP_COMPLETE_REQUESTS: Self = Self(0x44);
    /// 0xDA: a system PTE routine (reserved mappings, …) was used the wrong way.
    pub const SYSTEM_PTE_MISUSE: Self = Self(0xDA);
    /// 0xC4: Driver Verifier caught a driver breaking a rule (subcode in parameter 1).
    pub const DRIVER_VERIFIER_DETECTED_VIOLATION: Self = Self(0xC4);
    /// 0xCB: a process ended with pages a driver locked (pool tracking's check).
    pub const DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS: Self = Self(0xCB);
    /// 0x133: the DPC watchdog saw a processor at DISPATCH_LEVEL or above for too long.
    pub const DPC_WATCHDOG_VIOLATION: Self = Self(0x133);
    /// 0x4A: a thread returned from a system call (a driver routine) at raised IRQL.
    pub const IRQL_GT_ZERO_AT_SYSTEM_SERVICE: Self = Self(0x4A);
    /// 0xE1: a system worker thread's work item returned at a raised IRQL.
    pub const WORKER_THREAD_RETURNED_AT_BAD_IRQL: Self = Self(0xE1);
    /// 0xC9: Driver Verifier's I/O verification caught a driver misusing the I/O manager.
    pub const DRIVER_VERIFIER_IOMANAGER_VIOLATION: Self = Self(0xC9);
    /// 0xE6: Driver Verifier's DMA checking caught a driver misusing DMA (subcode in
    /// parameter 1); ntmem also raises 0x18/0x19/0x1B without the verifier (hal::dma).
    pub const DRIVER_VERIFIER_DMA_VIOLATION: Self = Self(0xE6);
    /// 0x139: a driver's `__fastfail` (a corrupt list entry, a security check).
    pub const KERNEL_SECURITY_CHECK_FAILURE: Self = Self(0x139);
    /// 0x1A: a severe memory management error (subcode in parameter 1).
    pub const MEMORY_MANAGEMENT: Self = Self(0x1A);
    /// 0xCE: a touch of an unloaded driver's former range (a DPC, timer or worker left behind).
    pub const DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS: Self = Self(0xCE);
    /// 0xD4: the same touch, caught at raised IRQL.
    pub const SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD: Self = Self(0xD4);
    /// 0x0C: a wait on more objects than allowed (or more than three without a wait block array).
    pub const MAXIMUM_WAIT_OBJECTS_EXCEEDED: Self = Self(0x0C);
    /// 0x18: an object's reference count dropped below zero.
    pub const REFERENCE_BY_POINTER: Self = Self(0x18);
    /// 0x39: a worker routine returned owning a mutex.
    pub const SYSTEM_EXIT_OWNED_MUTEX: Self = Self(0x39);
    /// 0x4000008A: a thread ended owning a kernel mutex.
    pub const THREAD_TERMINATE_HELD_MUTEX: Self = Self(0x4000_008A);
    /// 0x01: a thread returned from a system call or worker routine with APCs disabled.
    pub const APC_INDEX_MISMATCH: Self = Self(0x01);
    /// 0xE3: a thread released a resource it did not own.
    pub const RESOURCE_NOT_OWNED: Self = Self(0xE3);
    /// 0x93: an invalid or protected handle was closed.
    pub const INVALID_KERNEL_HANDLE: Self = Self(0x93);
    /// 0xBF: a thread acquired a mutex it owned already.
    pub const MUTEX_ALREADY_OWNED: Self = Self(0xBF);

    /// The symbolic name, or `UNKNOWN_BUGCHECK` for codes ntmem does not raise.
    pub fn name(self) -> &'static str {
        info(self).map_or("UNKNOWN_BUGCHECK", |i| i.name)
    }
}

/// A row of the bugcheck table.
#[derive(Debug)]
pub struct BugCheckInfo {
    /// The code.
    pub code: BugCheckCode,
    /// The symbolic name Windows prints.
    pub name: &'static str,
    /// One sentence: what the check means.
    pub summary: &'static str,
    /// The meaning of parameters 1-4, as Microsoft documents them.
    pub parameters: [&'static str; 4],
}

/// Every bugcheck ntmem raises, with Microsoft's parameter meanings.
pub static BUGCHECKS: &[BugCheckInfo] = &[
    BugCheckInfo {
        code: BugCheckCode::IRQL_NOT_GREATER_OR_EQUAL,
        name: "IRQL_NOT_GREATER_OR_EQUAL",
        summary: "The IRQL was lowered or raised the wrong way: KeRaiseIrql to a level below the current one.",
        parameters: ["Current IRQL", "Requested IRQL", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::IRQL_NOT_LESS_OR_EQUAL,
        name: "IRQL_NOT_LESS_OR_EQUAL",
        summary: "Kernel code touched pageable or invalid memory at an IRQL that was too high, or lowered the IRQL to a level above the current one.",
        parameters: ["Memory referenced (or the requested IRQL)", "IRQL at time of reference", "0: read, 1: write, 8: execute", "Address that referenced memory"],
    },
    BugCheckInfo {
        code: BugCheckCode::SPIN_LOCK_NOT_OWNED,
        name: "SPIN_LOCK_NOT_OWNED",
        summary: "A processor released a spin lock it does not hold.",
        parameters: ["Address of the spin lock", "Reserved", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::BAD_POOL_HEADER,
        name: "BAD_POOL_HEADER",
        summary: "A pool header is corrupt.",
        parameters: ["Subcode (what was found)", "Depends on the subcode", "Depends on the subcode", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED,
        name: "KMODE_EXCEPTION_NOT_HANDLED",
        summary: "A kernel-mode program raised an exception that no handler caught.",
        parameters: ["Exception code", "Address where the exception occurred", "Exception parameter 0", "Exception parameter 1"],
    },
    BugCheckInfo {
        code: BugCheckCode::NO_MORE_SYSTEM_PTES,
        name: "NO_MORE_SYSTEM_PTES",
        summary: "The system ran out of page table entries.",
        parameters: ["0: system PTE pool, 1: nonpaged pool expansion", "Size of the request (pages)", "Total free system PTEs", "Total system PTEs"],
    },
    BugCheckInfo {
        code: BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA,
        name: "PAGE_FAULT_IN_NONPAGED_AREA",
        summary: "Invalid system memory was referenced.",
        parameters: ["Memory address referenced", "0: read, 1: write", "Address that referenced the memory (if known)", "Reserved (type of page fault)"],
    },
    BugCheckInfo {
        code: BugCheckCode::ATTEMPTED_WRITE_TO_READONLY_MEMORY,
        name: "ATTEMPTED_WRITE_TO_READONLY_MEMORY",
        summary: "A driver attempted to write to read-only memory.",
        parameters: ["Virtual address of the attempted write", "PTE contents", "Reserved (trap frame)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::PROCESS_HAS_LOCKED_PAGES,
        name: "PROCESS_HAS_LOCKED_PAGES",
        summary: "A process ended with pages still locked by a driver (MmProbeAndLockPages without MmUnlockPages).",
        parameters: ["0 (1: an MDL unlocked with no pages locked)", "Process object (or the MDL)", "Number of locked pages", "Pointer to driver stacks (if stack tracing is enabled), or 0"],
    },
    BugCheckInfo {
        code: BugCheckCode::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED,
        name: "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
        summary: "A system thread raised an exception that no handler caught.",
        parameters: ["Exception code", "Address where the exception occurred", "Exception record address", "Context record address"],
    },
    BugCheckInfo {
        code: BugCheckCode::UNEXPECTED_KERNEL_MODE_TRAP,
        name: "UNEXPECTED_KERNEL_MODE_TRAP",
        summary: "The CPU raised a trap the kernel could not handle; 8 (double fault) usually means a kernel stack overflow.",
        parameters: ["Trap number (8: EXCEPTION_DOUBLE_FAULT)", "Reserved", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED,
        name: "KERNEL_MODE_EXCEPTION_NOT_HANDLED",
        summary: "A kernel-mode program raised an exception that no handler caught.",
        parameters: ["Exception code", "Address where the exception occurred", "Trap frame", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::BAD_POOL_CALLER,
        name: "BAD_POOL_CALLER",
        summary: "The current thread made a bad pool request.",
        parameters: ["Subcode (the kind of violation)", "Depends on the subcode", "Depends on the subcode", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION,
        name: "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION",
        summary: "The driver wrote to an invalid section of the special pool (found when the block was freed), or freed or allocated special pool the wrong way.",
        parameters: ["Depends on parameter 4 (usually the address the driver tried to free)", "Depends on parameter 4 (reserved, bytes requested, or the address where bits are corrupted)", "Depends on parameter 4 (0, bytes calculated, or reserved)", "Subcode: 0x20 free of unallocated pool, 0x21/0x22 bad address freed, 0x23 bytes before the block corrupted, 0x24 bytes after the end corrupted, 0x30/0x31 allocate/free at a bad IRQL, 0x32 single bit error"],
    },
    BugCheckInfo {
        code: BugCheckCode::PAGE_FAULT_IN_FREED_SPECIAL_POOL,
        name: "PAGE_FAULT_IN_FREED_SPECIAL_POOL",
        summary: "The system referenced memory which was earlier freed (caught by the Driver Verifier Special Pool option); no try - except handler can catch it.",
        parameters: ["Memory address referenced", "0: read, 1: write", "Address that referenced memory (if known)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::PAGE_FAULT_BEYOND_END_OF_ALLOCATION,
        name: "PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
        summary: "The system accessed memory beyond the end of some driver's special pool allocation; no try - except handler can catch it.",
        parameters: ["Memory address referenced", "0: read, 1: write", "Address that referenced memory (if known)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL,
        name: "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL",
        summary: "A driver referenced memory which was earlier freed (caught by the Driver Verifier Special Pool option); no try - except handler can catch it.",
        parameters: ["Memory address referenced", "0: read, 1: write", "Address that referenced memory (if known)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION,
        name: "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
        summary: "The driver allocated n bytes of special pool and then referenced more than n bytes; no try - except handler can catch it.",
        parameters: ["Memory address referenced", "0: read, 1: write", "Address that referenced memory (if known)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL,
        name: "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
        summary: "A driver touched pageable or invalid memory at an IRQL that was too high.",
        parameters: ["Memory referenced", "IRQL at time of reference", "0: read, 1: write, 8: execute", "Address that referenced memory"],
    },
    BugCheckInfo {
        code: BugCheckCode::MUST_SUCCEED_POOL_EMPTY,
        name: "MUST_SUCCEED_POOL_EMPTY",
        summary: "A kernel-mode thread requested must-succeed pool that could not be provided.",
        parameters: ["Size of the request that could not be satisfied", "Pages used from nonpaged pool", "Requests from nonpaged pool larger than PAGE_SIZE", "Pages available"],
    },
    BugCheckInfo {
        code: BugCheckCode::SYSTEM_PTE_MISUSE,
        name: "SYSTEM_PTE_MISUSE",
        summary: "A page table entry routine was used improperly (e.g. a reserved mapping mapped, unmapped or freed with the wrong tag, or freed while still mapped).",
        parameters: ["Subcode (the kind of violation: 0x100-0x10C reserved mappings)", "Depends on the subcode (usually the first mapping address)", "Depends on the subcode (usually the caller's tag)", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::NO_MORE_IRP_STACK_LOCATIONS,
        name: "NO_MORE_IRP_STACK_LOCATIONS",
        summary: "IoCallDriver was called with an IRP that has no stack location left for the driver it calls (a device attached without enough StackSize, or an IRP allocated too small).",
        parameters: ["Address of the IRP", "Reserved", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS,
        name: "MULTIPLE_IRP_COMPLETE_REQUESTS",
        summary: "A driver called IoCompleteRequest for an IRP that was already complete (or that the I/O manager never sent).",
        parameters: ["Address of the IRP", "Reserved", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::PFN_LIST_CORRUPT,
        name: "PFN_LIST_CORRUPT",
        summary: "The PFN list is corrupt; 0x07: a driver unlocked a page more times than it locked it (MmUnlockPages twice).",
        parameters: ["0x07: page unlocked more times than locked", "Page frame number", "Current share count", "0"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION,
        name: "DRIVER_VERIFIER_DETECTED_VIOLATION",
        summary: "Driver Verifier caught a driver breaking a rule; parameter 1 says which (e.g. 0x7C: MmUnlockPages of an MDL never locked, 0xB8: IoFreeMdl of an MDL still mapped).",
        parameters: ["Subcode (the kind of violation)", "Depends on the subcode", "Depends on the subcode", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS,
        name: "DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS",
        summary: "A driver or the I/O manager failed to release locked pages after an I/O operation (the process ended with them locked).",
        parameters: ["Address of the internal lock tracking structure (0: ntmem has none a debugger reads)", "0 (Reserved)", "Address of the MDL containing the locked pages", "Number of locked pages"],
    },
    BugCheckInfo {
        code: BugCheckCode::DPC_WATCHDOG_VIOLATION,
        name: "DPC_WATCHDOG_VIOLATION",
        summary: "The DPC watchdog detected a prolonged run time at an IRQL of DISPATCH_LEVEL or above.",
        parameters: ["0: a single DPC or ISR exceeded its time allotment; 1: the system cumulatively spent an extended period of time at DISPATCH_LEVEL or above", "0: the DPC time count (in ticks); 1: the watchdog period (in ticks)", "0: the DPC time allotment (in ticks); 1: cast to nt!DPC_WATCHDOG_GLOBAL_TRIAGE_BLOCK (0 in ntmem: it has none)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::IRQL_GT_ZERO_AT_SYSTEM_SERVICE,
        name: "IRQL_GT_ZERO_AT_SYSTEM_SERVICE",
        summary: "A thread returned from a system call (here: a driver routine the kernel called) with its IRQL above PASSIVE_LEVEL.",
        parameters: ["Address of the system function (the driver routine)", "The current IRQL", "0", "0"],
    },
    BugCheckInfo {
        code: BugCheckCode::WORKER_THREAD_RETURNED_AT_BAD_IRQL,
        name: "WORKER_THREAD_RETURNED_AT_BAD_IRQL",
        summary: "A work item run by a system worker thread (here: a driver routine such as DriverEntry) returned at an IRQL other than PASSIVE_LEVEL.",
        parameters: ["Address of the worker routine (the driver routine)", "IRQL that the worker thread was at", "Work item parameter (0 in ntmem)", "Work item address (0 in ntmem)"],
    },
    BugCheckInfo {
        code: BugCheckCode::MAXIMUM_WAIT_OBJECTS_EXCEEDED,
        name: "MAXIMUM_WAIT_OBJECTS_EXCEEDED",
        summary: "KeWaitForMultipleObjects was asked to wait on more than MAXIMUM_WAIT_OBJECTS (64) objects, or on more than THREAD_WAIT_OBJECTS (3) without a wait block array.",
        parameters: ["Reserved", "Reserved", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::REFERENCE_BY_POINTER,
        name: "REFERENCE_BY_POINTER",
        summary: "An object's reference count was decremented below zero (ObDereferenceObject once too often).",
        parameters: ["Object type of the object", "Object whose reference count is being lowered", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::SYSTEM_EXIT_OWNED_MUTEX,
        name: "SYSTEM_EXIT_OWNED_MUTEX",
        summary: "A worker routine returned without releasing a mutex object it owned.",
        parameters: ["Address of the worker routine", "Parameter passed to the worker routine", "Address of the work item", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::THREAD_TERMINATE_HELD_MUTEX,
        name: "THREAD_TERMINATE_HELD_MUTEX",
        summary: "A driver acquired a mutex on a thread that exited before the mutex could be released.",
        parameters: ["The address of the KTHREAD that owns the KMUTEX", "The address of the KMUTEX that is owned", "Reserved", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::APC_INDEX_MISMATCH,
        name: "APC_INDEX_MISMATCH",
        summary: "A system call or worker routine returned with normal kernel APCs still disabled (KeEnterCriticalRegion without KeLeaveCriticalRegion, a guarded region or kernel mutex kept).",
        parameters: ["Address of the system call or worker routine", "The thread's ApcStateIndex", "The thread's CombinedApcDisable: (SpecialApcDisable << 16) | KernelApcDisable", "Call type: 0 system call, 1 worker routine"],
    },
    BugCheckInfo {
        code: BugCheckCode::RESOURCE_NOT_OWNED,
        name: "RESOURCE_NOT_OWNED",
        summary: "A thread tried to release an executive resource (ERESOURCE) it did not own.",
        parameters: ["Address of the resource", "Address of the thread", "Address of the owner table (ntmem: 0)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::INVALID_KERNEL_HANDLE,
        name: "INVALID_KERNEL_HANDLE",
        summary: "Kernel code closed (NtClose, ZwClose) a handle that is invalid or protected.",
        parameters: ["The handle NtClose was called with", "0: a protected handle; 1: an invalid handle", "0", "0"],
    },
    BugCheckInfo {
        code: BugCheckCode::MUTEX_ALREADY_OWNED,
        name: "MUTEX_ALREADY_OWNED",
        summary: "A thread attempted to acquire ownership of a mutex it already owned.",
        parameters: ["Address of the mutex", "The thread that caused the error", "0", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_VERIFIER_IOMANAGER_VIOLATION,
        name: "DRIVER_VERIFIER_IOMANAGER_VIOLATION",
        summary: "Driver Verifier's I/O verification caught a violation; parameter 1 says which (a subcode below 0x20, or a fatal WDM DRIVER ERROR code 0x2xx).",
        parameters: ["Subcode (the kind of violation)", "0x05: the device object; 0x06: the IRP status", "0x05: IRQL before IoCallDriver; 0x06: the IRP", "0x05: IRQL after IoCallDriver; 0x06: 0"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_VERIFIER_DMA_VIOLATION,
        name: "DRIVER_VERIFIER_DMA_VIOLATION",
        summary: "A driver misused DMA (Driver Verifier's DMA checking); parameter 1 says which (research/dma-verifier-views.md §2.2).",
        parameters: ["Subcode (the kind of violation)", "Depends on the subcode", "Depends on the subcode", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::MEMORY_MANAGEMENT,
        name: "MEMORY_MANAGEMENT",
        summary: "A severe memory management error occurred; parameter 1 says which (0x1010: a pageable section unlocked that is not locked; 0x1234: a lock of a nonexistent pageable section).",
        parameters: ["Subcode (the exact violation)", "Depends on the subcode", "Depends on the subcode", "Depends on the subcode"],
    },
    BugCheckInfo {
        code: BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS,
        name: "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
        summary: "A driver unloaded without cancelling its timers, DPCs, worker threads or lookaside lists, and the system touched its former range.",
        parameters: ["Memory referenced", "0: read, 1: write (ntmem: 8 for an instruction fetch, as 0xD1 gives)", "Address that referenced the memory (if known)", "Reserved"],
    },
    BugCheckInfo {
        code: BugCheckCode::SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD,
        name: "SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD",
        summary: "A driver unloaded without cancelling pending operations, and its former range was touched at raised IRQL.",
        parameters: ["Memory referenced", "IRQL at time of reference", "0: read, 1: write (ntmem: 8 for an instruction fetch, as 0xD1 gives)", "Address that referenced the memory (if known)"],
    },
    BugCheckInfo {
        code: BugCheckCode::KERNEL_SECURITY_CHECK_FAILURE,
        name: "KERNEL_SECURITY_CHECK_FAILURE",
        summary: "The kernel detected the corruption of a critical data structure (a driver's __fastfail: 3 is a corrupt LIST_ENTRY).",
        parameters: ["The type of corruption (3: LIST_ENTRY corruption, FAST_FAIL_CORRUPT_LIST_ENTRY)", "Address of the trap frame (0 in ntmem)", "Address of the exception record (0 in ntmem)", "Reserved"],
    },
];

fn info(code: BugCheckCode) -> Option<&'static BugCheckInfo> {
    BUGCHECKS.iter().find(|i| i.code == code)
}

/// What each parameter of one subcode of a bugcheck means, as Microsoft's page for
/// the bugcheck documents that subcode.
#[derive(Debug)]
pub struct SubcodeInfo {
    /// The bugcheck.
    pub code: BugCheckCode,
    /// Which parameter holds the subcode (0 for most; 3 for 0xC1, whose subcode is last).
    pub at: usize,
    /// The subcode.
    pub subcode: u64,
    /// The meaning of parameters 1-4 for it.
    pub parameters: [&'static str; 4],
}

macro_rules! subcodes {
    ($($code:ident $at:literal $subcode:literal [$p1:literal, $p2:literal, $p3:literal, $p4:literal];)*) => {
        /// The subcodes ntmem raises, each with its parameters' meanings: one source for
        /// the analysis text and JSON. Sources: Microsoft's pages "Bug Check 0x19:
        /// BAD_POOL_HEADER", "0xC2: BAD_POOL_CALLER", "0xC1:
        /// SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION", "0xC4:
        /// DRIVER_VERIFIER_DETECTED_VIOLATION", "0x1A: MEMORY_MANAGEMENT", "0x4E:
        /// PFN_LIST_CORRUPT", "0xDA: SYSTEM_PTE_MISUSE", "0xE6: DRIVER_VERIFIER_DMA_VIOLATION"
        /// (learn.microsoft.com/windows-hardware/drivers/debugger/).
        pub static SUBCODES: &[SubcodeInfo] = &[$(SubcodeInfo {
            code: BugCheckCode::$code,
            at: $at,
            subcode: $subcode,
            parameters: [$p1, $p2, $p3, $p4],
        }),*];
    };
}

subcodes! {
    BAD_POOL_HEADER 0 0x05 ["0x05: a pair of adjacent pool entries have headers that contradict each other", "One of the pool entries", "Reserved", "The other pool entry"];
    BAD_POOL_HEADER 0 0x06 ["0x06: a pool block header's previous size is too large", "The pool entry computed from it", "Reserved", "The bad pool entry"];
    BAD_POOL_HEADER 0 0x07 ["0x07: a pool block header's size is corrupt (previous size 0, but the entry does not start its page)", "Reserved", "Reserved", "The bad pool entry"];
    BAD_POOL_HEADER 0 0x08 ["0x08: a pool block header's size is zero", "Reserved", "Reserved", "The bad pool entry"];
    BAD_POOL_HEADER 0 0x09 ["0x09: a pool block header's size is corrupt (too large)", "The next pool entry computed from it", "Reserved", "The bad pool entry"];
    BAD_POOL_HEADER 0 0x20 ["0x20: a pool block header's size is corrupt: the next block's previous size disagrees", "The pool entry", "The next pool entry", "The next header's first ULONG"];
    BAD_POOL_HEADER 0 0x22 ["0x22: an address being freed has no big-pool tracking entry (freed twice, or never allocated)", "The address being freed", "Reserved", "Reserved"];
    BAD_POOL_CALLER 0 0x00 ["0x00: the caller requested a zero-byte pool allocation", "0", "Pool type", "Pool tag"];
    BAD_POOL_CALLER 0 0x07 ["0x07: the pool block was already freed", "Reserved", "Pool header contents", "Address of the block being freed"];
    BAD_POOL_CALLER 0 0x08 ["0x08: the caller allocated pool at a bad IRQL", "Current IRQL", "Pool type", "Size of allocation, in bytes"];
    BAD_POOL_CALLER 0 0x09 ["0x09: the caller freed pool at a bad IRQL", "Current IRQL", "Pool type (0: nonpaged, 1: paged)", "Address of pool"];
    BAD_POOL_CALLER 0 0x0A ["0x0A: the caller freed a protected allocation with the wrong tag", "Address of pool", "Allocator's tag", "Tag being used in the attempted free (0 for ExFreePool)"];
    BAD_POOL_CALLER 0 0x0D ["0x0D: quota release on a corrupted pool allocation", "Address of pool", "Pool tag", "Quota process pointer (bad)"];
    BAD_POOL_CALLER 0 0x40 ["0x40: the caller freed a user-mode address", "Starting address", "Start of system address space (MmSystemRangeStart)", "0"];
    BAD_POOL_CALLER 0 0x42 ["0x42: the address being freed is not in any pool", "Address being freed", "0", "0"];
    BAD_POOL_CALLER 0 0x44 ["0x44: the caller freed a nonpaged pool address that is not allocated", "Starting address", "Reserved", "0"];
    BAD_POOL_CALLER 0 0x50 ["0x50: the caller freed a paged pool address that is not allocated", "Starting address", "Start offset, in pages, from the beginning of paged pool", "Size of paged pool, in bytes"];
    BAD_POOL_CALLER 0 0x60 ["0x60: the caller freed contiguous memory that was not allocated as contiguous memory", "Starting address", "Reserved", "Reserved"];
    BAD_POOL_CALLER 0 0x99 ["0x99: the caller freed an invalid pool address (not aligned as a pool block)", "Address being freed", "0", "0"];
    BAD_POOL_CALLER 0 0x9A ["0x9A: the caller asked for must-succeed pool (Driver Verifier)", "Pool type", "Number of bytes requested", "Pool tag"];
    BAD_POOL_CALLER 0 0x9B ["0x9B: the caller asked for pool with tag zero", "Pool type", "Number of bytes requested", "Caller's address (0: not known to ntmem)"];
    BAD_POOL_CALLER 0 0x9C ["0x9C: the caller asked for pool with tag \"BIG \"", "Pool type", "Number of bytes requested", "Caller's address (0: not known to ntmem)"];
    BAD_POOL_CALLER 0 0x9D ["0x9D: the caller asked for pool with a tag that has no letter or digit", "Incorrect pool tag", "Pool type", "Caller's address (0: not known to ntmem)"];
    BAD_POOL_CALLER 0 0x41286 ["0x41286: the caller freed a paged pool address in the middle of an allocation", "Reserved", "Reserved", "Start offset, in pages, from the beginning of paged pool"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x20 ["Address that the driver tried to free", "Reserved", "0", "0x20: the pool being freed is not allocated"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x21 ["Address that the driver tried to free", "Bytes requested", "Bytes calculated", "0x21: the driver freed a bad address (fewer bytes from it to the page end than requested)"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x22 ["Address that the driver tried to free", "Bytes requested", "Bytes calculated", "0x22: the driver freed a bad address (the block cannot start there)"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x23 ["Address that the driver tried to free", "Address where bits are corrupted", "Fill pattern (reserved on Windows)", "0x23: the driver wrote before the start of its allocation (an underrun)"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x24 ["Address that the driver tried to free", "Address where bits are corrupted", "Fill pattern (reserved on Windows)", "0x24: the driver wrote past the end of its allocation (an overrun)"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x30 ["Current IRQL", "Pool type", "Number of bytes", "0x30: the driver allocated special pool at a bad IRQL"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x31 ["Current IRQL", "Pool type (0: nonpaged, 1: paged)", "Address that the driver tried to free", "0x31: the driver freed special pool at a bad IRQL"];
    SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION 3 0x32 ["Address that the driver tried to free", "Address where the bit is corrupted", "Fill pattern (reserved on Windows)", "0x32: a single bit of the fill pattern flipped (hardware, or a stray bit write)"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x01 ["0x01: paged pool allocated above APC_LEVEL", "Current IRQL", "Pool type", "Size of the request, in bytes"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x02 ["0x02: nonpaged pool allocated above DISPATCH_LEVEL", "Current IRQL", "Pool type", "Size of the request, in bytes"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x11 ["0x11: paged pool freed above APC_LEVEL", "Current IRQL", "Pool type", "Address of the pool"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x12 ["0x12: nonpaged pool freed above DISPATCH_LEVEL", "Current IRQL", "Pool type", "Address of the pool"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x30 ["0x30: KeRaiseIrql to a lower (or invalid) IRQL", "Current IRQL", "Requested IRQL", "0"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x31 ["0x31: KeLowerIrql to a higher IRQL", "Current IRQL", "Requested IRQL", "0: the new IRQL is bad"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x32 ["0x32: KeReleaseSpinLock not at DISPATCH_LEVEL", "Current IRQL", "Address of the spin lock", "0"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x33 ["0x33: ExAcquireFastMutex above APC_LEVEL", "Current IRQL", "Address of the fast mutex", "0"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x34 ["0x34: ExReleaseFastMutex at an IRQL other than APC_LEVEL", "Current IRQL", "Address of the fast mutex", "0"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x35 ["0x35: the kernel released a spin lock not at DISPATCH_LEVEL (a device queue's: KeInsertDeviceQueue and kin called off DISPATCH_LEVEL)", "Current IRQL", "Address of the spin lock", "Old IRQL"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x36 ["0x36: the kernel released a queued spin lock (the cancel spin lock: IoReleaseCancelSpinLock) not at DISPATCH_LEVEL", "Current IRQL", "Spin lock number (KSPIN_LOCK_QUEUE_NUMBER; 7: LockQueueIoCancelLock)", "Old IRQL"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x37 ["0x37: an ERESOURCE acquired with normal kernel APCs enabled (no KeEnterCriticalRegion)", "Current IRQL", "Thread APC disable count", "Address of the resource"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x38 ["0x38: an ERESOURCE released with normal kernel APCs enabled", "Current IRQL", "Thread APC disable count", "Address of the resource"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x39 ["0x39: ExAcquireFastMutexUnsafe neither at APC_LEVEL nor in a critical region", "Current IRQL", "Thread APC disable count", "Address of the fast mutex"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x3A ["0x3A: ExReleaseFastMutexUnsafe neither at APC_LEVEL nor in a critical region", "Current IRQL", "Thread APC disable count", "Address of the fast mutex"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x3B ["0x3B: KeWaitXxx at DISPATCH_LEVEL or above with a non-zero timeout", "Current IRQL", "Object to wait for", "Time-out parameter (0: none given)"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x60 ["0x60: the driver unloaded without freeing all its pool (pool tracking; the form of Windows 2000)", "Bytes allocated from paged pool, not freed", "Bytes allocated from nonpaged pool, not freed", "Number of allocations not freed, paged and nonpaged"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x61 ["0x61: a thread of the driver allocated pool while the driver was unloading (pool tracking)", "Bytes allocated from paged pool, not freed", "Bytes allocated from nonpaged pool, not freed", "Number of allocations not freed, paged and nonpaged"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x62 ["0x62: the driver unloaded without freeing all its pool (pool tracking)", "Address of the driver's name (a UNICODE_STRING)", "Verifier's driver information (0: ntmem has none a debugger reads)", "Number of allocations not freed, paged and nonpaged"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x7C ["0x7C: MmUnlockPages of an MDL whose pages were never locked", "Address of the MDL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x7D ["0x7D: MmUnlockPages of an MDL built for nonpaged pool (MmBuildMdlForNonPagedPool)", "Address of the MDL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0xB4 ["0xB4: MmUnlockPages of a partial MDL (IoBuildPartialMdl)", "Address of the MDL", "MDL flags", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0xB8 ["0xB8: IoFreeMdl of an MDL still mapped to system space (call MmUnmapLockedPages first)", "Address of the MDL", "MDL flags", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0xE1 ["0xE1: a synchronization object (KEVENT, KSEMAPHORE, KTIMER, KSPIN_LOCK) in pageable memory", "Address of the object", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x11A ["0x11A: KeEnterCriticalRegion at DISPATCH_LEVEL or above", "Current IRQL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x11B ["0x11B: KeLeaveCriticalRegion at DISPATCH_LEVEL or above", "Current IRQL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x01 ["0x01: the driver freed an object that is not an IRP (IoFreeIrp)", "Address of the object", "Reserved", "Reserved"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x05 ["0x05: the IRQL changed during a dispatch routine", "The device object", "IRQL before IoCallDriver", "IRQL after IoCallDriver"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x06 ["0x06: IoCompleteRequest with a status marked pending (or -1)", "The status", "The IRP", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x02 ["0x02: the driver freed an IRP still associated with a thread (IoFreeIrp)", "Address of the IRP", "0", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x07 ["0x07: IoCompleteRequest while the IRP's cancel routine was still set", "Address of the cancel routine", "The IRP", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x08 ["0x08: IoBuildAsynchronousFsdRequest was given an invalid buffer", "The device object", "The major function", "The exception's status"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x09 ["0x09: IoBuildDeviceIoControlRequest was given an invalid buffer", "The device object", "The I/O control code", "The exception's status"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x0C ["0x0C: the IRP's I/O status block is on a stack that has already unwound past it", "Address of the I/O status block", "0", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x0D ["0x0D: the IRP's user event is on a stack that has already unwound past it", "Address of the user event", "0", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x0E ["0x0E: IoCompleteRequest above DISPATCH_LEVEL", "Current IRQL", "The IRP", "0"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x10 ["0x10: IoCallDriver above DISPATCH_LEVEL", "Current IRQL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_IOMANAGER_VIOLATION 0 0x20B ["0x20B: IoFreeIrp of an IRP still in use (a fatal WDM DRIVER ERROR)", "Address in the driver's code where the error was detected", "The IRP", "The device object holding it"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x105 ["0x105: an IRP from IoAllocateIrp freed with ExFreePool instead of IoFreeIrp (I/O verification)", "Address of the IRP", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1000 ["0x1000: self-deadlock: the current thread asked again for a lock it holds that is not recursive (deadlock detection)", "Address of the resource", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1001 ["0x1001: deadlock: a lock hierarchy violation, locks taken in opposite orders (deadlock detection; see !deadlock)", "Address of the resource that was the final cause of the deadlock", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1002 ["0x1002: uninitialized resource: a resource acquired without having been initialized (deadlock detection)", "Address of the resource", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1003 ["0x1003: unexpected release: a resource released in an incorrect order (deadlock detection)", "Address of the resource being released", "Address of the resource that should have been released first", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1004 ["0x1004: unexpected thread: the wrong thread released a resource (deadlock detection)", "Address of the resource", "Address of the thread that acquired the resource", "Address of the current thread"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1005 ["0x1005: multiple initialization: a resource initialized more than once (deadlock detection)", "Address of the resource", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1007 ["0x1007: unacquired resource: a resource released before it was acquired (deadlock detection)", "Address of the resource", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1008 ["0x1008: a lock acquired with a routine mismatched for its type (deadlock detection)", "Lock address", "Driver Verifier internal data", "Driver Verifier internal data"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x1009 ["0x1009: a lock released with a routine mismatched for its type (deadlock detection)", "Lock address", "Driver Verifier internal data", "Driver Verifier internal data"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x100A ["0x100A: a thread terminated owning a lock (deadlock detection)", "Owner thread address", "Driver Verifier internal data", "Reserved"];
    DRIVER_VERIFIER_DETECTED_VIOLATION 0 0x100B ["0x100B: the deleted lock is still owned by a thread (deadlock detection)", "Lock address", "Owner thread address", "Driver Verifier internal data"];
    MEMORY_MANAGEMENT 0 0x1010 ["0x1010: a pageable section (MmUnlockPagableImageSection) unlocked that is not locked", "The section handle", "Reserved", "Reserved"];
    MEMORY_MANAGEMENT 0 0x1234 ["0x1234: a lock of a pageable section that does not exist (MmLockPagable*)", "The address or handle passed", "Reserved", "Reserved"];
    PFN_LIST_CORRUPT 0 0x07 ["0x07: a page was unlocked more times than it was locked", "Page frame number", "Current share count", "0"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x03 ["0x03: too many common buffers freed (a double free)", "Extra buffers freed", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x04 ["0x04: too many adapter channels freed", "Extra channels freed", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x05 ["0x05: too many map registers freed", "Extra registers freed", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x06 ["0x06: too many scatter/gather lists freed", "Lists allocated", "Lists freed", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x07 ["0x07: adapter released with common buffers outstanding", "The adapter", "Common buffers outstanding", "Verifier internal data"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x08 ["0x08: adapter released with adapter channels outstanding", "The adapter", "Channels outstanding", "Verifier internal data"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x09 ["0x09: adapter released with map registers outstanding", "The adapter", "Map registers outstanding", "Verifier internal data"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0A ["0x0A: adapter released with scatter/gather lists outstanding", "The adapter", "Lists outstanding", "Verifier internal data"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0B ["0x0B: more than one adapter channel at once", "Channels outstanding", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0C ["0x0C: too many map registers requested at once", "Registers required", "Maximum registers", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0D ["0x0D: adapter buffers not flushed: more mapped since the last flush than the register file holds", "Bytes mapped", "Maximum bytes mappable at once", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0E ["0x0E: DMA on a buffer that is not locked (its MDL is neither locked nor nonpaged)", "The MDL", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x0F ["0x0F: the driver or its device wrote outside its DMA buffer", "1/2: the tag before/after the buffer changed; 4/5: padding before/after it changed", "Buffer length (1, 2) or buffer start (4, 5)", "Buffer start (1, 2) or the corrupted address (4, 5)"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x10 ["0x10: map registers freed while still mapped (never flushed)", "Registers still mapped", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x13 ["0x13: DMA routine called at an improper IRQL", "1: IRQL different from expected; 2: above the maximum", "Expected or maximum IRQL", "Current IRQL"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x15 ["0x15: more map registers used than allocated", "Registers the mapping needs", "Registers allocated", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x18 ["0x18: use of an adapter already released", "The adapter", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x19 ["0x19: NULL DMA_ADAPTER passed to a HAL routine", "Reserved", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x1B ["0x1B: address not inside the MDL", "The virtual address", "The MDL", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x1D ["0x1D: a range mapped that is already mapped", "Start of the buffer to map", "End of the buffer to map", "Address already mapped"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x1F ["0x1F: invalid DMA buffer", "1: the address lies before the MDL; 2: the range runs past its end", "Virtual address of the buffer start", "The MDL"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x20 ["0x20: flush of map registers with nothing mapped", "MapRegisterBase", "Virtual address of the buffer start", "The MDL"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x21 ["0x21: a zero-length map", "Reserved", "Reserved", "Reserved"];
    DRIVER_VERIFIER_DMA_VIOLATION 0 0x23 ["0x23: flush of a system DMA channel neither completed nor cancelled", "0: an illegal channel flush", "The DMA controller", "The channel number"];
}

/// The meanings of `b`'s parameters: by its subcode where [`SUBCODES`] has it, else
/// the bugcheck's own row, else none.
pub fn parameter_meanings(b: &BugCheck) -> [&'static str; 4] {
    let by_subcode = SUBCODES.iter().find(|s| s.code == b.code && b.parameters.get(s.at) == Some(&s.subcode));
    by_subcode.map(|s| s.parameters).or_else(|| info(b.code).map(|r| r.parameters)).unwrap_or([""; 4])
}

/// A stop: what `KeBugCheckEx` was called with, plus what the analysis knows.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct BugCheck {
    /// The code.
    pub code: BugCheckCode,
    /// The four parameters, in Microsoft's documented order.
    pub parameters: [u64; 4],
    /// The driver the analysis blames, when known.
    pub driver: Option<String>,
    /// The faulting instruction address, when known (a host address).
    pub faulting_ip: Option<u64>,
    /// Set when the machine stopped without a Windows bugcheck (a timeout, an internal
    /// error: [`crate::halt`]); `code` and `parameters` are then 0.
    pub halt: Option<Box<crate::halt::Halt>>,
    /// The stopped thread's driver frames, innermost first, walked with the images'
    /// unwind data while its stack was live (`ntmem_wdk::symbols::walk`); empty when not
    /// known. The report names them (`STACK_TEXT`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
    /// The IRQL of the processor that stopped (`CURRENT_IRQL`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irql: Option<u8>,
    /// Whether the machine is 32-bit (x86): WinDbg prints its arguments in 8 hex
    /// digits there, 16 on 64-bit machines.
    #[serde(skip)]
    pub narrow: bool,
}

/// One frame of a stopped thread's stack, as the debugger's `k` command lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StackFrame {
    /// RSP in the frame (`Child-SP`).
    pub child_sp: u64,
    /// The frame's instruction: the faulting RIP for the first, a return address after.
    pub ip: u64,
    /// Where the frame returns (`RetAddr`); `None` when it could not be unwound.
    pub return_address: Option<u64>,
}

thread_local! {
    /// The stack of the stop this thread is about to make ([`note_stop_stack`]).
    static STOP_STACK: std::cell::RefCell<Vec<StackFrame>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records the stack of the stop this thread is about to make: walked by the WDK
/// boundary while the stopped thread's stack is live, just before it leaves driver code
/// with a bugcheck (the escape to `Machine::run` carries only words). The machine
/// attaches it to its stop record if that has no stack yet (`take_stop_stack`).
pub fn note_stop_stack(frames: Vec<StackFrame>) {
    STOP_STACK.with(|s| *s.borrow_mut() = frames);
}

/// The stack [`note_stop_stack`] recorded on this thread, taken (empty when none).
pub(crate) fn take_stop_stack() -> Vec<StackFrame> {
    STOP_STACK.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

impl BugCheck {
    /// A bugcheck with no driver or address attached yet.
    pub const fn new(code: BugCheckCode, parameters: [u64; 4]) -> Self {
        BugCheck {
            code,
            parameters,
            driver: None,
            faulting_ip: None,
            halt: None,
            stack: Vec::new(),
            irql: None,
            narrow: false,
        }
    }

    /// A stop that is not a bugcheck ([`crate::halt`]).
    pub fn halted(halt: crate::halt::Halt) -> Self {
        BugCheck { halt: Some(Box::new(halt)), ..BugCheck::new(BugCheckCode(0), [0; 4]) }
    }

    /// The code's symbolic name.
    pub fn name(&self) -> &'static str {
        self.code.name()
    }

    /// A report in the shape of WinDbg's `!analyze -v`: [`BugCheck::analysis_header`],
    /// then the faulting address and image as numbers (a report with the driver's
    /// symbols names them instead: `ntmem_wdk::symbols::Analysis`).
    pub fn analysis(&self) -> String {
        let mut out = self.analysis_header();
        if self.halt.is_some() {
            let _ = writeln!(out, "IMAGE_NAME:  {}", self.driver.as_deref().unwrap_or("unknown"));
            return out;
        }
        if let Some(ip) = self.faulting_ip {
            let _ = writeln!(out, "FAULTING_IP: {ip:#x}");
        }
        let _ = writeln!(out, "IMAGE_NAME:  {}", self.driver.as_deref().unwrap_or("unknown"));
        let _ = writeln!(out, "FAILURE_BUCKET_ID:  0x{:X}_{}", self.code.0, self.driver.as_deref().unwrap_or("nt"));
        out
    }

    /// The part of `!analyze -v` that needs no symbols: the code, its name and
    /// summary, the arguments and what each means, and `BUGCHECK_CODE`/`_P1`–`_P4`
    /// (for a halt, what stopped the machine).
    pub fn analysis_header(&self) -> String {
        let mut out = String::new();
        if let Some(halt) = &self.halt {
            out.push_str(&halt.analysis());
            return out;
        }
        let _ = writeln!(out, "{} ({:x})", self.name(), self.code.0);
        if let Some(row) = info(self.code) {
            let _ = writeln!(out, "{}", row.summary);
        }
        let _ = writeln!(out, "Arguments:");
        let width = if self.narrow { 8 } else { 16 };
        for (i, (p, meaning)) in self.parameters.iter().zip(parameter_meanings(self)).enumerate() {
            let _ = writeln!(out, "Arg{}: {:0width$x}, {}", i + 1, p, meaning);
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "BUGCHECK_CODE:  {:x}", self.code.0);
        let p = self.parameters;
        let _ = writeln!(
            out,
            "BUGCHECK_P1: {:x}\nBUGCHECK_P2: {:x}\nBUGCHECK_P3: {:x}\nBUGCHECK_P4: {:x}",
            p[0], p[1], p[2], p[3]
        );
        if let Some(irql) = self.irql {
            let _ = writeln!(out, "\nCURRENT_IRQL:  {irql:x}");
        }
        out
    }
}

impl fmt::Debug for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(halt) = &self.halt {
            write!(f, "{halt}")?;
            if let Some(d) = &self.driver {
                write!(f, " in {d}")?;
            }
            return Ok(());
        }
        write!(
            f,
            "*** STOP: {:#010x} ({:#x}, {:#x}, {:#x}, {:#x}) {}",
            self.code.0,
            self.parameters[0],
            self.parameters[1],
            self.parameters[2],
            self.parameters[3],
            self.name()
        )?;
        if let Some(d) = &self.driver {
            write!(f, " in {d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for BugCheck {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_unique_and_named() {
        for (i, a) in BUGCHECKS.iter().enumerate() {
            assert_eq!(a.code.name(), a.name);
            assert!(BUGCHECKS[i + 1..].iter().all(|b| b.code != a.code), "{} twice", a.name);
        }
        assert_eq!(BugCheckCode(0xdead).name(), "UNKNOWN_BUGCHECK");
    }

    #[test]
    fn analysis_names_the_code_and_each_parameter() {
        let b = BugCheck::new(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [0xfffff8a000001000, 1, 0x401000, 0]);
        let text = b.analysis();
        assert!(text.starts_with("PAGE_FAULT_IN_NONPAGED_AREA (50)"));
        assert!(text.contains("Arg1: fffff8a000001000, Memory address referenced"));
        assert!(text.contains("Arg2: 0000000000000001, 0: read, 1: write"));
        assert_eq!(
            format!("{b}"),
            "*** STOP: 0x00000050 (0xfffff8a000001000, 0x1, 0x401000, 0x0) PAGE_FAULT_IN_NONPAGED_AREA"
        );
    }

    #[test]
    fn each_subcode_is_listed_once_and_names_its_slot() {
        for (i, a) in SUBCODES.iter().enumerate() {
            assert!(info(a.code).is_some(), "{:#x} has no row", a.code.0);
            let twin = SUBCODES[i + 1..].iter().any(|b| b.code == a.code && b.subcode == a.subcode);
            assert!(!twin, "{:#x}/{:#x} twice", a.code.0, a.subcode);
            let own = format!("{:#04x}:", a.subcode).to_uppercase().replace("0X", "0x");
            assert!(a.parameters[a.at].starts_with(&own), "{own} does not start {:?}", a.parameters[a.at]);
        }
    }

    /// The text before the symbols, exactly, for the stops a driver developer meets
    /// most: 0xC2 on x86 (8 hex digits), 0x19 and 0xD1 on x64 with the IRQL.
    #[test]
    fn analysis_headers_are_windbgs() {
        let mut b = BugCheck::new(BugCheckCode::BAD_POOL_CALLER, [7, 0, 0xe0000, 0xdb400008]);
        (b.narrow, b.irql) = (true, Some(0));
        assert_eq!(
            b.analysis_header(),
            "BAD_POOL_CALLER (c2)\n\
             The current thread made a bad pool request.\n\
             Arguments:\n\
             Arg1: 00000007, 0x07: the pool block was already freed\n\
             Arg2: 00000000, Reserved\n\
             Arg3: 000e0000, Pool header contents\n\
             Arg4: db400008, Address of the block being freed\n\
             \n\
             BUGCHECK_CODE:  c2\n\
             BUGCHECK_P1: 7\n\
             BUGCHECK_P2: 0\n\
             BUGCHECK_P3: e0000\n\
             BUGCHECK_P4: db400008\n\
             \n\
             CURRENT_IRQL:  0\n"
        );
        let b =
            BugCheck::new(BugCheckCode::BAD_POOL_HEADER, [0x20, 0xfffff8a000001000, 0xfffff8a000001070, 0x4c070007]);
        let text = b.analysis_header();
        assert!(text.contains("Arg1: 0000000000000020, 0x20: a pool block header's size is corrupt"), "{text}");
        assert!(text.contains("Arg3: fffff8a000001070, The next pool entry\n"), "{text}");
        assert!(!text.contains("CURRENT_IRQL"), "no processor known: {text}");
        let mut b = BugCheck::new(BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL, [0xfffff8a000001000, 2, 0, 0x401000]);
        b.irql = Some(2);
        let text = b.analysis_header();
        assert!(text.contains("Arg2: 0000000000000002, IRQL at time of reference\n"), "{text}");
        assert!(text.ends_with("\nCURRENT_IRQL:  2\n"), "{text}");
        // The special pool's subcode is its last parameter.
        let b = BugCheck::new(BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [0x1000, 0x1010, 0x5a, 0x24]);
        assert!(b.analysis_header().contains("Arg4: 0000000000000024, 0x24: the driver wrote past the end"));
    }
    /// Golden text of the rest of the four stops a driver developer meets most, in
    /// the other width: 0x50 and 0xD1 on x86 (8 hex digits), 0x19 on x64.
    #[test]
    fn analysis_headers_are_windbgs_in_both_widths() {
        let mut b = BugCheck::new(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [0xe1000ff8, 0, 0xf7a1b2c3, 0]);
        (b.narrow, b.irql) = (true, Some(0));
        assert_eq!(
            b.analysis_header(),
            "PAGE_FAULT_IN_NONPAGED_AREA (50)\n\
             Invalid system memory was referenced.\n\
             Arguments:\n\
             Arg1: e1000ff8, Memory address referenced\n\
             Arg2: 00000000, 0: read, 1: write\n\
             Arg3: f7a1b2c3, Address that referenced the memory (if known)\n\
             Arg4: 00000000, Reserved (type of page fault)\n\
             \n\
             BUGCHECK_CODE:  50\n\
             BUGCHECK_P1: e1000ff8\n\
             BUGCHECK_P2: 0\n\
             BUGCHECK_P3: f7a1b2c3\n\
             BUGCHECK_P4: 0\n\
             \n\
             CURRENT_IRQL:  0\n"
        );
        let mut b =
            BugCheck::new(BugCheckCode::BAD_POOL_HEADER, [0x20, 0xfffff8a000001000, 0xfffff8a000001070, 0x4c070007]);
        b.irql = Some(0);
        assert_eq!(
            b.analysis_header(),
            "BAD_POOL_HEADER (19)\n\
             A pool header is corrupt.\n\
             Arguments:\n\
             Arg1: 0000000000000020, 0x20: a pool block header's size is corrupt: the next block's previous size disagrees\n\
             Arg2: fffff8a000001000, The pool entry\n\
             Arg3: fffff8a000001070, The next pool entry\n\
             Arg4: 000000004c070007, The next header's first ULONG\n\
             \n\
             BUGCHECK_CODE:  19\n\
             BUGCHECK_P1: 20\n\
             BUGCHECK_P2: fffff8a000001000\n\
             BUGCHECK_P3: fffff8a000001070\n\
             BUGCHECK_P4: 4c070007\n\
             \n\
             CURRENT_IRQL:  0\n"
        );
        let mut b = BugCheck::new(BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL, [0xe1000ff8, 2, 0, 0xf7a1b2c3]);
        (b.narrow, b.irql) = (true, Some(2));
        assert_eq!(
            b.analysis_header(),
            "DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)\n\
             A driver touched pageable or invalid memory at an IRQL that was too high.\n\
             Arguments:\n\
             Arg1: e1000ff8, Memory referenced\n\
             Arg2: 00000002, IRQL at time of reference\n\
             Arg3: 00000000, 0: read, 1: write, 8: execute\n\
             Arg4: f7a1b2c3, Address that referenced memory\n\
             \n\
             BUGCHECK_CODE:  d1\n\
             BUGCHECK_P1: e1000ff8\n\
             BUGCHECK_P2: 2\n\
             BUGCHECK_P3: 0\n\
             BUGCHECK_P4: f7a1b2c3\n\
             \n\
             CURRENT_IRQL:  2\n"
        );
    }
}
