//! The page-granular back end of a pool (research/nt-algorithms.md §1.10, in
//! ntmem's own shape) and the page-state map the free path reads without a lock.
//!
//! A pool's virtual range (nonpaged: the NonPagedPool region, then the expansion
//! region; paged: the PagedPool region) is committed in *segments*: runs of
//! [`SEGMENT_PAGES`] pages (more for a bigger allocation) backed by frames from
//! [`PhysicalMemory`] and mapped in one go, so the host's mapping count stays low
//! (DESIGN.md "Host budget"). Every page keeps its own PTE, so a pager can unmap a
//! single paged-pool page later. Pages are handed out first-fit inside segments;
//! a segment goes back to the memory manager when it is empty and another empty one
//! is already kept (one spare per pool, so a page that empties and refills does not
//! cost an mmap each time), or at once when it was made for one big allocation.
//!
//! The limit is on committed pages: the pool's maximum from the profile
//! (`PoolLimits`, which include the NonPagedPoolSize / PagedPoolSize knobs), and
//! whatever free physical memory there is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use ntmem_machine::Va;

use crate::mm::frames::{FrameRequest, Frames, PhysicalMemory};
use crate::mm::pfn::PageUse;
use crate::mm::space::{Access, AddressSpace};

/// Pages committed at a time.
pub const SEGMENT_PAGES: u64 = 16;

/// What a pool page holds, as the lock-free free path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageState {
    /// Not handed out (free in a segment, or not committed).
    Free = 0,
    /// Carved into small blocks with headers.
    Small = 1,
    /// The first page of a big allocation.
    BigStart = 2,
    /// A later page of a big allocation.
    BigInterior = 3,
}

const CHUNK: u64 = 4096;

/// One region's page states, one byte a page, created a chunk at a time.
#[derive(Debug)]
struct RegionMap {
    start: u64,
    end: u64,
    chunks: Box<[OnceLock<Box<[AtomicU8]>>]>,
}

/// Page states over a pool's regions.
#[derive(Debug)]
pub struct PageMap {
    page: u64,
    regions: Vec<RegionMap>,
}

impl PageMap {
    /// A map over `regions` (`(start, bytes)`).
    pub fn new(regions: &[(u64, u64)], page: u64) -> PageMap {
        let regions = regions
            .iter()
            .map(|&(start, size)| {
                let pages = size / page;
                let chunks = (0..pages.div_ceil(CHUNK)).map(|_| OnceLock::new()).collect();
                RegionMap { start, end: start + size, chunks }
            })
            .collect();
        PageMap { page, regions }
    }

    /// Whether `va` lies in one of the regions.
    pub fn contains(&self, va: u64) -> bool {
        self.regions.iter().any(|r| va >= r.start && va < r.end)
    }

    fn slot(&self, va: u64) -> Option<(&RegionMap, usize, usize)> {
        let r = self.regions.iter().find(|r| va >= r.start && va < r.end)?;
        let index = (va - r.start) / self.page;
        Some((r, (index / CHUNK) as usize, (index % CHUNK) as usize))
    }

    /// The state of the page holding `va` (`Free` outside the regions).
    pub fn get(&self, va: u64) -> PageState {
        let Some((r, c, i)) = self.slot(va) else { return PageState::Free };
        match r.chunks[c].get().map_or(0, |chunk| chunk[i].load(Ordering::Acquire)) {
            1 => PageState::Small,
            2 => PageState::BigStart,
            3 => PageState::BigInterior,
            _ => PageState::Free,
        }
    }

    /// Sets the state of `pages` pages from `va`.
    pub fn set(&self, va: u64, pages: u64, state: PageState) {
        for p in 0..pages {
            let at = va + p * self.page;
            if let Some((r, c, i)) = self.slot(at) {
                let chunk = r.chunks[c].get_or_init(|| (0..CHUNK).map(|_| AtomicU8::new(0)).collect());
                chunk[i].store(state as u8, Ordering::Release);
            }
        }
    }
}

#[derive(Debug)]
struct Segment {
    pages: u64,
    frames: Frames,
    used: Vec<bool>,
    in_use: u64,
}

impl Segment {
    fn find(&self, n: u64) -> Option<u64> {
        let mut run = 0;
        for (i, &u) in self.used.iter().enumerate() {
            if u {
                run = 0;
            } else {
                run += 1;
                if run == n {
                    return Some(i as u64 + 1 - n);
                }
            }
        }
        None
    }

    fn mark(&mut self, first: u64, n: u64, used: bool) {
        for u in &mut self.used[first as usize..(first + n) as usize] {
            *u = used;
        }
    }
}

/// The machine's memory manager, as the back end needs it.
#[derive(Clone, Copy)]
pub(crate) struct Mm<'a> {
    pub phys: &'a PhysicalMemory,
    pub space: &'a AddressSpace,
}

/// A pool's pages: segments, free address space, the limit.
#[derive(Debug)]
pub struct Backend {
    page: u64,
    usage: PageUse,
    max_pages: u64,
    va_free: BTreeMap<u64, u64>,
    segments: BTreeMap<u64, Segment>,
    with_free: BTreeSet<u64>,
    empty: BTreeSet<u64>,
    committed: u64,
    in_use: u64,
}

impl Backend {
    /// A back end over `regions` (`(start, bytes)`), at most `max_bytes` committed.
    pub fn new(regions: &[(u64, u64)], page: u64, max_bytes: u64, usage: PageUse) -> Backend {
        let mut b = Backend {
            page,
            usage,
            max_pages: max_bytes / page,
            va_free: BTreeMap::new(),
            segments: BTreeMap::new(),
            with_free: BTreeSet::new(),
            empty: BTreeSet::new(),
            committed: 0,
            in_use: 0,
        };
        for &(start, size) in regions {
            b.give_va(start, size / page);
        }
        b
    }

    /// Pages handed out (small-block pages and big allocations).
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Pages committed (mapped and backed).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The most pages the pool may commit.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// `n` contiguous pages, or `None` when the pool is at its limit, its address
    /// space is too fragmented, or physical memory is short.
    pub(crate) fn allocate(&mut self, mm: Mm<'_>, n: u64) -> Option<u64> {
        if let Some(va) = self.take_from_segments(n) {
            return Some(va);
        }
        if self.max_pages - self.committed < n {
            self.release_empty(mm);
        }
        let room = self.max_pages - self.committed;
        if room < n {
            return None;
        }
        let mut want = n.max(SEGMENT_PAGES).min(room);
        let frames = loop {
            match mm.phys.allocate(&FrameRequest::new(want, self.usage)) {
                Ok(f) => break f,
                Err(_) if want > n => want = n,
                Err(_) => return None,
            }
        };
        let Some(start) = self.take_va(want) else {
            self.free_frames(mm, &frames);
            return None;
        };
        if mm.space.map(mm.phys, Va::new(start), &frames, Access::ReadWrite).is_err() {
            self.free_frames(mm, &frames);
            self.give_va(start, want);
            return None;
        }
        self.committed += want;
        self.segments.insert(start, Segment { pages: want, frames, used: vec![false; want as usize], in_use: 0 });
        self.with_free.insert(start);
        self.take_from_segments(n)
    }

    fn take_from_segments(&mut self, n: u64) -> Option<u64> {
        let (start, first) = self.with_free.iter().find_map(|&s| {
            let seg = &self.segments[&s];
            (seg.pages - seg.in_use >= n).then(|| seg.find(n).map(|i| (s, i))).flatten()
        })?;
        let seg = self.segments.get_mut(&start).expect("listed segment exists");
        seg.mark(first, n, true);
        seg.in_use += n;
        if seg.in_use == seg.pages {
            self.with_free.remove(&start);
        }
        self.empty.remove(&start);
        self.in_use += n;
        Some(start + first * self.page)
    }

    /// Gives back `n` pages from `va`.
    pub(crate) fn free(&mut self, mm: Mm<'_>, va: u64, n: u64) {
        let (&start, seg) = self.segments.range_mut(..=va).next_back().expect("freed pages belong to a segment");
        let first = (va - start) / self.page;
        seg.mark(first, n, false);
        seg.in_use -= n;
        self.in_use -= n;
        self.with_free.insert(start);
        if seg.in_use == 0 {
            let dedicated = seg.pages > SEGMENT_PAGES;
            if dedicated || !self.empty.is_empty() {
                self.release(mm, start);
            } else {
                self.empty.insert(start);
            }
        }
    }

    fn release_empty(&mut self, mm: Mm<'_>) {
        for start in std::mem::take(&mut self.empty) {
            self.release(mm, start);
        }
    }

    fn release(&mut self, mm: Mm<'_>, start: u64) {
        let seg = self.segments.remove(&start).expect("released segment exists");
        self.with_free.remove(&start);
        self.empty.remove(&start);
        let _ = mm.space.unmap(mm.phys, Va::new(start), seg.pages);
        self.free_frames(mm, &seg.frames);
        self.committed -= seg.pages;
        self.give_va(start, seg.pages);
    }

    fn free_frames(&self, mm: Mm<'_>, frames: &Frames) {
        for &(pfn, count) in &frames.runs {
            let _ = mm.phys.free(pfn, count);
        }
    }

    fn take_va(&mut self, n: u64) -> Option<u64> {
        let (&start, &len) = self.va_free.iter().find(|&(_, &len)| len >= n)?;
        self.va_free.remove(&start);
        if len > n {
            self.va_free.insert(start + n * self.page, len - n);
        }
        Some(start)
    }

    fn give_va(&mut self, mut start: u64, mut len: u64) {
        if let Some((&s, &l)) = self.va_free.range(..start).next_back() {
            if s + l * self.page == start {
                self.va_free.remove(&s);
                start = s;
                len += l;
            }
        }
        if let Some(&l) = self.va_free.get(&(start + len * self.page)) {
            self.va_free.remove(&(start + len * self.page));
            len += l;
        }
        self.va_free.insert(start, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_map_is_lazy_and_exact() {
        let m = PageMap::new(&[(0x10_0000, 0x40_0000), (0x100_0000, 0x1000)], 0x1000);
        assert_eq!(m.get(0x10_5000), PageState::Free);
        m.set(0x10_5000, 2, PageState::BigInterior);
        assert_eq!(m.get(0x10_5fff), PageState::BigInterior);
        assert_eq!(m.get(0x10_6000), PageState::BigInterior);
        assert_eq!(m.get(0x10_7000), PageState::Free);
        assert!(m.contains(0x100_0000) && !m.contains(0x100_1000));
        assert_eq!(m.get(0x200_0000), PageState::Free);
    }

    #[test]
    fn segments_find_first_fit_runs() {
        let mut s = Segment { pages: 8, frames: Frames { runs: vec![] }, used: vec![false; 8], in_use: 0 };
        s.mark(1, 2, true);
        assert_eq!(s.find(1), Some(0));
        assert_eq!(s.find(3), Some(3));
        s.mark(3, 5, true);
        assert_eq!(s.find(2), None);
    }
}
