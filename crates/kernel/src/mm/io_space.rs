//! `MmMapIoSpace` / `MmUnmapIoSpace`: physical address ranges — device registers,
//! or RAM — mapped into system space at system PTEs (seed 000 §8;
//! research/nt-algorithms.md §4.2).
//!
//! Each page of the range is backed by what decodes it, as the chipset would route
//! the access: a device register block ([`crate::hal::device`]) maps that block's
//! register file, so a driver's READ_REGISTER_ULONG reads what the device holds;
//! RAM maps the RAM file (PFN share counts move as for any mapping); installed RAM
//! without a PFN entry (above /MAXMEM) is "I/O space" and maps the RAM file without
//! bookkeeping, as Windows treats it; and an address nothing decodes maps the
//! floating bus, which reads all ones like a PC's master abort. ntmem keeps one
//! floating page per machine, so a stray write there can be read back at another
//! undecoded address (on a PC it is lost).
//!
//! Cache types: the requested `MEMORY_CACHING_TYPE` goes into the PTEs (noncached:
//! CacheDisable | WriteThrough). For RAM that is in use, the attribute in the PFN
//! entry wins and a different request is an [`IoSpaceFinding::CacheConflict`] (see
//! [`super::contiguous::resolve_cache`]); mapping RAM nobody owns is an
//! [`IoSpaceFinding::UnownedRam`] (the docs: only locked pages; Driver Verifier's
//! 0xC4/0x83). Findings are kept on the machine ([`crate::hal::Hal::io_space_findings`])
//! until a verifier layer exists.
//!
//! Host budget (DESIGN.md): each run of pages with one backing is one host
//! mapping, except the floating bus, which takes one per [`FLOATING_LEN`] bytes. A
//! mapping that would take more than [`HOST_MAPPINGS_PER_CALL`] host mappings
//! (more than 64 MB of undecoded addresses, say) fails with NULL before anything
//! is mapped, as a mapping Windows cannot make fails — where ntmem differs: Windows
//! maps it while system PTEs last. Without this, one call of ~12 GB spent minutes
//! and one of ~20 GB exhausted the process's host mappings (fuzz `crashes/routines/`).
//!
//! IRQL: <= DISPATCH_LEVEL (above, `None`; Windows' verifier would stop with 0xC4/0x73).

use std::collections::BTreeMap;
use std::sync::Arc;

use ntmem_host::Ram;
use ntmem_machine::{Pfn, PhysAddr, Va};

use super::contiguous::{resolve_cache, CacheConflict, MemoryCachingType};
use super::frames::Frames;
use super::mdl::address_and_size_to_span_pages;
use super::pfn::{CacheType, PageState};
use super::pte::PteFormat;
use super::space::{Access, Mapping};
use super::MmError;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::hal::FLOATING_LEN;
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::Machine;

/// The most host mappings one MmMapIoSpace may take (module docs): a sixty-fourth
/// of Linux's default `vm.max_map_count`.
pub const HOST_MAPPINGS_PER_CALL: u64 = 1024;

/// Something MmMapIoSpace found wrong (a finding, not an error: Windows goes on,
/// and so does ntmem).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum IoSpaceFinding {
    /// A RAM page in use was mapped with another cache type than its own; the
    /// mapping got the page's own.
    CacheConflict {
        /// The page's new virtual address.
        va: Va,
        /// What conflicted.
        conflict: CacheConflict,
    },
    /// A RAM page nobody owns (free) was mapped.
    UnownedRam {
        /// Its new virtual address.
        va: Va,
        /// The page.
        pfn: Pfn,
    },
}

#[derive(Clone, Copy, Debug)]
struct IoMapping {
    pa: PhysAddr,
    pages: u64,
    len: u64,
}

/// The live MmMapIoSpace mappings, by page-aligned virtual address, and the findings.
#[derive(Debug, Default)]
pub struct IoSpaceMaps {
    maps: BTreeMap<u64, IoMapping>,
    findings: Vec<IoSpaceFinding>,
}

impl IoSpaceMaps {
    /// Whether any live mapping covers a byte of `[pa, pa + len)`.
    pub(crate) fn covers(&self, pa: PhysAddr, len: u64) -> bool {
        self.maps.values().any(|m| m.pa.get() < pa.get() + len && pa.get() < m.pa.get() + m.len)
    }

    pub(crate) fn findings(&self) -> &[IoSpaceFinding] {
        &self.findings
    }
}

/// What backs one page of a mapping.
#[derive(Clone, Debug)]
enum Backing {
    /// RAM with a PFN entry, mapped with this attribute.
    Ram(CacheType),
    /// A device's register file at this offset.
    Device(Arc<Ram>, u64),
    /// Installed RAM without a PFN entry, at this offset of the RAM file.
    Unmanaged(u64),
    /// Nothing decodes it.
    Floating,
}

impl Backing {
    /// Whether `next` continues `self` one page further on.
    fn continues(&self, next: &Backing, page: u64) -> bool {
        match (self, next) {
            (Backing::Ram(a), Backing::Ram(b)) => a == b,
            (Backing::Device(r, o), Backing::Device(r2, o2)) => Arc::ptr_eq(r, r2) && o + page == *o2,
            (Backing::Unmanaged(o), Backing::Unmanaged(o2)) => o + page == *o2,
            (Backing::Floating, Backing::Floating) => true,
            _ => false,
        }
    }
}

/// `MmMapIoSpace(PhysicalAddress, NumberOfBytes, CacheType)`: maps the pages spanned
/// by `[pa, pa + bytes)` at new system PTEs and returns the address of `pa` in the
/// mapping. `None` for zero bytes, above DISPATCH_LEVEL, when system PTEs (or
/// page-table memory) run out, and for a range that wraps past the top of the
/// physical address space or reaches a page no PTE of the machine can name (above
/// 4 GB without PAE on x86; beyond the PFN field elsewhere) — Windows documents
/// only the NULL for "no space"; ntmem's choice is that a mapping the processor
/// could not make fails the same way. An invalid raw cache type never gets here:
/// the C boundary returns NULL when [`MemoryCachingType::from_raw`] does.
pub fn mm_map_io_space(cpu: &Cpu<'_>, pa: PhysAddr, bytes: u64, cache: MemoryCachingType) -> Option<Va> {
    let m = cpu.machine();
    if bytes == 0 || cpu.irql() > Irql::DISPATCH {
        return None;
    }
    let shift = m.phys().shift();
    let page = shift.page_size();
    let offset = shift.offset(pa.get());
    let base = PhysAddr::new(pa.get() - offset);
    let last = pa.get().checked_add(bytes - 1)?;
    if last >> shift.0 > PteFormat::new(m.profile().paging).max_pfn() {
        return None;
    }
    let pages = shift.bytes_to_pages(offset.checked_add(bytes)?);
    let mut io = m.hal().io();
    let va = m.system_ptes().reserve(pages)?;
    let mut findings = Vec::new();
    let Some(runs) = plan(m, va, base, pages, cache.attribute(), &mut findings) else {
        m.system_ptes().release(va, pages);
        return None;
    };
    let first = base.pfn(shift);
    match runs.into_iter().try_for_each(|r| map_run(m, va, first, r, cache.attribute())) {
        Ok(()) => {
            io.maps.insert(va.get(), IoMapping { pa: base, pages, len: pages * page });
            io.findings.extend(findings);
            Some(Va::new(va.get() + offset))
        }
        Err(_) => {
            let _ = m.space().unmap(m.phys(), va, pages);
            m.system_ptes().release(va, pages);
            None
        }
    }
}

fn backing_of(m: &Machine, pfn: Pfn, va: Va, requested: CacheType, findings: &mut Vec<IoSpaceFinding>) -> Backing {
    let shift = m.phys().shift();
    let pa = pfn.addr(shift);
    if let Some(off) = m.phys().file_offset(pfn) {
        if pa > m.profile().physmap.highest_ram_address() {
            return Backing::Unmanaged(off);
        }
        let (attribute, conflict) = resolve_cache(m, pfn, requested);
        if let Some(conflict) = conflict {
            findings.push(IoSpaceFinding::CacheConflict { va, conflict });
        }
        if matches!(m.phys().pfn(pfn).state, PageState::Free | PageState::Zeroed) {
            findings.push(IoSpaceFinding::UnownedRam { va, pfn });
        }
        return Backing::Ram(attribute);
    }
    match m.hal().bus().decode_memory(pa) {
        Some((regs, off)) => Backing::Device(regs, off),
        None => Backing::Floating,
    }
}

/// A run of a mapping: its first page (from the mapping's start), its length in
/// pages, and its last page's backing.
type Run = (u64, u64, Backing);

/// The runs of pages with one backing that map `pages` pages from `base` at `va`;
/// `None` as soon as they would take more than [`HOST_MAPPINGS_PER_CALL`] host
/// mappings.
fn plan(
    m: &Machine,
    va: Va,
    base: PhysAddr,
    pages: u64,
    requested: CacheType,
    findings: &mut Vec<IoSpaceFinding>,
) -> Option<Vec<Run>> {
    let shift = m.phys().shift();
    let page = shift.page_size();
    let first = base.pfn(shift);
    let mut runs: Vec<Run> = Vec::new();
    // Host mappings of the runs before the last.
    let mut spent = 0;
    for i in 0..pages {
        let b = backing_of(m, first.add(i), Va::new(va.get() + i * page), requested, findings);
        match runs.last_mut() {
            Some((_, n, last)) if last.continues(&b, page) => {
                *n += 1;
                *last = b;
            }
            _ => {
                spent += runs.last().map_or(0, |r| host_mappings(m, r));
                runs.push((i, 1, b));
            }
        }
        if spent + runs.last().map_or(0, |r| host_mappings(m, r)) > HOST_MAPPINGS_PER_CALL {
            return None;
        }
    }
    Some(runs)
}

/// The host mappings [`map_run`] makes for `run`.
fn host_mappings(m: &Machine, (_, n, last): &Run) -> u64 {
    match last {
        Backing::Floating => n.div_ceil(FLOATING_LEN / m.phys().shift().page_size()),
        _ => 1,
    }
}

/// Maps `n` pages from page `start` of the mapping; `last` is the last page's backing.
fn map_run(m: &Machine, va: Va, first: Pfn, (start, n, last): Run, requested: CacheType) -> Result<(), MmError> {
    let page = m.phys().shift().page_size();
    let at = Va::new(va.get() + start * page);
    let pfn = first.add(start);
    let back = (n - 1) * page;
    match last {
        Backing::Ram(cache) => {
            let frames = Frames { runs: vec![(pfn, n)] };
            m.space().map(m.phys(), at, &frames, Mapping { access: Access::ReadWrite, cache })
        }
        Backing::Device(regs, off) => {
            let how = Mapping { access: Access::ReadWrite, cache: requested };
            m.space().map_device(m.phys(), at, pfn, n, how, &regs, off - back)
        }
        Backing::Unmanaged(off) => {
            let how = Mapping { access: Access::ReadWrite, cache: requested };
            m.space().map_device(m.phys(), at, pfn, n, how, m.phys().ram(), off - back)
        }
        Backing::Floating => {
            let how = Mapping { access: Access::ReadWrite, cache: requested };
            let chunk = FLOATING_LEN / page;
            let mut done = 0;
            while done < n {
                let k = chunk.min(n - done);
                let v = Va::new(at.get() + done * page);
                m.space().map_device(m.phys(), v, pfn.add(done), k, how, m.hal().floating(), 0)?;
                done += k;
            }
            Ok(())
        }
    }
}

/// `MmUnmapIoSpace(BaseAddress, NumberOfBytes)`: unmaps a mapping MmMapIoSpace
/// made and gives its system PTEs back.
///
/// # Errors
/// SYSTEM_PTE_MISUSE (0xDA), the checks Windows makes on system PTEs it tracks
/// (bug-check 0xDA page; Windows tracks them when `TrackPtes` is set or Driver
/// Verifier runs — untracked, it would clear whatever PTEs are there, which ntmem
/// does not model): an address that is not a live MmMapIoSpace mapping (never
/// mapped, or unmapped already) is (3, 0, 0, address) — "the mapping address being
/// freed is incorrect", with no tracking structure found and no address expected;
/// a byte count spanning another number of pages than were mapped is (2, 0, pages
/// mapped, pages the count spans) — "the number of mappings being freed is
/// incorrect". Nothing is unmapped then.
pub fn mm_unmap_io_space(cpu: &Cpu<'_>, va: Va, bytes: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = m.phys().shift();
    let base = va.page_base(shift);
    let mut io = m.hal().io();
    let Some(&map) = io.maps.get(&base.get()) else {
        return Err(m.bugcheck(BugCheckCode::SYSTEM_PTE_MISUSE, [3, 0, 0, va.get()]));
    };
    let pages = address_and_size_to_span_pages(shift, va, bytes);
    if pages != map.pages {
        return Err(m.bugcheck(BugCheckCode::SYSTEM_PTE_MISUSE, [2, 0, map.pages, pages]));
    }
    io.maps.remove(&base.get());
    let _ = m.space().unmap(m.phys(), base, map.pages);
    m.system_ptes().release(base, map.pages);
    Ok(())
}
