//! Page tables kept in simulated physical memory (seed 000 §2.4, Figure 2).
//!
//! The tables are ordinary frames of the machine's RAM, allocated from the PFN
//! database (use [`PageUse::PageTable`]) and written in the architecture's format
//! ([`PteFormat`]). IA-64 translates each region through its own tables (region
//! registers select them); ntmem's IA-64 space has two regions — user below 8 TB,
//! system from 8 TB — each with its own top-level table, because 43 index bits
//! cannot tell them apart. [`PageTables::walk`] follows a virtual address from the root
//! through each level to the frame and byte, exactly as the CPU and
//! `MmGetPhysicalAddress` do; the host mappings are kept in step by
//! [`super::space`], which is the only caller that changes entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// The page tables of one address space. The tables themselves live in simulated
/// RAM, so this value is a handle: a clone names the same tables.
#[derive(Clone, Debug)]
pub struct PageTables {
    format: PteFormat,
    /// Top-level tables: one, or one per IA-64 region.
    roots: Vec<Pfn>,
    /// Bumped by every entry these tables write (shared by clones): what a host view
    /// of them was built from is still what they say while it is unchanged.
    generation: Arc<AtomicU64>,
}

/// The IA-64 region of a simulated address: bit 43, 8 TB.
const IA64_REGION_SHIFT: u32 = 43;

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
        let regions = if mode == PagingMode::Ia64 { 2 } else { 1 };
        let roots = (0..regions).map(|_| Ok(phys.allocate(&req)?.first())).collect::<Result<_, MmError>>()?;
        Ok(PageTables { format: PteFormat::new(mode), roots, generation: Arc::default() })
    }

    /// How many entries these tables have written so far (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The entry format.
    pub fn format(&self) -> PteFormat {
        self.format
    }

    /// The top-level table's frame (what CR3 would hold; on IA-64, the system
    /// region's).
    pub fn root(&self) -> Pfn {
        self.roots[self.roots.len() - 1]
    }

    fn root_for(&self, va: Va) -> Pfn {
        self.roots[((va.get() >> IA64_REGION_SHIFT) as usize).min(self.roots.len() - 1)]
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
        // After the store: a view built from a walk that began before it carries the
        // older generation, so it is rebuilt.
        self.generation.fetch_add(1, Ordering::AcqRel);
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
        let mut table = self.root_for(va);
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

    /// The raw leaf entry for `va`, when every directory above it is valid.
    pub fn leaf(&self, phys: &PhysicalMemory, va: Va) -> Option<u64> {
        let walk = self.walk(phys, va);
        (walk.steps.len() == self.format.levels().len()).then(|| walk.steps[walk.steps.len() - 1].raw)
    }

    /// Replaces the leaf entry for `va` with `raw`, returning the old entry; `None`
    /// (and nothing written) when a directory above it is missing.
    pub fn replace_leaf(&self, phys: &PhysicalMemory, va: Va, raw: u64) -> Option<u64> {
        let walk = self.walk(phys, va);
        if walk.steps.len() != self.format.levels().len() {
            return None;
        }
        let last = walk.steps[walk.steps.len() - 1];
        self.write(phys, last.table, last.index, raw);
        Some(last.raw)
    }

    /// Calls `f(va, raw)` for every non-zero leaf entry mapping a page in
    /// `[start, end)`, skipping whole tables whose directory entry is invalid.
    pub fn for_each_leaf(&self, phys: &PhysicalMemory, start: Va, end: Va, f: &mut dyn FnMut(Va, u64)) {
        let region = 1u64 << IA64_REGION_SHIFT;
        for (r, &root) in self.roots.iter().enumerate() {
            let base = if self.roots.len() == 1 { 0 } else { r as u64 * region };
            let top = if self.roots.len() == 1 { u64::MAX } else { base + region };
            let (lo, hi) = (start.get().max(base), end.get().min(top));
            if lo < hi {
                self.visit(phys, 0, root, base, (lo, hi), f);
            }
        }
    }

    fn visit(
        &self,
        phys: &PhysicalMemory,
        depth: usize,
        table: Pfn,
        base: u64,
        range: (u64, u64),
        f: &mut dyn FnMut(Va, u64),
    ) {
        let levels = self.format.levels();
        let level = &levels[depth];
        let span = 1u64 << level.shift;
        let first = range.0.max(base).saturating_sub(base) >> level.shift;
        let last = ((range.1 - 1).min(base + (span << level.bits) - 1) - base) >> level.shift;
        for index in first..=last {
            let raw = self.read(phys, table, index);
            let va = base + index * span;
            if depth == levels.len() - 1 {
                if raw != 0 {
                    f(Va::new(va), raw);
                }
                continue;
            }
            let (next, flags) = self.format.decode(raw);
            if flags.contains(PteFlags::VALID) {
                self.visit(phys, depth + 1, next, va, range, f);
            }
        }
    }

    /// Every frame holding a table of these tables, roots included (for tearing a
    /// process's user tables down once its pages are unmapped).
    pub fn table_frames(&self, phys: &PhysicalMemory) -> Vec<Pfn> {
        let mut out = Vec::new();
        for &root in &self.roots {
            self.collect_tables(phys, 0, root, &mut out);
        }
        out
    }

    fn collect_tables(&self, phys: &PhysicalMemory, depth: usize, table: Pfn, out: &mut Vec<Pfn>) {
        out.push(table);
        let levels = self.format.levels();
        if depth + 1 >= levels.len() {
            return;
        }
        for index in 0..(1u64 << levels[depth].bits) {
            let (next, flags) = self.format.decode(self.read(phys, table, index));
            if flags.contains(PteFlags::VALID) {
                self.collect_tables(phys, depth + 1, next, out);
            }
        }
    }

    /// Walks `va` through the tables (Figure 2).
    pub fn walk(&self, phys: &PhysicalMemory, va: Va) -> Walk {
        let levels = self.format.levels();
        let mut steps = Vec::with_capacity(levels.len());
        let mut table = self.root_for(va);
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
