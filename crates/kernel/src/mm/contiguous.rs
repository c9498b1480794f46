//! Contiguous and noncached memory (seed 000 §7.3, §5.3; research/nt-algorithms.md
//! §3.1, §3.3), `MmGetPhysicalAddress`, and the cache type each physical page carries.
//!
//! Routines, each named after the WDK routine it is:
//! [`mm_allocate_contiguous_memory`], [`mm_allocate_contiguous_memory_specify_cache`],
//! [`mm_free_contiguous_memory`], [`mm_free_contiguous_memory_specify_cache`],
//! [`mm_allocate_noncached_memory`], [`mm_free_noncached_memory`],
//! [`mm_get_physical_address`], [`mm_allocate_contiguous_node_memory`],
//! [`mm_get_virtual_for_physical`].
//!
//! A contiguous allocation is one run of frames from the frame allocator
//! ([`FrameRequest::contiguous`], which honours LowestAcceptableAddress,
//! HighestAcceptableAddress and BoundaryAddressMultiple), marked
//! `StartOfAllocation`/`EndOfAllocation` in the PFN database, recorded with its cache
//! type, and mapped at a run of system PTEs with that cache type (PTEs of a
//! noncached mapping carry CacheDisable and WriteThrough). Noncached memory is pages
//! that need not be contiguous, mapped noncached the same way.
//!
//! Cache types ([`MemoryCachingType`], WDK `MEMORY_CACHING_TYPE`) are reduced to the
//! three attributes a page can have ([`CacheType`]) through the platform table of
//! nt-algorithms.md §3.1. The attribute a page was allocated with is kept in its PFN
//! entry; a later mapping that asks for another one is a conflict (seed §7.3: mixed
//! attributes for one physical page corrupt memory on x86). Windows lets the existing
//! attribute win (it counts the override); ntmem does the same and reports a
//! [`CacheConflict`] finding ([`resolve_cache`], used by MmMapIoSpace and meant for
//! MmMapLockedPagesSpecifyCache).
//!
//! IRQL: allocation scans physical memory only at APC_LEVEL or below (above, the
//! routines return `None`, as Windows does once its pool fast path fails). Windows
//! first tries nonpaged pool for small cached requests (§3.1 step 2); ntmem has no
//! pool fast path yet, so a cached request at DISPATCH_LEVEL returns `None` where
//! Windows might succeed. Frees are accepted at any IRQL up to DISPATCH_LEVEL
//! (Windows Server 2008 and later).

use ntmem_machine::{PhysAddr, Va};

use super::frames::{FrameRequest, Frames};
use super::pfn::{CacheType, PageState, PageUse};
use super::space::{Access, Mapping};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::Machine;

/// BAD_POOL_CALLER subcode: MmFreeContiguousMemory of an address that does not start
/// a contiguous allocation (nt-algorithms.md §1.8, Microsoft's 0xC2 page).
pub const BAD_POOL_CALLER_BAD_CONTIGUOUS_FREE: u64 = 0x60;

/// `MEMORY_CACHING_TYPE` (WDK `wdm.h`): what a driver asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u32)]
pub enum MemoryCachingType {
    /// MmNonCached (0).
    NonCached = 0,
    /// MmCached (1).
    Cached = 1,
    /// MmWriteCombined (2).
    WriteCombined = 2,
    /// MmHardwareCoherentCached (3).
    HardwareCoherentCached = 3,
    /// MmNonCachedUnordered (4).
    NonCachedUnordered = 4,
    /// MmUSWCCached (5).
    UswcCached = 5,
}

impl MemoryCachingType {
    /// `MmMaximumCacheType` (6): raw values from here on are invalid.
    pub const MAXIMUM: u32 = 6;

    /// The value a C caller passed. Like Windows (nt-algorithms.md §4.2), only the
    /// low byte counts, and a value at or above `MmMaximumCacheType` is invalid
    /// (`None`: the routine returns NULL).
    pub fn from_raw(raw: u32) -> Option<MemoryCachingType> {
        Some(match raw & 0xFF {
            0 => Self::NonCached,
            1 => Self::Cached,
            2 => Self::WriteCombined,
            3 => Self::HardwareCoherentCached,
            4 => Self::NonCachedUnordered,
            5 => Self::UswcCached,
            _ => return None,
        })
    }

    /// The attribute a page gets: the platform table's RAM row (nt-algorithms.md
    /// §3.1 step 1). ntmem uses the same row for device memory.
    pub fn attribute(self) -> CacheType {
        match self {
            Self::NonCached | Self::NonCachedUnordered => CacheType::NonCached,
            Self::Cached | Self::HardwareCoherentCached => CacheType::Cached,
            Self::WriteCombined | Self::UswcCached => CacheType::WriteCombined,
        }
    }
}

/// A mapping asked for a cache attribute other than the one the page already has
/// (seed §7.3, issue 4 item 6). A finding, not an error: the mapping is made with
/// the page's attribute, as Windows makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CacheConflict {
    /// The physical page.
    pub pfn: ntmem_machine::Pfn,
    /// The attribute recorded in its PFN entry (the one used).
    pub existing: CacheType,
    /// The attribute the caller asked for.
    pub requested: CacheType,
}

/// The attribute a new mapping of `pfn` gets when the caller asks for `requested`:
/// the page's own attribute if it is in use (allocated pages carry one), else the
/// requested one. A difference is reported as a [`CacheConflict`].
pub fn resolve_cache(
    machine: &Machine,
    pfn: ntmem_machine::Pfn,
    requested: CacheType,
) -> (CacheType, Option<CacheConflict>) {
    let entry = machine.phys().pfn(pfn);
    if entry.state != PageState::Active || entry.cache == requested {
        return (requested, None);
    }
    (entry.cache, Some(CacheConflict { pfn, existing: entry.cache, requested }))
}

/// `MmAllocateContiguousMemory(NumberOfBytes, HighestAcceptableAddress)`: the same as
/// [`mm_allocate_contiguous_memory_specify_cache`] with lowest 0, no boundary and
/// MmCached (nt-algorithms.md §3.1).
pub fn mm_allocate_contiguous_memory(cpu: &Cpu<'_>, bytes: u64, highest: PhysAddr) -> Option<Va> {
    mm_allocate_contiguous_memory_specify_cache(
        cpu,
        bytes,
        PhysAddr::new(0),
        highest,
        PhysAddr::new(0),
        MemoryCachingType::Cached,
    )
}

/// `MmAllocateContiguousMemorySpecifyCache`: `bytes` rounded up to whole pages of
/// physically contiguous memory, every byte within `[lowest, highest]` (lowest
/// rounded up to a page), not crossing a multiple of `boundary` (0 = none; otherwise
/// a power of two and a page multiple, else `None`), mapped in system space with
/// `cache`. Contents are not zeroed. `None` when no run fits, when system PTEs run
/// out, for zero bytes, and above APC_LEVEL (see the module notes on the pool path).
///
/// Placement is ntmem's top-down search (nt-algorithms.md §3.1 \[DESIGN\]): Windows
/// does not document its scan direction.
pub fn mm_allocate_contiguous_memory_specify_cache(
    cpu: &Cpu<'_>,
    bytes: u64,
    lowest: PhysAddr,
    highest: PhysAddr,
    boundary: PhysAddr,
    cache: MemoryCachingType,
) -> Option<Va> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let boundary = boundary.get();
    if bytes == 0 || cpu.irql() > Irql::APC {
        return None;
    }
    if boundary != 0 && (!boundary.is_power_of_two() || !boundary.is_multiple_of(shift.page_size())) {
        return None;
    }
    let pages = shift.bytes_to_pages(bytes);
    let attribute = cache.attribute();
    let req = FrameRequest::new(pages, PageUse::Contiguous)
        .contiguous()
        .lowest(lowest)
        .highest(highest)
        .boundary(boundary)
        .cache(attribute);
    let frames = m.phys().allocate(&req).ok()?;
    map_new(m, &frames, attribute)
}

/// `MM_ANY_NODE_OK`: any NUMA node will do.
pub const MM_ANY_NODE_OK: u32 = 0x8000_0000;

/// The cache type `Protect` of MmAllocateContiguousNodeMemory asks for: exactly one
/// of PAGE_READWRITE (0x04) and PAGE_EXECUTE_READWRITE (0x40), plus at most one of
/// PAGE_NOCACHE (0x200: MmNonCached) and PAGE_WRITECOMBINE (0x400: MmWriteCombined);
/// neither is MmCached. `None` for anything else: the routine returns NULL.
pub fn node_memory_cache(protect: u32) -> Option<MemoryCachingType> {
    let cache = match protect & 0x600 {
        0 => MemoryCachingType::Cached,
        0x200 => MemoryCachingType::NonCached,
        0x400 => MemoryCachingType::WriteCombined,
        _ => return None,
    };
    matches!(protect & !0x600, 0x04 | 0x40).then_some(cache)
}

/// `MmAllocateContiguousNodeMemory(NumberOfBytes, LowestAcceptableAddress,
/// HighestAcceptableAddress, BoundaryAddressMultiple, Protect, PreferredNode)`
/// (learn.microsoft.com, "MmAllocateContiguousNodeMemory function (wdm.h)", Windows
/// 8 and later): [`mm_allocate_contiguous_memory_specify_cache`] with the cache type
/// [`node_memory_cache`] reads from `protect`. Every simulated machine has one NUMA
/// node: `node` 0 or [`MM_ANY_NODE_OK`] allocate from it; another node has no
/// memory, so the routine returns `None` as the page says it does when the
/// preferred node cannot supply the range.
///
/// **Where it differs.** ntmem's data mappings are never executable in the host, so
/// PAGE_EXECUTE_READWRITE memory cannot run code (Windows maps it executable).
pub fn mm_allocate_contiguous_node_memory(
    cpu: &Cpu<'_>,
    bytes: u64,
    range: (PhysAddr, PhysAddr),
    boundary: PhysAddr,
    protect: u32,
    node: u32,
) -> Option<Va> {
    let cache = node_memory_cache(protect)?;
    if node != 0 && node != MM_ANY_NODE_OK {
        return None;
    }
    mm_allocate_contiguous_memory_specify_cache(cpu, bytes, range.0, range.1, boundary, cache)
}

/// `MmGetVirtualForPhysical(PhysicalAddress)`: the system address that maps `pa`
/// (plus its byte offset), read from the page's PFN entry — the address of the
/// mapping the memory manager made for it (nonpaged pool, contiguous memory, a
/// driver image), as Windows reads the PTE address in the PFN entry
/// (learn.microsoft.com, "MmGetVirtualForPhysical function (ntddk.h)").
///
/// **Where it differs.** For a page with no system mapping (free, or mapped only in
/// a process) Windows returns whatever its PFN entry's PTE address gives — a stale
/// or meaningless address; ntmem returns `None` (NULL). Of two system mappings of a
/// page, ntmem gives the most recent.
pub fn mm_get_virtual_for_physical(cpu: &Cpu<'_>, pa: PhysAddr) -> Option<Va> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let pfn = pa.pfn(shift);
    m.phys().file_offset(pfn)?;
    let at = Va::new(m.phys().pfn(pfn).mapped_at);
    let mapped = at.get() != 0 && m.space().layout().is_system(at);
    let still = mapped && m.space().walk(m.phys(), at).phys.map(|p| p.pfn(shift)) == Some(pfn);
    still.then(|| Va::new(at.get() + shift.offset(pa.get())))
}

/// Maps freshly allocated `frames` at new system PTEs with `attribute`; on failure
/// gives everything back.
fn map_new(m: &Machine, frames: &Frames, attribute: CacheType) -> Option<Va> {
    let pages = frames.count();
    let give_back = || {
        for &(first, n) in &frames.runs {
            let _ = m.phys().free(first, n);
        }
    };
    let Some(va) = m.system_ptes().reserve(pages) else {
        give_back();
        return None;
    };
    if m.space().map(m.phys(), va, frames, Mapping { access: Access::ReadWrite, cache: attribute }).is_err() {
        let _ = m.space().unmap(m.phys(), va, pages);
        m.system_ptes().release(va, pages);
        give_back();
        return None;
    }
    Some(va)
}

/// `MmFreeContiguousMemory(BaseAddress)`: unmaps and frees a contiguous allocation.
///
/// # Errors
/// BAD_POOL_CALLER (0xC2) with parameters (0x60, `va`, 0, 0) when `va` is not the
/// base of a contiguous allocation (nt-algorithms.md §3.1, Microsoft's 0xC2 page).
pub fn mm_free_contiguous_memory(cpu: &Cpu<'_>, va: Va) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let bad = || m.bugcheck(BugCheckCode::BAD_POOL_CALLER, [BAD_POOL_CALLER_BAD_CONTIGUOUS_FREE, va.get(), 0, 0]);
    let (first, pages) = allocation_at(m, va, PageUse::Contiguous).ok_or_else(bad)?;
    release(m, va, first, pages);
    Ok(())
}

/// `MmFreeContiguousMemorySpecifyCache(BaseAddress, NumberOfBytes, CacheType)`: as
/// [`mm_free_contiguous_memory`]. Windows requires the size and cache type to match
/// the allocation's but documents no check; ntmem frees the whole allocation found
/// at `va` and ignores them too.
///
/// # Errors
/// As [`mm_free_contiguous_memory`].
pub fn mm_free_contiguous_memory_specify_cache(
    cpu: &Cpu<'_>,
    va: Va,
    _bytes: u64,
    _cache: MemoryCachingType,
) -> Result<(), BugCheck> {
    mm_free_contiguous_memory(cpu, va)
}

/// The allocation whose first page is mapped at `va`: its first frame and length in
/// pages, if `va` is page-aligned, maps the `StartOfAllocation` page of an
/// allocation of `usage`, and the following pages map the rest of it in order up to
/// `EndOfAllocation`.
fn allocation_at(m: &Machine, va: Va, usage: PageUse) -> Option<(ntmem_machine::Pfn, u64)> {
    let shift = m.phys().shift();
    let page = shift.page_size();
    if shift.offset(va.get()) != 0 {
        return None;
    }
    let mut first = None;
    let mut pages = 0;
    loop {
        let at = Va::new(va.get().checked_add(pages * page)?);
        let pfn = m.space().walk(m.phys(), at).phys?.pfn(shift);
        m.phys().file_offset(pfn)?;
        let e = m.phys().pfn(pfn);
        let in_order = usage != PageUse::Contiguous || first.is_none_or(|f: ntmem_machine::Pfn| f.add(pages) == pfn);
        let fits =
            in_order && e.state == PageState::Active && e.usage == usage && e.start_of_allocation == (pages == 0);
        if !fits {
            return None;
        }
        first.get_or_insert(pfn);
        pages += 1;
        if e.end_of_allocation {
            return first.map(|f| (f, pages));
        }
    }
}

/// Unmaps `pages` pages at `va`, gives back the PTEs and frees the frames that were
/// mapped there (the first is `first`; for noncached memory the rest need not follow).
fn release(m: &Machine, va: Va, first: ntmem_machine::Pfn, pages: u64) {
    let frames = m.space().unmap(m.phys(), va, pages).unwrap_or_default();
    m.system_ptes().release(va, pages);
    debug_assert_eq!(frames.first(), Some(&first));
    for pfn in frames {
        let _ = m.phys().free(pfn, 1);
    }
}

/// `MmAllocateNonCachedMemory(NumberOfBytes)`: whole pages of nonpaged memory, not
/// necessarily contiguous, mapped noncached (CacheDisable | WriteThrough) at new
/// system PTEs. Contents are not zeroed. All or nothing (nt-algorithms.md §3.3);
/// `None` for zero bytes, above APC_LEVEL (the documented IRQL is <= APC_LEVEL), or
/// when memory or PTEs run out.
///
/// ReactOS keeps a hidden header PTE in front of the range; ntmem does not — it marks
/// the first and last page `StartOfAllocation`/`EndOfAllocation` instead.
pub fn mm_allocate_noncached_memory(cpu: &Cpu<'_>, bytes: u64) -> Option<Va> {
    let m = cpu.machine();
    if bytes == 0 || cpu.irql() > Irql::APC {
        return None;
    }
    let pages = m.phys().shift().bytes_to_pages(bytes);
    let req = FrameRequest::new(pages, PageUse::MdlPages).cache(CacheType::NonCached);
    let frames = m.phys().allocate(&req).ok()?;
    let first = frames.first();
    let last = frames.runs.last().map(|&(p, n)| p.add(n - 1)).unwrap_or(first);
    m.phys().update(first, |e| e.start_of_allocation = true);
    m.phys().update(last, |e| e.end_of_allocation = true);
    map_new(m, &frames, CacheType::NonCached)
}

/// `MmFreeNonCachedMemory(BaseAddress, NumberOfBytes)`.
///
/// # Errors
/// Windows documents no check. ntmem stops with BAD_POOL_CALLER (0xC2) with
/// parameters (0x60, `va`, `bytes`, 0) — the contiguous-free subcode — when `va` is
/// not the base of a noncached allocation or `bytes` does not give its size in pages.
pub fn mm_free_noncached_memory(cpu: &Cpu<'_>, va: Va, bytes: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let bad = || m.bugcheck(BugCheckCode::BAD_POOL_CALLER, [BAD_POOL_CALLER_BAD_CONTIGUOUS_FREE, va.get(), bytes, 0]);
    let (first, pages) = allocation_at(m, va, PageUse::MdlPages).ok_or_else(bad)?;
    if pages != m.phys().shift().bytes_to_pages(bytes) || m.phys().pfn(first).cache != CacheType::NonCached {
        return Err(bad());
    }
    release(m, va, first, pages);
    Ok(())
}

/// `MmGetPhysicalAddress(BaseAddress)`: the physical address `va` translates to
/// through the page tables (Figure 2), or 0 when it is not mapped, as Windows
/// returns.
pub fn mm_get_physical_address(cpu: &Cpu<'_>, va: Va) -> PhysAddr {
    let m = cpu.machine();
    m.space().walk(m.phys(), va).phys.unwrap_or_default()
}

/// `MmIsAddressValid(VirtualAddress)`: whether touching `va` now would not page-fault —
/// every level of its translation is valid (learn.microsoft.com, "MmIsAddressValid
/// function (ntddk.h)"). A paged-out page is not valid, though touching it below
/// DISPATCH_LEVEL would bring it back.
pub fn mm_is_address_valid(cpu: &Cpu<'_>, va: Va) -> bool {
    let m = cpu.machine();
    m.space().walk(m.phys(), va).phys.is_some()
}
