//! MDLs that own their pages: MmAllocatePagesForMdl(Ex), MmFreePagesFromMdl.

use ntmem_machine::{Pfn, PhysAddr};

use super::{
    read_header, read_pfn, shift_of, span, write_header, write_pfn, AllocatePagesFlags, Mdl, MdlFlags, MdlHeader,
};
use super::{MDL_HEADER_SIZE, MDL_TAG, PFN_END};
use crate::bugcheck::BugCheck;
use crate::ex::pool::{self, PoolType};
use crate::ke::processor::Cpu;
use crate::mm::contiguous::MemoryCachingType;
use crate::mm::frames::{FrameRequest, Frames};
use crate::mm::pfn::PageUse;

/// `MmAllocatePagesForMdl(LowAddress, HighAddress, SkipBytes, TotalBytes)`:
/// [`mm_allocate_pages_for_mdl_ex`] with MmCached and no flags.
///
/// # Errors
/// As [`mm_allocate_pages_for_mdl_ex`].
pub fn mm_allocate_pages_for_mdl(
    cpu: &Cpu<'_>,
    low: PhysAddr,
    high: PhysAddr,
    skip: u64,
    total: u64,
) -> Result<Option<Mdl>, BugCheck> {
    mm_allocate_pages_for_mdl_ex(cpu, low, high, skip, total, MemoryCachingType::Cached, AllocatePagesFlags::empty())
}

/// `MmAllocatePagesForMdlEx`: frames in `[low, high]` (then `[low + skip,
/// high + skip]`, … while short), zeroed unless MM_DONT_ZERO_ALLOCATION, described
/// by a new MDL with MDL_PAGES_LOCKED, not mapped. **May return fewer pages**:
/// `ByteCount` says how many, and a short PFN array ends with −1. `None` (NULL)
/// when no page is found, for unknown flags, a SkipBytes that is not a page
/// multiple, or MM_ALLOCATE_FULLY_REQUIRED short.
///
/// # Errors
/// A bugcheck from the pool.
pub fn mm_allocate_pages_for_mdl_ex(
    cpu: &Cpu<'_>,
    low: PhysAddr,
    high: PhysAddr,
    skip: u64,
    total: u64,
    cache: MemoryCachingType,
    flags: AllocatePagesFlags,
) -> Result<Option<Mdl>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let page = shift.page_size();
    if !skip.is_multiple_of(page) || total == 0 {
        return Ok(None);
    }
    let wanted = shift.bytes_to_pages(total.min((1 << 32) - page));
    let ram_top = m.profile().physmap.highest_ram_address().get();
    let mut frames: Vec<(Pfn, u64)> = Vec::new();
    let (mut lo, mut hi) = (low.get(), high.get());
    loop {
        let need = wanted - frames.iter().map(|r| r.1).sum::<u64>();
        if need == 0 || lo >= ram_top {
            break;
        }
        let mut req = FrameRequest::new(need, PageUse::MdlPages)
            .lowest(PhysAddr::new(lo))
            .highest(PhysAddr::new(hi))
            .cache(cache.attribute());
        if !flags.contains(AllocatePagesFlags::DONT_ZERO) {
            req = req.zeroed();
        }
        req = if flags.contains(AllocatePagesFlags::REQUIRE_CONTIGUOUS_CHUNKS) {
            req.contiguous()
        } else {
            req.allow_partial()
        };
        if let Ok(got) = m.phys().allocate(&req) {
            frames.extend(got.runs);
        }
        if skip == 0 {
            break;
        }
        (lo, hi) = (lo + skip, hi.saturating_add(skip));
    }
    let found: u64 = frames.iter().map(|r| r.1).sum();
    let give_back = |frames: &[(Pfn, u64)]| {
        for &(p, n) in frames {
            let _ = m.phys().free(p, n);
        }
    };
    if found == 0 || (found < wanted && flags.contains(AllocatePagesFlags::FULLY_REQUIRED)) {
        give_back(&frames);
        return Ok(None);
    }
    let entries = if found < wanted { found + 1 } else { found };
    let size = MDL_HEADER_SIZE + 8 * entries;
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, MDL_TAG)? else {
        give_back(&frames);
        return Ok(None);
    };
    let mdl = Mdl(block);
    let pfns: Vec<Pfn> = Frames { runs: frames }.pfns().collect();
    for (i, pfn) in pfns.iter().enumerate() {
        write_pfn(cpu, mdl, i as u64, pfn.get())?;
    }
    if found < wanted {
        write_pfn(cpu, mdl, found, PFN_END)?;
    }
    let h = MdlHeader {
        next: 0,
        size: u16::try_from(size).unwrap_or(u16::MAX),
        flags: MdlFlags::PAGES_LOCKED,
        process: 0,
        mapped_system_va: 0,
        start_va: 0,
        byte_count: (found * page) as u32,
        byte_offset: 0,
    };
    write_header(cpu, mdl, &h)?;
    Ok(Some(mdl))
}

/// `MmFreePagesFromMdl`: frees the frames of an MDL from
/// [`mm_allocate_pages_for_mdl_ex`] (up to the first −1), writes −1 over each entry
/// and clears MDL_PAGES_LOCKED. The MDL itself is the caller's to free
/// (`ExFreePool`), after `MmUnmapLockedPages` if it was mapped.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_free_pages_from_mdl(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let mut h = read_header(cpu, mdl)?;
    let pages = span(shift_of(m), &h);
    for i in 0..pages {
        let pfn = read_pfn(cpu, mdl, i)?;
        if pfn == PFN_END {
            break;
        }
        let _ = m.phys().free(Pfn::new(pfn), 1);
        write_pfn(cpu, mdl, i, PFN_END)?;
    }
    h.flags -= MdlFlags::PAGES_LOCKED;
    write_header(cpu, mdl, &h)
}
