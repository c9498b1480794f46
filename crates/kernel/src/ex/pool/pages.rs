//! The page-granular back end of a pool (research/nt-algorithms.md §1.10, in
//! ntmem's own shape) and the page-state map the free path reads without a lock.
//!
//! A pool's virtual range (nonpaged: the NonPagedPool region, then the expansion
//! region; paged: the PagedPool region) is committed in *segments*: runs of
//! [`SEGMENT_PAGES`] pages (more for a bigger allocation) backed by frames from
//! [`PhysicalMemory`] and mapped in one go, so the host's mapping count stays low
//! (DESIGN.md "Host budget"). Every page keeps its own PTE, so a pager can unmap a
//! single paged-pool page later. Pages are handed out first-fit inside segments;
//! an empty segment stays mapped as a spare while the pool's spares total at most
//! [`SPARE_PAGES`] (and 1/16 of its maximum), so pages that empty and refill —
//! small-block pages and big allocations alike — cost no `mmap` each time; beyond
//! that, when the pool nears its maximum, or when physical memory runs short, empty
//! segments go back to the memory manager (unmapped, frames freed). A segment made
//! for one big allocation larger than a segment goes back as soon as it is freed.
//!
//! The limit is on committed pages: the pool's maximum from the profile
//! (`PoolLimits`, which include the NonPagedPoolSize / PagedPoolSize knobs), and
//! whatever free physical memory there is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};

use ntmem_host::{HostError, SparseBytes};
use ntmem_machine::{Pfn, Va};

use crate::mm::frames::{FrameRequest, Frames, PhysicalMemory};
use crate::mm::pfn::PageUse;
use crate::mm::space::{to_usize, Access, AddressSpace};

/// Pages committed at a time (at most 64: a segment keeps one bit per page).
pub const SEGMENT_PAGES: u64 = 64;
/// Empty segments a pool keeps mapped for reuse, in pages, at most (and at most
/// 1/16 of the pool's maximum): Windows likewise keeps expansion pages of nonpaged
/// pool mapped rather than returning each page as it empties.
pub const SPARE_PAGES: u64 = 4096;

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

/// One region's page states, one byte a page, in a sparse table (host memory only
/// for the stretches of the region the pool has used).
#[derive(Debug)]
struct RegionMap {
    start: u64,
    end: u64,
    states: SparseBytes,
}

/// Page states over a pool's regions.
#[derive(Debug)]
pub struct PageMap {
    page: u64,
    page_shift: u32,
    regions: Vec<RegionMap>,
}

impl PageMap {
    /// A map over `regions` (`(start, bytes)`).
    ///
    /// # Errors
    /// When the host cannot map a region's table.
    pub fn new(regions: &[(u64, u64)], page: u64) -> Result<PageMap, HostError> {
        let regions = regions
            .iter()
            .map(|&(start, size)| {
                let states = SparseBytes::new(to_usize(size / page))?;
                Ok(RegionMap { start, end: start + size, states })
            })
            .collect::<Result<_, HostError>>()?;
        Ok(PageMap { page, page_shift: page.trailing_zeros(), regions })
    }

    /// Whether `va` lies in one of the regions.
    pub fn contains(&self, va: u64) -> bool {
        self.regions.iter().any(|r| va >= r.start && va < r.end)
    }

    /// The state byte of the page holding `va`.
    #[inline(always)]
    fn slot(&self, va: u64) -> Option<&AtomicU8> {
        let r = self.regions.iter().find(|r| va >= r.start && va < r.end)?;
        r.states.bytes().get(to_usize((va - r.start) >> self.page_shift))
    }

    /// The state of the page holding `va` (`Free` outside the regions).
    pub fn get(&self, va: u64) -> PageState {
        self.lookup(va).unwrap_or(PageState::Free)
    }

    /// The state of the page holding `va`, or `None` when `va` is outside the
    /// regions (one search: the free path's "is this pool, and what is it").
    #[inline(always)]
    pub fn lookup(&self, va: u64) -> Option<PageState> {
        Some(match self.slot(va)?.load(Ordering::Acquire) {
            1 => PageState::Small,
            2 => PageState::BigStart,
            3 => PageState::BigInterior,
            _ => PageState::Free,
        })
    }

    /// Sets the state of `pages` pages from `va`.
    pub fn set(&self, va: u64, pages: u64, state: PageState) {
        for p in 0..pages {
            if let Some(slot) = self.slot(va + p * self.page) {
                slot.store(state as u8, Ordering::Release);
            }
        }
    }
}

/// A committed run of pages. Segments of up to 64 pages keep a bit per page
/// (`used`); a bigger one is *dedicated*: made for one big allocation that covers
/// it whole, and released as soon as that allocation is freed.
#[derive(Debug)]
struct Segment {
    pages: u64,
    used: u64,
    in_use: u64,
}

impl Segment {
    fn dedicated(&self) -> bool {
        self.pages > 64
    }

    /// The first run of `n` free pages: its index.
    fn find(&self, n: u64) -> Option<u64> {
        if self.dedicated() {
            return (self.in_use == 0 && n <= self.pages).then_some(0);
        }
        if n == 0 || n > self.pages {
            return None;
        }
        // Bit i of `x` ends up set iff pages i..i+n are all free.
        let mut x = !self.used & bits(self.pages);
        let mut have = 1;
        while have < n && x != 0 {
            let step = have.min(n - have);
            x &= x >> step;
            have += step;
        }
        (x != 0).then(|| u64::from(x.trailing_zeros()))
    }

    fn mark(&mut self, first: u64, n: u64, used: bool) {
        if self.dedicated() {
            return;
        }
        let run = bits(n) << first;
        if used {
            self.used |= run;
        } else {
            self.used &= !run;
        }
    }
}

/// The low `n` bits (n ≤ 64).
fn bits(n: u64) -> u64 {
    if n >= 64 {
        !0
    } else {
        (1 << n) - 1
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
    empty_pages: u64,
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
            empty_pages: 0,
            committed: 0,
            in_use: 0,
        };
        for &(start, size) in regions {
            b.give_va(start, size / page);
        }
        b
    }

    /// The pages of the segments that hold small blocks (64 pages or fewer; a bigger
    /// segment is one big allocation's).
    pub fn small_segment_pages(&self) -> Vec<u64> {
        let small = self.segments.iter().filter(|(_, s)| !s.dedicated());
        small.flat_map(|(&start, s)| (0..s.pages).map(move |i| start + i * self.page)).collect()
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
                // Physical memory is short: give the spares back, then try once more.
                Err(_) if !self.empty.is_empty() => self.release_empty(mm),
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
        self.segments.insert(start, Segment { pages: want, used: 0, in_use: 0 });
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
        let pages = seg.pages;
        if seg.in_use == pages {
            self.with_free.remove(&start);
        }
        if self.empty.remove(&start) {
            self.empty_pages -= pages;
        }
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
            let pages = seg.pages;
            let budget = SPARE_PAGES.min(self.max_pages / 16);
            if seg.dedicated() || self.empty_pages + pages > budget {
                self.release(mm, start);
            } else {
                self.empty.insert(start);
                self.empty_pages += pages;
            }
        }
    }

    /// Pages kept mapped in empty segments.
    pub fn spare(&self) -> u64 {
        self.empty_pages
    }

    fn release_empty(&mut self, mm: Mm<'_>) {
        for start in std::mem::take(&mut self.empty) {
            self.release(mm, start);
        }
        self.empty_pages = 0;
    }

    fn release(&mut self, mm: Mm<'_>, start: u64) {
        let seg = self.segments.remove(&start).expect("released segment exists");
        self.with_free.remove(&start);
        if self.empty.remove(&start) {
            self.empty_pages -= seg.pages;
        }
        // The frames mapped now, not those the segment was made with: a paged
        // segment's pages may have been trimmed and paged back into other frames.
        let mapped = mm.space.unmap(mm.phys, Va::new(start), seg.pages).unwrap_or_default();
        drop_allocation_references(mm, &mapped);
        self.committed -= seg.pages;
        self.give_va(start, seg.pages);
    }

    /// Frees frames that were never mapped (a segment that could not be made).
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

/// Drops the allocation's reference on each of `frames` and frees those nobody
/// else holds. A frame still locked by an MDL (MmProbeAndLockPages on pool the
/// driver then freed) stays allocated until its last unlock frees it, as Windows
/// frees a page only when its reference count reaches zero (nt-algorithms.md §6.5).
fn drop_allocation_references(mm: Mm<'_>, frames: &[Pfn]) {
    for &pfn in frames {
        let last = mm.phys.update(pfn, |e| {
            e.reference_count = e.reference_count.saturating_sub(1);
            e.reference_count == 0
        });
        if last {
            let _ = mm.phys.free(pfn, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_map_is_lazy_and_exact() {
        let m = PageMap::new(&[(0x10_0000, 0x40_0000), (0x100_0000, 0x1000)], 0x1000).unwrap();
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
        let mut s = Segment { pages: 8, used: 0, in_use: 0 };
        s.mark(1, 2, true);
        assert_eq!(s.find(1), Some(0));
        assert_eq!(s.find(3), Some(3));
        assert_eq!(s.find(5), Some(3));
        assert_eq!(s.find(6), None);
        s.mark(3, 5, true);
        assert_eq!(s.find(2), None);
        let mut full = Segment { pages: 64, used: 0, in_use: 0 };
        assert_eq!(full.find(64), Some(0));
        full.mark(0, 64, true);
        assert_eq!(full.find(1), None);
        full.mark(10, 17, false);
        assert_eq!((full.find(17), full.find(18)), (Some(10), None));
    }

    /// A reference for `find`: the first run of `n` clear bits, one bit at a time.
    fn naive_find(used: u64, pages: u64, n: u64) -> Option<u64> {
        (0..pages).find(|&i| i + n <= pages && (i..i + n).all(|b| used & (1 << b) == 0))
    }

    #[test]
    fn segment_find_matches_a_naive_scan() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pages = 1 + x % 64;
            let used = x.rotate_left(17) & x.rotate_left(29) & bits(pages);
            let n = 1 + (x >> 50) % pages;
            let s = Segment { pages, used, in_use: used.count_ones().into() };
            assert_eq!(s.find(n), naive_find(used, pages, n), "{used:#x} {pages} {n}");
        }
    }
}
