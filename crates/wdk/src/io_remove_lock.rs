//! Remove locks at the C boundary (learn.microsoft.com "IoInitializeRemoveLock",
//! "IoAcquireRemoveLock", "IoReleaseRemoveLock", "IoReleaseRemoveLockAndWait",
//! "Using Remove Locks"): the `…Ex` routines the WDK's macros call, with the lock in
//! the driver's memory in the free-build layout — `IO_REMOVE_LOCK_COMMON_BLOCK`:
//! `Removed` 0x00, `IoCount` 0x04, `RemoveEvent` (a notification KEVENT) 0x08; 0x20
//! bytes on x64.
//!
//! `IoInitializeRemoveLockEx` sets `IoCount` to 1 (the lock's own reference). Each
//! `IoAcquireRemoveLockEx` adds one — and once `IoReleaseRemoveLockAndWaitEx` has
//! begun, takes it back and returns STATUS_DELETE_PENDING. `IoReleaseRemoveLockEx`
//! drops one and signals `RemoveEvent` when none is left.
//! `IoReleaseRemoveLockAndWaitEx` (called holding the lock once, when the device is
//! removed) marks the lock removed, drops the lock's own reference and the caller's,
//! and waits for `RemoveEvent` until every other holder has released; a wait nothing
//! can end (no other thread, DPC or timer left to release) ends the run as a wait
//! that never ends ([`ntmem_kernel::Halt::WaitNeverEnds`]).
//!
//! Misuse — a release without an acquire, an acquire after the removal without
//! checking the status — is not checked at run time, as on Windows: the free
//! build's routines only count (`IoCount` goes negative), the checked build's
//! (`IO_REMOVE_LOCK_DBG_BLOCK`, a larger `RemlockSize`) assert into the debugger,
//! and Driver Verifier's remove-lock rules (RemoveLockReleaseCleanup,
//! RemoveLockForwardRead, …) are Static Driver Verifier rules, checked at compile
//! time. `Tag`, `File`, `Line`, `AllocateTag`, `MaxLockedMinutes` and
//! `HighWatermark` serve the checked build's tracking and are ignored, as the free
//! build ignores them; any `RemlockSize` is treated as the free layout.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::context::{checked_all, kernel};
use crate::types::NtStatus;

/// `sizeof(IO_REMOVE_LOCK)` of the free build on x64.
const REMOVE_LOCK_SIZE: u64 = 0x20;
/// Offsets in `IO_REMOVE_LOCK_COMMON_BLOCK`.
const OFF_REMOVED: usize = 0x00;
const OFF_IO_COUNT: usize = 0x04;
const OFF_REMOVE_EVENT: usize = 0x08;
/// `STATUS_DELETE_PENDING`.
const STATUS_DELETE_PENDING: NtStatus = 0xC000_0056_u32 as NtStatus;
/// `NotificationEvent`.
const NOTIFICATION_EVENT: u32 = 0;

/// The lock's fields, once its memory is checked (0x50 for memory that is not there).
struct Lock {
    base: *mut u8,
}

impl Lock {
    fn of(lock: *mut c_void) -> Lock {
        Lock { base: kernel(|cpu| checked_all(cpu, lock, REMOVE_LOCK_SIZE)) }
    }

    fn removed(&self) -> &AtomicU8 {
        // SAFETY: `base` is REMOVE_LOCK_SIZE writable bytes of the driver's (checked in
        // [`Lock::of`]); the byte is only accessed atomically while the lock is in use.
        unsafe { AtomicU8::from_ptr(self.base.add(OFF_REMOVED)) }
    }

    fn io_count(&self) -> &AtomicI32 {
        // SAFETY: as in [`Lock::removed`]; `IoCount` is 4-byte aligned in a lock the
        // driver declared as an IO_REMOVE_LOCK.
        unsafe { AtomicI32::from_ptr(self.base.add(OFF_IO_COUNT).cast()) }
    }

    fn event(&self) -> *mut c_void {
        // SAFETY: inside the checked lock.
        unsafe { self.base.add(OFF_REMOVE_EVENT).cast() }
    }

    /// One reference fewer; the last signals `RemoveEvent`.
    fn release(&self) -> i32 {
        let left = self.io_count().fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 {
            // SAFETY: the lock's KEVENT, initialized by IoInitializeRemoveLockEx.
            unsafe { crate::ke_dispatcher::KeSetEvent(self.event(), 0, 0) };
        }
        left
    }
}

/// `IoInitializeRemoveLockEx` (behind `IoInitializeRemoveLock`): not removed, one
/// reference, `RemoveEvent` not signalled.
///
/// # Safety
/// `lock` is the driver's IO_REMOVE_LOCK (checked as memory).
pub unsafe extern "win64" fn IoInitializeRemoveLockEx(
    lock: *mut c_void,
    _allocate_tag: u32,
    _max_locked_minutes: u32,
    _high_watermark: u32,
    _size: u32,
) {
    let l = Lock::of(lock);
    l.removed().store(0, Ordering::Release);
    l.io_count().store(1, Ordering::Release);
    // SAFETY: the lock's KEVENT, in memory checked above.
    unsafe { crate::ke_dispatcher::KeInitializeEvent(l.event(), NOTIFICATION_EVENT, 0) };
}

/// `IoAcquireRemoveLockEx` (behind `IoAcquireRemoveLock`): STATUS_SUCCESS and one
/// more reference, or STATUS_DELETE_PENDING once the removal has begun.
///
/// # Safety
/// `lock` is an initialized IO_REMOVE_LOCK (checked as memory).
pub unsafe extern "win64" fn IoAcquireRemoveLockEx(
    lock: *mut c_void,
    _tag: *mut c_void,
    _file: *const u8,
    _line: u32,
    _size: u32,
) -> NtStatus {
    let l = Lock::of(lock);
    l.io_count().fetch_add(1, Ordering::AcqRel);
    if l.removed().load(Ordering::Acquire) != 0 {
        l.release();
        return STATUS_DELETE_PENDING;
    }
    0
}

/// `IoReleaseRemoveLockEx` (behind `IoReleaseRemoveLock`): one reference fewer.
///
/// # Safety
/// As [`IoAcquireRemoveLockEx`].
pub unsafe extern "win64" fn IoReleaseRemoveLockEx(lock: *mut c_void, _tag: *mut c_void, _size: u32) {
    Lock::of(lock).release();
}

/// `IoReleaseRemoveLockAndWaitEx` (behind `IoReleaseRemoveLockAndWait`): see the
/// module docs. PASSIVE_LEVEL (it waits).
///
/// # Safety
/// As [`IoAcquireRemoveLockEx`]; the caller holds the lock once.
pub unsafe extern "win64" fn IoReleaseRemoveLockAndWaitEx(lock: *mut c_void, _tag: *mut c_void, _size: u32) {
    let l = Lock::of(lock);
    l.removed().store(1, Ordering::Release);
    l.io_count().fetch_sub(1, Ordering::AcqRel);
    if l.release() > 0 {
        // SAFETY: the lock's KEVENT; a wait with no timeout, as Windows waits.
        unsafe {
            crate::ke_wait::KeWaitForSingleObject(l.event(), 0, 0, 0, std::ptr::null());
        }
    }
}
