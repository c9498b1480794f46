//! Address spaces laid over the host process (DESIGN.md, decisions 1 and 2).
//!
//! A machine's whole virtual address space — user and system — is one host
//! [`Reservation`]. x86 machines put it at the real addresses (system space at
//! 0x80000000, or 0xC0000000 with /3GB) and x64/IA-64 machines user space below 8 TB
//! and system space from 8 TB to 16 TB, when that range of the host process is
//! free; otherwise the whole space is *relocated* by a fixed offset and
//! [`AddressSpace::relocation`] says by how much. A simulated virtual address
//! ([`Va`]) is what the simulated page tables translate; the host address a driver
//! dereferences is `Va + relocation`.
//!
//! Mapping a frame at a virtual address writes the simulated PTE and `mmap`s the
//! frame's page of the RAM file at the host address, so two mappings of one frame
//! alias, and an unmapped page faults for real.
//!
//! **User space is per process** (issue 4 item 1, [`super::process`]). System
//! space always goes through the machine's tables; the user half goes through the
//! tables of the *current* process, set by [`AddressSpace::switch_user`] (none
//! current: the machine's own tables, i.e. the System process, which has no user
//! pages). Windows copies the system PML4 entries into each process's PML4 so that
//! one CR3 serves both halves; ntmem keeps the halves in separate top-level tables
//! and chooses by address, as IA-64's region registers do — the translation of
//! every address is the same. A Linux process has one address space, so only one
//! simulated process's user pages can be mapped in the host at a time: **one
//! process is current at a time per machine**, and switching unmaps the old
//! process's user range in one call and maps the new one's valid pages.

use std::sync::Mutex;

use ntmem_host::{Placement, Prot, Ram, Reservation, Window};
use ntmem_machine::{Layout, PageShift, PagingMode, Pfn, RegionKind, Va};

use super::frames::{FrameRequest, Frames, PhysicalMemory};
use super::page_table::{PageTables, Walk};
use super::pager::{PagingFile, PagingStats};
use super::pfn::{CacheType, PageUse};
use super::pte::{Protection, PteFlags, VALID_KERNEL};
use super::MmError;

/// The lowest address a reservation starts at when placed at the real addresses:
/// Linux keeps the first 64 KB unmappable, and Windows never maps it either (the
/// NULL-catch region of nt-algorithms.md §8.1).
const HOME_FLOOR: u64 = 0x1_0000;

/// How a mapping may be used. Data mappings are never executable in the host;
/// their PTEs carry no NO_EXECUTE bit, as Windows' `ValidKernelPte` does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
    /// Read and execute: a driver image's code.
    ReadExecute,
    /// Read, write and execute: a driver image section that asks for all three.
    ReadWriteExecute,
}

impl Access {
    /// Whether writes are allowed.
    pub fn writable(self) -> bool {
        matches!(self, Access::ReadWrite | Access::ReadWriteExecute)
    }

    /// The protection a paged-out page of this access keeps in its PTE.
    pub fn protection(self) -> Protection {
        match self {
            Access::ReadOnly => Protection::ReadOnly,
            Access::ReadWrite => Protection::ReadWrite,
            Access::ReadExecute => Protection::ExecuteRead,
            Access::ReadWriteExecute => Protection::ExecuteReadWrite,
        }
    }
}

impl From<Protection> for Access {
    fn from(p: Protection) -> Access {
        match p {
            Protection::ReadOnly => Access::ReadOnly,
            Protection::ReadWrite => Access::ReadWrite,
            Protection::ExecuteRead => Access::ReadExecute,
            Protection::ExecuteReadWrite => Access::ReadWriteExecute,
        }
    }
}

/// What a mapping is: its access and its cache type. `Access` alone means cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Read-only or read-write.
    pub access: Access,
    /// The cache type the PTEs encode (nt-algorithms.md §8.4: noncached sets
    /// CacheDisable and WriteThrough, write-combined CacheDisable alone).
    pub cache: CacheType,
}

impl From<Access> for Mapping {
    fn from(access: Access) -> Mapping {
        Mapping { access, cache: CacheType::Cached }
    }
}

impl Mapping {
    fn pte_flags(self, user: bool) -> PteFlags {
        let mut flags = VALID_KERNEL;
        if user {
            flags = (flags - PteFlags::GLOBAL) | PteFlags::OWNER;
        }
        if !self.access.writable() {
            flags -= PteFlags::WRITE | PteFlags::DIRTY;
        }
        match self.cache {
            CacheType::Cached => flags,
            CacheType::NonCached => flags | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH,
            CacheType::WriteCombined => flags | PteFlags::CACHE_DISABLE,
        }
    }

    fn prot(self) -> Prot {
        match self.access {
            Access::ReadOnly => Prot::Read,
            Access::ReadWrite => Prot::ReadWrite,
            Access::ReadExecute => Prot::ReadExecute,
            Access::ReadWriteExecute => Prot::ReadWriteExecute,
        }
    }
}

/// One machine's address space.
#[derive(Debug)]
pub struct AddressSpace {
    layout: Layout,
    shift: PageShift,
    reservation: Reservation,
    /// The simulated address at `reservation.base()`.
    va_base: u64,
    tables: Mutex<PageTables>,
    /// The current process's user-half tables; `None`: the machine's own.
    user: Mutex<Option<PageTables>>,
    /// What the host's user range shows, and views of recent processes to show again.
    user_views: Mutex<UserViews>,
    paging: PagingFile,
}

/// The valid user pages of one set of page tables as the host maps them: runs of
/// consecutive RAM pages with one access (simulated address, RAM file offset,
/// bytes, access), as of one generation of the tables.
#[derive(Clone, Debug)]
struct UserView {
    root: Pfn,
    generation: u64,
    runs: Vec<(u64, u64, u64, Prot)>,
}

/// The parts of `old`'s runs that no run of `new` covers, as (address, length),
/// in address order; both lists are in address order and their runs do not overlap
/// (a view's runs, as [`AddressSpace::user_view`] makes them).
fn uncovered(old: &[(u64, u64, u64, Prot)], new: &[(u64, u64, u64, Prot)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut covers = new.iter().map(|&(va, _, len, _)| (va, va + len)).peekable();
    for &(va, _, len, _) in old {
        let (mut at, end) = (va, va + len);
        while at < end {
            while covers.next_if(|&(_, e)| e <= at).is_some() {}
            match covers.peek() {
                Some(&(s, e)) if s <= at => at = e.min(end),
                Some(&(s, _)) if s < end => {
                    out.push((at, s - at));
                    at = s;
                }
                _ => {
                    out.push((at, end - at));
                    at = end;
                }
            }
        }
    }
    out
}

/// How many processes' views are kept to switch back to without walking their
/// tables (a switch between two processes, each request's caller and back, reuses
/// both).
const USER_VIEWS_KEPT: usize = 4;

/// The views [`AddressSpace::switch_user`] keeps.
#[derive(Debug, Default)]
struct UserViews {
    /// What the host's user range shows now, if it is exactly a view's runs (`None`
    /// after a switch began and did not finish: then the whole range is cleared).
    shown: Option<UserView>,
    /// Recent views, newest last.
    recent: Vec<UserView>,
}

impl AddressSpace {
    /// Reserves the space of `layout` in the host, at the real addresses if free.
    ///
    /// # Errors
    /// When the host cannot reserve the range anywhere, or no frame is free for the
    /// top-level page table.
    pub fn new(
        layout: &Layout,
        mode: PagingMode,
        shift: PageShift,
        phys: &PhysicalMemory,
        paging: PagingFile,
    ) -> Result<AddressSpace, MmError> {
        let top = layout.system_end.get() + 1;
        let home_len = to_usize(top - HOME_FLOOR);
        let (reservation, va_base) = match Reservation::new(home_len, Placement::Exactly(to_usize(HOME_FLOOR))) {
            Ok(r) => (r, HOME_FLOOR),
            Err(_) => {
                let align = to_usize(top.next_power_of_two().min(1 << 40));
                (Reservation::new(to_usize(top), Placement::Anywhere { align }).map_err(MmError::Host)?, 0)
            }
        };
        let tables = PageTables::new(phys, mode)?;
        Ok(AddressSpace {
            layout: layout.clone(),
            shift,
            reservation,
            va_base,
            tables: Mutex::new(tables),
            user: Mutex::new(None),
            user_views: Mutex::default(),
            paging,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The page size.
    pub fn page_shift(&self) -> PageShift {
        self.shift
    }

    /// Host address minus simulated address: 0 when the space sits at its real addresses.
    pub fn relocation(&self) -> u64 {
        (self.reservation.base() as u64).wrapping_sub(self.va_base)
    }

    /// The host range the space occupies: `(start, len)`.
    pub fn host_range(&self) -> (usize, usize) {
        (self.reservation.base(), self.reservation.len())
    }

    /// The host address of a simulated one.
    pub fn host_addr(&self, va: Va) -> usize {
        to_usize(va.get().wrapping_add(self.relocation()))
    }

    /// The simulated address of a host address inside the space.
    pub fn va_of_host(&self, addr: usize) -> Option<Va> {
        self.reservation.contains(addr).then(|| Va::new((addr as u64).wrapping_sub(self.relocation())))
    }

    fn host_offset(&self, va: Va) -> Result<usize, MmError> {
        va.get()
            .checked_sub(self.va_base)
            .map(to_usize)
            .filter(|&o| o < self.reservation.len())
            .ok_or(MmError::OutsideSpace(va))
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, PageTables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn user_slot(&self) -> std::sync::MutexGuard<'_, Option<PageTables>> {
        self.user.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the tables that translate `va`: the current process's for a
    /// user address when a process is current, the machine's otherwise.
    fn with_tables<R>(&self, va: Va, f: impl FnOnce(&PageTables) -> R) -> R {
        if self.layout.is_user(va) {
            let user = self.user_slot();
            if let Some(t) = user.as_ref() {
                return f(t);
            }
        }
        f(&self.tables())
    }

    /// The user-half tables of the current process (`None`: no process current).
    pub fn current_user_tables(&self) -> Option<PageTables> {
        self.user_slot().clone()
    }

    /// Makes `tables` the current user half (`None`: the machine's own) and returns
    /// the previous one (KeStackAttachProcess's CR3 switch). In the host, the user
    /// range stops showing the old tables' pages and shows every valid page of the new
    /// ones, one `mmap` per run of consecutive RAM pages with one access.
    ///
    /// What a switch costs is kept small without changing what a driver sees: when
    /// the old tables wrote no entry since the host began showing them, only their
    /// runs are unmapped (else the whole range, in one call); the new tables' runs
    /// come from a view kept from an earlier switch when the tables wrote no entry
    /// since (their generation), else from a walk.
    ///
    /// # Errors
    /// When the host refuses a mapping.
    pub fn switch_user(
        &self,
        phys: &PhysicalMemory,
        tables: Option<PageTables>,
    ) -> Result<Option<PageTables>, MmError> {
        let mut slot = self.user_slot();
        let old = std::mem::replace(&mut *slot, tables);
        let mut views = self.user_views.lock().unwrap_or_else(|e| e.into_inner());
        let system = self.tables();
        let was = old.as_ref().unwrap_or(&system);
        let current = slot.as_ref().unwrap_or(&system);
        let (root, generation) = (current.root(), current.generation());
        let kept = views.recent.iter().position(|v| v.root == root && v.generation == generation);
        let view = match kept {
            Some(i) => views.recent.remove(i),
            None => self.user_view(phys, current),
        };
        match views.shown.take() {
            Some(v) if v.root == was.root() && v.generation == was.generation() => {
                // What the new view maps over is replaced by its `mmap` (MAP_FIXED);
                // only the rest of the old runs needs unmapping.
                for (va, len) in uncovered(&v.runs, &view.runs) {
                    self.reservation.unmap(self.host_offset(Va::new(va))?, to_usize(len)).map_err(MmError::Host)?;
                }
            }
            _ => {
                let (start, end) = (self.layout.user_start.get(), self.layout.user_end.get() + 1);
                let host_page = ntmem_host::page_size() as u64;
                let (lo, hi) = (start / host_page * host_page, end.div_ceil(host_page) * host_page);
                self.reservation.unmap(self.host_offset(Va::new(lo))?, to_usize(hi - lo)).map_err(MmError::Host)?;
            }
        }
        for &(va, file, len, prot) in &view.runs {
            self.reservation
                .map_ram(self.host_offset(Va::new(va))?, phys.ram(), file, to_usize(len), prot)
                .map_err(MmError::Host)?;
        }
        views.recent.retain(|v| v.root != root);
        if views.recent.len() >= USER_VIEWS_KEPT {
            views.recent.remove(0);
        }
        views.recent.push(view.clone());
        views.shown = Some(view);
        Ok(old)
    }

    /// The valid user pages of `tables` as runs to map, walked now.
    fn user_view(&self, phys: &PhysicalMemory, tables: &PageTables) -> UserView {
        let page = self.shift.page_size();
        let generation = tables.generation();
        let format = tables.format();
        let (start, end) = (self.layout.user_start, Va::new(self.layout.user_end.get() + 1));
        let mut runs: Vec<(u64, u64, u64, Prot)> = Vec::new();
        tables.for_each_leaf(phys, start, end, &mut |va, raw| {
            let (pfn, flags) = format.decode(raw);
            if !flags.contains(PteFlags::VALID) {
                return;
            }
            let Some(file) = phys.file_offset(pfn) else { return };
            let prot = if flags.contains(PteFlags::WRITE) { Prot::ReadWrite } else { Prot::Read };
            match runs.last_mut() {
                Some((v, f, len, p)) if *v + *len == va.get() && *f + *len == file && *p == prot => *len += page,
                _ => runs.push((va.get(), file, page, prot)),
            }
        });
        UserView { root: tables.root(), generation, runs }
    }

    /// Maps `frames`, in order, at consecutive pages from `va` (page-aligned):
    /// writes the PTEs and maps the RAM in the host, one `mmap` per run of
    /// consecutive file pages. Kernel mappings get Windows' `ValidKernelPte`.
    ///
    /// # Errors
    /// When `va` is outside the space or a page table cannot be allocated.
    pub fn map(&self, phys: &PhysicalMemory, va: Va, frames: &Frames, how: impl Into<Mapping>) -> Result<(), MmError> {
        let how = how.into();
        let page = self.shift.page_size();
        let mut at = va;
        for &(first, count) in &frames.runs {
            let file = phys.file_offset(first).ok_or(MmError::NotRam(first))?;
            self.with_tables(at, |tables| self.map_run(tables, phys, at, first, count, how, phys.ram(), file))?;
            for i in 0..count {
                phys.update(first.add(i), |e| {
                    e.share_count += 1;
                    e.mapped_at = at.get() + i * page;
                });
            }
            at = Va::new(at.get() + count * page);
        }
        Ok(())
    }

    /// Maps `pages` pages of device memory — physical frames from `first` that are
    /// not RAM, backed in the host by `file` from `file_offset` — at `va`
    /// (MmMapIoSpace's mapping of a device's registers).
    ///
    /// # Errors
    /// When `va` is outside the space or a page table cannot be allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn map_device(
        &self,
        phys: &PhysicalMemory,
        va: Va,
        first: Pfn,
        pages: u64,
        how: impl Into<Mapping>,
        file: &Ram,
        file_offset: u64,
    ) -> Result<(), MmError> {
        self.with_tables(va, |tables| self.map_run(tables, phys, va, first, pages, how.into(), file, file_offset))
    }

    #[allow(clippy::too_many_arguments)]
    fn map_run(
        &self,
        tables: &PageTables,
        phys: &PhysicalMemory,
        va: Va,
        first: Pfn,
        count: u64,
        how: Mapping,
        file: &Ram,
        file_offset: u64,
    ) -> Result<(), MmError> {
        let page = self.shift.page_size();
        let flags = how.pte_flags(self.layout.is_user(va));
        for i in 0..count {
            tables.set(phys, Va::new(va.get() + i * page), first.add(i), flags)?;
        }
        let len = to_usize(count * page);
        self.reservation.map_ram(self.host_offset(va)?, file, file_offset, len, how.prot()).map_err(MmError::Host)
    }

    /// Unmaps `pages` pages from `va`; returns the RAM frames that were mapped there
    /// (device pages are unmapped too, but are not RAM and are not returned).
    ///
    /// # Errors
    /// When `va` is outside the space.
    pub fn unmap(&self, phys: &PhysicalMemory, va: Va, pages: u64) -> Result<Vec<Pfn>, MmError> {
        self.with_tables(va, |tables| self.unmap_in(tables, phys, va, pages))
    }

    /// Changes the access of `pages` mapped pages from `va`: each valid PTE is
    /// rewritten with `access`'s write bit (its frame kept) and the host range is
    /// `mprotect`ed, as `MiSetImageProtection` does for a loaded image's sections.
    /// Pages that are not valid are left alone.
    ///
    /// # Errors
    /// When `va` is outside the space.
    pub fn protect(&self, phys: &PhysicalMemory, va: Va, pages: u64, access: Access) -> Result<(), MmError> {
        let page = self.shift.page_size();
        let offset = self.host_offset(va)?;
        let how = Mapping::from(access);
        let flags = how.pte_flags(self.layout.is_user(va));
        self.with_tables(va, |tables| {
            let format = tables.format();
            for i in 0..pages {
                let at = Va::new(va.get() + i * page);
                let Some(raw) = tables.leaf(phys, at) else { continue };
                let (pfn, old) = format.decode(raw);
                if old.contains(PteFlags::VALID) {
                    tables.set(phys, at, pfn, flags)?;
                }
            }
            Ok(())
        })?;
        self.reservation.protect(offset, to_usize(pages * page), how.prot()).map_err(MmError::Host)
    }

    /// Makes `pages` pages from `va` inaccessible in the host alone: their PTEs keep
    /// frame and access, so a later [`AddressSpace::protect`] restores them (how
    /// `MmProtectMdlSystemAddress` gives PAGE_NOACCESS; see its notes).
    ///
    /// # Errors
    /// When `va` is outside the space.
    pub fn deny(&self, va: Va, pages: u64) -> Result<(), MmError> {
        let offset = self.host_offset(va)?;
        self.reservation.protect(offset, to_usize(pages * self.shift.page_size()), Prot::None).map_err(MmError::Host)
    }

    /// The raw leaf PTE that maps system address `va` and its flags, when it is
    /// valid. For the fault handler: `None` too when the tables are locked (the
    /// faulting thread may hold the lock), so it never waits.
    pub fn valid_leaf(&self, phys: &PhysicalMemory, va: Va) -> Option<(u64, PteFlags)> {
        let tables = self.tables.try_lock().ok()?;
        let raw = tables.leaf(phys, va)?;
        let (_, flags) = tables.format().decode(raw);
        flags.contains(PteFlags::VALID).then_some((raw, flags))
    }

    fn unmap_in(&self, tables: &PageTables, phys: &PhysicalMemory, va: Va, pages: u64) -> Result<Vec<Pfn>, MmError> {
        let page = self.shift.page_size();
        let offset = self.host_offset(va)?;
        let format = tables.format();
        let mut old = Vec::new();
        for i in 0..pages {
            let Some(raw) = tables.replace_leaf(phys, Va::new(va.get() + i * page), 0) else { continue };
            if let Some(slot) = format.decode_paging_file(raw) {
                self.paging.release(slot);
                continue;
            }
            let (pfn, flags) = format.decode(raw);
            if !flags.contains(PteFlags::VALID) || phys.file_offset(pfn).is_none() {
                continue;
            }
            let copy = phys.update(pfn, |e| {
                e.share_count = e.share_count.saturating_sub(1);
                if e.share_count > 0 {
                    return 0;
                }
                e.mapped_at = 0;
                std::mem::take(&mut e.paging_slot)
            });
            if copy != 0 {
                self.paging.release(copy);
            }
            old.push(pfn);
        }
        self.reservation.unmap(offset, to_usize(pages * page)).map_err(MmError::Host)?;
        Ok(old)
    }

    /// Trims `[start, start + size)` (the working-set trimmer, for pageable regions
    /// and pageable image sections only), whose pages all have `access`: every resident page that is not pinned ([`super::pfn::PfnEntry::is_pinned`]: locked
    /// by MmProbeAndLockPages, or otherwise referenced) leaves memory. A page
    /// modified since it was last written (its PTE is dirty, or its PFN keeps no
    /// paging-file copy) is written to the paging file; a clean one keeps the copy
    /// it came from, with no write — Windows puts clean pages on the standby list
    /// and only modified ones through the modified-page writer (nt-algorithms.md
    /// §8.6). The PTE becomes a paging-file PTE keeping `access` as its protection,
    /// the page is unmapped in the host and its frame freed. Returns the pages that
    /// left memory.
    ///
    /// # Errors
    /// When the paging file is full (pages trimmed so far stay trimmed).
    pub fn trim(&self, phys: &PhysicalMemory, start: Va, size: u64, access: Access) -> Result<u64, MmError> {
        self.trim_with(phys, start, size, access, &self.tables())
    }

    /// [`AddressSpace::trim`] when the page tables are not in use, else nothing:
    /// for the low-memory hook, which can run inside an allocation made while the
    /// page tables are locked (a page-table frame being allocated).
    ///
    /// # Errors
    /// As [`AddressSpace::trim`].
    pub fn trim_if_idle(&self, phys: &PhysicalMemory, start: Va, size: u64, access: Access) -> Result<u64, MmError> {
        match self.tables.try_lock() {
            Ok(tables) => self.trim_with(phys, start, size, access, &tables),
            Err(_) => Ok(0),
        }
    }

    fn trim_with(
        &self,
        phys: &PhysicalMemory,
        start: Va,
        size: u64,
        access: Access,
        tables: &PageTables,
    ) -> Result<u64, MmError> {
        let page = self.shift.page_size();
        let format = tables.format();
        let mut resident = Vec::new();
        tables.for_each_leaf(phys, start, Va::new(start.get() + size), &mut |va, raw| {
            let (pfn, flags) = format.decode(raw);
            if flags.contains(PteFlags::VALID) {
                resident.push((va, pfn, flags.contains(PteFlags::DIRTY)));
            }
        });
        let mut bytes = vec![0u8; to_usize(page)];
        let mut trimmed = 0;
        for &(va, pfn, dirty) in &resident {
            if phys.pfn(pfn).is_pinned() {
                continue;
            }
            if dirty {
                self.discard_paging_copy(phys, pfn);
            }
            let file = phys.file_offset(pfn).ok_or(MmError::NotRam(pfn))?;
            let slot = match phys.pfn(pfn).paging_slot {
                0 => {
                    phys.ram().read(file, &mut bytes);
                    self.paging.write_page(&bytes)?
                }
                copy => copy,
            };
            tables.replace_leaf(phys, va, format.encode_paging_file(slot, access.protection()));
            self.reservation.unmap(self.host_offset(va)?, to_usize(page)).map_err(MmError::Host)?;
            phys.update(pfn, |e| {
                e.share_count = 0;
                e.paging_slot = 0;
            });
            phys.free(pfn, 1)?;
            trimmed += 1;
        }
        Ok(trimmed)
    }

    /// Brings the page holding `va` back from the paging file, if it is there: a
    /// new frame, the bytes copied back, a valid PTE with the protection the
    /// paging-file PTE kept, the host mapping restored. A writable page comes back
    /// clean: the paging-file copy stays (the PFN keeps its slot), the PTE is not
    /// dirty and the host maps the page without write access, so the first write
    /// faults into [`AddressSpace::set_dirty`] as a processor sets the dirty bit.
    /// A page that is also executable (MM_EXECUTE_READWRITE, rare: a section that
    /// asks for all three) comes back dirty instead, its copy given up, because its
    /// valid PTE does not say it is executable. Returns whether it paged in. Called
    /// by the fault handler below DISPATCH_LEVEL, and by the memory manager to
    /// bring locked image sections in.
    ///
    /// # Errors
    /// When no frame is free for the page.
    pub fn page_in(&self, phys: &PhysicalMemory, va: Va) -> Result<bool, MmError> {
        let page = self.shift.page_size();
        let va = va.page_base(self.shift);
        let tables = self.tables();
        let format = tables.format();
        let Some(raw) = tables.leaf(phys, va) else { return Ok(false) };
        let (Some(slot), Some(protection)) = (format.decode_paging_file(raw), format.paging_file_protection(raw))
        else {
            return Ok(false);
        };
        let usage = match self.layout.region_at(va).map(|r| r.kind) {
            Some(RegionKind::PagedPool) => PageUse::PagedPool,
            _ => PageUse::DriverImage,
        };
        let frames = phys.allocate(&FrameRequest::new(1, usage))?;
        let mut bytes = vec![0u8; to_usize(page)];
        self.paging.read_page(slot, &mut bytes);
        let pfn = frames.first();
        let file = phys.file_offset(pfn).ok_or(MmError::NotRam(pfn))?;
        phys.ram().write(file, &bytes);
        let access = Access::from(protection);
        let (flags, prot, copy) = match access {
            Access::ReadWriteExecute => (VALID_KERNEL, Prot::ReadWriteExecute, 0),
            Access::ReadWrite => (VALID_KERNEL - PteFlags::DIRTY, Prot::Read, slot),
            Access::ReadExecute => (VALID_KERNEL - PteFlags::DIRTY - PteFlags::WRITE, Prot::ReadExecute, slot),
            Access::ReadOnly => (VALID_KERNEL - PteFlags::DIRTY - PteFlags::WRITE, Prot::Read, slot),
        };
        tables.set(phys, va, pfn, flags)?;
        self.reservation
            .map_ram(self.host_offset(va)?, phys.ram(), file, to_usize(page), prot)
            .map_err(MmError::Host)?;
        if copy == 0 {
            self.paging.release(slot);
        }
        phys.update(pfn, |e| {
            e.share_count = 1;
            e.mapped_at = va.get();
            e.paging_slot = copy;
        });
        Ok(true)
    }

    /// Sets the dirty bit of the clean system page holding `va` (valid and writable,
    /// mapped read-only in the host since it was paged in), as the processor does
    /// on the first write: the PTE becomes dirty, the host mapping writable, and
    /// the page's paging-file copy is given up. Returns whether `va` was such a
    /// page. Called by the fault handler at any IRQL: on Windows setting the dirty
    /// bit is no page fault at all.
    ///
    /// # Errors
    /// When the host refuses to change the mapping.
    pub fn set_dirty(&self, phys: &PhysicalMemory, va: Va) -> Result<bool, MmError> {
        let page = self.shift.page_size();
        let va = va.page_base(self.shift);
        let tables = self.tables();
        let format = tables.format();
        let Some(raw) = tables.leaf(phys, va) else { return Ok(false) };
        let (pfn, flags) = format.decode(raw);
        if !flags.contains(PteFlags::VALID | PteFlags::WRITE) || flags.contains(PteFlags::DIRTY) {
            return Ok(false);
        }
        tables.replace_leaf(phys, va, format.encode(pfn, flags | PteFlags::DIRTY));
        self.reservation.protect(self.host_offset(va)?, to_usize(page), Prot::ReadWrite).map_err(MmError::Host)?;
        self.discard_paging_copy(phys, pfn);
        Ok(true)
    }

    /// Gives up the paging-file copy of `pfn`, if it has one: the page's contents
    /// are about to change where no PTE's dirty bit will show it (a lock for I/O:
    /// the device or another mapping may write it), so the copy is stale from now
    /// on and the next trim must write the page.
    pub fn discard_paging_copy(&self, phys: &PhysicalMemory, pfn: Pfn) {
        let copy = phys.update(pfn, |e| std::mem::take(&mut e.paging_slot));
        if copy != 0 {
            self.paging.release(copy);
        }
    }

    /// The paging file's counters.
    pub fn paging_stats(&self) -> PagingStats {
        self.paging.stats()
    }

    /// Reads memory at `va` as the processor would: through the host mapping, so an
    /// unmapped page faults for real (inside [`crate::Machine::run`] that is a
    /// bugcheck; outside, the process aborts).
    ///
    /// # Errors
    /// When the range leaves the address space.
    pub fn read(&self, va: Va, buf: &mut [u8]) -> Result<(), MmError> {
        let offset = self.byte_offset(va, buf.len())?;
        self.reservation.read(offset, buf);
        Ok(())
    }

    /// Writes memory at `va` as the processor would; see [`AddressSpace::read`].
    ///
    /// # Errors
    /// When the range leaves the address space.
    pub fn write(&self, va: Va, data: &[u8]) -> Result<(), MmError> {
        let offset = self.byte_offset(va, data.len())?;
        self.reservation.write(offset, data);
        Ok(())
    }

    /// Sets `len` bytes at `va` to `byte` as the processor would (a `memset`
    /// through the host mapping; faults as [`AddressSpace::read`] does).
    ///
    /// # Errors
    /// When the range leaves the address space.
    #[inline]
    pub fn fill(&self, va: Va, len: u64, byte: u8) -> Result<(), MmError> {
        let offset = self.byte_offset(va, to_usize(len))?;
        self.reservation.fill(offset, to_usize(len), byte);
        Ok(())
    }

    /// The `N` bytes at `va` as a [`Window`]: checked once (inside the space, 8-byte
    /// aligned), then each field read or written with one load or store, faulting as
    /// [`AddressSpace::read`] does. `None` when `va` is misaligned or the window
    /// leaves the space.
    #[inline]
    pub fn window<const N: usize>(&self, va: Va) -> Option<Window<'_, N>> {
        self.reservation.window(to_usize(va.get().wrapping_sub(self.va_base)))
    }

    fn byte_offset(&self, va: Va, len: usize) -> Result<usize, MmError> {
        let offset = self.host_offset(va)?;
        if offset + len > self.reservation.len() {
            return Err(MmError::OutsideSpace(va));
        }
        Ok(offset)
    }

    /// Walks `va` through the page tables.
    pub fn walk(&self, phys: &PhysicalMemory, va: Va) -> Walk {
        self.with_tables(va, |t| t.walk(phys, va))
    }

    /// The top-level table's frame.
    pub fn root(&self) -> Pfn {
        self.tables().root()
    }
}

/// A simulated quantity as a host `usize` (the host is 64-bit, so every simulated
/// address and size fits).
pub fn to_usize(v: u64) -> usize {
    usize::try_from(v).expect("ntmem needs a 64-bit host")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Runs over pages 0..64 (page = 1 unit) from a set of pages, merged as a view's.
    fn runs(pages: &BTreeSet<u64>) -> Vec<(u64, u64, u64, Prot)> {
        let mut out: Vec<(u64, u64, u64, Prot)> = Vec::new();
        for &p in pages {
            match out.last_mut() {
                Some((va, _, len, _)) if *va + *len == p => *len += 1,
                _ => out.push((p, 0, 1, Prot::Read)),
            }
        }
        out
    }

    proptest! {
        /// Against the naive reference: the pages of the old view not in the new one.
        #[test]
        fn uncovered_is_the_old_pages_the_new_view_does_not_map(
            old in proptest::collection::btree_set(0u64..64, 0..40),
            new in proptest::collection::btree_set(0u64..64, 0..40),
        ) {
            let got: BTreeSet<u64> =
                uncovered(&runs(&old), &runs(&new)).into_iter().flat_map(|(va, len)| va..va + len).collect();
            let expected: BTreeSet<u64> = old.difference(&new).copied().collect();
            prop_assert_eq!(got, expected);
        }
    }
}
