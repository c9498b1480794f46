//! Run-down protection (learn.microsoft.com "Run-Down Protection",
//! "ExInitializeRundownProtection", "ExAcquireRundownProtection(Ex)",
//! "ExReleaseRundownProtection(Ex)", "ExWaitForRundownProtectionRelease",
//! "ExRundownCompleted", "ExReInitializeRundownProtection").
//!
//! An `EX_RUNDOWN_REF` is one pointer-sized `Count` in the caller's memory: bit 0
//! (`EX_RUNDOWN_ACTIVE`) says the object is being, or has been, run down; the bits
//! above count the references granted (each acquire adds 2). An acquire fails once
//! the run-down has begun; `ExWaitForRundownProtectionRelease` sets the bit and
//! blocks until every reference is released — other threads run meanwhile, and if
//! nothing can ever release one the run ends naming the wait, where Windows would
//! wait forever —, leaving `Count` at `EX_RUNDOWN_ACTIVE`. Acquire and release are
//! callable at IRQL <= DISPATCH_LEVEL; the wait is a wait (below DISPATCH_LEVEL:
//! [`crate::ke_wait::check_irql`]'s stop above it).
//!
//! **Where ntmem differs:** while a thread waits, Windows keeps a pointer to the
//! waiter's block in `Count`; ntmem keeps the reference count there, with bit 0 set.
//! A release of a reference never granted is not checked (Windows' free build does
//! not check it either); the count stays at zero.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use ntmem_kernel::ke::sched::WaitOn;
use ntmem_kernel::{BugCheck, Cpu};

use crate::context::{interlocked_word, kernel};
use crate::ke_dispatcher::SYNCHRONIZATION_EVENT;
use crate::ke_wait::{check_irql, wait_until, Poll};

/// `EX_RUNDOWN_ACTIVE`.
const RUNDOWN_ACTIVE: u64 = 1;
/// What one reference adds to `Count`.
const REFERENCE: u64 = 2;

/// The `Count` word at `r` ([`interlocked_word`]).
fn count<'a>(cpu: &Cpu<'_>, r: *mut c_void) -> Result<&'a AtomicU64, BugCheck> {
    interlocked_word(cpu, r)
}

/// `ExInitializeRundownProtection(RunRef)` and `ExReInitializeRundownProtection`:
/// `Count` = 0, no reference, not run down.
///
/// # Safety
/// `r` is the caller's `EX_RUNDOWN_REF`.
pub unsafe extern "win64" fn ExInitializeRundownProtection(r: *mut c_void) {
    kernel(|cpu| {
        count(cpu, r)?.store(0, Ordering::Release);
        Ok(())
    });
}

/// `ExReInitializeRundownProtection(RunRef)`: as [`ExInitializeRundownProtection`],
/// after a completed run-down.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExReInitializeRundownProtection(r: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { ExInitializeRundownProtection(r) }
}

/// Adds `n` references unless the run-down has begun; whether it did.
fn acquire(r: *mut c_void, n: u32) -> u8 {
    kernel(|cpu| {
        let c = count(cpu, r)?;
        let add = u64::from(n) * REFERENCE;
        let granted = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            (v & RUNDOWN_ACTIVE == 0).then(|| v.wrapping_add(add))
        });
        Ok(u8::from(granted.is_ok()))
    })
}

/// Takes away `n` references (not below zero).
fn release(r: *mut c_void, n: u32) {
    kernel(|cpu| {
        let c = count(cpu, r)?;
        let sub = u64::from(n) * REFERENCE;
        let _ = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            let refs = (v & !RUNDOWN_ACTIVE).saturating_sub(sub);
            Some(refs | (v & RUNDOWN_ACTIVE))
        });
        Ok(())
    })
}

/// `ExAcquireRundownProtection(RunRef)`: TRUE and one reference more, or FALSE once
/// the run-down has begun.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExAcquireRundownProtection(r: *mut c_void) -> u8 {
    acquire(r, 1)
}

/// `ExAcquireRundownProtectionEx(RunRef, Count)`: `Count` references at once.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExAcquireRundownProtectionEx(r: *mut c_void, n: u32) -> u8 {
    acquire(r, n)
}

/// `ExReleaseRundownProtection(RunRef)`: one reference fewer; the last lets a
/// waiting `ExWaitForRundownProtectionRelease` return.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExReleaseRundownProtection(r: *mut c_void) {
    release(r, 1);
}

/// `ExReleaseRundownProtectionEx(RunRef, Count)`: `Count` references fewer.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExReleaseRundownProtectionEx(r: *mut c_void, n: u32) {
    release(r, n);
}

/// Whether the run-down at `r` has no reference left (a word gone from the machine
/// counts as none: the waiter then touches it and faults).
pub(crate) fn drained(cpu: &Cpu<'_>, r: u64) -> bool {
    count(cpu, r as *mut c_void).map_or(true, |c| c.load(Ordering::Acquire) & !RUNDOWN_ACTIVE == 0)
}

/// `ExWaitForRundownProtectionRelease(RunRef)`: refuses new references and waits for
/// the granted ones to be released; `Count` is then `EX_RUNDOWN_ACTIVE`.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExWaitForRundownProtectionRelease(r: *mut c_void) {
    kernel(|cpu| {
        check_irql(cpu, r as u64, None)?;
        count(cpu, r)?.fetch_or(RUNDOWN_ACTIVE, Ordering::AcqRel);
        Ok(())
    });
    let on = WaitOn::Rundown(r as u64);
    wait_until("ExWaitForRundownProtectionRelease", None, false, &on, |cpu| {
        Ok(if drained(cpu, r as u64) { Poll::Done(()) } else { Poll::Blocked(r as u64, SYNCHRONIZATION_EVENT) })
    });
}

/// `ExRundownCompleted(RunRef)`: marks the run-down complete (`Count` =
/// `EX_RUNDOWN_ACTIVE`), so acquires keep failing until it is initialized again.
///
/// # Safety
/// As [`ExInitializeRundownProtection`].
pub unsafe extern "win64" fn ExRundownCompleted(r: *mut c_void) {
    kernel(|cpu| {
        count(cpu, r)?.store(RUNDOWN_ACTIVE, Ordering::Release);
        Ok(())
    });
}
