//! Kernel routines: IRQL and spin locks, over `ntmem_kernel::Cpu`.
//!
//! `KeRaiseIrql` and `KeAcquireSpinLock` are macros in `wdm.h` over
//! `KfRaiseIrql` and `KeAcquireSpinLockRaiseToDpc`, as in the AMD64 WDK.
//!
//! A `KSPIN_LOCK` pointer that is null or misaligned stops the machine as the
//! access would on Windows after raising to DISPATCH_LEVEL: IRQL_NOT_LESS_OR_EQUAL
//! (0x0A: address, DISPATCH_LEVEL, 1 write, 0).

use std::sync::atomic::AtomicUsize;

use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::kernel;
use crate::types::KSpinLock;

/// `KeGetCurrentIrql`.
#[no_mangle]
pub extern "C" fn KeGetCurrentIrql() -> u8 {
    kernel(|cpu| Ok(cpu.irql().0))
}

/// `KfRaiseIrql`: raises to `new` and returns the old IRQL; raising to a lower
/// level stops the machine with IRQL_NOT_GREATER_OR_EQUAL (0x09).
#[no_mangle]
pub extern "C" fn KfRaiseIrql(new: u8) -> u8 {
    kernel(|cpu| Ok(cpu.raise_irql(Irql(new))?.0))
}

/// `KeLowerIrql`: lowering to a higher level stops the machine with
/// IRQL_NOT_LESS_OR_EQUAL (0x0A).
#[no_mangle]
pub extern "C" fn KeLowerIrql(new: u8) {
    kernel(|cpu| cpu.lower_irql(Irql(new)));
}

fn lock_of<'a>(cpu: &Cpu<'_>, lock: *mut KSpinLock) -> Result<&'a AtomicUsize, BugCheck> {
    if lock.is_null() || !lock.cast::<AtomicUsize>().is_aligned() {
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
#[no_mangle]
pub unsafe extern "C" fn KeInitializeSpinLock(lock: *mut KSpinLock) {
    kernel(|cpu| {
        lock_of(cpu, lock)?.store(0, std::sync::atomic::Ordering::Release);
        Ok(())
    });
}

/// `KeAcquireSpinLockRaiseToDpc`: raises to DISPATCH_LEVEL, takes the lock and
/// returns the old IRQL.
///
/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` the driver owns.
#[no_mangle]
pub unsafe extern "C" fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSpinLock) -> u8 {
    kernel(|cpu| Ok(cpu.acquire_spin_lock(lock_of(cpu, lock)?)?.0))
}

/// `KeReleaseSpinLock`: frees the lock and lowers to `old`.
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` the driver owns.
#[no_mangle]
pub unsafe extern "C" fn KeReleaseSpinLock(lock: *mut KSpinLock, old: u8) {
    kernel(|cpu| cpu.release_spin_lock(lock_of(cpu, lock)?, Irql(old)));
}
