//! In-stack queued spin locks and the processor queries (learn.microsoft.com
//! "KeAcquireInStackQueuedSpinLock", "KeReleaseInStackQueuedSpinLock",
//! "KeAcquireInStackQueuedSpinLockAtDpcLevel", "Queued Spin Locks",
//! "KeGetCurrentProcessorNumberEx", "KeQueryActiveProcessorCountEx",
//! "KeQueryActiveProcessors", "KeStallExecutionProcessor").
//!
//! A queued acquire takes the `KSPIN_LOCK` as `KeAcquireSpinLock` does (the same
//! checks: recursion, hierarchy, the watchdog on a lock never freed) and records in
//! the caller's `KLOCK_QUEUE_HANDLE` (x64: `LockQueue.Next` 0x00, `LockQueue.Lock`
//! 0x08, `OldIrql` 0x10) the lock and the IRQL to return to; the release reads them
//! back. **Where ntmem differs:** Windows keeps a queue of waiters in the lock word
//! (first come, first served between processors); ntmem's one processor never has
//! a second waiter, and the word holds the owner as for an ordinary acquire.

use std::ffi::c_void;

use ntmem_kernel::Irql;

use crate::context::{checked, kernel};
use crate::types::KSpinLock;

/// `sizeof(KLOCK_QUEUE_HANDLE)` on x64.
const LOCK_QUEUE_HANDLE_SIZE: u64 = 0x18;
const OFF_LOCK: usize = 0x08;
const OFF_OLD_IRQL: usize = 0x10;

/// Fills the handle at `handle` for `lock`, returning its host pointer.
fn fill(
    cpu: &ntmem_kernel::Cpu<'_>,
    handle: *mut c_void,
    lock: *mut KSpinLock,
    old: Irql,
) -> Result<(), ntmem_kernel::BugCheck> {
    let h = checked(cpu, handle, LOCK_QUEUE_HANDLE_SIZE)?;
    // SAFETY: the handle's bytes are mapped (checked above).
    unsafe {
        h.cast::<u64>().write_unaligned(0);
        h.add(OFF_LOCK).cast::<u64>().write_unaligned(lock as u64);
        h.add(OFF_OLD_IRQL).write(old.0);
    }
    Ok(())
}

/// The lock and old IRQL a handle recorded.
fn recorded(
    cpu: &ntmem_kernel::Cpu<'_>,
    handle: *mut c_void,
) -> Result<(*mut KSpinLock, Irql), ntmem_kernel::BugCheck> {
    let h = checked(cpu, handle, LOCK_QUEUE_HANDLE_SIZE)?;
    // SAFETY: as in [`fill`].
    unsafe { Ok((h.add(OFF_LOCK).cast::<u64>().read_unaligned() as *mut KSpinLock, Irql(h.add(OFF_OLD_IRQL).read()))) }
}

/// `KeAcquireInStackQueuedSpinLock(SpinLock, LockHandle)`: raises to DISPATCH_LEVEL
/// and takes the lock. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `lock` is an initialized `KSPIN_LOCK` and `handle` the caller's
/// `KLOCK_QUEUE_HANDLE`, both resident.
pub unsafe extern "win64" fn KeAcquireInStackQueuedSpinLock(lock: *mut KSpinLock, handle: *mut c_void) {
    kernel(|cpu| {
        let old = cpu.raise_irql(Irql::DISPATCH)?;
        cpu.acquire_spin_lock_at_dpc_level(crate::ke::lock_of(cpu, lock)?)?;
        fill(cpu, handle, lock, old)
    });
}

/// `KeReleaseInStackQueuedSpinLock(LockHandle)`: frees the lock the handle names and
/// lowers to the IRQL it recorded (rules as `KeReleaseSpinLock`).
///
/// # Safety
/// `handle` was filled by [`KeAcquireInStackQueuedSpinLock`].
pub unsafe extern "win64" fn KeReleaseInStackQueuedSpinLock(handle: *mut c_void) {
    kernel(|cpu| {
        let (lock, old) = recorded(cpu, handle)?;
        cpu.release_spin_lock(crate::ke::lock_of(cpu, lock)?, old)
    });
}

/// `KeAcquireInStackQueuedSpinLockAtDpcLevel(SpinLock, LockHandle)`: takes the lock
/// without raising (the caller is at DISPATCH_LEVEL).
///
/// # Safety
/// As [`KeAcquireInStackQueuedSpinLock`].
pub unsafe extern "win64" fn KeAcquireInStackQueuedSpinLockAtDpcLevel(lock: *mut KSpinLock, handle: *mut c_void) {
    kernel(|cpu| {
        cpu.acquire_spin_lock_at_dpc_level(crate::ke::lock_of(cpu, lock)?)?;
        fill(cpu, handle, lock, cpu.irql())
    });
}

/// `KeReleaseInStackQueuedSpinLockFromDpcLevel(LockHandle)`: frees the lock, staying
/// at DISPATCH_LEVEL.
///
/// # Safety
/// `handle` was filled by [`KeAcquireInStackQueuedSpinLockAtDpcLevel`].
pub unsafe extern "win64" fn KeReleaseInStackQueuedSpinLockFromDpcLevel(handle: *mut c_void) {
    kernel(|cpu| {
        let (lock, _) = recorded(cpu, handle)?;
        cpu.release_spin_lock(crate::ke::lock_of(cpu, lock)?, cpu.irql())
    });
}

/// `KeGetCurrentProcessorNumberEx(ProcNumber)`: the processor's index; with a
/// `PROCESSOR_NUMBER` (x64: `Group` USHORT 0x00, `Number` UCHAR 0x02, `Reserved`
/// 0x03), group 0 and that number. ntmem's machines have one group.
///
/// # Safety
/// `number` is NULL or the caller's `PROCESSOR_NUMBER`.
pub unsafe extern "win64" fn KeGetCurrentProcessorNumberEx(number: *mut c_void) -> u32 {
    kernel(|cpu| {
        let n = cpu.number();
        if !number.is_null() {
            let p = checked(cpu, number, 4)?;
            // SAFETY: four mapped bytes (checked above).
            unsafe { p.cast::<[u8; 4]>().write([0, 0, n as u8, 0]) };
        }
        Ok(n)
    })
}

/// The machine's processors (one group).
fn processors(cpu: &ntmem_kernel::Cpu<'_>) -> u32 {
    cpu.machine().profile().processors
}

/// `KeQueryActiveProcessorCountEx(GroupNumber)`: the processors of group 0, or of
/// all groups (`ALL_PROCESSOR_GROUPS`, 0xFFFF); 0 for a group the machine lacks.
pub extern "win64" fn KeQueryActiveProcessorCountEx(group: u16) -> u32 {
    kernel(|cpu| Ok(if group == 0 || group == 0xFFFF { processors(cpu) } else { 0 }))
}

/// `KeQueryActiveProcessorCount(ActiveProcessors)`: the count, and the `KAFFINITY`
/// mask of the processors if asked.
///
/// # Safety
/// `mask` is NULL or the caller's `KAFFINITY`.
pub unsafe extern "win64" fn KeQueryActiveProcessorCount(mask: *mut u64) -> u32 {
    kernel(|cpu| {
        let n = processors(cpu);
        if !mask.is_null() {
            let p = checked(cpu, mask.cast(), 8)?;
            // SAFETY: eight mapped bytes (checked above).
            unsafe { p.cast::<u64>().write_unaligned(affinity(n)) };
        }
        Ok(n)
    })
}

fn affinity(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// `KeQueryActiveProcessors()`: the `KAFFINITY` mask of the processors.
pub extern "win64" fn KeQueryActiveProcessors() -> u64 {
    kernel(|cpu| Ok(affinity(processors(cpu))))
}

/// `KeStallExecutionProcessor(MicroSeconds)` (HAL): a busy wait. Simulated time moves
/// in milliseconds by waits and steps; a stall moves none, and returns at once —
/// a driver polling hardware between stalls sees as many polls as it makes.
pub extern "win64" fn KeStallExecutionProcessor(_microseconds: u32) {}
