//! Mapping an MDL's pages into system space or the current process.

use ntmem_machine::{Pfn, Va};

use super::{read_header, read_pfn, shift_of, span, write_header, Mdl, MdlFlags, PFN_END};
use super::{OnFailure, PagePriority, ProcessorMode};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::mm::contiguous::MemoryCachingType;
use crate::mm::frames::Frames;
use crate::mm::space::{Access, Mapping};
use crate::Machine;

/// The MDL's frames, up to the first −1 entry, as runs of consecutive frames.
pub(super) fn frames_of(cpu: &Cpu<'_>, mdl: Mdl, pages: u64) -> Result<Frames, BugCheck> {
    let mut runs: Vec<(Pfn, u64)> = Vec::new();
    for i in 0..pages {
        let pfn = read_pfn(cpu, mdl, i)?;
        if pfn == PFN_END {
            break;
        }
        match runs.last_mut() {
            Some((first, n)) if first.get().wrapping_add(*n) == pfn => *n += 1,
            _ => runs.push((Pfn::new(pfn), 1)),
        }
    }
    Ok(Frames { runs })
}

fn priority_allows(m: &Machine, pages: u64, priority: PagePriority) -> bool {
    let (free, total) = (m.system_ptes().free(), m.system_ptes().total());
    let floor = match priority {
        PagePriority::Low => total / 4,
        PagePriority::Normal => total / 20,
        PagePriority::High => 0,
    };
    free >= pages + floor
}

/// `MmMapLockedPagesSpecifyCache(Mdl, AccessMode, CacheType, RequestedAddress,
/// BugCheckOnFailure, Priority)`.
///
/// KernelMode: reserves system PTEs and maps the MDL's frames there — the same
/// physical pages, so the mapping aliases the buffer; sets MappedSystemVa and
/// MDL_MAPPED_TO_SYSTEM_VA (and MDL_PARTIAL_HAS_BEEN_MAPPED for a partial MDL);
/// `Ok(Ok(None))` is NULL. UserMode: maps the frames into the current process at
/// an address of the system's choosing (`requested` is not honoured yet); failure
/// is raised (inner `Err`). The result is the page mapping plus `ByteOffset`.
///
/// # Errors
/// NO_MORE_SYSTEM_PTES (0x3F: 0, pages, free PTEs, total PTEs) when no run of
/// PTEs is free, `on_failure` is [`OnFailure::BugCheck`] and the MDL does not
/// have MDL_MAPPING_CAN_FAIL.
pub fn mm_map_locked_pages_specify_cache(
    cpu: &Cpu<'_>,
    mdl: Mdl,
    mode: ProcessorMode,
    cache: MemoryCachingType,
    _requested: Option<Va>,
    on_failure: OnFailure,
    priority: PagePriority,
) -> Result<Result<Option<Va>, NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    let pages = span(shift, &h);
    let frames = frames_of(cpu, mdl, pages)?;
    if frames.runs.is_empty() || frames.pfns().any(|p| m.phys().file_offset(p).is_none()) {
        return Ok(if mode == ProcessorMode::UserMode { Err(NtStatus::INVALID_PARAMETER) } else { Ok(None) });
    }
    let how = Mapping { access: Access::ReadWrite, cache: cache.attribute() };
    if mode == ProcessorMode::UserMode {
        let Some(process) = m.processes().current() else { return Ok(Err(NtStatus::ACCESS_VIOLATION)) };
        return Ok(process
            .map_locked_pages(m, &frames, how.cache)
            .map(|va| Some(Va::new(va.get() + u64::from(h.byte_offset)))));
    }
    let reserved = if priority_allows(m, pages, priority) { m.system_ptes().reserve(pages) } else { None };
    let Some(base) = reserved else {
        if on_failure == OnFailure::BugCheck && !h.flags.contains(MdlFlags::MAPPING_CAN_FAIL) {
            let (free, total) = (m.system_ptes().free(), m.system_ptes().total());
            return Err(m.bugcheck(BugCheckCode::NO_MORE_SYSTEM_PTES, [0, pages, free, total]));
        }
        return Ok(Ok(None));
    };
    if m.space().map(m.phys(), base, &frames, how).is_err() {
        m.system_ptes().release(base, pages);
        return Ok(Ok(None));
    }
    h.mapped_system_va = base.get() + u64::from(h.byte_offset);
    h.flags |= MdlFlags::MAPPED_TO_SYSTEM_VA;
    if h.flags.contains(MdlFlags::PARTIAL) {
        h.flags |= MdlFlags::PARTIAL_HAS_BEEN_MAPPED;
    }
    write_header(cpu, mdl, &h)?;
    Ok(Ok(Some(Va::new(h.mapped_system_va))))
}

/// `MmGetSystemAddressForMdlSafe(Mdl, Priority)`: `MappedSystemVa` when the MDL
/// is already mapped, describes nonpaged pool or is a partial MDL of a mapped
/// parent; otherwise a new KernelMode mapping, cached, NULL on failure.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_get_system_address_for_mdl_safe(
    cpu: &Cpu<'_>,
    mdl: Mdl,
    priority: PagePriority,
) -> Result<Option<Va>, BugCheck> {
    let h = read_header(cpu, mdl)?;
    let mapped = MdlFlags::MAPPED_TO_SYSTEM_VA | MdlFlags::SOURCE_IS_NONPAGED_POOL | MdlFlags::PARENT_MAPPED_SYSTEM_VA;
    if h.flags.intersects(mapped) {
        return Ok(Some(Va::new(h.mapped_system_va)));
    }
    let r = mm_map_locked_pages_specify_cache(
        cpu,
        mdl,
        ProcessorMode::KernelMode,
        MemoryCachingType::Cached,
        None,
        OnFailure::ReturnNull,
        priority,
    )?;
    Ok(r.ok().flatten())
}

/// `MmUnmapLockedPages(BaseAddress, Mdl)`: removes a mapping made by
/// [`mm_map_locked_pages_specify_cache`] — a system mapping (its PTEs, plus any
/// MmAdvanceMdl left behind, go back to the pool) or a user one in the current
/// process.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space. For a
/// system address, SYSTEM_PTE_MISUSE (0xDA) with the checks Windows makes on the
/// mappings it tracks (bug-check 0xDA page; Windows tracks them with `TrackPtes`
/// or Driver Verifier): (6, MDL, address, pages) when the MDL is not mapped to
/// system space; (3, 0, `MappedSystemVa`, address) when the address is not the
/// MDL's mapping; (2, 0, 0, pages the MDL now spans) when the
/// MDL's byte count was changed since it was mapped so the PTEs to free are not
/// the mapping's. The tracking-structure parameters are 0: ntmem has none, and so
/// has no record of the count the mapping had (parameter 3 is 0 too).
pub fn mm_unmap_locked_pages(cpu: &Cpu<'_>, base: Va, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    if !m.profile().layout.is_system(base) {
        if let Some(p) = m.processes().current() {
            p.unmap_locked_pages(m, base.page_base(shift));
        }
        return Ok(());
    }
    let pages = span(shift, &h);
    let misuse = |p: [u64; 4]| m.bugcheck(BugCheckCode::SYSTEM_PTE_MISUSE, p);
    if !h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        return Err(misuse([6, mdl.0.get(), base.get(), pages]));
    }
    if base.get() != h.mapped_system_va {
        return Err(misuse([3, 0, h.mapped_system_va, base.get()]));
    }
    let extra = if h.flags.contains(MdlFlags::FREE_EXTRA_PTES) { read_pfn(cpu, mdl, pages)? } else { 0 };
    let page = shift.page_size();
    let start = extra.checked_mul(page).and_then(|back| base.page_base(shift).get().checked_sub(back)).map(Va::new);
    let count = pages.saturating_add(extra);
    let Some(start) = start.filter(|&s| m.system_ptes().owns(s, count)) else {
        return Err(misuse([2, 0, 0, count]));
    };
    let _ = m.space().unmap(m.phys(), start, count);
    m.system_ptes().release(start, count);
    h.flags -= MdlFlags::MAPPED_TO_SYSTEM_VA | MdlFlags::PARTIAL_HAS_BEEN_MAPPED | MdlFlags::FREE_EXTRA_PTES;
    write_header(cpu, mdl, &h)
}
