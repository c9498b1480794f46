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
use ntmem_kernel::vf::LockedMdl;

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
/// locked for the access. Driver Verifier's low resources simulation fails it too
/// (Microsoft, "Low Resources Simulation": MmProbeAndLockPages is on its list), the
/// way the routine fails, by raising: STATUS_INSUFFICIENT_RESOURCES here — the status
/// Windows raises for an injected failure is not documented.
pub extern "win64" fn MmProbeAndLockPages(m: *mut c_void, access_mode: i8, operation: u32) {
    let op = match operation {
        0 => LockOperation::IoReadAccess,
        1 => LockOperation::IoWriteAccess,
        _ => LockOperation::IoModifyAccess,
    };
    let r = kernel(|cpu| {
        let process = cpu.machine().processes().current();
        let before = process.as_ref().map_or(0, |p| p.locked_pages());
        let lock = || mdl::mm_probe_and_lock_pages(cpu, Mdl(va_of(cpu, m)), mode(access_mode), op);
        let injected = || Err(ntmem_kernel::ex::pool::NtStatus::INSUFFICIENT_RESOURCES);
        let r = allocation(cpu, Ask::resource("MmProbeAndLockPages"), injected, lock, |_| None)?;
        // Pool tracking's record of the pages the driver locked in the process.
        if let (Ok(()), Some(p)) = (&r, &process) {
            let pages = p.locked_pages().saturating_sub(before);
            if let Some(driver) = crate::vf::caller_driver(cpu).filter(|_| pages > 0) {
                let lock = LockedMdl { mdl: va_of(cpu, m).get(), process: p.object().get(), pages, driver };
                cpu.machine().vf().pages_locked(lock);
            }
        }
        Ok(r)
    });
    if let Err(status) = r {
        raise_status(status.0 as i32);
    }
}

/// `MmUnlockPages`.
pub extern "win64" fn MmUnlockPages(m: *mut c_void) {
    kernel(|cpu| {
        cpu.machine().vf().pages_unlocked(va_of(cpu, m).get());
        mdl::mm_unlock_pages(cpu, Mdl(va_of(cpu, m)))
    });
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

/// `IoBuildPartialMdl(SourceMdl, TargetMdl, VirtualAddress, Length)`: the target
/// describes `Length` bytes (0: to the source's end) of the source's buffer from
/// `VirtualAddress`, with the source's pages ([`mdl::io_build_partial_mdl`]).
pub extern "win64" fn IoBuildPartialMdl(source: *mut c_void, target: *mut c_void, va: *mut c_void, length: u32) {
    kernel(|cpu| {
        let (s, t) = (Mdl(va_of(cpu, source)), Mdl(va_of(cpu, target)));
        mdl::io_build_partial_mdl(cpu, s, t, va_of(cpu, va), u64::from(length))
    });
}

/// `MmAllocatePagesForMdl(LowAddress, HighAddress, SkipBytes, TotalBytes)`:
/// `MmAllocatePagesForMdlEx` with MmCached and no flags.
pub extern "win64" fn MmAllocatePagesForMdl(low: i64, high: i64, skip: i64, total: usize) -> *mut c_void {
    let routine = MmAllocatePagesForMdl as *const () as u64;
    allocate_pages(("MmAllocatePagesForMdl", routine), [low, high, skip], total, MemoryCachingType::Cached as u32, 0)
}

/// `MmAllocatePagesForMdlEx(LowAddress, HighAddress, SkipBytes, TotalBytes,
/// CacheType, Flags)` (learn.microsoft.com, "MmAllocatePagesForMdlEx"): physical
/// pages in the range, zeroed unless MM_DONT_ZERO_ALLOCATION, described by a new
/// MDL (MDL_PAGES_LOCKED, not mapped) — **possibly fewer than asked**: the MDL's
/// `ByteCount` says how many; NULL when none is found, with
/// MM_ALLOCATE_FULLY_REQUIRED when any is missing, for unknown flags or cache type,
/// a SkipBytes that is not a page multiple ([`mdl::mm_allocate_pages_for_mdl_ex`]).
/// Freed with `MmFreePagesFromMdl`, then `ExFreePool` of the MDL. IRQL <=
/// APC_LEVEL: at DISPATCH_LEVEL or above, 0x0A (see [`ntmem_kernel::trap::pageable_code`]).
/// Driver Verifier's low resources simulation may fail it (NULL).
pub extern "win64" fn MmAllocatePagesForMdlEx(
    low: i64,
    high: i64,
    skip: i64,
    total: usize,
    cache: u32,
    flags: u32,
) -> *mut c_void {
    let routine = MmAllocatePagesForMdlEx as *const () as u64;
    allocate_pages(("MmAllocatePagesForMdlEx", routine), [low, high, skip], total, cache, flags)
}

/// The two page allocators for MDLs, as `routine` (its name for Driver Verifier, its
/// address for the IRQL stop).
fn allocate_pages(
    (name, routine): (&'static str, u64),
    [low, high, skip]: [i64; 3],
    total: usize,
    cache: u32,
    flags: u32,
) -> *mut c_void {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, routine)?;
        let (Some(cache), Some(flags)) =
            (MemoryCachingType::from_raw(cache), mdl::AllocatePagesFlags::from_bits(flags))
        else {
            return Ok(std::ptr::null_mut());
        };
        let phys = |a: i64| ntmem_machine::PhysAddr::new(a as u64);
        let ask = Ask::object(name, mdl::MDL_TAG, PoolKind::Nonpaged);
        let allocate =
            || mdl::mm_allocate_pages_for_mdl_ex(cpu, phys(low), phys(high), skip as u64, total as u64, cache, flags);
        let m = allocation(cpu, ask, || None, allocate, |m| m.map(|m| m.0))?;
        Ok(host_ptr(cpu, m.map(|m| m.0)))
    })
}

/// `MmFreePagesFromMdl(MemoryDescriptorList)`: frees the pages of an MDL from
/// `MmAllocatePagesForMdl(Ex)` (not the MDL). IRQL <= APC_LEVEL (0x0A above).
pub extern "win64" fn MmFreePagesFromMdl(m: *mut c_void) {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, MmFreePagesFromMdl as *const () as u64)?;
        mdl::mm_free_pages_from_mdl(cpu, Mdl(va_of(cpu, m)))
    });
}

/// `MmAdvanceMdl(Mdl, NumberOfBytes)`: moves the buffer's start forward
/// ([`mdl::mm_advance_mdl`]); STATUS_INVALID_PARAMETER_2 past its end.
pub extern "win64" fn MmAdvanceMdl(m: *mut c_void, bytes: u32) -> i32 {
    kernel(
        |cpu| Ok(mdl::mm_advance_mdl(cpu, Mdl(va_of(cpu, m)), u64::from(bytes))?.map_or_else(|s| s.0 as i32, |()| 0)),
    )
}

/// `MmSizeOfMdl(Base, Length)`: the bytes an MDL for the buffer takes (header and
/// page array).
pub extern "win64" fn MmSizeOfMdl(base: *mut c_void, length: usize) -> usize {
    kernel(|cpu| {
        let shift = cpu.machine().profile().arch.page_shift();
        Ok(mdl::mm_size_of_mdl(shift, va_of(cpu, base), length as u64) as usize)
    })
}

/// `MmMapLockedPages(MemoryDescriptorList, AccessMode)` (obsolete): as
/// `MmMapLockedPagesSpecifyCache` with MmCached, no requested address and
/// BugCheckOnFailure TRUE — a kernel-mode mapping that fails stops the machine
/// (0x3F, NO_MORE_SYSTEM_PTES), as the page says.
pub extern "win64" fn MmMapLockedPages(m: *mut c_void, access_mode: i8) -> *mut c_void {
    MmMapLockedPagesSpecifyCache(m, access_mode, MemoryCachingType::Cached as u32, std::ptr::null_mut(), 1, 16)
}

/// `MmProtectMdlSystemAddress(MemoryDescriptorList, NewProtect)` (learn.microsoft.com,
/// "MmProtectMdlSystemAddress function (wdm.h)"): STATUS_SUCCESS,
/// STATUS_NOT_MAPPED_VIEW (0xC0000019) for an MDL without a system mapping, or
/// STATUS_INVALID_PAGE_PROTECTION (0xC0000045); see
/// [`mdl::mm_protect_mdl_system_address`]. IRQL <= DISPATCH_LEVEL.
pub extern "win64" fn MmProtectMdlSystemAddress(m: *mut c_void, protect: u32) -> i32 {
    kernel(|cpu| {
        let r = mdl::mm_protect_mdl_system_address(cpu, Mdl(va_of(cpu, m)), protect)?;
        Ok(r.map_or_else(|s| s.0 as i32, |()| 0))
    })
}
