//! Reserved mappings: MmAllocateMappingAddress, MmMapLockedPagesWithReservedMapping,
//! MmUnmapReservedMapping, MmFreeMappingAddress (learn.microsoft.com, wdm.h pages
//! of the four routines; research/nt-algorithms.md §4.2).
//!
//! A driver reserves system PTEs up front so that it can map an MDL later even
//! when PTEs are short. The reservation takes the requested pages **plus two
//! header PTEs** in front of the address returned, invisible to the caller: the
//! first holds the size of the whole reservation (pages + 2, in the list PTE's
//! NextEntry field, bits 32–63), the second the pool tag with the Valid bit forced
//! to 0 (so tags that differ only in bit 0 are not told apart, as in Windows).
//! They are kept as the non-valid contents of those system PTEs
//! ([`crate::mm::system_ptes::SystemPtes::set_soft`]). Whether the reservation
//! is mapped is read from the page tables themselves.
//!
//! Mapping is real: the MDL's frames are mapped at the start of the reservation,
//! aliasing the buffer. As the MmMapLockedPagesWithReservedMapping page says, the
//! result includes the MDL's byte offset but `MappedSystemVa` does not;
//! MDL_MAPPED_TO_SYSTEM_VA is **not** set (the PTEs belong to the reservation,
//! and MmUnlockPages must not give them back) — so MmGetSystemAddressForMdlSafe
//! on such an MDL makes a mapping of its own.
//!
//! Misuse stops the machine with SYSTEM_PTE_MISUSE (0xDA), subcodes and parameters
//! from the "Bug Check 0xDA" page: 0x100 (requested 0 bytes: 0, tag, caller's
//! caller = 0), 0x101 (free with a tag not the owner's: VA, caller tag, owner
//! tag), 0x102 (free of a reservation that is apparently empty — no size header:
//! VA, tag, 0), 0x103 (free while still mapped: first mapped VA, tag, pages
//! reserved), 0x104 (map with a tag not the owner's: VA, caller tag, owner tag),
//! 0x105 (map into an invalid reservation: VA, tag, 0), 0x107 (map into a
//! reservation still mapped: VA, first mapped VA, last VA of the reservation),
//! 0x108 (unmap with a tag not the owner's: VA, caller tag, owner tag), 0x109
//! (unmap of an empty reservation: VA, tag, 0), 0x10A (unmap of more pages than
//! reserved: VA, pages reserved, pages to unmap), 0x10B (a page to unmap is not
//! mapped: VA, tag, pages to unmap), 0x10C (pages beyond the MDL's stay mapped:
//! VA, tag, pages to unmap). The "caller's caller" of 0x100 is 0: ntmem has no
//! return addresses to report.

use ntmem_machine::Va;

use super::map::frames_of;
use super::{read_header, shift_of, span, write_header, Mdl, MdlFlags};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::PoolTag;
use crate::ke::processor::Cpu;
use crate::mm::contiguous::MemoryCachingType;
use crate::mm::space::{Access, Mapping};
use crate::Machine;

/// Header PTEs in front of every reservation.
pub const RESERVED_HEADER_PTES: u64 = 2;

fn misuse(m: &Machine, p: [u64; 4]) -> BugCheck {
    m.bugcheck(BugCheckCode::SYSTEM_PTE_MISUSE, p)
}

fn page_at(m: &Machine, va: Va, i: u64) -> Va {
    Va::new(va.get() + i * shift_of(m).page_size())
}

fn is_mapped(m: &Machine, va: Va) -> bool {
    m.space().walk(m.phys(), va).phys.is_some()
}

/// A reservation as its header PTEs describe it.
struct Reservation {
    /// Data pages (the header's size minus the two header PTEs); 0 when the size
    /// header is missing.
    pages: u64,
    /// The owner's tag as stored (Valid bit clear).
    tag: u64,
}

fn header(m: &Machine, va: Va) -> Reservation {
    let page = shift_of(m).page_size();
    let (size_pte, tag_pte) = match va.get().checked_sub(RESERVED_HEADER_PTES * page) {
        Some(first) => (m.system_ptes().soft(Va::new(first)), m.system_ptes().soft(Va::new(first + page))),
        None => (0, 0),
    };
    Reservation { pages: (size_pte >> 32).saturating_sub(RESERVED_HEADER_PTES), tag: tag_pte }
}

fn stored(tag: PoolTag) -> u64 {
    u64::from(tag.0 & !1)
}

/// The first mapped page of `pages` pages from `va`.
fn first_mapped(m: &Machine, va: Va, pages: u64) -> Option<Va> {
    (0..pages).map(|i| page_at(m, va, i)).find(|&p| is_mapped(m, p))
}

/// `MmAllocateMappingAddress(NumberOfBytes, PoolTag)`: reserves system PTEs for
/// the pages `bytes` spans plus the two header PTEs; the address after the
/// headers, or `None` (NULL) when no run of PTEs that long is free.
///
/// # Errors
/// SYSTEM_PTE_MISUSE (0xDA: 0x100, 0, tag, 0) for 0 bytes.
pub fn mm_allocate_mapping_address(cpu: &Cpu<'_>, bytes: u64, tag: PoolTag) -> Result<Option<Va>, BugCheck> {
    let m = cpu.machine();
    let pages = shift_of(m).bytes_to_pages(bytes);
    if pages == 0 {
        return Err(misuse(m, [0x100, 0, u64::from(tag.0), 0]));
    }
    let Some(first) = m.system_ptes().reserve(pages + RESERVED_HEADER_PTES) else { return Ok(None) };
    m.system_ptes().set_soft(first, (pages + RESERVED_HEADER_PTES) << 32);
    m.system_ptes().set_soft(page_at(m, first, 1), stored(tag));
    Ok(Some(page_at(m, first, RESERVED_HEADER_PTES)))
}

/// `MmFreeMappingAddress(BaseAddress, PoolTag)`: gives a reservation's PTEs,
/// headers included, back to the system.
///
/// # Errors
/// SYSTEM_PTE_MISUSE (0xDA): 0x101 (VA, caller tag, owner tag) for a tag that is
/// not the owner's, 0x102 (VA, tag, 0) when there is no reservation there, 0x103
/// (first mapped VA, tag, pages reserved) while it is still mapped.
pub fn mm_free_mapping_address(cpu: &Cpu<'_>, base: Va, tag: PoolTag) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let r = header(m, base);
    if r.tag != stored(tag) {
        return Err(misuse(m, [0x101, base.get(), u64::from(tag.0), r.tag]));
    }
    if r.pages == 0 {
        return Err(misuse(m, [0x102, base.get(), u64::from(tag.0), 0]));
    }
    if let Some(mapped) = first_mapped(m, base, r.pages) {
        return Err(misuse(m, [0x103, mapped.get(), u64::from(tag.0), r.pages]));
    }
    let first = Va::new(base.get() - RESERVED_HEADER_PTES * shift_of(m).page_size());
    m.system_ptes().release(first, r.pages + RESERVED_HEADER_PTES);
    Ok(())
}

/// `MmMapLockedPagesWithReservedMapping(MappingAddress, PoolTag, Mdl,
/// CacheType)`: maps the locked MDL's frames at the start of the reservation —
/// the same physical pages, so the mapping aliases the buffer — and returns that
/// address plus the MDL's byte offset; `MappedSystemVa` becomes the page address
/// (without the offset). `None` (NULL) when the MDL spans more pages than the
/// reservation holds, or does not describe locked pages of RAM.
///
/// # Errors
/// SYSTEM_PTE_MISUSE (0xDA): 0x104 (VA, caller tag, owner tag) for a tag that is
/// not the owner's, 0x105 (VA, tag, 0) for an address that is not a reservation,
/// 0x107 (VA, first mapped VA, last VA) when the reservation is still mapped.
pub fn mm_map_locked_pages_with_reserved_mapping(
    cpu: &Cpu<'_>,
    base: Va,
    tag: PoolTag,
    mdl: Mdl,
    cache: MemoryCachingType,
) -> Result<Option<Va>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let r = header(m, base);
    if r.tag != stored(tag) {
        return Err(misuse(m, [0x104, base.get(), u64::from(tag.0), r.tag]));
    }
    if r.pages == 0 {
        return Err(misuse(m, [0x105, base.get(), u64::from(tag.0), 0]));
    }
    if let Some(mapped) = first_mapped(m, base, r.pages) {
        let last = page_at(m, base, r.pages).get() - 1;
        return Err(misuse(m, [0x107, base.get(), mapped.get(), last]));
    }
    let mut h = read_header(cpu, mdl)?;
    let pages = span(shift, &h);
    if pages > r.pages || !h.flags.intersects(MdlFlags::PAGES_LOCKED | MdlFlags::SOURCE_IS_NONPAGED_POOL) {
        return Ok(None);
    }
    let frames = frames_of(cpu, mdl, pages)?;
    if frames.runs.is_empty() || frames.runs.iter().any(|&(p, _)| m.phys().file_offset(p).is_none()) {
        return Ok(None);
    }
    let how = Mapping { access: Access::ReadWrite, cache: cache.attribute() };
    if m.space().map(m.phys(), base, &frames, how).is_err() {
        let _ = m.space().unmap(m.phys(), base, pages);
        return Ok(None);
    }
    h.mapped_system_va = base.get();
    write_header(cpu, mdl, &h)?;
    Ok(Some(Va::new(base.get() + u64::from(h.byte_offset))))
}

/// `MmUnmapReservedMapping(BaseAddress, PoolTag, Mdl)`: unmaps what
/// [`mm_map_locked_pages_with_reserved_mapping`] mapped; the reservation stays.
///
/// # Errors
/// SYSTEM_PTE_MISUSE (0xDA): 0x108 (VA, caller tag, owner tag) for a tag that is
/// not the owner's, 0x109 (VA, tag, 0) when nothing is mapped, 0x10A (VA, pages
/// reserved, pages to unmap) for an MDL longer than the reservation, 0x10B (VA,
/// tag, pages to unmap) when a page of the MDL's span is not mapped, 0x10C (VA,
/// tag, pages to unmap) when pages beyond it stay mapped.
pub fn mm_unmap_reserved_mapping(cpu: &Cpu<'_>, base: Va, tag: PoolTag, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let r = header(m, base);
    let t = u64::from(tag.0);
    if r.tag != stored(tag) {
        return Err(misuse(m, [0x108, base.get(), t, r.tag]));
    }
    if first_mapped(m, base, r.pages).is_none() {
        return Err(misuse(m, [0x109, base.get(), t, 0]));
    }
    let pages = span(shift_of(m), &read_header(cpu, mdl)?);
    if pages > r.pages {
        return Err(misuse(m, [0x10A, base.get(), r.pages, pages]));
    }
    if (0..pages).any(|i| !is_mapped(m, page_at(m, base, i))) {
        return Err(misuse(m, [0x10B, base.get(), t, pages]));
    }
    if first_mapped(m, page_at(m, base, pages), r.pages - pages).is_some() {
        return Err(misuse(m, [0x10C, base.get(), t, pages]));
    }
    let _ = m.space().unmap(m.phys(), base, pages);
    Ok(())
}
