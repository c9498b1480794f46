//! Driver Verifier's violations: each rule it enforces as a value, and its
//! DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4) parameters — the subcode first, then
//! what Microsoft's bug check 0xC4 table says the others are (research note
//! `dma-verifier-views.md` §3.2, §3.3; the meanings the analysis prints are in
//! [`crate::bugcheck::SUBCODES`]).

use crate::{BugCheck, BugCheckCode, Irql, Machine};

/// A rule a verified driver broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// 0x01: paged pool allocated above APC_LEVEL.
    PagedAllocationAboveApc {
        /// The caller's IRQL.
        irql: Irql,
        /// The `POOL_TYPE` asked for.
        pool_type: u64,
        /// Bytes asked for.
        bytes: u64,
    },
    /// 0x02: nonpaged pool allocated above DISPATCH_LEVEL.
    NonpagedAllocationAboveDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The `POOL_TYPE` asked for.
        pool_type: u64,
        /// Bytes asked for.
        bytes: u64,
    },
    /// 0x11: paged pool freed above APC_LEVEL.
    PagedFreeAboveApc {
        /// The caller's IRQL.
        irql: Irql,
        /// The pool (1 paged).
        pool_type: u64,
        /// The block.
        address: u64,
    },
    /// 0x12: nonpaged pool freed above DISPATCH_LEVEL.
    NonpagedFreeAboveDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The pool (0 nonpaged).
        pool_type: u64,
        /// The block.
        address: u64,
    },
    /// 0x30: `KeRaiseIrql` to a lower or an invalid IRQL.
    RaiseToLower {
        /// The current IRQL.
        current: Irql,
        /// The IRQL asked for.
        requested: Irql,
    },
    /// 0x31: `KeLowerIrql` to a higher IRQL.
    LowerToHigher {
        /// The current IRQL.
        current: Irql,
        /// The IRQL asked for.
        requested: Irql,
    },
    /// 0x32: `KeReleaseSpinLock` not at DISPATCH_LEVEL.
    SpinLockReleaseNotAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The lock.
        lock: u64,
    },
    /// 0x33: `ExAcquireFastMutex` (or `ExTryToAcquireFastMutex`) above APC_LEVEL.
    FastMutexAcquireAboveApc {
        /// The caller's IRQL.
        irql: Irql,
        /// The fast mutex.
        mutex: u64,
    },
    /// 0x34: `ExReleaseFastMutex` at an IRQL other than APC_LEVEL.
    FastMutexReleaseNotAtApc {
        /// The caller's IRQL.
        irql: Irql,
        /// The fast mutex.
        mutex: u64,
    },
    /// 0x35: the kernel released a spin lock (a device queue's, for the driver's
    /// `KeInsertDeviceQueue` and kin) at an IRQL other than DISPATCH_LEVEL.
    KernelSpinLockReleaseNotAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The lock.
        lock: u64,
        /// The IRQL the release lowers to.
        old: Irql,
    },
    /// 0x36: the kernel released a numbered queued spin lock (the cancel spin lock,
    /// for `IoReleaseCancelSpinLock`) at an IRQL other than DISPATCH_LEVEL.
    QueuedSpinLockReleaseNotAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The lock's `KSPIN_LOCK_QUEUE_NUMBER`.
        number: u64,
        /// The IRQL the release lowers to.
        old: Irql,
    },
    /// 0x37 (acquire) / 0x38 (release): an ERESOURCE taken or given up with normal
    /// kernel APCs enabled (not in a critical region, below APC_LEVEL).
    ResourceWithApcsEnabled {
        /// A release (0x38) rather than an acquisition (0x37).
        release: bool,
        /// The caller's IRQL.
        irql: Irql,
        /// The thread's APC disable count, as Windows keeps it.
        apc_disable: u64,
        /// The resource.
        resource: u64,
    },
    /// 0x39 (acquire) / 0x3A (release): a fast mutex taken or given up "unsafe"
    /// neither at APC_LEVEL nor with normal kernel APCs disabled.
    UnsafeMutexNotAtApc {
        /// A release (0x3A) rather than an acquisition (0x39).
        release: bool,
        /// The caller's IRQL.
        irql: Irql,
        /// The thread's APC disable count, as Windows keeps it.
        apc_disable: u64,
        /// The fast mutex.
        mutex: u64,
    },
    /// 0x3B: a wait at DISPATCH_LEVEL or above with a non-zero timeout.
    WaitAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The object waited on.
        object: u64,
        /// The timeout (100 ns units; 0 when none was given).
        timeout: u64,
    },
    /// 0x60: the driver unloaded with pool allocated, in the byte-count form
    /// ([`super::Verifier::unload_violation`] says on which editions).
    PoolLeftAtUnloadBytes {
        /// The driver's outstanding paged pool, in bytes.
        paged_bytes: u64,
        /// Its outstanding nonpaged pool, in bytes.
        nonpaged_bytes: u64,
        /// Allocations not freed, paged and nonpaged.
        count: u64,
    },
    /// 0x61: a thread of the driver other than the one unloading it — a system
    /// thread, a work item, a DPC — allocates pool while the driver unloads.
    AllocationWhileUnloading {
        /// The driver's outstanding paged pool, in bytes.
        paged_bytes: u64,
        /// Its outstanding nonpaged pool, in bytes.
        nonpaged_bytes: u64,
        /// Allocations not freed, paged and nonpaged.
        count: u64,
    },
    /// 0x62: the driver unloaded with pool allocated.
    PoolLeftAtUnload {
        /// The address of the driver's name (a UNICODE_STRING).
        name: u64,
        /// Allocations not freed, paged and nonpaged.
        count: u64,
    },
    /// 0x105: an IRP from `IoAllocateIrp` freed with `ExFreePool` instead of
    /// `IoFreeIrp` (I/O verification).
    IrpFreedAsPool {
        /// The IRP.
        irp: u64,
    },
    /// 0x1000: self-deadlock: a thread asks again for a lock it holds that is not
    /// recursive ([`super::deadlock`]).
    Recursion {
        /// The lock.
        lock: u64,
    },
    /// 0x1001: a lock taken in the opposite order to an earlier one: a cycle in the
    /// lock hierarchy, a deadlock waiting to happen.
    LockHierarchy {
        /// The lock whose acquisition closes the cycle.
        lock: u64,
    },
    /// 0x1002: an ERESOURCE acquired that was never initialized.
    UninitializedResource {
        /// The resource.
        lock: u64,
    },
    /// 0x1003: a lock released while one taken after it is still held.
    ReleasedOutOfOrder {
        /// The lock released.
        released: u64,
        /// The lock that should have been released first.
        expected: u64,
    },
    /// 0x1004: a lock released by a thread that does not hold it while another does.
    ReleasedByOtherThread {
        /// The lock.
        lock: u64,
        /// The thread that acquired it.
        owner: u64,
        /// The thread releasing it.
        thread: u64,
    },
    /// 0x1005: an ERESOURCE initialized twice without being deleted.
    MultipleInitialization {
        /// The resource.
        lock: u64,
    },
    /// 0x1007: a lock released that nobody holds.
    Unacquired {
        /// The lock.
        lock: u64,
    },
    /// 0x1008 (Windows 7 and later): "The driver tried to acquire a lock by using an
    /// API that is mismatched for this lock type" — a lock known as one type
    /// ([`super::LockKind::lock_type`]) asked for with another type's routine.
    MismatchedAcquire {
        /// The lock.
        lock: u64,
    },
    /// 0x100A (Windows 7 and later): "The terminated thread owns the lock" — a system
    /// thread ended holding a lock deadlock detection follows.
    TerminatedOwner {
        /// The thread.
        thread: u64,
    },
    /// 0x1009: a lock released with a routine of another lock kind.
    MismatchedRelease {
        /// The lock.
        lock: u64,
    },
    /// 0x100B: a lock deleted while a thread still holds it.
    DeletedWhileOwned {
        /// The lock.
        lock: u64,
        /// The thread holding it.
        owner: u64,
    },
    /// 0x11A: `KeEnterCriticalRegion` at DISPATCH_LEVEL or above.
    EnterCriticalRegionAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
    },
    /// 0x11B: `KeLeaveCriticalRegion` at DISPATCH_LEVEL or above.
    LeaveCriticalRegionAtDispatch {
        /// The caller's IRQL.
        irql: Irql,
    },
    /// 0xE1: a synchronisation object (KEVENT, KSEMAPHORE, KTIMER, KSPIN_LOCK, …) in
    /// pageable memory — seed 000 §12's Call Usage Verifier rule.
    PageableSyncObject {
        /// The object.
        object: u64,
    },
}

impl Violation {
    /// The bug check's four parameters.
    pub fn parameters(self) -> [u64; 4] {
        let i = |irql: Irql| u64::from(irql.0);
        match self {
            Violation::PagedAllocationAboveApc { irql, pool_type, bytes } => [0x01, i(irql), pool_type, bytes],
            Violation::NonpagedAllocationAboveDispatch { irql, pool_type, bytes } => [0x02, i(irql), pool_type, bytes],
            Violation::PagedFreeAboveApc { irql, pool_type, address } => [0x11, i(irql), pool_type, address],
            Violation::NonpagedFreeAboveDispatch { irql, pool_type, address } => [0x12, i(irql), pool_type, address],
            Violation::RaiseToLower { current, requested } => [0x30, i(current), i(requested), 0],
            Violation::LowerToHigher { current, requested } => [0x31, i(current), i(requested), 0],
            Violation::SpinLockReleaseNotAtDispatch { irql, lock } => [0x32, i(irql), lock, 0],
            Violation::FastMutexAcquireAboveApc { irql, mutex } => [0x33, i(irql), mutex, 0],
            Violation::FastMutexReleaseNotAtApc { irql, mutex } => [0x34, i(irql), mutex, 0],
            Violation::KernelSpinLockReleaseNotAtDispatch { irql, lock, old } => [0x35, i(irql), lock, i(old)],
            Violation::QueuedSpinLockReleaseNotAtDispatch { irql, number, old } => [0x36, i(irql), number, i(old)],
            Violation::ResourceWithApcsEnabled { release, irql, apc_disable, resource } => {
                [if release { 0x38 } else { 0x37 }, i(irql), apc_disable, resource]
            }
            Violation::UnsafeMutexNotAtApc { release, irql, apc_disable, mutex } => {
                [if release { 0x3A } else { 0x39 }, i(irql), apc_disable, mutex]
            }
            Violation::WaitAtDispatch { irql, object, timeout } => [0x3B, i(irql), object, timeout],
            Violation::PoolLeftAtUnloadBytes { paged_bytes, nonpaged_bytes, count } => {
                [0x60, paged_bytes, nonpaged_bytes, count]
            }
            Violation::AllocationWhileUnloading { paged_bytes, nonpaged_bytes, count } => {
                [0x61, paged_bytes, nonpaged_bytes, count]
            }
            Violation::PoolLeftAtUnload { name, count } => [0x62, name, 0, count],
            Violation::EnterCriticalRegionAtDispatch { irql } => [0x11A, i(irql), 0, 0],
            Violation::LeaveCriticalRegionAtDispatch { irql } => [0x11B, i(irql), 0, 0],
            Violation::PageableSyncObject { object } => [0xE1, object, 0, 0],
            Violation::IrpFreedAsPool { irp } => [0x105, irp, 0, 0],
            Violation::Recursion { lock } => [0x1000, lock, 0, 0],
            Violation::LockHierarchy { lock } => [0x1001, lock, 0, 0],
            Violation::UninitializedResource { lock } => [0x1002, lock, 0, 0],
            Violation::ReleasedOutOfOrder { released, expected } => [0x1003, released, expected, 0],
            Violation::ReleasedByOtherThread { lock, owner, thread } => [0x1004, lock, owner, thread],
            Violation::MultipleInitialization { lock } => [0x1005, lock, 0, 0],
            Violation::Unacquired { lock } => [0x1007, lock, 0, 0],
            Violation::MismatchedAcquire { lock } => [0x1008, lock, 0, 0],
            Violation::MismatchedRelease { lock } => [0x1009, lock, 0, 0],
            Violation::TerminatedOwner { thread } => [0x100A, thread, 0, 0],
            Violation::DeletedWhileOwned { lock, owner } => [0x100B, lock, owner, 0],
        }
    }

    /// The stop it is on `machine`.
    pub fn stop(self, machine: &Machine) -> BugCheck {
        machine.bugcheck(BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, self.parameters())
    }
}
