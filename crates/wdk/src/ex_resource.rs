//! Executive resources at the C boundary (learn.microsoft.com "ERESOURCE",
//! "ExInitializeResourceLite", "ExAcquireResourceExclusiveLite",
//! "ExAcquireResourceSharedLite", "ExReleaseResourceLite",
//! "ExReleaseResourceForThreadLite", "ExDeleteResourceLite",
//! "ExIsResourceAcquiredExclusiveLite", "ExIsResourceAcquiredSharedLite", bug check
//! 0xE3 "RESOURCE_NOT_OWNED").
//!
//! The `ERESOURCE` (x64, 0x68 bytes: `ActiveCount` 0x18, `Flag` 0x1A, `OwnerEntry`
//! 0x30 with `OwnerThread` and `OwnerCount`, `ContentionCount` 0x44, `SpinLock` 0x60)
//! is the driver's, in nonpaged memory; who holds it is the machine's
//! ([`ntmem_kernel::ex::resource`]), mirrored into `ActiveCount`, `Flag`
//! (ResourceOwnedExclusive, 0x80) and `OwnerEntry` after each call so a debugger's
//! view matches. The rules of granting are there.
//!
//! An acquire with `Wait` TRUE that cannot be granted waits as `KeWaitForSingleObject`
//! does ([`crate::ke_wait`]); with `Wait` FALSE it returns FALSE. The acquire routines
//! are callable at IRQL <= APC_LEVEL (above it, the stop of a wait at raised IRQL);
//! release at <= DISPATCH_LEVEL. Releasing a resource the thread does not hold is
//! RESOURCE_NOT_OWNED (0xE3: resource, thread, 0, 0).
//!
//! Under Driver Verifier's deadlock detection, initialization, each acquisition,
//! release and deletion goes through its hooks first ([`crate::vf::lock_acquiring`]):
//! an uninitialized resource is then 0xC4/0x1002, one initialized twice 0x1005, a
//! release by a thread not holding it 0x1004 or 0x1007, a delete while held 0x100B.
//!
//! Windows requires normal kernel APCs disabled around an acquisition and a release
//! (`KeEnterCriticalRegion`); Driver Verifier checks it (0xC4/0x37, 0x38), and so
//! does ntmem under any Verifier option.
//!
//! **Where it differs.** Without deadlock detection, acquiring a resource that was never initialized
//! waits for ever (the run stops with a wait that can never end) where Windows reads
//! garbage.

use std::ffi::c_void;

use ntmem_kernel::ex::resource::{Acquire, Holders, ReleaseError};
use ntmem_kernel::ke::sched::WaitOn;
use ntmem_kernel::vf::{Access as VfAccess, Attempt, LockKind, LockRequest, Violation};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::{checked, kernel};
use crate::ke_dispatcher::{SEMAPHORE_OBJECT, SYNCHRONIZATION_EVENT};
use crate::ke_wait::{wait_until, Poll};
use crate::types::NtStatus;

/// `sizeof(ERESOURCE)` on x64.
const ERESOURCE_SIZE: u64 = 0x68;
/// `ERESOURCE.Flag`: ResourceOwnedExclusive.
const RESOURCE_OWNED_EXCLUSIVE: u16 = 0x80;

/// Whether a resource is taken for exclusive or shared access.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Exclusive,
    Shared,
}

/// Writes what the driver's `ERESOURCE` shows of its holders.
fn mirror(p: *mut u8, h: &Holders) {
    let active = i16::try_from(h.active()).unwrap_or(i16::MAX);
    let flag = if h.exclusive.is_some() { RESOURCE_OWNED_EXCLUSIVE } else { 0 };
    let first_shared = h.shared.iter().next().map(|(&t, &n)| (t, n));
    let (owner, count) = h.exclusive.or(first_shared).unwrap_or((0, 0));
    // SAFETY: `p` is a checked ERESOURCE (ERESOURCE_SIZE bytes mapped).
    unsafe {
        p.add(0x18).cast::<i16>().write_unaligned(active);
        p.add(0x1A).cast::<u16>().write_unaligned(flag);
        p.add(0x30).cast::<u64>().write_unaligned(owner);
        p.add(0x38).cast::<u32>().write_unaligned(count);
    }
}

fn resource(cpu: &Cpu<'_>, p: *mut c_void) -> Result<*mut u8, BugCheck> {
    checked(cpu, p, ERESOURCE_SIZE)
}

/// `ExInitializeResourceLite(Resource)`: free; STATUS_SUCCESS.
///
/// # Safety
/// `r` is the driver's `ERESOURCE`.
pub unsafe extern "win64" fn ExInitializeResourceLite(r: *mut c_void) -> NtStatus {
    kernel(|cpu| {
        let p = resource(cpu, r)?;
        // SAFETY: checked mapped above.
        unsafe { std::ptr::write_bytes(p, 0, ERESOURCE_SIZE as usize) };
        crate::vf::check_sync_object(cpu, r)?;
        crate::vf::resource_initialized(cpu, r as u64)?;
        cpu.machine().resources().initialize(r as u64);
        Ok(0)
    })
}

/// Driver Verifier's rule (any option; Microsoft, bug check 0xC4 table): a resource
/// is acquired (0x37) and released by its owner (0x38) with normal kernel APCs disabled — in a
/// critical region, holding a kernel mutex, or at APC_LEVEL or above — with the IRQL,
/// the thread's APC disable count and the resource.
fn apc_rule(cpu: &Cpu<'_>, r: *mut c_void, release: bool) -> Result<(), BugCheck> {
    let irql = cpu.irql();
    if cpu.machine().verifier().is_empty() || crate::ps::apcs_disabled(irql) {
        return Ok(());
    }
    let apc_disable = crate::ps::apc_disable_count();
    Err(Violation::ResourceWithApcsEnabled { release, irql, apc_disable, resource: r as u64 }.stop(cpu.machine()))
}

/// The acquire routines: granted now, after a wait (`wait` TRUE), or FALSE.
fn acquire(r: *mut c_void, wait: u8, access: Access, routine: &'static str) -> u8 {
    let thread = crate::ps::current_thread();
    let try_once = |cpu: &Cpu<'_>| -> Result<bool, BugCheck> {
        let p = resource(cpu, r)?;
        let resources = cpu.machine().resources();
        let got = match access {
            Access::Exclusive => resources.acquire_exclusive(r as u64, thread),
            Access::Shared => resources.acquire_shared(r as u64, thread),
        };
        if let Some(h) = resources.holders(r as u64) {
            mirror(p, &h);
        }
        Ok(got == Acquire::Granted)
    };
    let request = LockRequest {
        lock: r as u64,
        kind: LockKind::Resource,
        access: if access == Access::Exclusive { VfAccess::Exclusive } else { VfAccess::Shared },
    };
    let attempt = if wait == 0 { Attempt::Try } else { Attempt::Wait };
    let granted = kernel(|cpu| {
        if cpu.irql() > Irql::APC {
            crate::ke_wait::check_irql(cpu, r as u64, None)?;
        }
        apc_rule(cpu, r, false)?;
        crate::vf::lock_acquiring(cpu, request, attempt)?;
        let granted = try_once(cpu)?;
        if granted {
            crate::vf::lock_acquired(cpu, request);
        }
        Ok(granted)
    });
    if granted {
        return 1;
    }
    if wait == 0 {
        return 0;
    }
    kernel(|cpu| {
        let p = resource(cpu, r)?;
        // SAFETY: checked mapped above: ContentionCount.
        unsafe {
            let c = p.add(0x44).cast::<u32>();
            c.write_unaligned(c.read_unaligned().wrapping_add(1));
        }
        Ok(())
    });
    let waits_on = if access == Access::Exclusive { SYNCHRONIZATION_EVENT } else { SEMAPHORE_OBJECT };
    let on = WaitOn::Resource { resource: r as u64, exclusive: access == Access::Exclusive };
    let got = wait_until(routine, None, false, &on, |cpu| {
        if !try_once(cpu)? {
            return Ok(Poll::Blocked(r as u64, waits_on));
        }
        crate::vf::lock_acquired(cpu, request);
        Ok(Poll::Done(()))
    });
    u8::from(got.is_some())
}

/// `ExAcquireResourceExclusiveLite(Resource, Wait)`: exclusive access (recursive for
/// its owner); FALSE if not granted and `Wait` is FALSE.
///
/// # Safety
/// `r` is an initialized `ERESOURCE`.
pub unsafe extern "win64" fn ExAcquireResourceExclusiveLite(r: *mut c_void, wait: u8) -> u8 {
    acquire(r, wait, Access::Exclusive, "ExAcquireResourceExclusiveLite")
}

/// `ExAcquireResourceSharedLite(Resource, Wait)`: shared access (an exclusive owner
/// gets it too); FALSE if not granted and `Wait` is FALSE.
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExAcquireResourceSharedLite(r: *mut c_void, wait: u8) -> u8 {
    acquire(r, wait, Access::Shared, "ExAcquireResourceSharedLite")
}

/// `ExReleaseResourceLite(Resource)`: gives up one acquisition by the calling thread;
/// one it does not hold is RESOURCE_NOT_OWNED (0xE3).
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExReleaseResourceLite(r: *mut c_void) {
    release_for(r, crate::ps::current_thread(), true);
}

/// `ExReleaseResourceForThreadLite(Resource, ResourceThreadId)`: gives up one
/// acquisition by the thread `ExGetCurrentResourceThread` named when it acquired it
/// (a resource released for another thread than the caller, as Microsoft's page
/// allows); one that thread does not hold is RESOURCE_NOT_OWNED (0xE3: resource,
/// thread, 0, 0).
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExReleaseResourceForThreadLite(r: *mut c_void, thread: u64) {
    release_for(r, thread, false);
}

/// One acquisition of `r` by `thread` given up; `own` when the caller releases its
/// own (`ExReleaseResourceLite`), where Driver Verifier wants normal kernel APCs
/// disabled (0x38) — a release for another thread is made outside its region.
fn release_for(r: *mut c_void, thread: u64, own: bool) {
    kernel(|cpu| {
        let p = resource(cpu, r)?;
        crate::vf::lock_released(cpu, thread, r as u64, LockKind::Resource)?;
        if own {
            apc_rule(cpu, r, true)?;
        }
        let resources = cpu.machine().resources();
        match resources.release(r as u64, thread) {
            Ok(()) => {}
            Err(ReleaseError::NotOwned | ReleaseError::Unknown) => {
                return Err(cpu.machine().bugcheck(BugCheckCode::RESOURCE_NOT_OWNED, [r as u64, thread, 0, 0]));
            }
        }
        if let Some(h) = resources.holders(r as u64) {
            mirror(p, &h);
        }
        Ok(())
    });
}

/// `ExDeleteResourceLite(Resource)`: forgets the resource; STATUS_SUCCESS.
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExDeleteResourceLite(r: *mut c_void) -> NtStatus {
    kernel(|cpu| {
        resource(cpu, r)?;
        crate::vf::resource_deleted(cpu, r as u64)?;
        cpu.machine().resources().delete(r as u64);
        Ok(0)
    })
}

/// `ExIsResourceAcquiredExclusiveLite(Resource)`: whether the calling thread holds it
/// exclusively.
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExIsResourceAcquiredExclusiveLite(r: *mut c_void) -> u8 {
    let thread = crate::ps::current_thread();
    kernel(|cpu| {
        resource(cpu, r)?;
        let h = cpu.machine().resources().holders(r as u64).unwrap_or_default();
        Ok(u8::from(h.exclusive.is_some_and(|(owner, _)| owner == thread)))
    })
}

/// `ExIsResourceAcquiredSharedLite(Resource)`: how many times the calling thread holds
/// it, shared or exclusive (0: not at all).
///
/// # Safety
/// As `ExAcquireResourceExclusiveLite`.
pub unsafe extern "win64" fn ExIsResourceAcquiredSharedLite(r: *mut c_void) -> u32 {
    let thread = crate::ps::current_thread();
    kernel(|cpu| {
        resource(cpu, r)?;
        let h = cpu.machine().resources().holders(r as u64).unwrap_or_default();
        let exclusive = h.exclusive.filter(|&(owner, _)| owner == thread).map_or(0, |(_, n)| n);
        Ok(exclusive + h.shared.get(&thread).copied().unwrap_or(0))
    })
}
