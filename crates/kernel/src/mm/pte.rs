//! Page-table entries in each architecture's real format, with Windows' bit names
//! (research/nt-algorithms.md §8.3–§8.4, ReactOS `mmtypes.h` as a source of facts).
//!
//! [`PteFlags`] names the bits the way `!pte` prints them; on x86, PAE and x64 the
//! flag values *are* the hardware bit positions (NoExecute, bit 63, exists only with
//! 64-bit entries). IA-64 entries use the architecture's short format for the
//! fields that exist in hardware (present, memory attribute, accessed, dirty,
//! privilege level, access rights, physical page number at bit 13 for 8 KB pages);
//! the software bits (LargePage, Global, CopyOnWrite, Prototype) sit in bits that
//! format leaves to software. That placement is ntmem's; Windows' IA-64 layout is
//! not publicly documented bit for bit.

use ntmem_machine::{PagingMode, Pfn};

bitflags::bitflags! {
    /// PTE bits, named as Windows names them (`HARDWARE_PTE`, `MMPTE_HARDWARE`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// Present: the CPU may use the entry.
        const VALID = 1 << 0;
        /// Writable (the hardware R/W bit; Windows' `Write`, `Dirty1` on later x64).
        const WRITE = 1 << 1;
        /// User-accessible (U/S): set for user pages and the tables above them.
        const OWNER = 1 << 2;
        /// Write-through (PWT).
        const WRITE_THROUGH = 1 << 3;
        /// Cache disable (PCD).
        const CACHE_DISABLE = 1 << 4;
        /// Set by the CPU on access.
        const ACCESSED = 1 << 5;
        /// Set by the CPU on write.
        const DIRTY = 1 << 6;
        /// A large page (PS) in a directory entry.
        const LARGE_PAGE = 1 << 7;
        /// Not flushed on address-space switch (kernel mappings).
        const GLOBAL = 1 << 8;
        /// Software: copy on write.
        const COPY_ON_WRITE = 1 << 9;
        /// Software: a prototype PTE.
        const PROTOTYPE = 1 << 10;
        /// Software: the page may be written (the MP kernels' software `Write` bit).
        const SOFTWARE_WRITE = 1 << 11;
        /// No execute (PAE and x64 only).
        const NO_EXECUTE = 1 << 63;
    }
}

/// The flags a valid kernel mapping of RAM gets: Windows' `ValidKernelPte`
/// (Valid | Write | Dirty | Accessed, plus Global), nt-algorithms.md §8.4.
pub const VALID_KERNEL: PteFlags =
    PteFlags::VALID.union(PteFlags::WRITE).union(PteFlags::DIRTY).union(PteFlags::ACCESSED).union(PteFlags::GLOBAL);

/// The flags of a directory entry pointing at a lower-level table.
pub const TABLE_ENTRY: PteFlags =
    PteFlags::VALID.union(PteFlags::WRITE).union(PteFlags::ACCESSED).union(PteFlags::DIRTY);

/// One level of a page-table walk: which VA bits index it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The name `!pte` gives an entry at this level.
    pub name: &'static str,
    /// The lowest VA bit of the index.
    pub shift: u32,
    /// Index width in bits.
    pub bits: u32,
}

const fn lv(name: &'static str, shift: u32, bits: u32) -> Level {
    Level { name, shift, bits }
}

/// The entry format and table shape of a paging mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PteFormat {
    mode: PagingMode,
}

impl PteFormat {
    /// The format of `mode`.
    pub const fn new(mode: PagingMode) -> PteFormat {
        PteFormat { mode }
    }

    /// The levels, top first (seed 000 §2.4 Figure 2; nt-algorithms.md §8.3).
    pub fn levels(self) -> &'static [Level] {
        const X86: [Level; 2] = [lv("PDE", 22, 10), lv("PTE", 12, 10)];
        const PAE: [Level; 3] = [lv("PPE", 30, 2), lv("PDE", 21, 9), lv("PTE", 12, 9)];
        const X64: [Level; 4] = [lv("PXE", 39, 9), lv("PPE", 30, 9), lv("PDE", 21, 9), lv("PTE", 12, 9)];
        const IA64: [Level; 3] = [lv("PPE", 33, 10), lv("PDE", 23, 10), lv("PTE", 13, 10)];
        match self.mode {
            PagingMode::X86 => &X86,
            PagingMode::X86Pae => &PAE,
            PagingMode::X64 => &X64,
            PagingMode::Ia64 => &IA64,
        }
    }

    /// Bytes per entry: 4 on x86 without PAE, 8 otherwise.
    pub fn entry_size(self) -> u64 {
        match self.mode {
            PagingMode::X86 => 4,
            _ => 8,
        }
    }

    /// The highest frame number an entry can hold.
    pub fn max_pfn(self) -> u64 {
        match self.mode {
            PagingMode::X86 => (1 << 20) - 1,
            PagingMode::X86Pae => (1 << 26) - 1,
            PagingMode::X64 => (1 << 40) - 1,
            PagingMode::Ia64 => (1 << 37) - 1,
        }
    }

    /// Encodes a frame and flags as the raw entry.
    ///
    /// # Panics
    /// If `pfn` does not fit the format (the frame allocator never hands such frames
    /// to a machine whose paging mode cannot reach them).
    pub fn encode(self, pfn: Pfn, flags: PteFlags) -> u64 {
        assert!(pfn.get() <= self.max_pfn(), "{pfn:?} does not fit a {:?} PTE", self.mode);
        match self.mode {
            PagingMode::X86 => (pfn.get() << 12) | (flags.bits() & 0xFFF),
            PagingMode::X86Pae | PagingMode::X64 => (pfn.get() << 12) | flags.bits(),
            PagingMode::Ia64 => (pfn.get() << 13) | ia64::to_raw(flags),
        }
    }

    /// Decodes a raw entry: its frame and flags.
    pub fn decode(self, raw: u64) -> (Pfn, PteFlags) {
        match self.mode {
            PagingMode::X86 => (Pfn::new((raw & 0xFFFF_FFFF) >> 12), PteFlags::from_bits_truncate(raw & 0xFFF)),
            PagingMode::X86Pae => (Pfn::new((raw >> 12) & self.max_pfn()), PteFlags::from_bits_truncate(raw)),
            PagingMode::X64 => (Pfn::new((raw >> 12) & self.max_pfn()), PteFlags::from_bits_truncate(raw)),
            PagingMode::Ia64 => (Pfn::new((raw >> 13) & self.max_pfn()), ia64::from_raw(raw)),
        }
    }
}

/// The software protection an invalid PTE keeps in bits 5–9 (Windows' `MM_*`
/// protection codes, nt-algorithms.md §8.5): what the page's valid PTE and host
/// mapping become when it is paged back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// MM_READONLY (1): read-only data (an image's `.rdata`).
    ReadOnly = 1,
    /// MM_EXECUTE_READ (3): an image's code.
    ExecuteRead = 3,
    /// MM_READWRITE (4): paged pool, an image's writable data.
    ReadWrite = 4,
    /// MM_EXECUTE_READWRITE (6): an image section that asks for all three.
    ExecuteReadWrite = 6,
}

impl Protection {
    fn from_code(code: u64) -> Option<Protection> {
        match code {
            1 => Some(Protection::ReadOnly),
            3 => Some(Protection::ExecuteRead),
            4 => Some(Protection::ReadWrite),
            6 => Some(Protection::ExecuteReadWrite),
            _ => None,
        }
    }
}

/// The Protection field of an invalid PTE: five bits from bit 5.
const PROTECTION_SHIFT: u32 = 5;
const PROTECTION_MASK: u64 = 0x1F;
/// Software bit 11: `Transition` in an invalid PTE.
const TRANSITION: u64 = 1 << 11;

impl PteFormat {
    /// The invalid PTE of a page that lives in the paging file at `slot`
    /// (nt-algorithms.md §8.5): Valid 0, PageFileLow (bits 1–4) = paging file 0,
    /// Protection (bits 5–9) = `protection`, Prototype 0, Transition 0, and
    /// PageFileHigh = the slot — bits 12–31 on x86, the upper 32 bits otherwise. ntmem
    /// numbers slots from 1, so that no paging-file PTE reads as a demand-zero one.
    ///
    /// # Panics
    /// If `slot` is 0 or does not fit the field.
    pub fn encode_paging_file(self, slot: u64, protection: Protection) -> u64 {
        assert!(slot > 0 && slot <= self.max_paging_file_slot(), "paging-file slot {slot} does not fit");
        let high = match self.mode {
            PagingMode::X86 => slot << 12,
            _ => slot << 32,
        };
        high | ((protection as u64) << PROTECTION_SHIFT)
    }

    /// The protection a paging-file PTE keeps (see [`PteFormat::encode_paging_file`]);
    /// `None` when it is not one ntmem writes.
    pub fn paging_file_protection(self, raw: u64) -> Option<Protection> {
        self.decode_paging_file(raw)?;
        Protection::from_code((raw >> PROTECTION_SHIFT) & PROTECTION_MASK)
    }

    /// The highest slot `PageFileHigh` can hold: 2^20 − 1 on x86 without PAE (so a
    /// paging file there is at most 4 GB, as Windows limits it), 2^32 − 1 elsewhere.
    pub fn max_paging_file_slot(self) -> u64 {
        match self.mode {
            PagingMode::X86 => (1 << 20) - 1,
            _ => (1 << 32) - 1,
        }
    }

    /// The paging-file slot of an invalid PTE in that format, if it is one.
    pub fn decode_paging_file(self, raw: u64) -> Option<u64> {
        let valid = match self.mode {
            PagingMode::Ia64 => ia64::from_raw(raw).contains(PteFlags::VALID),
            _ => raw & PteFlags::VALID.bits() != 0,
        };
        if valid || raw & (PteFlags::PROTOTYPE.bits() | TRANSITION) != 0 {
            return None;
        }
        let slot = match self.mode {
            PagingMode::X86 => (raw & 0xFFFF_FFFF) >> 12,
            _ => raw >> 32,
        };
        (slot != 0).then_some(slot)
    }
}

/// IA-64 short-format positions (Intel Itanium Architecture SDM vol. 2, "Translation
/// Insertion Format"): p 0, ma 2–4 (0 WB, 4 UC, 6 WC), a 5, d 6, pl 7–8, ar 9–11, ppn 13–49.
mod ia64 {
    use super::PteFlags;

    const P: u64 = 1;
    const MA_UC: u64 = 4 << 2;
    const MA_WC: u64 = 6 << 2;
    const MA_MASK: u64 = 7 << 2;
    const A: u64 = 1 << 5;
    const D: u64 = 1 << 6;
    const PL_USER: u64 = 3 << 7;
    const AR_WRITE: u64 = 1 << 10;
    const AR_EXECUTE: u64 = 1 << 9;
    /// Software bits in the ignored field (bits 53–63).
    const SW: [(PteFlags, u64); 5] = [
        (PteFlags::LARGE_PAGE, 1 << 53),
        (PteFlags::GLOBAL, 1 << 54),
        (PteFlags::COPY_ON_WRITE, 1 << 55),
        (PteFlags::PROTOTYPE, 1 << 56),
        (PteFlags::SOFTWARE_WRITE, 1 << 57),
    ];

    pub fn to_raw(f: PteFlags) -> u64 {
        let mut raw = 0;
        let pairs = [
            (PteFlags::VALID, P),
            (PteFlags::ACCESSED, A),
            (PteFlags::DIRTY, D),
            (PteFlags::OWNER, PL_USER),
            (PteFlags::WRITE, AR_WRITE),
        ];
        for (flag, bit) in pairs.into_iter().chain(SW) {
            if f.contains(flag) {
                raw |= bit;
            }
        }
        if !f.contains(PteFlags::NO_EXECUTE) {
            raw |= AR_EXECUTE;
        }
        raw | match (f.contains(PteFlags::CACHE_DISABLE), f.contains(PteFlags::WRITE_THROUGH)) {
            (true, true) => MA_UC,
            (true, false) => MA_WC,
            _ => 0,
        }
    }

    pub fn from_raw(raw: u64) -> PteFlags {
        let mut f = PteFlags::empty();
        let pairs = [
            (PteFlags::VALID, P),
            (PteFlags::ACCESSED, A),
            (PteFlags::DIRTY, D),
            (PteFlags::OWNER, PL_USER),
            (PteFlags::WRITE, AR_WRITE),
        ];
        for (flag, bit) in pairs.into_iter().chain(SW) {
            if raw & bit == bit {
                f |= flag;
            }
        }
        if raw & AR_EXECUTE == 0 {
            f |= PteFlags::NO_EXECUTE;
        }
        match raw & MA_MASK {
            MA_UC => f | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH,
            MA_WC => f | PteFlags::CACHE_DISABLE,
            _ => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [PagingMode; 4] = [PagingMode::X86, PagingMode::X86Pae, PagingMode::X64, PagingMode::Ia64];

    #[test]
    fn entries_round_trip_in_every_format() {
        for mode in MODES {
            let f = PteFormat::new(mode);
            for flags in [
                VALID_KERNEL,
                TABLE_ENTRY | PteFlags::OWNER,
                VALID_KERNEL | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH,
            ] {
                let raw = f.encode(Pfn::new(0xABCDE), flags);
                assert_eq!(f.decode(raw), (Pfn::new(0xABCDE), flags), "{mode:?}");
            }
        }
    }

    #[test]
    fn x86_entries_are_the_hardware_layout() {
        let f = PteFormat::new(PagingMode::X86);
        assert_eq!(f.encode(Pfn::new(0x12345), VALID_KERNEL), 0x1234_5163);
        let pae = PteFormat::new(PagingMode::X86Pae);
        assert_eq!(pae.encode(Pfn::new(0x12_3456), PteFlags::VALID | PteFlags::NO_EXECUTE), 0x8000_0001_2345_6001);
    }

    #[test]
    fn paging_file_entries_are_invalid_and_round_trip() {
        for mode in MODES {
            let f = PteFormat::new(mode);
            let raw = f.encode_paging_file(0x1234, Protection::ReadWrite);
            assert_eq!(f.decode_paging_file(raw), Some(0x1234), "{mode:?}");
            for p in
                [Protection::ReadOnly, Protection::ExecuteRead, Protection::ReadWrite, Protection::ExecuteReadWrite]
            {
                let raw = f.encode_paging_file(7, p);
                assert_eq!((f.decode_paging_file(raw), f.paging_file_protection(raw)), (Some(7), Some(p)), "{mode:?}");
            }
            assert_eq!(f.paging_file_protection(f.encode(Pfn::new(5), VALID_KERNEL)), None);
            assert_eq!(f.decode_paging_file(f.encode(Pfn::new(5), VALID_KERNEL)), None);
            assert_eq!(f.decode_paging_file(0), None);
            let top = f.max_paging_file_slot();
            assert_eq!(f.decode_paging_file(f.encode_paging_file(top, Protection::ReadWrite)), Some(top), "{mode:?}");
        }
        assert_eq!(PteFormat::new(PagingMode::X86).encode_paging_file(3, Protection::ReadWrite), 0x3080);
        assert_eq!(PteFormat::new(PagingMode::X64).encode_paging_file(3, Protection::ExecuteRead), 0x3_0000_0060);
    }

    #[test]
    fn levels_cover_the_virtual_address_bits() {
        let covered = |m: PagingMode| {
            let l = PteFormat::new(m).levels();
            l[0].shift + l[0].bits
        };
        assert_eq!(covered(PagingMode::X86), 32);
        assert_eq!(covered(PagingMode::X86Pae), 32);
        assert_eq!(covered(PagingMode::X64), 48);
        assert_eq!(covered(PagingMode::Ia64), 43);
    }
}
