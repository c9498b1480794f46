//! `MmLoadSystemImage`: a driver image (`.sys`) mapped into system space as the
//! kernel maps it (research note `dma-verifier-views.md` §6.1–§6.2).
//!
//! The loader reserves system PTEs for `SizeOfImage`, gives each page a fresh
//! physical page owned by the image ([`PageUse::DriverImage`]), lays the headers
//! and sections out at their RVAs, applies the base relocations for the address
//! the driver's code will run at, binds each import by DLL and name through the
//! caller's resolver (every missing import is reported, none is stubbed), writes
//! the image through its new mapping and then protects it: headers read-only,
//! each section by its characteristics (a page two sections share gets both
//! sets of rights), code executable and nothing else. The image is registered
//! with the machine's loaded-module list, so a fault in its code names it.
//!
//! After `DriverEntry` returns, [`LoadedImage::discard_init`] unmaps and frees the
//! pages wholly inside discardable sections (`INIT`, `.reloc`): a later touch is a
//! fault on a non-present system address, PAGE_FAULT_IN_NONPAGED_AREA (0x50), or
//! DRIVER_IRQL_NOT_LESS_OR_EQUAL (0xD1) at DISPATCH_LEVEL or above ([`crate::trap`]).
//! Where ntmem differs: Windows frees the trailing run of discardable sections of a
//! driver loaded after boot (and any `INIT` of a boot driver); ntmem frees every
//! discardable section's own pages, because lld places `INIT` before `.rdata`.
//!
//! `PAGE*` sections are pageable like paged pool, and a driver can change what is
//! pageable (MmPageEntireDriver, MmLockPagableDataSection, …): the image is
//! registered with [`super::image_paging`], which the trimmer consults.
//!
//! [`LoadedImage::unload`] unmaps it (`MmUnloadSystemImage`) and the machine
//! remembers the range it occupied, as Windows keeps its unloaded-driver list: a
//! later touch of the range — a timer, DPC or dispatch routine left behind — is
//! DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS (0xCE), or
//! SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD (0xD4) at raised IRQL
//! (research note §6.4).
//!
//! Addresses: the image runs at host addresses, which are the simulated ones
//! plus the address space's relocation (zero unless the layout was moved), so it
//! is relocated for [`LoadedImage::host_base`].

use ntmem_machine::Va;
use ntmem_pe::{DriverImage, ImageError, Section, SectionFlags};

use super::frames::FrameRequest;
use super::image_paging::{ImagePages, SectionPages};
use super::pfn::PageUse;
use super::space::Access;
use crate::machine::Machine;

/// One import the resolver could not bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingImport {
    /// The DLL the image imports it from (`ntoskrnl.exe`, `HAL.dll`).
    pub dll: String,
    /// The routine or variable's name.
    pub name: String,
}

/// Why an image could not be loaded (the NTSTATUS Windows' loader returns is in
/// each variant's doc).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a valid x64 driver image (STATUS_INVALID_IMAGE_FORMAT).
    #[error("not a valid x64 driver image: {0}")]
    Image(#[from] ImageError),
    /// Imports nothing exports (STATUS_PROCEDURE_NOT_FOUND / STATUS_DRIVER_ENTRYPOINT_NOT_FOUND).
    #[error("{} import(s) not exported by ntmem: {}", .0.len(), .0.iter().map(|m| format!("{}!{}", m.dll, m.name)).collect::<Vec<_>>().join(", "))]
    MissingImports(Vec<MissingImport>),
    /// No run of system PTEs or physical pages for it (STATUS_INSUFFICIENT_RESOURCES).
    #[error("no room for a {pages}-page image: {reason}")]
    NoRoom {
        /// Pages the image needs.
        pages: u64,
        /// What ran out.
        reason: String,
    },
}

/// A driver image mapped in system space. Unmapped by [`LoadedImage::unload`].
#[derive(Debug)]
pub struct LoadedImage {
    name: String,
    image: DriverImage,
    base: Va,
    host_base: u64,
    pages: u64,
    /// Pages still mapped (false once discarded).
    mapped: Vec<bool>,
    slot: Option<usize>,
    /// Its registration with the machine's image paging rules.
    paging: u64,
}

/// The rights a section's characteristics ask for.
fn access_of(flags: SectionFlags) -> (bool, bool) {
    (flags.contains(SectionFlags::WRITE), flags.contains(SectionFlags::EXECUTE))
}

fn access(write: bool, execute: bool) -> Access {
    match (write, execute) {
        (false, false) => Access::ReadOnly,
        (true, false) => Access::ReadWrite,
        (false, true) => Access::ReadExecute,
        (true, true) => Access::ReadWriteExecute,
    }
}

impl LoadedImage {
    /// Loads the image in `file` as `name` (the name `lm` and bugchecks show),
    /// binding each import with `resolve(dll, name)` → the host address to put in
    /// its IAT slot.
    ///
    /// # Errors
    /// [`LoadError`]; nothing stays mapped or allocated.
    pub fn load(
        m: &Machine,
        name: &str,
        file: &[u8],
        resolve: &dyn Fn(&str, &str) -> Option<u64>,
    ) -> Result<LoadedImage, LoadError> {
        let image = DriverImage::parse(file)?;
        let mut bytes = image.layout(file)?;
        let headers = section_headers(&bytes).ok_or(LoadError::Image(ImageError::WrongFile))?;
        let shift = m.profile().arch.page_shift();
        let page = shift.page_size();
        let pages = u64::from(image.size_of_image).div_ceil(page);
        let no_room = |reason: String| LoadError::NoRoom { pages, reason };
        let base = m.system_ptes().reserve(pages).ok_or_else(|| {
            no_room(format!("{} of {} system PTEs free", m.system_ptes().free(), m.system_ptes().total()))
        })?;
        let host_base = m.space().host_addr(base) as u64;
        let bound = image
            .relocate(&mut bytes, host_base)
            .map_err(LoadError::from)
            .and_then(|()| bind(&image, &mut bytes, resolve));
        if let Err(e) = bound {
            m.system_ptes().release(base, pages);
            return Err(e);
        }
        let frames = match m.phys().allocate(&FrameRequest::new(pages, PageUse::DriverImage)) {
            Ok(f) => f,
            Err(e) => {
                m.system_ptes().release(base, pages);
                return Err(no_room(e.to_string()));
            }
        };
        if let Err(e) = m.space().map(m.phys(), base, &frames, Access::ReadWrite) {
            let pfns: Vec<_> = frames.pfns().collect();
            pfns.iter().for_each(|&p| drop(m.phys().free(p, 1)));
            m.system_ptes().release(base, pages);
            return Err(no_room(e.to_string()));
        }
        // Inside the space, mapped read-write just above: cannot fail.
        let written = m.space().write(base, &bytes);
        debug_assert!(written.is_ok());
        let rights = page_rights(&image, pages, page);
        protect(m, base, &rights);
        let sections = image
            .sections
            .iter()
            .enumerate()
            .map(|(i, s)| SectionPages {
                rvas: s.virtual_address..s.end(),
                pages: pages_touched(s, page),
                pageable: s.is_pageable(),
                handle: host_base + headers + SECTION_HEADER_SIZE * i as u64,
            })
            .collect();
        let paging = m.image_paging().register(ImagePages { base, host_base, rights, sections });
        let end = host_base + pages * page;
        let slot = m.images().load_mapped(name, host_base as usize, end as usize);
        Ok(LoadedImage {
            name: name.to_string(),
            image,
            base,
            host_base,
            pages,
            mapped: vec![true; pages as usize],
            slot,
            paging,
        })
    }

    /// Unmaps and frees the pages that lie wholly inside discardable sections, as
    /// the I/O manager's call to `MmFreeDriverInitialization` does after a
    /// successful `DriverEntry`. Returns how many pages were freed.
    pub fn discard_init(&mut self, m: &Machine) -> u64 {
        let page = m.profile().arch.page_shift().page_size();
        let mut freed = 0;
        let sections = &self.image.sections;
        let mut own = Vec::new();
        for (i, s) in sections.iter().enumerate().filter(|(_, s)| s.is_discardable()) {
            // A section's pages run to its end rounded up, short of the next
            // section's first page and the previous section's last.
            let first = match i.checked_sub(1).map(|p| &sections[p]) {
                Some(prev) => u64::from(s.virtual_address).max(u64::from(prev.end()).div_ceil(page) * page) / page,
                None => u64::from(s.virtual_address).div_ceil(page),
            };
            let next = sections.get(i + 1).map_or(self.pages, |n| u64::from(n.virtual_address) / page);
            own.extend(first..u64::from(s.end()).div_ceil(page).min(next));
        }
        for p in own {
            freed += u64::from(self.unmap_page(m, p));
        }
        freed
    }

    /// Unmaps page `p` of the image and frees its frame; false when it was not mapped.
    fn unmap_page(&mut self, m: &Machine, p: u64) -> bool {
        let Some(slot) = self.mapped.get_mut(p as usize) else { return false };
        if !*slot {
            return false;
        }
        *slot = false;
        let page = m.profile().arch.page_shift().page_size();
        let va = Va::new(self.base.get() + p * page);
        if let Ok(frames) = m.space().unmap(m.phys(), va, 1) {
            for pfn in frames {
                let _ = m.phys().free(pfn, 1);
            }
        }
        true
    }

    /// Unmaps the whole image (paged-out pages give their paging-file slots back),
    /// frees its pages and PTEs, removes it from the loaded-module list and
    /// remembers its range among the unloaded images, as `MmUnloadSystemImage`
    /// does. Sections still locked are dropped with it.
    pub fn unload(mut self, m: &Machine) {
        m.image_paging().unregister(self.paging);
        for p in 0..self.pages {
            self.unmap_page(m, p);
        }
        m.system_ptes().release(self.base, self.pages);
        if let Some(slot) = self.slot.take() {
            m.images().unload(slot);
        }
        let end = self.host_base + self.size(m);
        m.vf().image_unloaded(self.host_base, end - self.host_base);
        m.images().remember_unloaded(&self.name, self.host_base as usize, end as usize);
    }

    /// The name it was loaded as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed image.
    pub fn image(&self) -> &DriverImage {
        &self.image
    }

    /// Its base in simulated system space.
    pub fn base(&self) -> Va {
        self.base
    }

    /// Its base in the host: where its code runs and what its pointers hold.
    pub fn host_base(&self) -> u64 {
        self.host_base
    }

    /// Its size in bytes (whole pages).
    pub fn size(&self, m: &Machine) -> u64 {
        self.pages * m.profile().arch.page_shift().page_size()
    }

    /// The host address of `rva`, when it lies inside the image.
    pub fn host_address(&self, rva: u32) -> Option<u64> {
        (rva < self.image.size_of_image).then(|| self.host_base + u64::from(rva))
    }

    /// The host address of the entry point (`DriverEntry`, or the CRT's
    /// `GsDriverEntry` that calls it).
    pub fn entry(&self) -> Option<u64> {
        self.image.entry_point.and_then(|rva| self.host_address(rva))
    }
}

/// Each page's access: the union of the rights of the sections that cover it;
/// headers and gaps read-only.
fn page_rights(image: &DriverImage, pages: u64, page: u64) -> Vec<Access> {
    let mut rights = vec![(false, false); pages as usize];
    for s in &image.sections {
        let (w, x) = access_of(s.characteristics);
        for p in pages_touched(s, page) {
            if let Some(r) = rights.get_mut(p as usize) {
                *r = (r.0 | w, r.1 | x);
            }
        }
    }
    rights.into_iter().map(|(w, x)| access(w, x)).collect()
}

/// Applies each page's protection, one run of equal rights at a time.
fn protect(m: &Machine, base: Va, rights: &[Access]) {
    let page = m.profile().arch.page_shift().page_size();
    let mut start = 0;
    while start < rights.len() {
        let run = rights[start..].iter().take_while(|&&r| r == rights[start]).count();
        let va = Va::new(base.get() + start as u64 * page);
        let done = m.space().protect(m.phys(), va, run as u64, rights[start]);
        debug_assert!(done.is_ok(), "protecting a loaded image: {done:?}");
        start += run;
    }
}

/// Bytes in an `IMAGE_SECTION_HEADER` ("PE Format", Section Table).
const SECTION_HEADER_SIZE: u64 = 40;

/// The RVA of the section table in the laid-out headers: after the NT headers at
/// `e_lfanew` (signature 4 bytes, file header 20 bytes, then `SizeOfOptionalHeader`
/// bytes of optional header) — "PE Format", MS-DOS Stub and COFF File Header. The
/// parser has validated both fields.
fn section_headers(bytes: &[u8]) -> Option<u64> {
    let e_lfanew = u32::from_le_bytes(bytes.get(0x3C..0x40)?.try_into().ok()?) as usize;
    let at = e_lfanew.checked_add(20)?;
    let optional = u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?);
    Some(e_lfanew as u64 + 24 + u64::from(optional))
}

/// The page indices a section's virtual extent touches.
fn pages_touched(s: &Section, page: u64) -> std::ops::Range<u64> {
    let first = u64::from(s.virtual_address) / page;
    let end = u64::from(s.end()).div_ceil(page);
    first..end.max(first)
}

/// Writes each import's address into its IAT slot; every unresolved import is
/// reported at once.
fn bind(image: &DriverImage, bytes: &mut [u8], resolve: &dyn Fn(&str, &str) -> Option<u64>) -> Result<(), LoadError> {
    let mut missing = Vec::new();
    for dll in &image.imports {
        for f in &dll.functions {
            match resolve(&dll.name, &f.name) {
                Some(addr) => {
                    let at = f.iat_rva as usize;
                    let slot = at.checked_add(8).and_then(|end| bytes.get_mut(at..end));
                    let Some(slot) = slot else { return Err(LoadError::Image(ImageError::WrongFile)) };
                    slot.copy_from_slice(&addr.to_le_bytes());
                }
                None => missing.push(MissingImport { dll: dll.name.clone(), name: f.name.clone() }),
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LoadError::MissingImports(missing))
    }
}
