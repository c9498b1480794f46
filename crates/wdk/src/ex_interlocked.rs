//! Lists shared under a spin lock, and sequenced singly linked lists
//! (learn.microsoft.com "ExInterlockedInsertHeadList", "ExInterlockedInsertTailList",
//! "ExInterlockedRemoveHeadList", "ExInterlockedPushEntryList",
//! "ExInterlockedPopEntryList", "InterlockedPushEntrySList",
//! "InterlockedPopEntrySList", "InterlockedFlushSList", "Singly and Doubly Linked
//! Lists").
//!
//! The `ExInterlocked…List` routines take the caller's spin lock, do what the WDK's
//! inline list routine does — with its link checks: a corrupt entry is
//! KERNEL_SECURITY_CHECK_FAILURE (0x139: 3 `FAST_FAIL_CORRUPT_LIST_ENTRY`, as the
//! inline routines' `__fastfail`) —, and release it; callable at any IRQL up to
//! DIRQL. Below DISPATCH_LEVEL they raise to it for the lock, as `KeAcquireSpinLock`
//! takes it (Verifier's deadlock detection included; Windows disables
//! interrupts instead); above DISPATCH_LEVEL ntmem takes no lock (nothing can run
//! in between on its one processor) — so a lock also taken with
//! `KeAcquireSpinLock` works as on Windows below DIRQL, where mixing the two is the
//! documented mistake.
//!
//! The SList routines are the x64 kernel's `ExpInterlocked…SList` exports behind the
//! WDK's `InterlockedPushEntrySList`, `InterlockedPopEntrySList`,
//! `InterlockedFlushSList` and `ExInterlocked…EntrySList` macros (the lock argument
//! is ignored on x64); the header is the x64 `SLIST_HEADER`
//! ([`ntmem_kernel::ex::slist`]). A header that is not 16-byte aligned is the
//! general-protection fault of the 16-byte compare-exchange (0x1E,
//! STATUS_ACCESS_VIOLATION, address unknown); the header and entries are touched as
//! Windows touches them (a bad pointer is the fault it gives).

use std::ffi::c_void;

use ntmem_kernel::ex::slist;
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::{checked, kernel};
use crate::types::KSpinLock;

/// `FAST_FAIL_CORRUPT_LIST_ENTRY`.
const CORRUPT_LIST_ENTRY: u64 = 3;

fn read(p: *mut u8, off: usize) -> u64 {
    // SAFETY: `p` was checked mapped for the bytes read (callers).
    unsafe { p.add(off).cast::<u64>().read_unaligned() }
}

fn write(p: *mut u8, off: usize, v: u64) {
    // SAFETY: as [`read`].
    unsafe { p.add(off).cast::<u64>().write_unaligned(v) }
}

/// Runs `f` holding `lock` (see the module docs).
fn locked<R>(cpu: &Cpu<'_>, lock: *mut KSpinLock, f: impl FnOnce() -> Result<R, BugCheck>) -> Result<R, BugCheck> {
    if cpu.irql() > Irql::DISPATCH {
        return f();
    }
    let old = cpu.raise_irql(Irql::DISPATCH)?;
    crate::ke::take_spin_lock(cpu, lock)?;
    let r = f()?;
    crate::ke::free_spin_lock(cpu, lock, old)?;
    Ok(r)
}

/// The inline routines' `__fastfail` (parameters as the trap gives them: no trap
/// frame or exception record in ntmem).
fn corrupt(cpu: &Cpu<'_>) -> BugCheck {
    cpu.machine().bugcheck(BugCheckCode::KERNEL_SECURITY_CHECK_FAILURE, [CORRUPT_LIST_ENTRY, 0, 0, 0])
}

/// A `LIST_ENTRY` the routine touches: checked mapped (the fault Windows gives if not).
fn entry(cpu: &Cpu<'_>, p: u64) -> Result<*mut u8, BugCheck> {
    checked(cpu, p as *mut c_void, 16)
}

const FLINK: usize = 0;
const BLINK: usize = 8;

/// Inserts `new` after `before` and before `after`, checking `after`'s back link
/// (or `before`'s forward link) as `InsertHeadList`/`InsertTailList` do.
fn insert(cpu: &Cpu<'_>, head: *mut c_void, new: *mut c_void, at_head: bool) -> Result<*mut c_void, BugCheck> {
    let h = entry(cpu, head as u64)?;
    let n = entry(cpu, new as u64)?;
    let (before, after) = if at_head { (head as u64, read(h, FLINK)) } else { (read(h, BLINK), head as u64) };
    let (b, a) = (entry(cpu, before)?, entry(cpu, after)?);
    if read(a, BLINK) != before || read(b, FLINK) != after {
        return Err(corrupt(cpu));
    }
    write(n, FLINK, after);
    write(n, BLINK, before);
    write(b, FLINK, new as u64);
    write(a, BLINK, new as u64);
    let first = if at_head { after } else { before };
    Ok(if first == head as u64 { std::ptr::null_mut() } else { first as *mut c_void })
}

/// `ExInterlockedInsertHeadList(ListHead, ListEntry, Lock)`: inserts at the head;
/// returns the entry that was first, NULL if the list was empty.
///
/// # Safety
/// The list head, the entry and the lock are the caller's, in resident memory.
pub unsafe extern "win64" fn ExInterlockedInsertHeadList(
    head: *mut c_void,
    new: *mut c_void,
    lock: *mut KSpinLock,
) -> *mut c_void {
    kernel(|cpu| locked(cpu, lock, || insert(cpu, head, new, true)))
}

/// `ExInterlockedInsertTailList(ListHead, ListEntry, Lock)`: inserts at the tail;
/// returns the entry that was last, NULL if the list was empty.
///
/// # Safety
/// As [`ExInterlockedInsertHeadList`].
pub unsafe extern "win64" fn ExInterlockedInsertTailList(
    head: *mut c_void,
    new: *mut c_void,
    lock: *mut KSpinLock,
) -> *mut c_void {
    kernel(|cpu| locked(cpu, lock, || insert(cpu, head, new, false)))
}

/// `ExInterlockedRemoveHeadList(ListHead, Lock)`: removes and returns the first
/// entry, NULL if the list is empty (links checked as `RemoveHeadList` does).
///
/// # Safety
/// As [`ExInterlockedInsertHeadList`].
pub unsafe extern "win64" fn ExInterlockedRemoveHeadList(head: *mut c_void, lock: *mut KSpinLock) -> *mut c_void {
    kernel(|cpu| {
        locked(cpu, lock, || {
            let h = entry(cpu, head as u64)?;
            let first = read(h, FLINK);
            if first == head as u64 {
                return Ok(std::ptr::null_mut());
            }
            let f = entry(cpu, first)?;
            let next = read(f, FLINK);
            let n = entry(cpu, next)?;
            if read(f, BLINK) != head as u64 || read(n, BLINK) != first {
                return Err(corrupt(cpu));
            }
            write(h, FLINK, next);
            write(n, BLINK, head as u64);
            Ok(first as *mut c_void)
        })
    })
}

/// `ExInterlockedPushEntryList(ListHead, ListEntry, Lock)`: pushes on a
/// `SINGLE_LIST_ENTRY` list; returns the entry that was first (NULL: none).
///
/// # Safety
/// As [`ExInterlockedInsertHeadList`].
pub unsafe extern "win64" fn ExInterlockedPushEntryList(
    head: *mut c_void,
    new: *mut c_void,
    lock: *mut KSpinLock,
) -> *mut c_void {
    kernel(|cpu| {
        locked(cpu, lock, || {
            let (h, n) = (checked(cpu, head, 8)?, checked(cpu, new, 8)?);
            let first = read(h, 0);
            write(n, 0, first);
            write(h, 0, new as u64);
            Ok(first as *mut c_void)
        })
    })
}

/// `ExInterlockedPopEntryList(ListHead, Lock)`: pops the first entry (NULL: empty).
///
/// # Safety
/// As [`ExInterlockedInsertHeadList`].
pub unsafe extern "win64" fn ExInterlockedPopEntryList(head: *mut c_void, lock: *mut KSpinLock) -> *mut c_void {
    kernel(|cpu| {
        locked(cpu, lock, || {
            let h = checked(cpu, head, 8)?;
            let first = read(h, 0);
            if first != 0 {
                write(h, 0, read(checked(cpu, first as *mut c_void, 8)?, 0));
            }
            Ok(first as *mut c_void)
        })
    })
}

/// The `SLIST_HEADER` at `head`: 16-byte aligned and mapped (module docs).
fn slist_header(cpu: &Cpu<'_>, head: *mut c_void) -> Result<*mut u8, BugCheck> {
    if head as usize & 0xF != 0 {
        return Err(ntmem_kernel::trap::misaligned_interlocked(cpu));
    }
    checked(cpu, head, 16)
}

/// `ExpInterlockedPushEntrySList(ListHead, ListEntry)` (`InterlockedPushEntrySList`,
/// `ExInterlockedPushEntrySList`): pushes `new` and returns the entry that was first.
///
/// # Safety
/// The header and entry are the caller's, in resident memory.
pub unsafe extern "win64" fn ExpInterlockedPushEntrySList(head: *mut c_void, new: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        let h = slist_header(cpu, head)?;
        let n = checked(cpu, new, 8)?;
        let (depth, sequence, first) = slist::decode(read(h, 0), read(h, 8));
        write(n, 0, first);
        let (alignment, region) = slist::encode(depth.wrapping_add(1), sequence + 1, new as u64);
        write(h, 0, alignment);
        write(h, 8, region);
        Ok(first as *mut c_void)
    })
}

/// `ExpInterlockedPopEntrySList(ListHead)` (`InterlockedPopEntrySList`,
/// `ExInterlockedPopEntrySList`): pops the first entry, NULL if empty.
///
/// # Safety
/// As [`ExpInterlockedPushEntrySList`].
pub unsafe extern "win64" fn ExpInterlockedPopEntrySList(head: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        let h = slist_header(cpu, head)?;
        let (depth, sequence, first) = slist::decode(read(h, 0), read(h, 8));
        if first == 0 {
            return Ok(std::ptr::null_mut());
        }
        let next = read(checked(cpu, first as *mut c_void, 8)?, 0);
        let (alignment, region) = slist::encode(depth.wrapping_sub(1), sequence + 1, next);
        write(h, 0, alignment);
        write(h, 8, region);
        Ok(first as *mut c_void)
    })
}

/// `ExpInterlockedFlushSList(ListHead)` (`InterlockedFlushSList`): empties the list
/// and returns its chain (NULL if empty).
///
/// # Safety
/// As [`ExpInterlockedPushEntrySList`].
pub unsafe extern "win64" fn ExpInterlockedFlushSList(head: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        let h = slist_header(cpu, head)?;
        let (_, sequence, first) = slist::decode(read(h, 0), read(h, 8));
        let (alignment, region) = slist::encode(0, sequence + 1, 0);
        write(h, 0, alignment);
        write(h, 8, region);
        Ok(first as *mut c_void)
    })
}
