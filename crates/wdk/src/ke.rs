//! Kernel routines: IRQL and spin locks, over `ntmem_kernel::Cpu`.
//!
//! `KeRaiseIrql` and `KeAcquireSpinLock` are macros in `wdm.h` over
//! `KfRaiseIrql` and `KeAcquireSpinLockRaiseToDpc`, as in the AMD64 WDK.
//!
//! A `KSPIN_LOCK` pointer into the NULL region (the first 64 KB, never mapped) is
//! touched as Windows touches it — a write at the caller's IRQL — and the machine's
//! trap decides what that fault means: below DISPATCH_LEVEL an access violation
//! (STATUS_ACCESS_VIOLATION, catchable in `__try`; unhandled, the machine stops),
//! at DISPATCH_LEVEL IRQL_NOT_LESS_OR_EQUAL (0x0A: address, IRQL, 1 write, IP).
//! `KeInitializeSpinLock` is a plain store of 0 at the caller's IRQL; `KeReleaseSpinLock`
//! clears the lock word before it lowers the IRQL; `KeAcquireSpinLock` raises to
//! DISPATCH_LEVEL first (Microsoft, KeInitializeSpinLock, KeReleaseSpinLock,
//! KeAcquireSpinLock reference pages: the lock is resident memory touched at those
//! levels). A misaligned lock elsewhere stops the machine with 0x0A (address,
//! DISPATCH_LEVEL, 1 write, 0): ntmem needs an aligned word for an atomic.

use std::ffi::c_void;
use std::sync::atomic::AtomicUsize;

use ntmem_kernel::vf::{Attempt, LockKind, LockRequest, Violation};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::kernel;
use crate::types::KSpinLock;

/// `KeGetCurrentIrql`.
pub extern "win64" fn KeGetCurrentIrql() -> u8 {
    kernel(|cpu| Ok(cpu.irql().0))
}

/// `KfRaiseIrql`: raises to `new` and returns the old IRQL; raising to a lower
/// level stops the machine with IRQL_NOT_GREATER_OR_EQUAL (0x09).
pub extern "win64" fn KfRaiseIrql(new: u8) -> u8 {
    kernel(|cpu| Ok(cpu.raise_irql(Irql(new))?.0))
}

/// `KeLowerIrql`: lowering to a higher level stops the machine with
/// IRQL_NOT_LESS_OR_EQUAL (0x0A).
pub extern "win64" fn KeLowerIrql(new: u8) {
    kernel(|cpu| cpu.lower_irql(Irql(new)));
}

/// Where the NULL region ends: Linux maps nothing below 64 KB (`vm.mmap_min_addr`), nor
/// does Windows (the first 64 KB of every address space are reserved).
const NULL_REGION: usize = 0x1_0000;

fn lock_of<'a>(cpu: &Cpu<'_>, lock: *mut KSpinLock) -> Result<&'a AtomicUsize, BugCheck> {
    if (lock as usize) < NULL_REGION {
        // SAFETY: no host or machine memory lies in the NULL region: the write faults
        // and the machine's trap turns it into the exception or bugcheck Windows gives
        // (see the module docs), leaving this routine; nothing here needs dropping.
        unsafe { std::ptr::write_volatile(lock.cast::<u8>(), 0) };
    }
    if (lock as usize) < NULL_REGION || !lock.cast::<AtomicUsize>().is_aligned() {
        let addr = lock as u64;
        return Err(cpu.machine().bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [addr, 2, 1, 0]));
    }
    // SAFETY: non-null and aligned (checked above); the caller (`# Safety` of the
    // routines below) passes a KSPIN_LOCK it owns for the whole call. AtomicUsize
    // has the size and alignment of usize (= ULONG_PTR). A pointer to memory the
    // machine has not mapped faults on first touch, and the fault handler turns
    // that into a bugcheck.
    Ok(unsafe { AtomicUsize::from_ptr(lock) })
}

/// `KeInitializeSpinLock`: sets `*lock` to 0 (free).
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` the driver owns.
pub unsafe extern "win64" fn KeInitializeSpinLock(lock: *mut KSpinLock) {
    kernel(|cpu| {
        lock_of(cpu, lock)?.store(0, std::sync::atomic::Ordering::Release);
        crate::vf::lock_created(cpu, lock as u64, LockKind::SpinLock);
        crate::vf::check_sync_object(cpu, lock.cast())
    });
}

/// `KeAcquireSpinLockRaiseToDpc`: raises to DISPATCH_LEVEL, takes the lock and
/// returns the old IRQL.
///
/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` the driver owns.
pub unsafe extern "win64" fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSpinLock) -> u8 {
    kernel(|cpu| {
        let old = cpu.raise_irql(Irql::DISPATCH)?;
        take_spin_lock(cpu, lock)?;
        Ok(old.0)
    })
}

/// Takes the spin lock at the current IRQL, under deadlock detection's hooks: a
/// recursive acquisition is found before the spin ([`crate::vf::lock_acquiring`]).
pub(crate) fn take_spin_lock(cpu: &Cpu<'_>, lock: *mut KSpinLock) -> Result<(), BugCheck> {
    let word = lock_of(cpu, lock)?;
    let request = LockRequest::exclusive(lock as u64, LockKind::SpinLock);
    crate::vf::lock_acquiring(cpu, request, Attempt::Wait)?;
    cpu.acquire_spin_lock_at_dpc_level(word)?;
    crate::vf::lock_acquired(cpu, request);
    Ok(())
}

/// Frees the spin lock and lowers to `old`, after Verifier's checks of the release
/// (the IRQL, then deadlock detection's).
pub(crate) fn free_spin_lock(cpu: &Cpu<'_>, lock: *mut KSpinLock, old: Irql) -> Result<(), BugCheck> {
    cpu.verify_spin_lock_release(lock as u64)?;
    let word = lock_of(cpu, lock)?;
    crate::vf::lock_released(cpu, crate::ps::current_thread(), lock as u64, LockKind::SpinLock)?;
    cpu.release_spin_lock(word, old)
}

/// `KeReleaseSpinLock`: frees the lock and lowers to `old`.
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` the driver owns.
pub unsafe extern "win64" fn KeReleaseSpinLock(lock: *mut KSpinLock, old: u8) {
    kernel(|cpu| free_spin_lock(cpu, lock, Irql(old)));
}

use ntmem_kernel::ke::shared_data::UNITS_PER_MS;
pub use ntmem_kernel::ke::shared_data::{BOOT_SYSTEM_TIME, TIME_INCREMENT};

fn interrupt_time() -> i64 {
    kernel(|cpu| Ok(i64::try_from(cpu.machine().now_ms()).unwrap_or(i64::MAX).saturating_mul(UNITS_PER_MS)))
}

/// `KeQueryInterruptTime`: 100-ns units since the machine booted — simulated time,
/// which advances only by scenario steps (`advance_ms`) and waits, never by itself.
pub extern "win64" fn KeQueryInterruptTime() -> u64 {
    interrupt_time() as u64
}

/// `KeQuerySystemTime`: the boot time ([`BOOT_SYSTEM_TIME`]) plus the interrupt time.
/// On x64 the WDK reads it from KUSER_SHARED_DATA in a macro; ntmem exports the
/// routine too, and its answer is the page's (`ntmem_kernel::ke::shared_data`).
///
/// # Safety
/// `time` is a writable LARGE_INTEGER (a bad one faults as on Windows).
pub unsafe extern "win64" fn KeQuerySystemTime(time: *mut i64) {
    let now = BOOT_SYSTEM_TIME.saturating_add(interrupt_time());
    // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
    unsafe { time.write_unaligned(now) };
}

/// `KeQuerySystemTimePrecise`: as `KeQuerySystemTime` (simulated time has no
/// coarser tick to refine).
///
/// # Safety
/// As `KeQuerySystemTime`.
pub unsafe extern "win64" fn KeQuerySystemTimePrecise(time: *mut i64) {
    // SAFETY: the caller's contract.
    unsafe { KeQuerySystemTime(time) }
}

/// `KeQueryTickCount`: clock ticks since boot (interrupt time / the time increment).
///
/// # Safety
/// As `KeQuerySystemTime`.
pub unsafe extern "win64" fn KeQueryTickCount(ticks: *mut i64) {
    let count = interrupt_time() / i64::from(TIME_INCREMENT);
    // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
    unsafe { ticks.write_unaligned(count) };
}

/// `KeQueryTimeIncrement`: 156,250 (15.625 ms), the usual clock interval.
pub extern "win64" fn KeQueryTimeIncrement() -> u32 {
    TIME_INCREMENT
}

/// `KeQueryPerformanceCounter`: a 10 MHz counter of simulated time (the frequency
/// Windows 10 and later report), and the frequency when asked.
///
/// # Safety
/// `frequency` is NULL or a writable LARGE_INTEGER.
pub unsafe extern "win64" fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64 {
    if !frequency.is_null() {
        // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
        unsafe { frequency.write_unaligned(10_000_000) };
    }
    interrupt_time()
}

/// `KeEnterCriticalRegion`: disables normal kernel APCs for the thread (a count).
/// Under Driver Verifier, a call at DISPATCH_LEVEL or above is
/// DRIVER_VERIFIER_DETECTED_VIOLATION 0x11A (the IRQL).
pub extern "win64" fn KeEnterCriticalRegion() {
    kernel(|cpu| critical_region_irql(cpu, |irql| Violation::EnterCriticalRegionAtDispatch { irql }));
    crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_add(1));
}

/// `KeLeaveCriticalRegion`: re-enables them when the count returns to zero. Under
/// Driver Verifier, a call at DISPATCH_LEVEL or above is 0xC4/0x11B (the IRQL).
pub extern "win64" fn KeLeaveCriticalRegion() {
    kernel(|cpu| critical_region_irql(cpu, |irql| Violation::LeaveCriticalRegionAtDispatch { irql }));
    crate::ps::update(|t| t.apc_disable = t.apc_disable.saturating_sub(1));
}

/// The verifier's IRQL rule for the critical-region routines ("Force IRQL
/// checking", Windows 7 and later; research note §3.3).
fn critical_region_irql(cpu: &Cpu<'_>, violation: impl FnOnce(Irql) -> Violation) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if cpu.irql() >= Irql::DISPATCH && !m.verifier().is_empty() {
        return Err(violation(cpu.irql()).stop(m));
    }
    Ok(())
}

/// `KeAreApcsDisabled`: TRUE inside a critical or guarded region, or at APC_LEVEL or above.
pub extern "win64" fn KeAreApcsDisabled() -> u8 {
    u8::from(kernel(|cpu| Ok(crate::ps::apcs_disabled(cpu.irql()))))
}

/// `KeAcquireSpinLockAtDpcLevel`: takes the lock without raising (the caller is at
/// DISPATCH_LEVEL already); see [`Cpu::acquire_spin_lock_at_dpc_level`].
///
/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` the driver owns.
pub unsafe extern "win64" fn KeAcquireSpinLockAtDpcLevel(lock: *mut KSpinLock) {
    kernel(|cpu| take_spin_lock(cpu, lock));
}

/// `KeReleaseSpinLockFromDpcLevel`: frees the lock and stays at DISPATCH_LEVEL (a
/// lock this processor does not hold: SPIN_LOCK_NOT_OWNED, 0x10).
///
/// # Safety
/// As `KeAcquireSpinLockAtDpcLevel`.
pub unsafe extern "win64" fn KeReleaseSpinLockFromDpcLevel(lock: *mut KSpinLock) {
    kernel(|cpu| free_spin_lock(cpu, lock, cpu.irql()));
}

/// `sizeof(KLOCK_QUEUE_HANDLE)` on x64: `LockQueue` (`Next` 0x00, `Lock` 0x08), then
/// `OldIrql` 0x10.
const QUEUE_HANDLE_SIZE: u64 = 0x18;
const QUEUE_HANDLE_LOCK: usize = 0x08;
const QUEUE_HANDLE_OLD_IRQL: usize = 0x10;

/// The driver's `KLOCK_QUEUE_HANDLE` at `handle`, checked mapped.
fn queue_handle(cpu: &Cpu<'_>, handle: *mut c_void) -> Result<*mut u8, BugCheck> {
    crate::context::checked(cpu, handle, QUEUE_HANDLE_SIZE)
}

/// Fills the handle of an in-stack queued spin lock taken: no next waiter, the lock,
/// and (when raised) the IRQL to restore.
fn fill_queue_handle(h: *mut u8, lock: *mut KSpinLock, old: Option<Irql>) {
    // SAFETY: `h` is a checked KLOCK_QUEUE_HANDLE (QUEUE_HANDLE_SIZE bytes mapped).
    unsafe {
        h.cast::<u64>().write_unaligned(0);
        h.add(QUEUE_HANDLE_LOCK).cast::<u64>().write_unaligned(lock as u64);
        if let Some(old) = old {
            h.add(QUEUE_HANDLE_OLD_IRQL).write(old.0);
        }
    }
}

/// The lock a handle names.
fn queued_lock(h: *mut u8) -> *mut KSpinLock {
    // SAFETY: `h` is a checked KLOCK_QUEUE_HANDLE.
    unsafe { h.add(QUEUE_HANDLE_LOCK).cast::<u64>().read_unaligned() as *mut KSpinLock }
}

/// `KeAcquireInStackQueuedSpinLock(SpinLock, LockHandle)`: raises to DISPATCH_LEVEL,
/// takes the lock and records it and the old IRQL in the caller's handle
/// (Microsoft, "Queued Spin Locks", "KeAcquireInStackQueuedSpinLock"). Where ntmem
/// differs: waiters spin on the lock word as for `KeAcquireSpinLock`, not in a queue,
/// and the word holds ntmem's owner mark rather than the queue's tail.
///
/// # Safety
/// `lock` is an initialized `KSPIN_LOCK`, `handle` a `KLOCK_QUEUE_HANDLE` (a bad one
/// stops the machine as a touch of it would).
pub unsafe extern "win64" fn KeAcquireInStackQueuedSpinLock(lock: *mut KSpinLock, handle: *mut c_void) {
    kernel(|cpu| {
        let h = queue_handle(cpu, handle)?;
        let old = cpu.raise_irql(Irql::DISPATCH)?;
        take_spin_lock(cpu, lock)?;
        fill_queue_handle(h, lock, Some(old));
        Ok(())
    });
}

/// `KeReleaseInStackQueuedSpinLock(LockHandle)`: frees the handle's lock and lowers to
/// the IRQL it saved.
///
/// # Safety
/// `handle` is the handle the acquire filled.
pub unsafe extern "win64" fn KeReleaseInStackQueuedSpinLock(handle: *mut c_void) {
    kernel(|cpu| {
        let h = queue_handle(cpu, handle)?;
        // SAFETY: checked above.
        let old = unsafe { h.add(QUEUE_HANDLE_OLD_IRQL).read() };
        free_spin_lock(cpu, queued_lock(h), Irql(old))
    });
}

/// `KeAcquireInStackQueuedSpinLockAtDpcLevel(SpinLock, LockHandle)`: takes the lock
/// without raising (the caller is at DISPATCH_LEVEL).
///
/// # Safety
/// As `KeAcquireInStackQueuedSpinLock`.
pub unsafe extern "win64" fn KeAcquireInStackQueuedSpinLockAtDpcLevel(lock: *mut KSpinLock, handle: *mut c_void) {
    kernel(|cpu| {
        let h = queue_handle(cpu, handle)?;
        take_spin_lock(cpu, lock)?;
        fill_queue_handle(h, lock, None);
        Ok(())
    });
}

/// `KeReleaseInStackQueuedSpinLockFromDpcLevel(LockHandle)`: frees the handle's lock
/// and stays at DISPATCH_LEVEL.
///
/// # Safety
/// As `KeReleaseInStackQueuedSpinLock`.
pub unsafe extern "win64" fn KeReleaseInStackQueuedSpinLockFromDpcLevel(handle: *mut c_void) {
    kernel(|cpu| {
        let h = queue_handle(cpu, handle)?;
        free_spin_lock(cpu, queued_lock(h), cpu.irql())
    });
}

/// `KeGetRecommendedSharedDataAlignment()`: the processors' largest cache line, the
/// alignment that keeps data two processors write from sharing one
/// ([`ntmem_machine::Arch::cache_line`]: 64 bytes on x86 and x64, 128 on IA-64).
pub extern "win64" fn KeGetRecommendedSharedDataAlignment() -> u32 {
    kernel(|cpu| Ok(cpu.machine().profile().arch.cache_line() as u32))
}
