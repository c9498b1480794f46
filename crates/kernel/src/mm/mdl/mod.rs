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
//! Files: `lock` (probe, lock, unlock, nonpaged-pool MDLs), `map` (system and
//! user mappings), `partial` (IoBuildPartialMdl, MmAdvanceMdl), `pages`
//! (MmAllocatePagesForMdl(Ex), MmFreePagesFromMdl), `protect`
//! (MmProtectMdlSystemAddress), `reserved` (reserved
//! mappings and their SYSTEM_PTE_MISUSE checks, 0xDA).
//!
//! Not modelled yet: MDLs over device memory being mapped (MDL_IO_SPACE pages are
//! recorded, mapping them returns NULL), the MDL lookaside list (every MDL comes
//! from nonpaged pool, tag "Mdl ").

use ntmem_machine::{Edition, PageShift, Pfn, Release, Va};

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::Machine;

mod lock;
mod map;
mod pages;
mod partial;
mod protect;
mod reserved;

pub use lock::{mm_build_mdl_for_nonpaged_pool, mm_probe_and_lock_pages, mm_unlock_pages};
pub use map::{mm_get_system_address_for_mdl_safe, mm_map_locked_pages_specify_cache, mm_unmap_locked_pages};
pub use pages::{mm_allocate_pages_for_mdl, mm_allocate_pages_for_mdl_ex, mm_free_pages_from_mdl};
pub use partial::{io_build_partial_mdl, mm_advance_mdl};
pub use protect::{mm_protect_mdl_system_address, MdlProtection};
pub use reserved::{
    mm_allocate_mapping_address, mm_free_mapping_address, mm_map_locked_pages_with_reserved_mapping,
    mm_unmap_reserved_mapping, RESERVED_HEADER_PTES,
};

/// `sizeof(MDL)` on x64.
pub const MDL_HEADER_SIZE: u64 = 0x30;
// The header ntmem reads and writes is the x64 MDL (include/ntmem/io.h asserts the
// C side: size 0x30, ByteCount at 0x28).
const _: () = assert!(MDL_HEADER_SIZE == 0x30);
/// A PFN array entry that ends a short array (`LIST_HEAD`, −1).
pub const PFN_END: u64 = u64::MAX;
/// Pool tag of MDLs ("Mdl ").
pub const MDL_TAG: PoolTag = PoolTag::new(*b"Mdl ");
/// The largest `Size` the CSHORT field holds (an MDL of ntmem's x64 layout for a
/// longer buffer records `Size` as 0xFFFF: research U-10, how Windows sets it is
/// undocumented). IoAllocateMdl's limit is per edition: [`max_mdl_buffer`].
pub const MAX_MDL_SIZE: u64 = 0xFFFF;

/// The longest buffer IoAllocateMdl describes on `edition` (learn.microsoft.com,
/// "IoAllocateMdl function (wdm.h)"; research/dma-verifier-views.md §4.2): Windows
/// Vista and Server 2008 2 GB − PAGE_SIZE; Windows 7 and later (here Windows 8)
/// 4 GB − PAGE_SIZE; Windows 2000, XP and Server 2003
/// `PAGE_SIZE * (65535 - sizeof(MDL)) / sizeof(ULONG_PTR)` with the edition's own
/// `sizeof(MDL)` (0x1C on x86, 0x30 on 64-bit) — 67,079,168 bytes (≈ 64 MB) on
/// x86, 33,529,344 (≈ 32 MB) on x64, twice that with IA-64's 8 KB pages. Seed 001:
/// this is why a 1 GB WinDriver lock cannot even get its MDL before Vista.
pub fn max_mdl_buffer(edition: &Edition) -> u64 {
    let page = edition.arch.page_shift().page_size();
    match edition.release {
        Release::WindowsVista => (2 << 30) - page,
        Release::Windows8 => (4 << 30) - page,
        _ => {
            let sizeof_mdl = if edition.arch.is_64bit() { 0x30 } else { 0x1C };
            page * (0xFFFF - sizeof_mdl) / edition.arch.pointer_size()
        }
    }
}

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
    fn from_bytes(b: &[u8; MDL_HEADER_SIZE as usize]) -> MdlHeader {
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

    fn to_bytes(self) -> [u8; MDL_HEADER_SIZE as usize] {
        let mut b = [0u8; MDL_HEADER_SIZE as usize];
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
        Va::new(self.start_va.wrapping_add(u64::from(self.byte_offset)))
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

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size)`: pages the buffer touches, counted
/// without overflow for any `Size` a driver passes (the WDK macro's SIZE_T sum
/// would wrap near 2^64; every caller then refuses the count as too large).
pub fn address_and_size_to_span_pages(shift: PageShift, va: Va, size: u64) -> u64 {
    let page = shift.page_size();
    let end = u128::from(va.get() & (page - 1)) + u128::from(size);
    end.div_ceil(u128::from(page)) as u64
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
/// or a buffer longer than the edition allows ([`max_mdl_buffer`]).
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_allocate_mdl(cpu: &Cpu<'_>, va: Va, length: u64) -> Result<Option<Mdl>, BugCheck> {
    let shift = shift_of(cpu.machine());
    let size = mm_size_of_mdl(shift, va, length);
    if length == 0 || length > u64::from(u32::MAX) || length > max_mdl_buffer(cpu.machine().profile().edition) {
        return Ok(None);
    }
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, MDL_TAG)? else { return Ok(None) };
    let mdl = Mdl(block);
    write_header(cpu, mdl, &MdlHeader::from_bytes(&[0; 0x30]))?;
    mm_initialize_mdl(cpu, mdl, va, length)?;
    Ok(Some(mdl))
}

/// 0xC4 subcode: IoFreeMdl of an MDL still mapped to system space.
const VERIFIER_FREE_MAPPED_MDL: u64 = 0xB8;

/// `IoFreeMdl`: a partial MDL mapped on its own is unmapped first
/// (MmPrepareMdlForReuse), then the MDL goes back to the pool.
///
/// # Errors
/// Under Driver Verifier, DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4: 0xB8, MDL,
/// `MdlFlags`, 0) for an MDL still mapped to system space (nt-algorithms.md §6.2;
/// without Verifier Windows frees it and the mapping's system PTEs are lost, as
/// here). A bugcheck from the pool (freeing something that is not an MDL).
pub fn io_free_mdl(cpu: &Cpu<'_>, mdl: Mdl) -> Result<(), BugCheck> {
    let h = read_header(cpu, mdl)?;
    let m = cpu.machine();
    if !m.verifier().is_empty()
        && h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA)
        && !h.flags.contains(MdlFlags::PARTIAL)
    {
        let p = [VERIFIER_FREE_MAPPED_MDL, mdl.0.get(), u64::from(h.flags.bits()), 0];
        return Err(m.bugcheck(BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, p));
    }
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
