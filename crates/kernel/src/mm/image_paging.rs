//! Pageable driver images: which pages of each loaded image the working-set
//! trimmer may take, and the routines a driver changes that with —
//! MmLockPagableCodeSection, MmLockPagableDataSection, MmLockPagableSectionByHandle,
//! MmUnlockPagableImageSection, MmPageEntireDriver and MmResetDriverPaging
//! (research note `dma-verifier-views.md` §6.1 step 7 and §6.3; Microsoft's pages
//! `kernel/making-drivers-pageable`, `kernel/locking-pageable-code-or-data`,
//! `kernel/paging-an-entire-driver` and the DDI pages of the six routines,
//! learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-mmlockpagablecodesection
//! and its siblings).
//!
//! A page of an image is pageable when every section that covers it is a `PAGE*`
//! section (a page a `PAGE` section shares with `.text` stays resident), or when
//! the driver called MmPageEntireDriver (every page, the headers included) — and
//! no locked section covers it. Pageable pages are trimmed to the paging file with
//! the rest of pageable system memory ([`crate::Machine::trim`], the low-memory
//! trimmer, Driver Verifier's trim on a raise to DISPATCH_LEVEL); a touch below
//! DISPATCH_LEVEL pages them back in with their protection, a touch at or above it
//! stops the machine ([`crate::trap`]).
//!
//! A lock counts per section: each MmLockPagableDataSection (which
//! `MmLockPagableCodeSection` is a macro for) or MmLockPagableSectionByHandle adds
//! one and pages the section in; each MmUnlockPagableImageSection takes one away,
//! and at zero the section is pageable again. The handle is the host address of the section's `IMAGE_SECTION_HEADER`
//! in the image's headers (as ReactOS returns it; drivers treat it as opaque). Where
//! Windows documents a bugcheck for misuse, ntmem raises it: MEMORY_MANAGEMENT
//! (0x1A) with 0x1234 for a lock of a section that does not exist and 0x1010 for
//! an unlock of a section that is not locked (bug check 0x1A page); the other
//! three parameters are undocumented, ntmem gives (address or handle, 0, 0).
//!
//! Where ntmem differs: the six routines are documented for IRQL ≤ APC_LEVEL;
//! ntmem does not check the IRQL here (the WDK boundary may). Windows pages a
//! locked section in with I/O that waits; ntmem copies it back at once.
//!
//! Locking: the table's lock is taken before the page tables' (trimming and paging
//! in run under it, so a lock and a trim never interleave); the low-memory trimmer,
//! which can run inside an allocation made under it, only tries it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use ntmem_machine::Va;

use super::frames::PhysicalMemory;
use super::space::{Access, AddressSpace};
use super::MmError;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::processor::Cpu;

/// MEMORY_MANAGEMENT subcode: "The caller is unlocking a pageable section that is
/// not currently locked" (bug check 0x1A page).
const UNLOCK_NOT_LOCKED: u64 = 0x1010;
/// MEMORY_MANAGEMENT subcode: "The caller is trying to lock a nonexistent pageable
/// section" (bug check 0x1A page).
const LOCK_NONEXISTENT: u64 = 0x1234;

/// One section of a registered image, as the paging rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionPages {
    /// Its RVAs.
    pub rvas: Range<u32>,
    /// The image pages it touches.
    pub pages: Range<u64>,
    /// A `PAGE*` section: pageable by its link-time attributes.
    pub pageable: bool,
    /// The host address of its `IMAGE_SECTION_HEADER`: its lock handle.
    pub handle: u64,
}

/// What the paging rules need to know of a loaded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePages {
    /// Its base in simulated system space.
    pub base: Va,
    /// Its base in the host (what the driver's pointers hold).
    pub host_base: u64,
    /// Each page's access (the union of the sections that cover it).
    pub rights: Vec<Access>,
    /// Its sections, in order.
    pub sections: Vec<SectionPages>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    image: ImagePages,
    /// Lock counts, one per section.
    locks: Vec<u32>,
    /// MmPageEntireDriver is in force.
    entire: bool,
}

impl Entry {
    fn contains(&self, address: u64, page: u64) -> bool {
        let start = self.image.host_base;
        (start..start + self.image.rights.len() as u64 * page).contains(&address)
    }

    /// The sections on page `p`, with their indices.
    fn covering(&self, p: u64) -> impl Iterator<Item = (usize, &SectionPages)> {
        self.image.sections.iter().enumerate().filter(move |(_, s)| s.pages.contains(&p))
    }

    /// Whether page `p` is pageable by the image's attributes: every section on it is
    /// a `PAGE*` one, or MmPageEntireDriver is in force — locked or not.
    fn pageable_by_attributes(&self, p: u64) -> bool {
        self.entire || {
            let mut c = self.covering(p).peekable();
            c.peek().is_some() && c.all(|(_, s)| s.pageable)
        }
    }

    /// Whether page `p` may be trimmed now.
    fn pageable(&self, p: u64) -> bool {
        self.pageable_by_attributes(p) && self.covering(p).all(|(i, _)| self.locks[i] == 0)
    }

    /// Runs of consecutive pages with one access for which `keep(page)` holds.
    fn runs(&self, keep: impl Fn(u64) -> bool) -> Vec<(u64, u64, Access)> {
        let mut runs: Vec<(u64, u64, Access)> = Vec::new();
        for (p, &access) in self.image.rights.iter().enumerate() {
            let p = p as u64;
            if !keep(p) {
                continue;
            }
            match runs.last_mut() {
                Some((first, count, a)) if *first + *count == p && *a == access => *count += 1,
                _ => runs.push((p, 1, access)),
            }
        }
        runs
    }
}

/// The pageable images of one machine.
#[derive(Debug, Default)]
pub struct ImagePaging {
    entries: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
}

impl ImagePaging {
    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a loaded image (its pages follow the link-time rules until the
    /// driver changes them); the id to unregister it with.
    pub fn register(&self, image: ImagePages) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let locks = vec![0; image.sections.len()];
        self.entries().push(Entry { id, image, locks, entire: false });
        id
    }

    /// Whether host address `address` lies in a pageable part of a loaded image
    /// (a `PAGE*` section, or any once MmPageEntireDriver is in force), locked or not;
    /// `page` is the page size.
    pub fn pageable_at(&self, address: u64, page: u64) -> bool {
        let entries = self.entries();
        entries
            .iter()
            .find(|e| e.contains(address, page))
            .is_some_and(|e| e.pageable_by_attributes((address - e.image.host_base) / page))
    }

    /// Forgets the image registered under `id` (it is being unloaded). Locks still
    /// held are dropped with it: on Windows the section would stay locked forever.
    pub fn unregister(&self, id: u64) {
        self.entries().retain(|e| e.id != id);
    }

    /// Trims every pageable page of every image; returns the pages that left
    /// memory. With `idle_only`, does nothing when the table or the page tables
    /// are in use (for the low-memory trimmer).
    ///
    /// # Errors
    /// When the paging file is full.
    pub fn trim(&self, space: &AddressSpace, phys: &PhysicalMemory, idle_only: bool) -> Result<u64, MmError> {
        let entries = match self.entries.try_lock() {
            Ok(e) => e,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) if idle_only => return Ok(0),
            Err(TryLockError::WouldBlock) => self.entries(),
        };
        let page = space_page(space);
        let mut trimmed = 0;
        for e in entries.iter() {
            for (first, count, access) in e.runs(|p| e.pageable(p)) {
                let va = Va::new(e.image.base.get() + first * page);
                trimmed += if idle_only {
                    space.trim_if_idle(phys, va, count * page, access)?
                } else {
                    space.trim(phys, va, count * page, access)?
                };
            }
        }
        Ok(trimmed)
    }
}

fn space_page(space: &AddressSpace) -> u64 {
    space.page_shift().page_size()
}

/// Pages in the pages of `e` for which `keep` holds. A page no frame can be found
/// for stays out (Windows would wait for memory): a touch below DISPATCH_LEVEL
/// tries again.
fn page_in(cpu: &Cpu<'_>, e: &Entry, keep: impl Fn(u64) -> bool) {
    let m = cpu.machine();
    let page = space_page(m.space());
    for (first, count, _) in e.runs(keep) {
        for p in first..first + count {
            let _ = m.space().page_in(m.phys(), Va::new(e.image.base.get() + p * page));
        }
    }
}

/// The section of the image holding `address`, by index.
fn section_at(entries: &mut [Entry], address: u64, page: u64) -> Option<(&mut Entry, usize)> {
    let e = entries.iter_mut().find(|e| e.contains(address, page))?;
    let rva = u32::try_from(address - e.image.host_base).ok()?;
    let i = e.image.sections.iter().position(|s| s.rvas.contains(&rva))?;
    Some((e, i))
}

/// The section whose handle is `handle`.
fn section_of(entries: &mut [Entry], handle: u64) -> Option<(&mut Entry, usize)> {
    entries.iter_mut().find_map(|e| {
        let i = e.image.sections.iter().position(|s| s.handle == handle)?;
        Some((e, i))
    })
}

/// Adds a lock to section `i` of `e` and pages it in; its handle.
fn lock(cpu: &Cpu<'_>, e: &mut Entry, i: usize) -> u64 {
    e.locks[i] = e.locks[i].saturating_add(1);
    let pages = e.image.sections[i].pages.clone();
    page_in(cpu, e, |p| pages.contains(&p));
    e.image.sections[i].handle
}

/// `MmLockPagableDataSection(AddressWithinSection)`: locks the whole section of a
/// loaded image that holds `address` resident and returns its handle — a data
/// item in a `data_seg("PAGE…")` section, or a routine in a `PAGExxxx` code
/// section: wdm.h defines `MmLockPagableCodeSection(Address)` as
/// `MmLockPagableDataSection(Address)` on x86 and x64, so ntoskrnl exports only
/// this one. Every routine or item of the section is locked with it. The lock
/// counts: each call adds one, and the section is pageable again when
/// MmUnlockPagableImageSection has taken every one away (DDI pages
/// `wdm/nf-wdm-mmlockpagablecodesection`, `wdm/nf-wdm-mmlockpagabledatasection`).
/// A section that is not pageable is counted the same way and stays resident as
/// it was.
///
/// # Errors
/// MEMORY_MANAGEMENT (0x1A: 0x1234, `address`, 0, 0) when `address` is in no
/// section of a loaded image.
pub fn mm_lock_pagable_data_section(cpu: &Cpu<'_>, address: u64) -> Result<u64, BugCheck> {
    let m = cpu.machine();
    let page = space_page(m.space());
    let mut entries = m.image_paging().entries();
    match section_at(&mut entries, address, page) {
        Some((e, i)) => Ok(lock(cpu, e, i)),
        None => Err(m.bugcheck(BugCheckCode::MEMORY_MANAGEMENT, [LOCK_NONEXISTENT, address, 0, 0])),
    }
}

/// `MmLockPagableSectionByHandle(ImageSectionHandle)`: adds a lock to the section
/// a previous MmLockPagableDataSection returned `handle` for, paging it in if it was
/// paged out (count 0 → 1). The handle stays valid while the driver is loaded,
/// whatever the count (DDI page `ntddk/nf-ntddk-mmlockpagablesectionbyhandle`).
///
/// # Errors
/// MEMORY_MANAGEMENT (0x1A: 0x1234, `handle`, 0, 0) when `handle` names no section
/// of a loaded image.
pub fn mm_lock_pagable_section_by_handle(cpu: &Cpu<'_>, handle: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let mut entries = m.image_paging().entries();
    match section_of(&mut entries, handle) {
        Some((e, i)) => {
            lock(cpu, e, i);
            Ok(())
        }
        None => Err(m.bugcheck(BugCheckCode::MEMORY_MANAGEMENT, [LOCK_NONEXISTENT, handle, 0, 0])),
    }
}

/// `MmUnlockPagableImageSection(ImageSectionHandle)`: takes one lock away from the
/// section `handle` names; at zero the section may be paged out again (DDI page
/// `wdm/nf-wdm-mmunlockpagableimagesection`).
///
/// # Errors
/// MEMORY_MANAGEMENT (0x1A: 0x1010, `handle`, 0, 0) when the section is not locked
/// — never locked, unlocked twice, or no section of a loaded image at all.
pub fn mm_unlock_pagable_image_section(cpu: &Cpu<'_>, handle: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let mut entries = m.image_paging().entries();
    match section_of(&mut entries, handle) {
        Some((e, i)) if e.locks[i] > 0 => {
            e.locks[i] -= 1;
            Ok(())
        }
        _ => Err(m.bugcheck(BugCheckCode::MEMORY_MANAGEMENT, [UNLOCK_NOT_LOCKED, handle, 0, 0])),
    }
}

/// `MmPageEntireDriver(AddressWithinSection)`: makes every page of the image
/// holding `address` pageable, whatever its sections' link-time attributes, and
/// returns the image's base (host address); no effect when it already is (DDI page
/// `wdm/nf-wdm-mmpageentiredriver`). Locked sections stay resident until unlocked.
/// `None` (the routine's NULL) when `address` is in no loaded image.
pub fn mm_page_entire_driver(cpu: &Cpu<'_>, address: u64) -> Option<u64> {
    let m = cpu.machine();
    let page = space_page(m.space());
    let mut entries = m.image_paging().entries();
    let e = entries.iter_mut().find(|e| e.contains(address, page))?;
    e.entire = true;
    Some(e.image.host_base)
}

/// `MmResetDriverPaging(AddressWithinSection)`: gives the image holding `address`
/// back its link-time attributes after MmPageEntireDriver — `.text`, `.data` and
/// the other sections that are not `PAGE*` are brought back in and stay resident;
/// no effect when MmPageEntireDriver was not called or `address` is in no loaded
/// image (DDI page `wdm/nf-wdm-mmresetdriverpaging`).
pub fn mm_reset_driver_paging(cpu: &Cpu<'_>, address: u64) {
    let m = cpu.machine();
    let page = space_page(m.space());
    let mut entries = m.image_paging().entries();
    let Some(e) = entries.iter_mut().find(|e| e.contains(address, page)) else { return };
    if std::mem::take(&mut e.entire) {
        let e = &*e;
        page_in(cpu, e, |p| !e.pageable(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sections: &[(u64, u64, bool)], pages: u64) -> Entry {
        let sections: Vec<SectionPages> = sections
            .iter()
            .enumerate()
            .map(|(i, &(first, end, pageable))| SectionPages {
                rvas: (first as u32 * 0x1000)..(end as u32 * 0x1000),
                pages: first..end,
                pageable,
                handle: 0x200 + 40 * i as u64,
            })
            .collect();
        let mut rights = vec![Access::ReadOnly; pages as usize];
        rights[1] = Access::ReadExecute;
        let image = ImagePages { base: Va::new(0x10000), host_base: 0x10000, rights, sections };
        Entry { id: 1, locks: vec![0; image.sections.len()], image, entire: false }
    }

    #[test]
    fn a_page_is_pageable_only_when_every_section_on_it_is() {
        // .text on page 1, PAGE on pages 1-2 (shares page 1), PAGEDATA on page 3.
        let mut e = entry(&[(1, 2, false), (1, 3, true), (3, 4, true)], 5);
        let pageable: Vec<bool> = (0..5).map(|p| e.pageable(p)).collect();
        assert_eq!(pageable, [false, false, true, true, false], "headers and uncovered pages stay");
        e.locks[2] = 1;
        assert!(!e.pageable(3), "a locked section stays");
        assert!(e.pageable_by_attributes(3), "pageable by attributes, locked or not");
        e.entire = true;
        let pageable: Vec<bool> = (0..5).map(|p| e.pageable(p)).collect();
        assert_eq!(pageable, [true, true, true, false, true], "the whole image but the locked section");
    }

    #[test]
    fn runs_split_on_access() {
        let e = entry(&[], 4);
        assert_eq!(e.runs(|_| true), [(0, 1, Access::ReadOnly), (1, 1, Access::ReadExecute), (2, 2, Access::ReadOnly)]);
        assert_eq!(
            e.runs(|p| p != 2),
            [(0, 1, Access::ReadOnly), (1, 1, Access::ReadExecute), (3, 1, Access::ReadOnly)]
        );
    }
}
