//! Memory descriptor lists (issue 4 item 4; seed 000 §4, Table 2;
//! research/nt-algorithms.md §6, §4.2, §3.2).
//!
//! An MDL lives in simulated memory, byte-exact in the **x64 layout** whatever the
//! simulated architecture (the drivers ntmem builds are 64-bit host code, so their
//! `MDL` and `PFN_NUMBER` are the x64 ones): `Next` 0x00, `Size` 0x08 (CSHORT),
//! `MdlFlags` 0x0A, `Process` 0x10, `MappedSystemVa` 0x18, `StartVa` 0x20,
//! `ByteCount` 0x28, `ByteOffset` 0x2C, then one 8-byte PFN per page spanned from
//! 0x30. A PFN of −1 ends a short array. [`Mdl`] is the MDL's address; every
//! routine reads and writes the fields in simulated memory, so a driver that reads
//! them directly sees what the routines wrote.
//!
//! Mapping is real: [`mm_map_locked_pages_specify_cache`] in KernelMode reserves
//! system PTEs and maps the *same* frames again, so what a driver writes through
//! the system address is what the user process reads from its own buffer; in
//! UserMode it maps them into the current process.
//!
//! Misuse: unlocking a process MDL whose pages are not locked stops the machine
//! with PROCESS_HAS_LOCKED_PAGES (0x76: 1, MDL, locked pages in the process, 0); a
//! page unlocked more often than locked with PFN_LIST_CORRUPT (0x4E: 7, PFN, share
//! count, 0); running out of system PTEs with NO_MORE_SYSTEM_PTES (0x3F: 0, pages,
//! free PTEs, total PTEs) when the caller asked for a bugcheck, else NULL
//! (learn.microsoft.com bug check pages 0x76, 0x4E, 0x3F;
//! MmMapLockedPagesSpecifyCache). Driver Verifier's 0xC4 MDL checks are not
//! modelled (there is no verifier yet).
//!
//! Not modelled yet: IoAllocateMdl's secondary buffers chained onto an IRP (there
//! are no IRPs yet), MDLs over device memory being mapped (MDL_IO_SPACE pages are
//! recorded, mapping them returns NULL), the MDL lookaside list (every MDL comes
//! from nonpaged pool, tag "Mdl ").

use ntmem_machine::{PageShift, Pfn, PhysAddr, Va};

use super::contiguous::MemoryCachingType;
use super::frames::{FrameRequest, Frames};
use super::pfn::PageUse;
use super::space::{Access, Mapping};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::Machine;

/// `sizeof(MDL)` on x64.
pub const MDL_HEADER_SIZE: u64 = 0x30;
/// A PFN array entry that ends a short array (`LIST_HEAD`, −1).
pub const PFN_END: u64 = u64::MAX;
/// Pool tag of MDLs ("Mdl ").
pub const MDL_TAG: PoolTag = PoolTag::new(*b"Mdl ");
/// The largest `Size` the CSHORT field holds: IoAllocateMdl refuses longer buffers
/// (about 32 MB with 4 KB pages; the Windows Server 2003 / XP limit
/// `PAGE_SIZE * (65535 - sizeof(MDL)) / sizeof(ULONG_PTR)` of the IoAllocateMdl page).
pub const MAX_MDL_SIZE: u64 = 0xFFFF;

bitflags::bitflags! {
    /// `MdlFlags` (WDK `wdm.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MdlFlags: u16 {
        /// `MDL_MAPPED_TO_SYSTEM_VA`.
        const MAPPED_TO_SYSTEM_VA = 0x0001;
        /// `MDL_PAGES_LOCKED`.
        const PAGES_LOCKED = 0x0002;
        /// `MDL_SOURCE_IS_NONPAGED_POOL`.
        const SOURCE_IS_NONPAGED_POOL = 0x0004;
        /// `MDL_ALLOCATED_FIXED_SIZE`.
        const ALLOCATED_FIXED_SIZE = 0x0008;
        /// `MDL_PARTIAL`.
        const PARTIAL = 0x0010;
        /// `MDL_PARTIAL_HAS_BEEN_MAPPED`.
        const PARTIAL_HAS_BEEN_MAPPED = 0x0020;
        /// `MDL_IO_PAGE_READ`.
        const IO_PAGE_READ = 0x0040;
        /// `MDL_WRITE_OPERATION`.
        const WRITE_OPERATION = 0x0080;
        /// `MDL_PARENT_MAPPED_SYSTEM_VA` (alias `MDL_LOCKED_PAGE_TABLES`).
        const PARENT_MAPPED_SYSTEM_VA = 0x0100;
        /// `MDL_FREE_EXTRA_PTES`.
        const FREE_EXTRA_PTES = 0x0200;
        /// `MDL_DESCRIBES_AWE`.
        const DESCRIBES_AWE = 0x0400;
        /// `MDL_IO_SPACE`.
        const IO_SPACE = 0x0800;
        /// `MDL_NETWORK_HEADER`.
        const NETWORK_HEADER = 0x1000;
        /// `MDL_MAPPING_CAN_FAIL`.
        const MAPPING_CAN_FAIL = 0x2000;
        /// `MDL_ALLOCATED_MUST_SUCCEED` (newer SDKs: `MDL_PAGE_CONTENTS_INVARIANT`).
        const ALLOCATED_MUST_SUCCEED = 0x4000;
        /// `MDL_INTERNAL`.
        const INTERNAL = 0x8000;
    }
}

/// `KPROCESSOR_MODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ProcessorMode {
    /// `KernelMode` (0).
    KernelMode = 0,
    /// `UserMode` (1).
    UserMode = 1,
}

/// `LOCK_OPERATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LockOperation {
    /// `IoReadAccess` (0): the driver only reads the buffer.
    IoReadAccess = 0,
    /// `IoWriteAccess` (1).
    IoWriteAccess = 1,
    /// `IoModifyAccess` (2).
    IoModifyAccess = 2,
}

/// `MM_PAGE_PRIORITY`: how hard a mapping may try when system PTEs are short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PagePriority {
    /// `LowPagePriority` (0): fails when fewer than a quarter of the PTEs are free.
    Low = 0,
    /// `NormalPagePriority` (16): fails when fewer than 1/20 are free.
    Normal = 16,
    /// `HighPagePriority` (32): fails only when none is left.
    High = 32,
}

/// `BugCheckOnFailure` of MmMapLockedPagesSpecifyCache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// FALSE: return NULL.
    ReturnNull,
    /// TRUE: NO_MORE_SYSTEM_PTES (0x3F), unless the MDL has MDL_MAPPING_CAN_FAIL.
    BugCheck,
}

bitflags::bitflags! {
    /// Flags of MmAllocatePagesForMdlEx (`MM_ALLOCATE_*`, `wdm.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AllocatePagesFlags: u32 {
        /// `MM_DONT_ZERO_ALLOCATION`.
        const DONT_ZERO = 0x1;
        /// `MM_ALLOCATE_FROM_LOCAL_NODE_ONLY` (one node: no effect).
        const FROM_LOCAL_NODE_ONLY = 0x2;
        /// `MM_ALLOCATE_FULLY_REQUIRED`: NULL unless every page is found.
        const FULLY_REQUIRED = 0x4;
        /// `MM_ALLOCATE_NO_WAIT` (nothing waits in ntmem: no effect).
        const NO_WAIT = 0x8;
        /// `MM_ALLOCATE_PREFER_CONTIGUOUS` (contiguous runs are preferred anyway).
        const PREFER_CONTIGUOUS = 0x10;
        /// `MM_ALLOCATE_REQUIRE_CONTIGUOUS_CHUNKS`: one contiguous run (SkipBytes 0).
        const REQUIRE_CONTIGUOUS_CHUNKS = 0x20;
    }
}

/// An MDL: its address in simulated memory (`PMDL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mdl(pub Va);

impl Mdl {
    /// The address of the PFN array (`MmGetMdlPfnArray`).
    pub fn pfn_array(self) -> Va {
        Va::new(self.0.get() + MDL_HEADER_SIZE)
    }
}

/// The MDL header's fields, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MdlHeader {
    /// `Next`.
    pub next: u64,
    /// `Size`: header plus PFN array, bytes.
    pub size: u16,
    /// `MdlFlags`.
    pub flags: MdlFlags,
    /// `Process`: the process object of locked user pages, or 0.
    pub process: u64,
    /// `MappedSystemVa`.
    pub mapped_system_va: u64,
    /// `StartVa`: page-aligned.
    pub start_va: u64,
    /// `ByteCount`.
    pub byte_count: u32,
    /// `ByteOffset`.
    pub byte_offset: u32,
}

impl MdlHeader {
    fn from_bytes(b: &[u8; 0x30]) -> MdlHeader {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"));
        MdlHeader {
            next: u64_at(0),
            size: u16_at(8),
            flags: MdlFlags::from_bits_retain(u16_at(0xA)),
            process: u64_at(0x10),
            mapped_system_va: u64_at(0x18),
            start_va: u64_at(0x20),
            byte_count: u32_at(0x28),
            byte_offset: u32_at(0x2C),
        }
    }

    fn to_bytes(self) -> [u8; 0x30] {
        let mut b = [0u8; 0x30];
        b[0..8].copy_from_slice(&self.next.to_le_bytes());
        b[8..10].copy_from_slice(&self.size.to_le_bytes());
        b[0xA..0xC].copy_from_slice(&self.flags.bits().to_le_bytes());
        b[0x10..0x18].copy_from_slice(&self.process.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&self.mapped_system_va.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&self.start_va.to_le_bytes());
        b[0x28..0x2C].copy_from_slice(&self.byte_count.to_le_bytes());
        b[0x2C..0x30].copy_from_slice(&self.byte_offset.to_le_bytes());
        b
    }

    /// `MmGetMdlVirtualAddress`: `StartVa + ByteOffset`.
    pub fn virtual_address(&self) -> Va {
        Va::new(self.start_va + u64::from(self.byte_offset))
    }
}

fn shift_of(m: &Machine) -> PageShift {
    m.profile().arch.page_shift()
}

fn fault(m: &Machine, va: Va) -> BugCheck {
    m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), 0, 0, 0])
}

/// Reads an MDL's header (what a driver reading the fields sees).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) when `mdl` is outside the address space.
pub fn read_header(cpu: &Cpu<'_>, mdl: Mdl) -> Result<MdlHeader, BugCheck> {
    let m = cpu.machine();
    let mut b = [0u8; 0x30];
    m.space().read(mdl.0, &mut b).map_err(|_| fault(m, mdl.0))?;
    Ok(MdlHeader::from_bytes(&b))
}

fn write_header(cpu: &Cpu<'_>, mdl: Mdl, h: &MdlHeader) -> Result<(), BugCheck> {
    let m = cpu.machine();
    m.space().write(mdl.0, &h.to_bytes()).map_err(|_| fault(m, mdl.0))
}

/// PFN array entry `i` of `mdl`.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) when it is outside the address space.
pub fn read_pfn(cpu: &Cpu<'_>, mdl: Mdl, i: u64) -> Result<u64, BugCheck> {
    let m = cpu.machine();
    let va = Va::new(mdl.pfn_array().get() + 8 * i);
    let mut b = [0u8; 8];
    m.space().read(va, &mut b).map_err(|_| fault(m, va))?;
    Ok(u64::from_le_bytes(b))
}

fn write_pfn(cpu: &Cpu<'_>, mdl: Mdl, i: u64, pfn: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let va = Va::new(mdl.pfn_array().get() + 8 * i);
    m.space().write(va, &pfn.to_le_bytes()).map_err(|_| fault(m, va))
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size)`: pages the buffer touches.
pub fn address_and_size_to_span_pages(shift: PageShift, va: Va, size: u64) -> u64 {
    let page = shift.page_size();
    ((va.get() & (page - 1)) + size).div_ceil(page)
}

/// `MmSizeOfMdl(Base, Length)`: bytes an MDL for the buffer needs.
pub fn mm_size_of_mdl(shift: PageShift, base: Va, length: u64) -> u64 {
    MDL_HEADER_SIZE + 8 * address_and_size_to_span_pages(shift, base, length)
}

fn span(shift: PageShift, h: &MdlHeader) -> u64 {
    address_and_size_to_span_pages(shift, h.virtual_address(), u64::from(h.byte_count))
}

/// `MmInitializeMdl(Mdl, BaseVa, Length)`: Next NULL, Size, flags 0, StartVa,
/// ByteOffset, ByteCount; `Process` and `MappedSystemVa` are left as they are.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_initialize_mdl(cpu: &Cpu<'_>, mdl: Mdl, base: Va, length: u64) -> Result<(), BugCheck> {
    let shift = shift_of(cpu.machine());
    let old = read_header(cpu, mdl)?;
    let h = MdlHeader {
        next: 0,
        size: u16::try_from(mm_size_of_mdl(shift, base, length)).unwrap_or(u16::MAX),
        flags: MdlFlags::empty(),
        process: old.process,
        mapped_system_va: old.mapped_system_va,
        start_va: base.page_base(shift).get(),
        byte_count: length as u32,
        byte_offset: (base.get() & (shift.page_size() - 1)) as u32,
    };
    write_header(cpu, mdl, &h)
}

/// `IoAllocateMdl(VirtualAddress, Length, FALSE, FALSE, NULL)`: an MDL from
/// nonpaged pool describing the buffer (no pages yet); `None` is NULL — no pool,
/// or a buffer longer than an MDL's CSHORT `Size` can describe ([`MAX_MDL_SIZE`]).
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_allocate_mdl(cpu: &Cpu<'_>, va: Va, length: u64) -> Result<Option<Mdl>, BugCheck> {
    let shift = shift_of(cpu.machine());
    let size = mm_size_of_mdl(shift, va, length);
    if length == 0 || length > u64::from(u32::MAX) || size > MAX_MDL_SIZE {
        return Ok(None);
    }
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, MDL_TAG)? else { return Ok(None) };
    let mdl = Mdl(block);
    write_header(cpu, mdl, &MdlHeader::from_bytes(&[0; 0x30]))?;
    mm_initialize_mdl(cpu, mdl, va, length)?;
    Ok(Some(mdl))
}

/// `IoFreeMdl`: a partial MDL mapped on its own is unmapped first
/// (MmPrepareMdlForReuse), then the MDL goes back to the pool.
///
/// # Errors
/// A bugcheck from the pool (freeing something that is not an MDL).
pub fn io_free_mdl(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let h = read_header(cpu, mdl)?;
    if h.flags.contains(MdlFlags::PARTIAL_HAS_BEEN_MAPPED) {
        mm_unmap_locked_pages(cpu, Va::new(h.mapped_system_va), mdl)?;
    }
    pool::free(cpu, mdl.0, None)
}

/// The frame mapped at `va` in the current translation.
fn frame_at(m: &Machine, va: Va) -> Option<Pfn> {
    let walk = m.space().walk(m.phys(), va);
    walk.phys.map(|pa| pa.pfn(shift_of(m)))
}

/// `MmBuildMdlForNonPagedPool`: fills the PFN array from the page tables and sets
/// MDL_SOURCE_IS_NONPAGED_POOL (and MDL_IO_SPACE when the last page is not RAM);
/// `MappedSystemVa` is the buffer itself; no lock is taken.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a page that is not mapped.
pub fn mm_build_mdl_for_nonpaged_pool(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    let mut io = false;
    for i in 0..span(shift, &h) {
        let va = Va::new(h.start_va + i * shift.page_size());
        let pfn = frame_at(m, va).ok_or_else(|| fault(m, va))?;
        io = m.phys().file_offset(pfn).is_none();
        write_pfn(cpu, mdl, i, pfn.get())?;
    }
    h.process = 0;
    h.mapped_system_va = h.virtual_address().get();
    h.flags |= MdlFlags::SOURCE_IS_NONPAGED_POOL;
    if io {
        h.flags |= MdlFlags::IO_SPACE;
    }
    write_header(cpu, mdl, &h)
}

/// Drops one lock of `pfn`: PFN_LIST_CORRUPT (0x4E: 7, PFN, share count, 0) when
/// it is not locked; frees the frame when that was its last reference.
fn unlock_frame(m: &Machine, pfn: Pfn) -> Result<(), BugCheck> {
    if m.phys().file_offset(pfn).is_none() {
        return Ok(());
    }
    let outcome = m.phys().update(pfn, |e| {
        if e.lock_count == 0 {
            return Err(u64::from(e.share_count));
        }
        e.lock_count -= 1;
        e.reference_count = e.reference_count.saturating_sub(1);
        Ok(e.reference_count == 0 && e.share_count == 0)
    });
    match outcome {
        Err(share) => Err(m.bugcheck(BugCheckCode::PFN_LIST_CORRUPT, [7, pfn.get(), share, 0])),
        Ok(true) => {
            let _ = m.phys().free(pfn, 1);
            Ok(())
        }
        Ok(false) => Ok(()),
    }
}

/// `MmProbeAndLockPages(Mdl, AccessMode, Operation)`: checks every page allows
/// the access and locks it (PFN reference and lock counts +1). User buffers are
/// charged to the current process (`Mdl->Process`). The inner `Err` is the
/// exception the routine raises: `STATUS_ACCESS_VIOLATION` for a UserMode probe
/// beyond `MmUserProbeAddress`, a page that is not valid, or a page not writable
/// for IoWriteAccess / IoModifyAccess; nothing stays locked then, and PFN[0] is −1.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn mm_probe_and_lock_pages(
    cpu: &Cpu<'_>,
    mdl: Mdl,
    mode: ProcessorMode,
    operation: LockOperation,
) -> Result<Result<(), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let layout = &m.profile().layout;
    let mut h = read_header(cpu, mdl)?;
    let va = h.virtual_address();
    let pages = span(shift, &h);
    let end = va.get().checked_add(u64::from(h.byte_count));
    if mode == ProcessorMode::UserMode && end.is_none_or(|e| e > layout.user_probe_address.get()) {
        write_pfn(cpu, mdl, 0, PFN_END)?;
        return Ok(Err(NtStatus::ACCESS_VIOLATION));
    }
    for i in 0..pages {
        write_pfn(cpu, mdl, i, PFN_END)?;
    }
    let user = !layout.is_system(va);
    let process = if user { m.processes().current() } else { None };
    let write = operation != LockOperation::IoReadAccess && user;
    let format = super::pte::PteFormat::new(m.profile().paging);
    let mut locked = Vec::new();
    let mut failure = None;
    for i in 0..pages {
        let page_va = Va::new(h.start_va + i * shift.page_size());
        if user && process.is_none() {
            failure = Some(NtStatus::ACCESS_VIOLATION);
            break;
        }
        if !user && frame_at(m, page_va).is_none() {
            let _ = m.space().page_in(m.phys(), page_va);
        }
        let flags = super::probe::pte_of(cpu, format, page_va);
        let ok = flags.is_some_and(|f| !write || f.contains(super::pte::PteFlags::WRITE));
        let Some(pfn) = frame_at(m, page_va).filter(|_| ok) else {
            failure = Some(NtStatus::ACCESS_VIOLATION);
            break;
        };
        if m.phys().file_offset(pfn).is_some() {
            m.phys().update(pfn, |e| {
                e.reference_count += 1;
                e.lock_count += 1;
            });
            locked.push(pfn);
        } else {
            h.flags |= MdlFlags::IO_SPACE;
        }
        write_pfn(cpu, mdl, i, pfn.get())?;
    }
    if let Some(status) = failure {
        for pfn in locked {
            unlock_frame(m, pfn)?;
        }
        write_pfn(cpu, mdl, 0, PFN_END)?;
        h.process = 0;
        write_header(cpu, mdl, &h)?;
        return Ok(Err(status));
    }
    h.flags.set(MdlFlags::WRITE_OPERATION, operation != LockOperation::IoReadAccess);
    h.flags |= MdlFlags::PAGES_LOCKED;
    h.process = match &process {
        Some(p) => {
            p.add_locked(pages);
            p.object().get()
        }
        None => 0,
    };
    write_header(cpu, mdl, &h)?;
    Ok(Ok(()))
}

/// `MmUnlockPages(Mdl)`: unmaps the MDL's system mapping if it has one, drops one
/// lock from every page and the process's locked-page count, clears
/// MDL_PAGES_LOCKED.
///
/// # Errors
/// PROCESS_HAS_LOCKED_PAGES (0x76: 1, MDL, locked pages of the process, 0) when a
/// process MDL's pages are not locked; PFN_LIST_CORRUPT (0x4E: 7, PFN, share
/// count, 0) when a page is unlocked more often than it was locked.
pub fn mm_unlock_pages(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let mut h = read_header(cpu, mdl)?;
    if h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        mm_unmap_locked_pages(cpu, Va::new(h.mapped_system_va), mdl)?;
        h = read_header(cpu, mdl)?;
    }
    let pages = span(shift, &h);
    if h.process != 0 {
        if let Some(p) = m.processes().by_object(Va::new(h.process)) {
            if !p.remove_locked(pages) {
                return Err(m.bugcheck(BugCheckCode::PROCESS_HAS_LOCKED_PAGES, [1, mdl.0.get(), p.locked_pages(), 0]));
            }
        }
    }
    for i in 0..pages {
        let pfn = read_pfn(cpu, mdl, i)?;
        if pfn == PFN_END {
            break;
        }
        unlock_frame(m, Pfn::new(pfn))?;
    }
    h.flags -= MdlFlags::PAGES_LOCKED | MdlFlags::IO_SPACE;
    write_header(cpu, mdl, &h)
}

/// The MDL's frames, up to the first −1 entry, as runs of consecutive frames.
fn frames_of(cpu: &Cpu<'_>, mdl: Mdl, pages: u64) -> Result<Frames, BugCheck> {
    let mut runs: Vec<(Pfn, u64)> = Vec::new();
    for i in 0..pages {
        let pfn = read_pfn(cpu, mdl, i)?;
        if pfn == PFN_END {
            break;
        }
        match runs.last_mut() {
            Some((first, n)) if first.get() + *n == pfn => *n += 1,
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
    if frames.runs.is_empty() || frames.runs.iter().any(|&(p, _)| m.phys().file_offset(p).is_none()) {
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
/// process. Unmapping a system address the MDL does not hold mapped is ignored
/// (Driver Verifier's 0xC4 check is not modelled).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
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
    if !h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        return Ok(());
    }
    let pages = span(shift, &h);
    let extra = if h.flags.contains(MdlFlags::FREE_EXTRA_PTES) { read_pfn(cpu, mdl, pages)? } else { 0 };
    let start = Va::new(base.page_base(shift).get() - extra * shift.page_size());
    let _ = m.space().unmap(m.phys(), start, pages + extra);
    m.system_ptes().release(start, pages + extra);
    h.flags -= MdlFlags::MAPPED_TO_SYSTEM_VA | MdlFlags::PARTIAL_HAS_BEEN_MAPPED | MdlFlags::FREE_EXTRA_PTES;
    write_header(cpu, mdl, &h)
}

/// `IoBuildPartialMdl(SourceMdl, TargetMdl, VirtualAddress, Length)`: `target`
/// describes `[va, va + length)` of the source's buffer (length 0: to its end),
/// with the source's frames. A mapped source makes the target
/// MDL_PARENT_MAPPED_SYSTEM_VA with `MappedSystemVa` inside the parent's mapping
/// (research/nt-algorithms.md §6.6 [DESIGN]).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an MDL outside the address space.
pub fn io_build_partial_mdl(cpu: &Cpu<'_>, source: Mdl, target: Mdl, va: Va, length: u64) -> Result<(), BugCheck> {
    let shift = shift_of(cpu.machine());
    let s = read_header(cpu, source)?;
    let t = read_header(cpu, target)?;
    let offset = va.get().wrapping_sub(s.virtual_address().get());
    let length = if length == 0 { u64::from(s.byte_count).saturating_sub(offset) } else { length };
    let inherited = s.flags & (MdlFlags::IO_PAGE_READ | MdlFlags::SOURCE_IS_NONPAGED_POOL | MdlFlags::IO_SPACE);
    let mut flags =
        (t.flags & (MdlFlags::ALLOCATED_FIXED_SIZE | MdlFlags::ALLOCATED_MUST_SUCCEED)) | inherited | MdlFlags::PARTIAL;
    if s.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        flags |= MdlFlags::PARENT_MAPPED_SYSTEM_VA;
    }
    let h = MdlHeader {
        next: t.next,
        size: t.size,
        flags,
        process: s.process,
        mapped_system_va: s.mapped_system_va.wrapping_add(offset),
        start_va: va.page_base(shift).get(),
        byte_count: length as u32,
        byte_offset: (va.get() & (shift.page_size() - 1)) as u32,
    };
    let first = (h.start_va - s.start_va) >> shift.0;
    for i in 0..address_and_size_to_span_pages(shift, va, length) {
        write_pfn(cpu, target, i, read_pfn(cpu, source, first + i)?)?;
    }
    write_header(cpu, target, &h)
}

/// `MmAdvanceMdl(Mdl, NumberOfBytes)`: moves the buffer's start forward; the end
/// stays. Whole pages passed are unlocked at once (when the MDL is locked) and
/// dropped from the PFN array; a system mapping keeps its PTEs until unmapped
/// (recorded with MDL_FREE_EXTRA_PTES, the count stored after the PFN array).
/// The inner `Err` is `STATUS_INVALID_PARAMETER_2` when `bytes` is beyond the
/// buffer's end.
///
/// # Errors
/// PFN_LIST_CORRUPT (0x4E) as [`mm_unlock_pages`].
pub fn mm_advance_mdl(cpu: &Cpu<'_>, mdl: Mdl, bytes: u64) -> Result<Result<(), NtStatus>, BugCheck> {
    let m = cpu.machine();
    let shift = shift_of(m);
    let page = shift.page_size();
    let mut h = read_header(cpu, mdl)?;
    if bytes > u64::from(h.byte_count) {
        return Ok(Err(NtStatus::INVALID_PARAMETER_2));
    }
    let pages = span(shift, &h);
    let skip = (u64::from(h.byte_offset) + bytes) / page;
    let old_extra = if h.flags.contains(MdlFlags::FREE_EXTRA_PTES) { read_pfn(cpu, mdl, pages)? } else { 0 };
    if skip > 0 {
        let entries: Vec<u64> = (0..pages).map(|i| read_pfn(cpu, mdl, i)).collect::<Result<_, _>>()?;
        if h.flags.contains(MdlFlags::PAGES_LOCKED) && !h.flags.contains(MdlFlags::PARTIAL) {
            for &pfn in entries.iter().take(skip as usize).filter(|&&p| p != PFN_END) {
                unlock_frame(m, Pfn::new(pfn))?;
            }
            if let Some(p) = (h.process != 0).then(|| m.processes().by_object(Va::new(h.process))).flatten() {
                p.remove_locked(skip.min(pages));
            }
        }
        for (i, &pfn) in entries.iter().skip(skip as usize).enumerate() {
            write_pfn(cpu, mdl, i as u64, pfn)?;
        }
    }
    h.start_va += skip * page;
    h.byte_offset = ((u64::from(h.byte_offset) + bytes) % page) as u32;
    h.byte_count -= bytes as u32;
    if h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA) {
        h.mapped_system_va += bytes;
        if skip > 0 {
            h.flags |= MdlFlags::FREE_EXTRA_PTES;
            write_pfn(cpu, mdl, span(shift, &h), old_extra + skip)?;
        }
    }
    write_header(cpu, mdl, &h)?;
    Ok(Ok(()))
}

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
