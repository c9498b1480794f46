//! MDL routines and the user-buffer probes at the C boundary (seed 000 §9's
//! sample: IoAllocateMdl, MmProbeAndLockPages, MmGetSystemAddressForMdlSafe,
//! MmUnlockPages, IoFreeMdl; ProbeForRead / ProbeForWrite) and the reserved
//! mappings (MmAllocateMappingAddress, MmMapLockedPagesWithReservedMapping,
//! MmUnmapReservedMapping, MmFreeMappingAddress), over
//! `ntmem_kernel::mm::{mdl, probe}`.
//!
//! `MmGetSystemAddressForMdlSafe` is the WDK's macro over
//! `MmMapLockedPagesSpecifyCache` (`include/ntmem/io.h`). The routines that raise
//! (MmProbeAndLockPages, ProbeForRead, ProbeForWrite, and UserMode
//! MmMapLockedPagesSpecifyCache) do so through [`crate::seh::raise_status`] after
//! leaving the kernel call, holding nothing. `ChargeQuota` of IoAllocateMdl is not
//! charged.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{PoolKind, PoolTag};
use ntmem_kernel::io::{irp, Irp};
use ntmem_kernel::mm::contiguous::MemoryCachingType;
use ntmem_kernel::mm::mdl::{self, LockOperation, Mdl, OnFailure, PagePriority, ProcessorMode};

use crate::vf::{allocation, Ask};
use ntmem_kernel::mm::probe;

use crate::context::{host_ptr, kernel, va_of};
use crate::seh::raise_status;

fn mode(raw: i8) -> ProcessorMode {
    if raw == 0 {
        ProcessorMode::KernelMode
    } else {
        ProcessorMode::UserMode
    }
}

/// The `MM_PAGE_PRIORITY` of a `Priority` argument, without the flags ORed into
/// it: `MdlMappingNoWrite` (0x80000000) and `MdlMappingNoExecute` (0x40000000)
/// (learn.microsoft.com, "MmGetSystemAddressForMdlSafe"). ntmem accepts the flags
/// and does not model them (the mapping's protection does not change).
fn priority(raw: u32) -> PagePriority {
    match raw & 0x3FFF_FFFF {
        0..=15 => PagePriority::Low,
        16..=31 => PagePriority::Normal,
        _ => PagePriority::High,
    }
}

/// `IoAllocateMdl`: an MDL for the buffer, or NULL; put on `irp` when given.
pub extern "win64" fn IoAllocateMdl(
    va: *mut c_void,
    length: u32,
    secondary: u8,
    _charge_quota: u8,
    irp: *mut c_void,
) -> *mut c_void {
    kernel(|cpu| {
        let ask = Ask::object("IoAllocateMdl", mdl::MDL_TAG, PoolKind::Nonpaged);
        let allocate = || mdl::io_allocate_mdl(cpu, va_of(cpu, va), u64::from(length));
        let Some(m) = allocation(cpu, ask, || None, allocate, |m| m.map(|m| m.0))? else {
            return Ok(std::ptr::null_mut());
        };
        if !irp.is_null() {
            irp::attach_mdl(cpu, Irp(va_of(cpu, irp)), m, secondary != 0)?;
        }
        Ok(host_ptr(cpu, Some(m.0)))
    })
}

/// `IoFreeMdl`.
pub extern "win64" fn IoFreeMdl(m: *mut c_void) {
    kernel(|cpu| mdl::io_free_mdl(cpu, Mdl(va_of(cpu, m))));
}

/// `MmBuildMdlForNonPagedPool`: fills the MDL's page array for a buffer in
/// nonpaged memory (pool or a contiguous allocation) and sets MDL_SOURCE_IS_NONPAGED_POOL.
pub extern "win64" fn MmBuildMdlForNonPagedPool(m: *mut c_void) {
    kernel(|cpu| mdl::mm_build_mdl_for_nonpaged_pool(cpu, Mdl(va_of(cpu, m))));
}

/// `MmProbeAndLockPages`: raises STATUS_ACCESS_VIOLATION when a page cannot be
/// locked for the access.
pub extern "win64" fn MmProbeAndLockPages(m: *mut c_void, access_mode: i8, operation: u32) {
    let op = match operation {
        0 => LockOperation::IoReadAccess,
        1 => LockOperation::IoWriteAccess,
        _ => LockOperation::IoModifyAccess,
    };
    let r = kernel(|cpu| mdl::mm_probe_and_lock_pages(cpu, Mdl(va_of(cpu, m)), mode(access_mode), op));
    if let Err(status) = r {
        raise_status(status.0 as i32);
    }
}

/// `MmUnlockPages`.
pub extern "win64" fn MmUnlockPages(m: *mut c_void) {
    kernel(|cpu| mdl::mm_unlock_pages(cpu, Mdl(va_of(cpu, m))));
}

/// `MmMapLockedPagesSpecifyCache`: KernelMode returns NULL on failure (or stops
/// the machine with 0x3F when `bugcheck_on_failure`); UserMode raises.
pub extern "win64" fn MmMapLockedPagesSpecifyCache(
    m: *mut c_void,
    access_mode: i8,
    cache: u32,
    requested: *mut c_void,
    bugcheck_on_failure: u32,
    page_priority: u32,
) -> *mut c_void {
    let r = kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(Ok(std::ptr::null_mut())) };
        let requested = (!requested.is_null()).then(|| va_of(cpu, requested));
        let on_failure = if bugcheck_on_failure != 0 { OnFailure::BugCheck } else { OnFailure::ReturnNull };
        let map = || {
            mdl::mm_map_locked_pages_specify_cache(
                cpu,
                Mdl(va_of(cpu, m)),
                mode(access_mode),
                cache,
                requested,
                on_failure,
                priority(page_priority),
            )
        };
        // Low resources simulation fails a kernel-mode mapping that may fail (NULL).
        let r = if mode(access_mode) == ProcessorMode::KernelMode && on_failure == OnFailure::ReturnNull {
            allocation(cpu, Ask::resource("MmMapLockedPagesSpecifyCache"), || Ok(None), map, |_| None)?
        } else {
            map()?
        };
        Ok(r.map(|va| host_ptr(cpu, va)))
    });
    match r {
        Ok(p) => p,
        Err(status) => raise_status(status.0 as i32),
    }
}

/// `MmUnmapLockedPages`.
pub extern "win64" fn MmUnmapLockedPages(base: *mut c_void, m: *mut c_void) {
    kernel(|cpu| mdl::mm_unmap_locked_pages(cpu, va_of(cpu, base), Mdl(va_of(cpu, m))));
}

/// `MmAllocateMappingAddress`: a reservation of system PTEs, or NULL. Below
/// DISPATCH_LEVEL only (the WDK page: IRQL <= APC_LEVEL): at DISPATCH_LEVEL or
/// above, the pageable-code stop of [`ntmem_kernel::trap::pageable_code`] (0x0A).
pub extern "win64" fn MmAllocateMappingAddress(bytes: usize, tag: u32) -> *mut c_void {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, MmAllocateMappingAddress as *const () as u64)?;
        let va = mdl::mm_allocate_mapping_address(cpu, bytes as u64, PoolTag(tag))?;
        Ok(host_ptr(cpu, va))
    })
}

/// `MmFreeMappingAddress`.
pub extern "win64" fn MmFreeMappingAddress(base: *mut c_void, tag: u32) {
    kernel(|cpu| mdl::mm_free_mapping_address(cpu, va_of(cpu, base), PoolTag(tag)));
}

/// `MmMapLockedPagesWithReservedMapping`: NULL when the MDL does not fit the
/// reservation (or for an unknown cache type).
pub extern "win64" fn MmMapLockedPagesWithReservedMapping(
    base: *mut c_void,
    tag: u32,
    m: *mut c_void,
    cache: u32,
) -> *mut c_void {
    kernel(|cpu| {
        let Some(cache) = MemoryCachingType::from_raw(cache) else { return Ok(std::ptr::null_mut()) };
        let va = mdl::mm_map_locked_pages_with_reserved_mapping(
            cpu,
            va_of(cpu, base),
            PoolTag(tag),
            Mdl(va_of(cpu, m)),
            cache,
        )?;
        Ok(host_ptr(cpu, va))
    })
}

/// `MmUnmapReservedMapping`.
pub extern "win64" fn MmUnmapReservedMapping(base: *mut c_void, tag: u32, m: *mut c_void) {
    kernel(|cpu| mdl::mm_unmap_reserved_mapping(cpu, va_of(cpu, base), PoolTag(tag), Mdl(va_of(cpu, m))));
}

/// `ProbeForRead`: raises STATUS_DATATYPE_MISALIGNMENT or STATUS_ACCESS_VIOLATION.
pub extern "win64" fn ProbeForRead(address: *const c_void, length: usize, alignment: u32) {
    let r = kernel(|cpu| Ok(probe::probe_for_read(cpu, va_of(cpu, address), length as u64, alignment)));
    if let Err(status) = r {
        raise_status(status.0 as i32);
    }
}

/// `ProbeForWrite`: as ProbeForRead, and STATUS_ACCESS_VIOLATION for a page that
/// is not writable.
pub extern "win64" fn ProbeForWrite(address: *mut c_void, length: usize, alignment: u32) {
    let r = kernel(|cpu| Ok(probe::probe_for_write(cpu, va_of(cpu, address), length as u64, alignment)));
    if let Err(status) = r {
        raise_status(status.0 as i32);
    }
}
