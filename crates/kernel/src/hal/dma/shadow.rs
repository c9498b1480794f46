//! Driver Verifier's DMA shadow buffers (research/dma-verifier-views.md §2.3, §2.2
//! subcode 0x0F; Microsoft's "DMA Verification" and 0xE6 pages): under DMA
//! checking every mapping of a bus master is double-buffered — even a 64-bit
//! device's, as on Windows — so that an overrun by the driver's device shows.
//!
//! ntmem's layout, a reading of "each map register file has its own double buffer"
//! and "each verifier map register represents three physical pages": each grant
//! of map registers (a register file) gets its own run of physically contiguous
//! pages within the device's reach, one page per register between a padding page
//! before and one after; every byte is 0x0F to begin with. Each mapped run is
//! framed by the tag "DmaVrfy0" in the 8 bytes before and after it (where those
//! bytes are not another run's). At the flush (FlushAdapterBuffers(Ex),
//! PutScatterGatherList) the frame is checked before the data is copied back:
//! a changed tag before a run is 0xE6 (0x0F, 1, run length, buffer start), after it
//! (0x0F, 2, length, start); a changed padding byte (0x0F, 4 before the first run
//! or 5 after it, buffer start, corruption address). "Buffer start" is the driver's
//! CurrentVa of the run; the corruption address is the logical (physical) address
//! of the byte — ntmem does not map the shadow into system space.
//!
//! Common buffers are framed the same way in their own block (a padding page, the
//! buffer's pages, a padding page; the buffer is the one run, its corruption
//! addresses logical too), checked at FreeCommonBuffer ([`super`]).
//!
//! System DMA (a subordinate device's register file) is shadowed too, the padded
//! run inside one of its channel's windows (64 KB, 128 KB for word channels) below
//! 16 MB, so the controller is programmed with the shadow's address and a read
//! reaches the driver's buffer only at the flush; a file whose padded run fits no
//! window (more than the window's pages less two) is not shadowed — Windows'
//! behaviour for system DMA is undocumented (research §7 U-17).
//!
//! Not made: subcode 3 (free map registers overwritten: a file's pages go back to
//! the system when it is freed).

use std::collections::BTreeMap;

use ntmem_machine::{Pfn, PhysAddr, Va};

use super::AdapterConfig;
use crate::mm::frames::FrameRequest;
use crate::mm::pfn::PageUse;
use crate::Machine;

/// The tag framing each shadowed run.
pub const TAG: [u8; 8] = *b"DmaVrfy0";
/// What every other byte of a shadow holds.
pub const FILL: u8 = 0x0F;

/// One register file's double buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shadow {
    /// The padding page before the registers.
    first: Pfn,
    /// Registers (data pages).
    count: u32,
    /// Runs mapped since the last flush: (physical start, length, driver's VA).
    runs: Vec<(u64, u64, Va)>,
}

impl Shadow {
    /// A shadow for `count` registers of an adapter configured as `config`, or None
    /// when there is no such run of memory (the mapping is then not shadowed).
    pub(crate) fn allocate(m: &Machine, config: &AdapterConfig, count: u32) -> Option<Shadow> {
        let pages = u64::from(count) + 2;
        let req = FrameRequest::new(pages, PageUse::Contiguous)
            .contiguous()
            .highest(PhysAddr::new(config.limit))
            .boundary(config.boundary);
        let first = m.phys().allocate(&req).ok()?.first();
        let s = Shadow { first, count, runs: Vec::new() };
        s.fill(m);
        Some(s)
    }

    /// The frame of a common buffer of `pages` pages whose block starts at frame
    /// `first` (a padding page, the buffer's pages, a padding page), with the buffer
    /// — `len` bytes at `logical`, the driver's `va` — as its one run. `fresh` fills
    /// the block with 0x0F and writes the tags (at the allocation); otherwise the
    /// frame is only described, to be checked (at the free).
    pub(crate) fn common_buffer(
        m: &Machine,
        first: Pfn,
        pages: u64,
        logical: super::LogicalAddress,
        len: u64,
        va: Va,
        fresh: bool,
    ) -> Shadow {
        let count = u32::try_from(pages).unwrap_or(u32::MAX);
        let mut s = Shadow { first, count, runs: Vec::new() };
        s.runs.push((logical.get(), len, va));
        if fresh {
            s.fill(m);
            s.tag(m, logical.get(), len);
        }
        s
    }

    /// The first register's frame: where the file's register 0 is.
    pub(crate) fn registers(&self) -> Pfn {
        self.first.add(1)
    }

    fn pages(&self) -> u64 {
        u64::from(self.count) + 2
    }

    fn base(&self, m: &Machine) -> u64 {
        self.first.addr(m.phys().shift()).get()
    }

    fn len(&self, m: &Machine) -> u64 {
        m.phys().shift().pages_to_bytes(self.pages())
    }

    /// Whether page `i` of the shadow lies wholly inside one run (its bytes are the
    /// buffer's: never filled, never scanned — a 1 GB common buffer costs its two
    /// padding pages, not a gigabyte).
    fn covered(&self, m: &Machine, i: u64) -> bool {
        let page = m.phys().shift().page_size();
        let at = self.base(m) + i * page;
        self.runs.iter().any(|&(s, l, _)| s <= at && at + page <= s.saturating_add(l))
    }

    /// Every page not wholly inside a run filled with 0x0F.
    fn fill(&self, m: &Machine) {
        let shift = m.phys().shift();
        let page = vec![FILL; shift.page_size() as usize];
        for i in (0..self.pages()).filter(|&i| !self.covered(m, i)) {
            if let Some(off) = m.phys().file_offset(self.first.add(i)) {
                m.phys().ram().write(off, &page);
            }
        }
    }

    /// The pages not wholly inside a run, by index.
    fn read(&self, m: &Machine) -> BTreeMap<u64, Vec<u8>> {
        let shift = m.phys().shift();
        let mut pages = BTreeMap::new();
        for i in (0..self.pages()).filter(|&i| !self.covered(m, i)) {
            let mut bytes = vec![0u8; shift.page_size() as usize];
            if let Some(off) = m.phys().file_offset(self.first.add(i)) {
                m.phys().ram().read(off, &mut bytes);
            }
            pages.insert(i, bytes);
        }
        pages
    }

    fn write_byte(&self, m: &Machine, pa: u64, b: u8) {
        let shift = m.phys().shift();
        if let Some(off) = m.phys().file_offset(PhysAddr::new(pa).pfn(shift)) {
            m.phys().ram().write(off + shift.offset(pa), &[b]);
        }
    }

    fn in_run(&self, pa: u64) -> bool {
        self.runs.iter().any(|&(s, l, _)| pa >= s && pa < s + l)
    }

    /// A run mapped at `start` for `len` bytes from the driver's `va`: its tags go
    /// in the 8 bytes before and after it, except where other runs lie.
    pub(crate) fn record(&mut self, m: &Machine, start: u64, len: u64, va: Va) {
        self.runs.push((start, len, va));
        self.tag(m, start, len);
    }

    fn tag(&self, m: &Machine, start: u64, len: u64) {
        let (lo, hi) = (self.base(m), self.base(m) + self.len(m));
        for (i, &b) in TAG.iter().enumerate() {
            for pa in [start.wrapping_sub(8) + i as u64, start + len + i as u64] {
                if pa >= lo && pa < hi && !self.in_run(pa) {
                    self.write_byte(m, pa, b);
                }
            }
        }
    }

    /// The 0xE6 parameters of the first damage to the frame around the runs, if any
    /// (see the module).
    pub(crate) fn check(&self, m: &Machine) -> Option<[u64; 4]> {
        let pages = self.read(m);
        let page = m.phys().shift().page_size();
        let base = self.base(m);
        let byte = |pa: u64| {
            let o = pa.checked_sub(base)?;
            pages.get(&(o / page)).map(|p| p[(o % page) as usize])
        };
        let first_start = self.runs.iter().map(|r| r.0).min()?;
        for &(start, len, va) in &self.runs {
            for i in 0..8u64 {
                for (pa, kind) in [(start.wrapping_sub(8) + i, 1), (start + len + i, 2)] {
                    let Some(b) = byte(pa) else { continue };
                    if !self.in_run(pa) && b != TAG[i as usize] {
                        return Some([0x0F, kind, len, va.get()]);
                    }
                }
            }
        }
        let tagged =
            |pa: u64| self.runs.iter().any(|&(s, l, _)| (pa < s && s - pa <= 8) || (pa >= s + l && pa < s + l + 8));
        for (&i, bytes) in &pages {
            for (o, &b) in bytes.iter().enumerate() {
                let pa = base + i * page + o as u64;
                if b != FILL && !self.in_run(pa) && !tagged(pa) {
                    let kind = if pa < first_start { 4 } else { 5 };
                    let nearest = self.runs.iter().min_by_key(|r| r.0.abs_diff(pa)).map_or(0, |r| r.2.get());
                    return Some([0x0F, kind, nearest, pa]);
                }
            }
        }
        None
    }

    /// After a flush: every byte 0x0F again, no runs.
    pub(crate) fn reset(&mut self, m: &Machine) {
        self.runs.clear();
        self.fill(m);
    }

    /// Gives the pages back.
    pub(crate) fn release(self, m: &Machine) {
        let _ = m.phys().free(self.first, self.pages());
    }
}
