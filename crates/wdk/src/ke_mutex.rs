//! Mutexes: kernel mutexes (`KMUTEX`), fast mutexes (`FAST_MUTEX`) and guarded
//! mutexes (`KGUARDED_MUTEX`) (learn.microsoft.com "Mutex Objects",
//! "KeInitializeMutex", "KeReleaseMutex", "Fast Mutexes and Guarded Mutexes",
//! "ExAcquireFastMutex", "ExReleaseFastMutex", "ExTryToAcquireFastMutex",
//! "KeAcquireGuardedMutex", bug check 0xBF "MUTEX_ALREADY_OWNED").
//!
//! **Layouts (x64).** `KMUTEX` is a `KMUTANT` (0x38): header (Type 2, MutantObject),
//! `MutantListEntry` 0x18, `OwnerThread` 0x28, `Abandoned` 0x30, `ApcDisable` 0x31. Its
//! signal state is 1 when free and `1 - n` while its owner holds it `n` times. A
//! `FAST_MUTEX` (0x38) holds `Count` 0x00 (1 free, 0 owned), `Owner` 0x08,
//! `Contention` 0x10, an `Event` 0x18 and `OldIrql` 0x30; `KGUARDED_MUTEX` has the
//! same layout (Windows 8 and later define it so). `ExInitializeFastMutex` is inline
//! in `wdm.h`, as in the WDK.
//!
//! **Rules.** A kernel mutex is acquired by a wait (`KeWaitForSingleObject`,
//! `KeWaitForMutexObject`), recursively by its owner, and disables normal kernel APCs
//! while held (`KeAreApcsDisabled`). Releasing one the caller does not own raises
//! STATUS_MUTANT_NOT_OWNED (0xC0000046), as `KeReleaseMutex` documents. A fast mutex
//! raises to APC_LEVEL (saving the old IRQL in `OldIrql`), a guarded mutex enters a
//! guarded region (the `Unsafe` forms do neither: their caller is at APC_LEVEL or in a
//! critical region, which Driver Verifier checks); none is recursive: re-acquiring one the thread owns is
//! MUTEX_ALREADY_OWNED (0xBF: mutex, thread, 0, 0) where Windows would deadlock; above
//! APC_LEVEL the raise fails as `KfRaiseIrql` does (0x09, or Driver Verifier's 0xC4).
//! Releasing a fast or guarded mutex the caller does not own raises
//! STATUS_MUTANT_NOT_OWNED too (Windows does not check; ntmem's choice). Under Driver
//! Verifier a fast mutex acquired above APC_LEVEL is 0xC4/0x33 and released at
//! another IRQL than APC_LEVEL 0x34; the unsafe forms neither at APC_LEVEL nor with
//! normal kernel APCs disabled are 0x39/0x3A. A contended
//! acquire waits as `KeWaitForSingleObject` does ([`crate::ke_wait`]). Under Driver
//! Verifier's deadlock detection each acquisition and release goes through its hooks
//! first ([`crate::vf::lock_acquiring`]): a recursive acquire is then 0xC4/0x1000, a
//! release not owned 0x1004 or 0x1007.

use std::ffi::c_void;

use ntmem_kernel::ke::sched::WaitOn;
use ntmem_kernel::vf::{Attempt, LockKind, LockRequest, Violation};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::kernel;
use crate::ke_dispatcher::{Object, SYNCHRONIZATION_EVENT};
use crate::ke_wait::{wait_until, Poll, KMUTANT_SIZE, MUTANT_APC_DISABLE, MUTANT_OBJECT, MUTANT_OWNER};
use crate::types::NtStatus;

/// `STATUS_MUTANT_NOT_OWNED`.
pub const STATUS_MUTANT_NOT_OWNED: NtStatus = 0xC000_0046_u32 as NtStatus;

/// `sizeof(FAST_MUTEX)` (and `KGUARDED_MUTEX`) on x64.
const FAST_MUTEX_SIZE: u64 = 0x38;
const FM_COUNT: usize = 0x00;
const FM_OWNER: usize = 0x08;
const FM_CONTENTION: usize = 0x10;
const FM_EVENT: usize = 0x18;
const FM_OLD_IRQL: usize = 0x30;

/// `KeInitializeMutex(Mutex, Level)`: free (signalled), no owner; `Level` is ignored,
/// as on Windows.
///
/// # Safety
/// `mutex` is the driver's `KMUTEX`.
pub unsafe extern "win64" fn KeInitializeMutex(mutex: *mut c_void, _level: u32) {
    kernel(|cpu| {
        let m = Object::of(cpu, mutex, KMUTANT_SIZE)?;
        m.initialize(MUTANT_OBJECT, KMUTANT_SIZE, 1);
        m.set_u64(0x18, 0);
        m.set_u64(0x20, 0);
        m.set_u64(MUTANT_OWNER, 0);
        m.set_u64(0x30, 0);
        m.set_u8(MUTANT_APC_DISABLE, 1);
        crate::vf::lock_created(cpu, mutex as u64, LockKind::Mutex);
        crate::vf::check_sync_object(cpu, mutex)
    });
}

/// `KeReleaseMutex(Mutex, Wait)`: gives up one level of ownership; the previous
/// signal state (0 when this release freed it). Not the owner: raises
/// STATUS_MUTANT_NOT_OWNED.
///
/// # Safety
/// `mutex` is an initialized `KMUTEX`.
pub unsafe extern "win64" fn KeReleaseMutex(mutex: *mut c_void, _wait: u8) -> i32 {
    let thread = crate::ps::current_thread();
    let released = kernel(|cpu| {
        let m = Object::of(cpu, mutex, KMUTANT_SIZE)?;
        crate::vf::lock_released(cpu, thread, mutex as u64, LockKind::Mutex)?;
        Ok(release_mutant(&m, thread))
    });
    released.unwrap_or_else(|| crate::seh::raise_status(STATUS_MUTANT_NOT_OWNED))
}

/// `thread` gives up one level of its ownership of the mutex `m`: the previous signal
/// state, or `None` when `thread` does not own it.
pub(crate) fn release_mutant(m: &Object, thread: u64) -> Option<i32> {
    let state = m.signal_state();
    if state > 0 || m.u64_at(MUTANT_OWNER) != thread {
        return None;
    }
    m.set_signal_state(state + 1);
    if state == 0 {
        m.set_u64(MUTANT_OWNER, 0);
        let apc = u32::from(m.u8_at(MUTANT_APC_DISABLE) != 0);
        crate::ps::update(|t| {
            t.apc_disable = t.apc_disable.saturating_sub(apc);
            t.mutexes_held = t.mutexes_held.saturating_sub(1);
        });
        crate::ps::mutex_given_up(m.0 as u64);
    }
    Some(state)
}

/// `KeReadStateMutex`: the signal state (1 free, ≤ 0 owned).
///
/// # Safety
/// As `KeReleaseMutex`.
pub unsafe extern "win64" fn KeReadStateMutex(mutex: *mut c_void) -> i32 {
    kernel(|cpu| Ok(Object::of(cpu, mutex, KMUTANT_SIZE)?.signal_state()))
}

/// How a fast or guarded mutex is taken: the IRQL raise of a fast mutex, or the
/// guarded region of a guarded mutex.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `ExAcquireFastMutex`: raise to APC_LEVEL.
    Fast,
    /// `KeAcquireGuardedMutex`: enter a guarded region.
    Guarded,
    /// `ExAcquireFastMutexUnsafe`: neither (the caller is at APC_LEVEL or in a
    /// critical region already).
    Unsafe,
}

impl Flavor {
    /// What deadlock detection tracks a mutex taken this way as.
    fn request(self, p: *mut c_void) -> LockRequest {
        let kind = match self {
            Flavor::Fast => LockKind::FastMutex,
            Flavor::Guarded => LockKind::GuardedMutex,
            Flavor::Unsafe => LockKind::FastMutexUnsafe,
        };
        LockRequest::exclusive(p as u64, kind)
    }
}

fn fast_mutex(cpu: &Cpu<'_>, p: *mut c_void) -> Result<Object, BugCheck> {
    Object::of(cpu, p, FAST_MUTEX_SIZE)
}

/// Takes the free mutex for `thread`, recording `old` (the IRQL to restore).
fn own(m: &Object, thread: u64, old: Irql) {
    m.set_i32(FM_COUNT, 0);
    m.set_u64(FM_OWNER, thread);
    m.set_i32(FM_OLD_IRQL, i32::from(old.0));
    crate::ps::update(|t| t.mutexes_held = t.mutexes_held.saturating_add(1));
}

/// The IRQL rule of an acquisition: at most APC_LEVEL. Above it a fast mutex's raise
/// to APC_LEVEL fails as `KfRaiseIrql` does; a guarded mutex fails as a wait at that
/// IRQL. Under Driver Verifier (any option) the verifier's own stops come first
/// (Microsoft, bug check 0xC4 table): a fast mutex above APC_LEVEL is 0x33 (IRQL,
/// mutex, 0); an unsafe one neither at APC_LEVEL nor with normal kernel APCs disabled
/// is 0x39 (IRQL, APC disable count, mutex) — `ExAcquireFastMutexUnsafe` may be called
/// at PASSIVE_LEVEL inside a critical region, as its page says.
fn irql_rule(cpu: &Cpu<'_>, p: *mut c_void, flavor: Flavor) -> Result<(), BugCheck> {
    if let Some(v) = verifier_rule(cpu, p, flavor, false) {
        return Err(v.stop(cpu.machine()));
    }
    if cpu.irql() <= Irql::APC {
        return Ok(());
    }
    match flavor {
        Flavor::Fast => cpu.raise_irql(Irql::APC).map(drop),
        Flavor::Guarded | Flavor::Unsafe => crate::ke_wait::check_irql(cpu, p as u64, None),
    }
}

/// Driver Verifier's IRQL rules for fast mutexes, on acquisition or `release`:
/// 0x33/0x34 for the safe routines (above APC_LEVEL to acquire, anything but
/// APC_LEVEL to release), 0x39/0x3A for the unsafe ones.
fn verifier_rule(cpu: &Cpu<'_>, p: *mut c_void, flavor: Flavor, release: bool) -> Option<Violation> {
    if cpu.machine().verifier().is_empty() {
        return None;
    }
    let (irql, mutex) = (cpu.irql(), p as u64);
    match flavor {
        Flavor::Fast if release && irql != Irql::APC => Some(Violation::FastMutexReleaseNotAtApc { irql, mutex }),
        Flavor::Fast if !release && irql > Irql::APC => Some(Violation::FastMutexAcquireAboveApc { irql, mutex }),
        Flavor::Unsafe if irql != Irql::APC && (irql > Irql::APC || !crate::ps::apcs_disabled(irql)) => {
            let apc_disable = crate::ps::apc_disable_count();
            Some(Violation::UnsafeMutexNotAtApc { release, irql, apc_disable, mutex })
        }
        _ => None,
    }
}

/// Raises to APC_LEVEL (fast) or enters a guarded region (guarded); the IRQL before.
fn enter(cpu: &Cpu<'_>, flavor: Flavor) -> Result<Irql, BugCheck> {
    match flavor {
        Flavor::Fast => cpu.raise_irql(Irql::APC),
        Flavor::Guarded => {
            crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_add(1));
            Ok(cpu.irql())
        }
        Flavor::Unsafe => Ok(cpu.irql()),
    }
}

/// The common acquire: the IRQL rule, deadlock detection's check (a recursion is its
/// 0x1000 before it is 0xBF), the recursion stop, then a wait while owned.
fn acquire(p: *mut c_void, flavor: Flavor, routine: &'static str) {
    let thread = crate::ps::current_thread();
    let old = kernel(|cpu| {
        let m = fast_mutex(cpu, p)?;
        irql_rule(cpu, p, flavor)?;
        // `ExInitializeFastMutex` is inline in wdm.h: force IRQL checking's look at
        // where the mutex lies (0xE1) comes at its acquisitions.
        crate::vf::check_sync_object(cpu, p)?;
        crate::vf::lock_acquiring(cpu, flavor.request(p), Attempt::Wait)?;
        let old = enter(cpu, flavor)?;
        if m.i32_at(FM_COUNT) & 1 == 0 && m.u64_at(FM_OWNER) == thread {
            return Err(cpu.machine().bugcheck(BugCheckCode::MUTEX_ALREADY_OWNED, [p as u64, thread, 0, 0]));
        }
        Ok(old)
    });
    let mut contended = false;
    wait_until(routine, None, false, &WaitOn::FastMutex(p as u64), |cpu| {
        let m = fast_mutex(cpu, p)?;
        if m.i32_at(FM_COUNT) & 1 == 1 {
            own(&m, thread, old);
            crate::vf::lock_acquired(cpu, flavor.request(p));
            return Ok(Poll::Done(()));
        }
        if !contended {
            contended = true;
            m.set_i32(FM_CONTENTION, m.i32_at(FM_CONTENTION).wrapping_add(1));
        }
        Ok(Poll::Blocked(p as u64 + FM_EVENT as u64, SYNCHRONIZATION_EVENT))
    });
}

/// The common try: TRUE and owned if it was free.
fn try_acquire(p: *mut c_void, flavor: Flavor) -> u8 {
    let thread = crate::ps::current_thread();
    kernel(|cpu| {
        let m = fast_mutex(cpu, p)?;
        irql_rule(cpu, p, flavor)?;
        // `ExInitializeFastMutex` is inline in wdm.h: force IRQL checking's look at
        // where the mutex lies (0xE1) comes at its acquisitions.
        crate::vf::check_sync_object(cpu, p)?;
        crate::vf::lock_acquiring(cpu, flavor.request(p), Attempt::Try)?;
        if m.i32_at(FM_COUNT) & 1 == 0 {
            return Ok(0);
        }
        let old = enter(cpu, flavor)?;
        own(&m, thread, old);
        crate::vf::lock_acquired(cpu, flavor.request(p));
        Ok(1)
    })
}

/// The common release: not the owner raises STATUS_MUTANT_NOT_OWNED; else free, and
/// the IRQL back to what the acquire saved (fast) or the guarded region left.
fn release(p: *mut c_void, flavor: Flavor) {
    let thread = crate::ps::current_thread();
    let released = kernel(|cpu| {
        let m = fast_mutex(cpu, p)?;
        // Deadlock detection's finding about the lock (another thread's, never taken)
        // comes before the IRQL rule of the release.
        crate::vf::lock_released(cpu, thread, p as u64, flavor.request(p).kind)?;
        if let Some(v) = verifier_rule(cpu, p, flavor, true) {
            return Err(v.stop(cpu.machine()));
        }
        if m.i32_at(FM_COUNT) & 1 == 1 || m.u64_at(FM_OWNER) != thread {
            return Ok(false);
        }
        m.set_i32(FM_COUNT, 1);
        m.set_u64(FM_OWNER, 0);
        crate::ps::update(|t| t.mutexes_held = t.mutexes_held.saturating_sub(1));
        match flavor {
            Flavor::Fast => cpu.lower_irql(Irql(m.i32_at(FM_OLD_IRQL).clamp(0, 31) as u8))?,
            Flavor::Guarded => crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_sub(1)),
            Flavor::Unsafe => {}
        }
        Ok(true)
    });
    if !released {
        crate::seh::raise_status(STATUS_MUTANT_NOT_OWNED);
    }
}

/// `ExAcquireFastMutex`: raises to APC_LEVEL and takes the mutex, waiting while
/// another thread owns it (see the module docs).
///
/// # Safety
/// `mutex` is an initialized `FAST_MUTEX`.
pub unsafe extern "win64" fn ExAcquireFastMutex(mutex: *mut c_void) {
    acquire(mutex, Flavor::Fast, "ExAcquireFastMutex");
}

/// `ExTryToAcquireFastMutex`: TRUE, at APC_LEVEL and owning it, if the mutex was
/// free; FALSE otherwise (the IRQL unchanged).
///
/// # Safety
/// As `ExAcquireFastMutex`.
pub unsafe extern "win64" fn ExTryToAcquireFastMutex(mutex: *mut c_void) -> u8 {
    try_acquire(mutex, Flavor::Fast)
}

/// `ExReleaseFastMutex`: frees the mutex and lowers to the IRQL saved by the acquire.
///
/// # Safety
/// As `ExAcquireFastMutex`.
pub unsafe extern "win64" fn ExReleaseFastMutex(mutex: *mut c_void) {
    release(mutex, Flavor::Fast);
}

/// `ExAcquireFastMutexUnsafe`: takes the mutex without raising the IRQL (the caller
/// is at APC_LEVEL or in a critical region), waiting while another thread owns it.
///
/// # Safety
/// As `ExAcquireFastMutex`.
pub unsafe extern "win64" fn ExAcquireFastMutexUnsafe(mutex: *mut c_void) {
    acquire(mutex, Flavor::Unsafe, "ExAcquireFastMutexUnsafe");
}

/// `ExReleaseFastMutexUnsafe`: frees a mutex `ExAcquireFastMutexUnsafe` took; the IRQL
/// stays.
///
/// # Safety
/// As `ExAcquireFastMutex`.
pub unsafe extern "win64" fn ExReleaseFastMutexUnsafe(mutex: *mut c_void) {
    release(mutex, Flavor::Unsafe);
}

/// `KeInitializeGuardedMutex`: free, no owner, no contention.
///
/// # Safety
/// `mutex` is the driver's `KGUARDED_MUTEX`.
pub unsafe extern "win64" fn KeInitializeGuardedMutex(mutex: *mut c_void) {
    kernel(|cpu| {
        let m = fast_mutex(cpu, mutex)?;
        m.set_i32(FM_COUNT, 1);
        m.set_i32(FM_COUNT + 4, 0);
        m.set_u64(FM_OWNER, 0);
        m.set_u64(FM_CONTENTION, 0);
        Object::of(cpu, m.0.wrapping_add(FM_EVENT).cast(), 0x18)?.initialize(SYNCHRONIZATION_EVENT, 0x18, 0);
        m.set_u64(FM_OLD_IRQL, 0);
        crate::vf::lock_created(cpu, mutex as u64, LockKind::GuardedMutex);
        crate::vf::check_sync_object(cpu, mutex)
    });
}

/// `KeAcquireGuardedMutex`: enters a guarded region and takes the mutex, waiting while
/// another thread owns it.
///
/// # Safety
/// `mutex` is an initialized `KGUARDED_MUTEX`.
pub unsafe extern "win64" fn KeAcquireGuardedMutex(mutex: *mut c_void) {
    acquire(mutex, Flavor::Guarded, "KeAcquireGuardedMutex");
}

/// `KeTryToAcquireGuardedMutex`: TRUE and owning it if it was free.
///
/// # Safety
/// As `KeAcquireGuardedMutex`.
pub unsafe extern "win64" fn KeTryToAcquireGuardedMutex(mutex: *mut c_void) -> u8 {
    try_acquire(mutex, Flavor::Guarded)
}

/// `KeReleaseGuardedMutex`: frees the mutex and leaves the guarded region.
///
/// # Safety
/// As `KeAcquireGuardedMutex`.
pub unsafe extern "win64" fn KeReleaseGuardedMutex(mutex: *mut c_void) {
    release(mutex, Flavor::Guarded);
}

/// `KeEnterGuardedRegion`: disables all kernel APCs for the thread (a count).
pub extern "win64" fn KeEnterGuardedRegion() {
    crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_add(1));
}

/// `KeLeaveGuardedRegion`.
pub extern "win64" fn KeLeaveGuardedRegion() {
    crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_sub(1));
}
