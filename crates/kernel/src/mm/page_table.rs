//! Page tables kept in simulated physical memory (seed 000 §2.4, Figure 2).
//!
//! The tables are ordinary frames of the machine's RAM, allocated from the PFN
//! database (use [`PageUse::PageTable`]) and written in the architecture's format
//! ([`PteFormat`]). [`PageTables::walk`] follows a virtual address from the root
//! through each level to the frame and byte, exactly as the CPU and
//! `MmGetPhysicalAddress` do; the host mappings are kept in step by
//! [`super::space`], which is the only caller that changes entries.

use ntmem_machine::{PagingMode, Pfn, PhysAddr, Va};

use super::frames::{FrameRequest, PhysicalMemory};
use super::pfn::PageUse;
use super::pte::{PteFlags, PteFormat, TABLE_ENTRY};
use super::MmError;

/// One step of a walk: the entry found at one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WalkStep {
    /// The level's name (`PXE`, `PPE`, `PDE`, `PTE`).
    pub level: &'static str,
    /// The frame holding the table.
    pub table: Pfn,
    /// The index into it.
    pub index: u64,
    /// The raw entry.
    pub raw: u64,
}

/// A walk from a virtual address to a physical one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Walk {
    /// The address walked.
    pub va: Va,
    /// The entries visited, top level first; the walk stops at the first invalid one.
    pub steps: Vec<WalkStep>,
    /// The physical address, when every level is valid.
    pub phys: Option<PhysAddr>,
}

/// The page tables of one address space.
#[derive(Debug)]
pub struct PageTables {
    format: PteFormat,
    root: Pfn,
}

impl PageTables {
    /// Allocates an empty top-level table. A PAE top table must lie below 4 GB
    /// (CR3 holds a 32-bit address).
    ///
    /// # Errors
    /// When no frame is free.
    pub fn new(phys: &PhysicalMemory, mode: PagingMode) -> Result<PageTables, MmError> {
        let mut req = FrameRequest::new(1, PageUse::PageTable).zeroed();
        if matches!(mode, PagingMode::X86 | PagingMode::X86Pae) {
            req = req.highest(PhysAddr::new(0xFFFF_FFFF));
        }
        let root = phys.allocate(&req)?.first();
        Ok(PageTables { format: PteFormat::new(mode), root })
    }

    /// The entry format.
    pub fn format(&self) -> PteFormat {
        self.format
    }

    /// The top-level table's frame (what CR3 would hold).
    pub fn root(&self) -> Pfn {
        self.root
    }

    fn entry_offset(&self, phys: &PhysicalMemory, table: Pfn, index: u64) -> u64 {
        phys.file_offset(table).expect("page tables live in RAM") + index * self.format.entry_size()
    }

    fn read(&self, phys: &PhysicalMemory, table: Pfn, index: u64) -> u64 {
        let off = self.entry_offset(phys, table, index);
        match self.format.entry_size() {
            4 => u64::from(phys.ram().load_u32(off)),
            _ => phys.ram().load_u64(off),
        }
    }

    fn write(&self, phys: &PhysicalMemory, table: Pfn, index: u64, raw: u64) {
        let off = self.entry_offset(phys, table, index);
        match self.format.entry_size() {
            4 => phys.ram().store_u32(off, u32::try_from(raw).expect("32-bit entry")),
            _ => phys.ram().store_u64(off, raw),
        }
    }

    fn index(va: Va, level: &super::pte::Level) -> u64 {
        (va.get() >> level.shift) & ((1 << level.bits) - 1)
    }

    /// Points the leaf entry for `va` at `pfn` with `flags`, creating missing
    /// tables on the way. `OWNER` on the leaf is also set on the tables above it.
    ///
    /// # Errors
    /// When a table frame cannot be allocated.
    pub fn set(&self, phys: &PhysicalMemory, va: Va, pfn: Pfn, flags: PteFlags) -> Result<(), MmError> {
        let levels = self.format.levels();
        let dir_flags = TABLE_ENTRY | (flags & PteFlags::OWNER);
        let mut table = self.root;
        for level in &levels[..levels.len() - 1] {
            let index = Self::index(va, level);
            let raw = self.read(phys, table, index);
            let (next, present) = self.format.decode(raw);
            table = if present.contains(PteFlags::VALID) {
                if !present.contains(dir_flags) {
                    self.write(phys, table, index, self.format.encode(next, present | dir_flags));
                }
                next
            } else {
                let new = phys
                    .allocate(&FrameRequest::new(1, PageUse::PageTable).zeroed().highest(self.highest_table_address()))?
                    .first();
                self.write(phys, table, index, self.format.encode(new, dir_flags));
                new
            };
        }
        let leaf = levels.last().expect("at least one level");
        self.write(phys, table, Self::index(va, leaf), self.format.encode(pfn, flags));
        Ok(())
    }

    fn highest_table_address(&self) -> PhysAddr {
        PhysAddr::new(((self.format.max_pfn() + 1) << 12) - 1)
    }

    /// Clears the leaf entry for `va`, returning what it held if it was valid.
    pub fn clear(&self, phys: &PhysicalMemory, va: Va) -> Option<(Pfn, PteFlags)> {
        let walk = self.walk(phys, va);
        let last = walk.steps.last()?;
        if walk.steps.len() != self.format.levels().len() || walk.phys.is_none() {
            return None;
        }
        self.write(phys, last.table, last.index, 0);
        Some(self.format.decode(last.raw))
    }

    /// Walks `va` through the tables (Figure 2).
    pub fn walk(&self, phys: &PhysicalMemory, va: Va) -> Walk {
        let levels = self.format.levels();
        let mut steps = Vec::with_capacity(levels.len());
        let mut table = self.root;
        for (i, level) in levels.iter().enumerate() {
            let index = Self::index(va, level);
            let raw = self.read(phys, table, index);
            steps.push(WalkStep { level: level.name, table, index, raw });
            let (next, flags) = self.format.decode(raw);
            if !flags.contains(PteFlags::VALID) {
                return Walk { va, steps, phys: None };
            }
            if i == levels.len() - 1 {
                let offset = va.get() & ((1 << level.shift) - 1);
                let pa = next.addr(phys.shift()).get() | offset;
                return Walk { va, steps, phys: Some(PhysAddr::new(pa)) };
            }
            table = next;
        }
        unreachable!("the loop returns at the leaf")
    }
}
