//! Executive routines: the pool (`ExAllocatePoolWithTag` and friends), over
//! `ntmem_kernel::ex::pool`.
//!
//! Pointers cross the boundary as host addresses; the pool works in simulated
//! ones (`Va`), which differ when the machine's layout is relocated. A pointer
//! outside the machine's address space is passed on as the same number, so the
//! pool reports it as Windows would (not pool memory: BAD_POOL_CALLER).
//!
//! Differences from Windows: a `POOL_TYPE` ntmem does not implement (flag bits such
//! as `POOL_RAISE_IF_ALLOCATION_FAILURE`, session pool) makes the allocation return
//! NULL. Quota (`ExAllocatePoolWithQuotaTag`, `POOL_FLAG_USE_QUOTA`) is charged to
//! the System process, whose limits are unlimited (`Pool::system_process`): drivers
//! run in system threads here, also while serving a user process's request, where
//! Windows would charge that process.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{
    self, NtStatus, OnQuotaFailure, PoolFlags, PoolPriority, PoolTag, PoolType, Raise, Raising,
};
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

use crate::context::{host_ptr, kernel, va_of};
use crate::seh::raise_status;
use crate::vf::{allocation, Ask};

/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: a `POOL_TYPE` bit of `ExAllocatePoolWithQuotaTag`.
const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: u32 = 8;

/// The block a routine that may raise produced, as a pointer; raises the status
/// (after leaving the kernel) otherwise.
fn raising(f: impl FnOnce(&Cpu<'_>) -> Result<Raising, BugCheck>) -> *mut c_void {
    let r = kernel(|cpu| Ok(f(cpu)?.map(|va: Option<Va>| host_ptr(cpu, va))));
    match r {
        Ok(p) => p,
        Err(Raise(status)) => raise_status(status.0 as i32),
    }
}

/// A plain pool allocation (`None` is NULL) by `routine` under Driver Verifier, as a
/// pointer; an unknown pool type is NULL.
fn plain(
    routine: &'static str,
    pool_type: u32,
    tag: PoolTag,
    f: impl FnOnce(&Cpu<'_>, PoolType) -> Result<Option<Va>, BugCheck>,
) -> *mut c_void {
    kernel(|cpu| {
        let Some(t) = PoolType::from_raw(pool_type) else { return Ok(std::ptr::null_mut()) };
        let va = allocation(cpu, Ask::pool(routine, tag, Some(t.kind())), || None, || f(cpu, t), |va| *va)?;
        Ok(host_ptr(cpu, va))
    })
}

/// `ExAllocatePoolWithTag`: `bytes` of `pool_type` pool tagged `tag`, or NULL.
pub extern "win64" fn ExAllocatePoolWithTag(pool_type: u32, bytes: usize, tag: u32) -> *mut c_void {
    plain("ExAllocatePoolWithTag", pool_type, PoolTag(tag), |cpu, t| pool::allocate(cpu, t, bytes as u64, PoolTag(tag)))
}

/// `ExAllocatePool`: as `ExAllocatePoolWithTag` with the tag "None".
pub extern "win64" fn ExAllocatePool(pool_type: u32, bytes: usize) -> *mut c_void {
    plain("ExAllocatePool", pool_type, PoolTag::NONE, |cpu, t| pool::allocate_untagged(cpu, t, bytes as u64))
}

/// `ExFreePoolWithTag`: frees `p`, which must carry `tag`.
pub extern "win64" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    kernel(|cpu| pool::free(cpu, va_of(cpu, p), Some(PoolTag(tag))));
}

/// `ExFreePool`: frees `p`.
pub extern "win64" fn ExFreePool(p: *mut c_void) {
    kernel(|cpu| pool::free(cpu, va_of(cpu, p), None));
}

/// `ExAllocatePoolWithTagPriority`: as `ExAllocatePoolWithTag`, refused early (NULL)
/// when pool or memory is short for a Low or Normal priority; the
/// `…SpecialPoolOverrun/Underrun` priorities choose where a special pool block sits
/// when Driver Verifier's special pool is on. An unknown priority is NULL.
pub extern "win64" fn ExAllocatePoolWithTagPriority(
    pool_type: u32,
    bytes: usize,
    tag: u32,
    priority: u32,
) -> *mut c_void {
    let Some(p) = PoolPriority::from_raw(priority) else { return std::ptr::null_mut() };
    plain("ExAllocatePoolWithTagPriority", pool_type, PoolTag(tag), |cpu, t| {
        pool::allocate_with_priority(cpu, t, bytes as u64, PoolTag(tag), p)
    })
}

/// `ExAllocatePoolWithQuotaTag`: as `ExAllocatePoolWithTag`, charging the System
/// process (module docs); raises STATUS_INSUFFICIENT_RESOURCES (or
/// STATUS_QUOTA_EXCEEDED) on failure unless `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` is in
/// the pool type, which makes it return NULL.
pub extern "win64" fn ExAllocatePoolWithQuotaTag(pool_type: u32, bytes: usize, tag: u32) -> *mut c_void {
    let on_failure = if pool_type & POOL_QUOTA_FAIL_INSTEAD_OF_RAISE != 0 {
        OnQuotaFailure::ReturnNull
    } else {
        OnQuotaFailure::Raise
    };
    let t = PoolType::from_raw(pool_type & !POOL_QUOTA_FAIL_INSTEAD_OF_RAISE);
    let injected = match on_failure {
        OnQuotaFailure::ReturnNull => Ok(None),
        OnQuotaFailure::Raise => Err(Raise(NtStatus::INSUFFICIENT_RESOURCES)),
    };
    let ask = Ask::pool("ExAllocatePoolWithQuotaTag", PoolTag(tag), t.map(PoolType::kind));
    raising(|cpu| {
        let Some(t) = t else { return Ok(Ok(None)) };
        let system = cpu.machine().pool().system_process();
        let allocate = || pool::allocate_with_quota(cpu, t, bytes as u64, PoolTag(tag), &system, on_failure);
        allocation(cpu, ask, || injected, allocate, |r| r.ok().flatten())
    })
}

/// `ExAllocatePool2`: zeroed unless `POOL_FLAG_UNINITIALIZED`; NULL for an invalid
/// flag combination, or raises STATUS_INSUFFICIENT_RESOURCES with
/// `POOL_FLAG_RAISE_ON_FAILURE`; `POOL_FLAG_USE_QUOTA` charges the System process.
pub extern "win64" fn ExAllocatePool2(flags: u64, bytes: usize, tag: u32) -> *mut c_void {
    let flags = PoolFlags::from_bits_retain(flags);
    let decoded = flags.decode();
    let injected = match decoded {
        Some(r) if r.raise => Err(Raise(NtStatus::INSUFFICIENT_RESOURCES)),
        _ => Ok(None),
    };
    let ask = Ask::pool("ExAllocatePool2", PoolTag(tag), decoded.map(|r| r.pool_type.kind()));
    raising(|cpu| {
        let system = cpu.machine().pool().system_process();
        let allocate = || pool::allocate2(cpu, flags, bytes as u64, PoolTag(tag), Some(&system));
        allocation(cpu, ask, || injected, allocate, |r| r.ok().flatten())
    })
}

/// What `ExAllocatePool3`'s extended parameters ask for: a priority, or a request
/// ntmem cannot meet (`None`).
///
/// `POOL_EXTENDED_PARAMETER` (WDK `wdm.h`) is 16 bytes on x64: a 64-bit word whose
/// low 8 bits are the `Type` and bit 8 `Optional`, then an 8-byte union (the
/// `EX_POOL_PRIORITY`, the `POOL_EXTENDED_PARAMS_SECURE_POOL` pointer, the node
/// number). `PoolExtendedParameterPriority` (1) must name a valid priority;
/// `PoolExtendedParameterNumaNode` (3) node 0 or MM_ANY_NODE_OK (one node);
/// `PoolExtendedParameterSecurePool` (2) is not supported (ntmem has no secure
/// kernel), nor is any other type — unless the parameter is marked `Optional`,
/// which lets the allocation go on without it.
fn extended_priority(cpu: &Cpu<'_>, params: *const u8, count: u32) -> Result<Option<PoolPriority>, BugCheck> {
    let mut priority = PoolPriority::High;
    if count == 0 {
        return Ok(Some(priority));
    }
    let at = crate::context::checked_all(cpu, params.cast_mut().cast(), 16 * u64::from(count))?;
    for i in 0..count as usize {
        // SAFETY: every byte of the `count` 16-byte parameters is mapped (checked above).
        let (head, value) = unsafe {
            (at.add(16 * i).cast::<u64>().read_unaligned(), at.add(16 * i + 8).cast::<u64>().read_unaligned())
        };
        let optional = head & 0x100 != 0;
        let known = match head & 0xFF {
            1 => PoolPriority::from_raw(value as u32).map(|p| priority = p).is_some(),
            3 => value as u32 == 0 || value as u32 == ntmem_kernel::mm::contiguous::MM_ANY_NODE_OK,
            _ => false,
        };
        if !known && !optional {
            return Ok(None);
        }
    }
    Ok(Some(priority))
}

/// `ExAllocatePool3(Flags, NumberOfBytes, Tag, ExtendedParameters,
/// ExtendedParametersCount)` (learn.microsoft.com, "ExAllocatePool3 function
/// (wdm.h)"): `ExAllocatePool2` with extended parameters ([`extended_priority`]).
/// NULL — or, with `POOL_FLAG_RAISE_ON_FAILURE`, STATUS_INSUFFICIENT_RESOURCES
/// raised — for no memory, invalid flags and invalid or unsupported parameters, as
/// the page lists. A parameter array that is not mapped stops as a touch of it
/// does.
///
/// # Safety
/// `params` points to `count` POOL_EXTENDED_PARAMETERs (checked: a bad pointer stops
/// as on Windows).
pub unsafe extern "win64" fn ExAllocatePool3(
    flags: u64,
    bytes: usize,
    tag: u32,
    params: *const u8,
    count: u32,
) -> *mut c_void {
    let flags = PoolFlags::from_bits_retain(flags);
    let decoded = flags.decode();
    let failed = match decoded {
        Some(r) if r.raise => Err(Raise(NtStatus::INSUFFICIENT_RESOURCES)),
        _ => Ok(None),
    };
    let ask = Ask::pool("ExAllocatePool3", PoolTag(tag), decoded.map(|r| r.pool_type.kind()));
    raising(|cpu| {
        let Some(priority) = extended_priority(cpu, params, count)? else { return Ok(failed) };
        let system = cpu.machine().pool().system_process();
        let allocate = || pool::allocate3(cpu, flags, bytes as u64, PoolTag(tag), priority, Some(&system));
        allocation(cpu, ask, || failed, allocate, |r| r.ok().flatten())
    })
}

/// `ExQueryPoolBlockSize`: the usable bytes of the block at `p` (0 when `p` is no
/// allocated block), and whether quota was charged for it.
///
/// # Safety
/// `quota_charged` is NULL or points to a writable BOOLEAN, as the WDK requires.
pub unsafe extern "win64" fn ExQueryPoolBlockSize(p: *mut c_void, quota_charged: *mut u8) -> usize {
    let size = kernel(|cpu| Ok(pool::query_block_size(cpu, va_of(cpu, p))));
    if !quota_charged.is_null() {
        // SAFETY: the caller passes a writable BOOLEAN (the function's contract).
        unsafe { quota_charged.write(u8::from(size.is_some_and(|s| s.quota_charged))) };
    }
    size.map_or(0, |s| s.bytes as usize)
}
