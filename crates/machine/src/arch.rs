//! Processor architectures and paging modes, as a table of facts.
//!
//! Sources: seed 000 §2.2 (page sizes, pointer sizes), §2.4 (VA bits), §3 (physical
//! address bits), §7.1 (pool header size); `research/nt-algorithms.md` §8.3 (paging
//! structures); Microsoft, "How do I keep my driver from running out of kernel-mode
//! stack?" (learn.microsoft.com previous-versions dn613940: 12 KB x86, 24 KB x64,
//! 32 KB plus a 32 KB backing store on Itanium); `_MMPFN` sizes as public struct dumps
//! (vergiliusproject.com) give them: 0x18 bytes on 32-bit XP/2003, 0x30 on 64-bit.

use crate::addr::PageShift;

/// A processor architecture Windows ran on in the seed's era.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 32-bit x86.
    X86,
    /// x64 (AMD64 and Intel EM64T, seed 000 §2.2).
    X64,
    /// Intel Itanium (IPF).
    Ia64,
}

/// One row of [`ARCH_FACTS`].
#[derive(Debug)]
struct ArchFacts {
    name: &'static str,
    page_shift: PageShift,
    pointer_size: u64,
    pool_header_size: u64,
    va_bits: u32,
    kernel_stack_size: u64,
    cache_line: u64,
    max_processors: u32,
    pfn_entry_size: u64,
}

/// The architecture table, in [`Arch`] order.
///
/// `cache_line` is ntmem's `KeGetRecommendedSharedDataAlignment` answer: seed 000
/// §5.4.2 gives 16–128 bytes "depending on the hardware"; Pentium 4/Opteron-class x86
/// and x64 have 64-byte lines, Itanium 2 has 128-byte L2/L3 lines. `max_processors` is
/// the width of `KAFFINITY` (a `ULONG_PTR` bit mask): 32 on 32-bit, 64 on 64-bit.
/// IA-64's kernel stack is the 32 KB memory stack; its separate 32 KB register backing
/// store is not modelled.
const ARCH_FACTS: [ArchFacts; 3] = [
    ArchFacts {
        name: "x86",
        page_shift: PageShift::K4,
        pointer_size: 4,
        pool_header_size: 8,
        va_bits: 32,
        kernel_stack_size: 12 << 10,
        cache_line: 64,
        max_processors: 32,
        pfn_entry_size: 0x18,
    },
    ArchFacts {
        name: "x64",
        page_shift: PageShift::K4,
        pointer_size: 8,
        pool_header_size: 16,
        va_bits: 48,
        kernel_stack_size: 24 << 10,
        cache_line: 64,
        max_processors: 64,
        pfn_entry_size: 0x30,
    },
    ArchFacts {
        name: "ia64",
        page_shift: PageShift::K8,
        pointer_size: 8,
        pool_header_size: 16,
        va_bits: 43,
        kernel_stack_size: 32 << 10,
        cache_line: 128,
        max_processors: 64,
        pfn_entry_size: 0x30,
    },
];

impl Arch {
    fn facts(self) -> &'static ArchFacts {
        &ARCH_FACTS[self as usize]
    }

    /// Short name: `x86`, `x64`, `ia64`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// `PAGE_SHIFT`: 12 (4 KB) on x86 and x64, 13 (8 KB) on Itanium (seed 000 §2.2).
    pub fn page_shift(self) -> PageShift {
        self.facts().page_shift
    }

    /// `sizeof(PVOID)`: 4 or 8 (seed 000 §2.2).
    pub fn pointer_size(self) -> u64 {
        self.facts().pointer_size
    }

    /// `sizeof(POOL_HEADER)`: 8 on 32-bit, 16 on 64-bit (seed 000 §7.1).
    pub fn pool_header_size(self) -> u64 {
        self.facts().pool_header_size
    }

    /// Implemented virtual-address bits: 32, 48 (x64), 43 (Itanium) (seed 000 §2.4).
    pub fn va_bits(self) -> u32 {
        self.facts().va_bits
    }

    /// `KERNEL_STACK_SIZE`: 12 KB x86, 24 KB x64, 32 KB IA-64 (dn613940).
    pub fn kernel_stack_size(self) -> u64 {
        self.facts().kernel_stack_size
    }

    /// Recommended shared-data alignment (`KeGetRecommendedSharedDataAlignment`): 64 bytes
    /// on x86 and x64, 128 on Itanium 2 (seed 000 §5.4.2 gives 16–128 "depending on the
    /// hardware").
    pub fn cache_line(self) -> u64 {
        self.facts().cache_line
    }

    /// Most processors one system runs: bits in `KAFFINITY`.
    pub fn max_processors(self) -> u32 {
        self.facts().max_processors
    }

    /// Size of one PFN database entry (`_MMPFN`), which sizes the PFN database.
    pub fn pfn_entry_size(self) -> u64 {
        self.facts().pfn_entry_size
    }

    /// Whether this is a 64-bit architecture.
    pub fn is_64bit(self) -> bool {
        self.pointer_size() == 8
    }
}

/// How virtual addresses are translated: the page-table format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PagingMode {
    /// x86 without PAE: 2 levels of 1024 4-byte entries.
    X86,
    /// x86 with PAE (`/PAE`, Ntkrnlpa.exe): PDPT of 4, then 512 and 512 8-byte entries.
    X86Pae,
    /// x64: 4 levels of 512 8-byte entries.
    X64,
    /// Itanium with 8 KB pages: 3 levels of 1024 8-byte entries (13+10+10+10 = 43 bits).
    Ia64,
}

/// One row of [`PAGING_FACTS`].
#[derive(Debug)]
struct PagingFacts {
    name: &'static str,
    pte_size: u64,
    /// Entries per table, top level first.
    entries: &'static [u64],
    phys_bits: u32,
}

/// The paging table, in [`PagingMode`] order (nt-algorithms §8.3, seed 000 §2.4, §3).
///
/// Physical bits: x86 decodes 32; PAE 37 usable for RAM (seed 000 §3: 32-bit Windows
/// uses at most 37 bits, 128 GB); x64 40 — seed 000 §3 says 64-bit Windows supports 40
/// to 50 bits, and 40 bits (1 TB) is what the largest Table 1 x64 edition needs;
/// IA-64 50.
const PAGING_FACTS: [PagingFacts; 4] = [
    PagingFacts { name: "x86", pte_size: 4, entries: &[1024, 1024], phys_bits: 32 },
    PagingFacts { name: "x86-pae", pte_size: 8, entries: &[4, 512, 512], phys_bits: 37 },
    PagingFacts { name: "x64", pte_size: 8, entries: &[512, 512, 512, 512], phys_bits: 40 },
    PagingFacts { name: "ia64", pte_size: 8, entries: &[1024, 1024, 1024], phys_bits: 50 },
];

impl PagingMode {
    fn facts(self) -> &'static PagingFacts {
        &PAGING_FACTS[self as usize]
    }

    /// The paging mode Windows uses on `arch`, given whether `/PAE` is in effect.
    pub fn for_arch(arch: Arch, pae: bool) -> PagingMode {
        match arch {
            Arch::X86 if pae => PagingMode::X86Pae,
            Arch::X86 => PagingMode::X86,
            Arch::X64 => PagingMode::X64,
            Arch::Ia64 => PagingMode::Ia64,
        }
    }

    /// Name: `x86`, `x86-pae`, `x64`, `ia64`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Levels of page tables.
    pub fn levels(self) -> u32 {
        self.facts().entries.len() as u32
    }

    /// Bytes per page-table entry.
    pub fn pte_size(self) -> u64 {
        self.facts().pte_size
    }

    /// Entries per table at each level, top level first.
    pub fn table_entries(self) -> &'static [u64] {
        self.facts().entries
    }

    /// Physical-address bits usable for RAM.
    pub fn phys_bits(self) -> u32 {
        self.facts().phys_bits
    }
}

impl serde::Serialize for PagingMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_levels_cover_the_architectures_va_bits() {
        let cases = [
            (PagingMode::X86, Arch::X86),
            (PagingMode::X86Pae, Arch::X86),
            (PagingMode::X64, Arch::X64),
            (PagingMode::Ia64, Arch::Ia64),
        ];
        for (mode, arch) in cases {
            let index_bits: u32 = mode.table_entries().iter().map(|n| n.trailing_zeros()).sum();
            assert_eq!(index_bits + arch.page_shift().0, arch.va_bits(), "{}", mode.name());
        }
        assert_eq!(PagingMode::X86.levels(), 2);
        assert_eq!(PagingMode::X86Pae.levels(), 3);
        assert_eq!(PagingMode::X64.levels(), 4);
        assert_eq!(PagingMode::Ia64.levels(), 3);
    }

    #[test]
    fn architecture_facts_match_the_seed() {
        assert_eq!(Arch::X86.page_shift().page_size(), 4096);
        assert_eq!(Arch::Ia64.page_shift().page_size(), 8192);
        assert_eq!([Arch::X86, Arch::X64, Arch::Ia64].map(Arch::pool_header_size), [8, 16, 16]);
        assert_eq!([Arch::X86, Arch::X64, Arch::Ia64].map(Arch::kernel_stack_size), [12 << 10, 24 << 10, 32 << 10]);
        assert_eq!(PagingMode::for_arch(Arch::X86, true), PagingMode::X86Pae);
        assert_eq!(PagingMode::for_arch(Arch::X64, true), PagingMode::X64);
    }
}
