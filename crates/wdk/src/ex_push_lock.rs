//! Push locks (wdm.h: `EX_PUSH_LOCK`, `ExInitializePushLock`,
//! `ExAcquirePushLockExclusiveEx`, `ExAcquirePushLockSharedEx`,
//! `ExReleasePushLockExclusiveEx`, `ExReleasePushLockSharedEx`; Windows 8 and later;
//! learn.microsoft.com "FltAcquirePushLockExclusive" for the rules).
//!
//! An `EX_PUSH_LOCK` is one pointer-sized word in the caller's memory: bit 0
//! (`Locked`) while held; the bits from 4 count the shared owners (each adds 0x10), so
//! an exclusive owner leaves the word at 1. `ExInitializePushLock` (inline in the
//! header) zeroes it. An acquire the lock cannot grant now waits, as a wait does
//! ([`crate::ke_wait`]): other threads run; if nothing can ever release the lock, the
//! run ends naming the wait. The caller must be at IRQL <= APC_LEVEL — above it the
//! acquire is the wait-at-DISPATCH_LEVEL stop ([`crate::ke_wait::check_irql`]) — and,
//! as for a guarded mutex, in a critical region (not checked). `Flags` must be 0.
//!
//! **Where ntmem differs:** Windows queues waiters in the word (bits 1–3: waiting,
//! waking, multiple shared) and hands the lock on in order; ntmem's waiters take the
//! lock when they next run. Push locks are not tracked by Driver Verifier's deadlock
//! detection (Windows' verifier does not track them either). A release of a lock not
//! held leaves the word at 0 (Windows corrupts it).

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use ntmem_kernel::ke::sched::WaitOn;
use ntmem_kernel::{BugCheck, Cpu};

use crate::context::{interlocked_word, kernel};
use crate::ke_dispatcher::SYNCHRONIZATION_EVENT;
use crate::ke_wait::{check_irql, wait_until, Poll};

/// `Locked`.
const LOCKED: u64 = 1;
/// One shared owner.
const SHARE: u64 = 0x10;

/// The lock's word ([`interlocked_word`]).
fn word<'a>(cpu: &Cpu<'_>, p: *mut c_void) -> Result<&'a AtomicU64, BugCheck> {
    interlocked_word(cpu, p)
}

/// The word after granting an acquire, if the lock can grant it now.
pub(crate) fn grant(value: u64, exclusive: bool) -> Option<u64> {
    match (value, exclusive) {
        (0, true) => Some(LOCKED),
        (0, false) => Some(LOCKED | SHARE),
        (v, false) if v & LOCKED != 0 && v >= SHARE => Some(v + SHARE),
        _ => None,
    }
}

/// Whether the lock at `p` could grant the acquire now (a word gone from the machine
/// counts as yes: the waiter then touches it and faults).
pub(crate) fn would_grant(cpu: &Cpu<'_>, p: u64, exclusive: bool) -> bool {
    word(cpu, p as *mut c_void).map_or(true, |w| grant(w.load(Ordering::Acquire), exclusive).is_some())
}

fn acquire(p: *mut c_void, exclusive: bool, routine: &'static str) {
    kernel(|cpu| {
        check_irql(cpu, p as u64, None)?;
        word(cpu, p).map(drop)
    });
    let on = WaitOn::PushLock { lock: p as u64, exclusive };
    wait_until(routine, None, false, &on, |cpu| {
        let w = word(cpu, p)?;
        Ok(match w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| grant(v, exclusive)) {
            Ok(_) => Poll::Done(()),
            Err(_) => Poll::Blocked(p as u64, SYNCHRONIZATION_EVENT),
        })
    });
}

/// `ExAcquirePushLockExclusiveEx(PushLock, Flags)`: the lock for the caller alone.
///
/// # Safety
/// `lock` is the caller's initialized `EX_PUSH_LOCK`.
pub unsafe extern "win64" fn ExAcquirePushLockExclusiveEx(lock: *mut c_void, _flags: u32) {
    acquire(lock, true, "ExAcquirePushLockExclusiveEx");
}

/// `ExAcquirePushLockSharedEx(PushLock, Flags)`: the lock shared with other readers.
///
/// # Safety
/// As [`ExAcquirePushLockExclusiveEx`].
pub unsafe extern "win64" fn ExAcquirePushLockSharedEx(lock: *mut c_void, _flags: u32) {
    acquire(lock, false, "ExAcquirePushLockSharedEx");
}

/// `ExReleasePushLockExclusiveEx(PushLock, Flags)`.
///
/// # Safety
/// As [`ExAcquirePushLockExclusiveEx`].
pub unsafe extern "win64" fn ExReleasePushLockExclusiveEx(lock: *mut c_void, _flags: u32) {
    kernel(|cpu| {
        word(cpu, lock)?.store(0, Ordering::Release);
        Ok(())
    });
}

/// `ExReleasePushLockSharedEx(PushLock, Flags)`: one reader fewer; the last frees it.
///
/// # Safety
/// As [`ExAcquirePushLockExclusiveEx`].
pub unsafe extern "win64" fn ExReleasePushLockSharedEx(lock: *mut c_void, _flags: u32) {
    kernel(|cpu| {
        let w = word(cpu, lock)?;
        let _ = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            let shared = (v & !0xF).saturating_sub(SHARE);
            Some(if shared == 0 { 0 } else { shared | LOCKED })
        });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_and_a_writer_excludes_everyone() {
        assert_eq!(grant(0, true), Some(1));
        assert_eq!(grant(0, false), Some(0x11));
        assert_eq!(grant(0x11, false), Some(0x21));
        assert_eq!(grant(0x11, true), None, "a writer waits for readers");
        assert_eq!(grant(1, false), None, "a reader waits for the writer");
        assert_eq!(grant(1, true), None);
    }
}
