//! Physical memory: the RAM file, the PFN database and the frame allocator.
//!
//! [`PhysicalMemory`] owns the sealed memfd that holds the machine's RAM (host
//! layer), the [`PfnDatabase`] and the [`FreeMap`], all behind one lock — Windows'
//! PFN lock. Frames are handed out by [`FrameRequest`]s, which carry the
//! constraints of `MmAllocateContiguousMemorySpecifyCache` and
//! `MmAllocatePagesForMdlEx`: lowest and highest acceptable address, boundary
//! multiple, contiguity, cache type (research/nt-algorithms.md §3.1–§3.2).
//!
//! Policy: general requests are served from the top of memory down, so low memory
//! stays for devices that cannot reach above 4 GB or 16 MB (ntmem's choice; Windows
//! does not document its scan direction, nt-algorithms.md §3.1 \[DESIGN\]). With
//! /NOLOWMEM, requests that do not name a range never get a frame below 4 GB (seed
//! §12.1).

use std::ops::ControlFlow;
use std::sync::{Mutex, MutexGuard, OnceLock};

use ntmem_host::Ram;
use ntmem_machine::{PageShift, Pfn, PhysAddr, PhysMap};

use super::free_map::{find_run, Direction, FreeMap, Geometry};
use super::pfn::{CacheType, PageState, PageUse, PfnDatabase, PfnEntry};
use crate::mm::MmError;

const FOUR_GB: u64 = 1 << 32;

/// What a caller needs of the frames it asks for. Defaults: one page, anywhere,
/// cached, not contiguous, not zeroed, top-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRequest {
    count: u64,
    lowest: Option<PhysAddr>,
    highest: Option<PhysAddr>,
    boundary: u64,
    contiguous: bool,
    partial: bool,
    zeroed: bool,
    direction: Direction,
    cache: CacheType,
    usage: PageUse,
}

impl FrameRequest {
    /// `count` frames for `usage`.
    pub fn new(count: u64, usage: PageUse) -> FrameRequest {
        FrameRequest {
            count,
            lowest: None,
            highest: None,
            boundary: 0,
            contiguous: false,
            partial: false,
            zeroed: false,
            direction: Direction::TopDown,
            cache: CacheType::Cached,
            usage,
        }
    }
    /// Frames must be physically contiguous.
    pub fn contiguous(mut self) -> Self {
        self.contiguous = true;
        self
    }
    /// No frame below this address (`LowestAcceptableAddress`).
    pub fn lowest(mut self, pa: PhysAddr) -> Self {
        self.lowest = Some(pa);
        self
    }
    /// No byte above this address (`HighestAcceptableAddress`).
    pub fn highest(mut self, pa: PhysAddr) -> Self {
        self.highest = Some(pa);
        self
    }
    /// The run may not cross a multiple of `bytes` (`BoundaryAddressMultiple`, 0 = none).
    pub fn boundary(mut self, bytes: u64) -> Self {
        self.boundary = bytes;
        self
    }
    /// Return as many frames as there are, up to the count (MmAllocatePagesForMdl).
    pub fn allow_partial(mut self) -> Self {
        self.partial = true;
        self
    }
    /// The frames must read as zero.
    pub fn zeroed(mut self) -> Self {
        self.zeroed = true;
        self
    }
    /// Search from the bottom of the range (ReactOS's first fit) instead of the top.
    pub fn bottom_up(mut self) -> Self {
        self.direction = Direction::BottomUp;
        self
    }
    /// The cache type the frames will be mapped with.
    pub fn cache(mut self, cache: CacheType) -> Self {
        self.cache = cache;
        self
    }
}

/// Frames handed out: a list of runs `(first, count)`, in the order found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    /// The runs.
    pub runs: Vec<(Pfn, u64)>,
}

impl Frames {
    /// Total frames.
    pub fn count(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }
    /// Every frame, in order.
    pub fn pfns(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.runs.iter().flat_map(|&(p, n)| (0..n).map(move |i| p.add(i)))
    }
    /// The first frame.
    pub fn first(&self) -> Pfn {
        self.runs[0].0
    }
}

#[derive(Debug)]
struct Inner {
    map: FreeMap,
    pfn: PfnDatabase,
}

/// The machine's physical memory.
pub struct PhysicalMemory {
    ram: Ram,
    /// Frames the PFN database covers (`0..frames`): up to the highest RAM page.
    frames: u64,
    physmap: PhysMap,
    shift: PageShift,
    inner: Mutex<Inner>,
    low_memory: OnceLock<LowMemoryHook>,
}

/// What physical memory calls when a request finds too little free memory: the
/// working-set trimmer, which pages pageable memory out and returns how many pages
/// it freed (issue 3, item 6: "run when free memory is low").
pub type LowMemoryHook = Box<dyn Fn(&PhysicalMemory) -> u64 + Send + Sync>;

impl std::fmt::Debug for PhysicalMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysicalMemory")
            .field("physmap", &self.physmap)
            .field("shift", &self.shift)
            .finish_non_exhaustive()
    }
}

impl PhysicalMemory {
    /// RAM for `physmap`: the file holding every installed page, with the usable
    /// runs free and everything else (holes, memory above /MAXMEM) marked bad.
    ///
    /// # Errors
    /// When the host cannot create the RAM file.
    pub fn new(physmap: &PhysMap, shift: PageShift) -> Result<PhysicalMemory, MmError> {
        let ram = Ram::new(physmap.ram_file_len()).map_err(MmError::Host)?;
        let frames = physmap.highest_ram_address().pfn(shift).get() + 1;
        let mut map = FreeMap::new(frames, Geometry::DEFAULT);
        for run in &physmap.ram {
            let first = run.start.pfn(shift).get();
            map.set(first, shift.bytes_to_pages(run.len).min(frames - first), true);
        }
        let inner = Mutex::new(Inner { map, pfn: PfnDatabase::new(frames) });
        Ok(PhysicalMemory { ram, frames, physmap: physmap.clone(), shift, inner, low_memory: OnceLock::new() })
    }

    /// Installs the low-memory hook (once; the machine does it at boot).
    pub fn set_low_memory_hook(&self, hook: LowMemoryHook) {
        let _ = self.low_memory.set(hook);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The RAM file.
    pub fn ram(&self) -> &Ram {
        &self.ram
    }

    /// The page shift.
    pub fn shift(&self) -> PageShift {
        self.shift
    }

    /// Offset of a frame in the RAM file, if it is installed RAM (any frame number
    /// is asked about safely: one from a driver's MDL may be garbage).
    pub fn file_offset(&self, pfn: Pfn) -> Option<u64> {
        (pfn.get() < self.frames).then(|| self.physmap.file_offset(pfn.addr(self.shift))).flatten()
    }

    /// Free frames.
    pub fn free_pages(&self) -> u64 {
        self.lock().map.free()
    }

    /// The longest run of free frames wholly below `limit` (or anywhere), in frames.
    pub fn largest_free_run(&self, limit: Option<PhysAddr>) -> u64 {
        let inner = self.lock();
        let last = match limit {
            Some(pa) if pa.get() == 0 => return 0,
            Some(pa) => pa.get().saturating_sub(1) >> self.shift.0,
            None => inner.map.frames() - 1,
        };
        inner.map.largest_run(0, last)
    }

    /// The PFN entry of a frame.
    pub fn pfn(&self, pfn: Pfn) -> PfnEntry {
        self.lock().pfn.get(pfn)
    }

    /// Changes a frame's PFN entry under the PFN lock. A frame beyond the database
    /// has no entry (it is not RAM): `f` sees an untouched entry and what it
    /// changes is dropped.
    pub fn update<R>(&self, pfn: Pfn, f: impl FnOnce(&mut PfnEntry) -> R) -> R {
        if pfn.get() >= self.frames {
            return f(&mut PfnEntry::default());
        }
        f(self.lock().pfn.get_mut(pfn))
    }

    /// Where `req` would be placed now, without allocating: the same search
    /// [`PhysicalMemory::allocate`] makes ("would this 64 MB contiguous request
    /// succeed on this machine?").
    ///
    /// # Errors
    /// As [`PhysicalMemory::allocate`].
    pub fn probe(&self, req: &FrameRequest) -> Result<Frames, MmError> {
        self.find(&self.lock(), req)
    }

    /// Allocates frames as `req` says.
    ///
    /// # Errors
    /// [`MmError::InvalidRequest`] for a request no frame could meet (zero count,
    /// boundary not a power of two page multiple, lowest above highest);
    /// [`MmError::NoMemory`] when the free memory cannot satisfy it.
    pub fn allocate(&self, req: &FrameRequest) -> Result<Frames, MmError> {
        let page = self.shift.page_size();
        let mut inner = self.lock();
        let frames = match self.find(&inner, req) {
            // A request larger than the machine fails without trimming anything.
            Err(MmError::NoMemory) if self.low_memory.get().is_some() && req.count <= self.frames => {
                drop(inner);
                let trimmed = self.low_memory.get().map_or(0, |trim| trim(self));
                inner = self.lock();
                if trimmed == 0 {
                    return Err(MmError::NoMemory);
                }
                self.find(&inner, req)?
            }
            found => found?,
        };
        for &(start, count) in &frames.runs {
            inner.map.set(start.get(), count, false);
            // Zero the run's free frames a stretch at a time (one host call per
            // stretch of consecutive frames consecutive in the RAM file).
            let mut stretch: Option<(u64, u64)> = None;
            for i in 0..count {
                let pfn = start.add(i);
                let entry = inner.pfn.get_mut(pfn);
                if req.zeroed && entry.state == PageState::Free {
                    let off = self.physmap.file_offset(pfn.addr(self.shift)).expect("free frames are RAM");
                    stretch = match stretch {
                        Some((at, len)) if at + len == off => Some((at, len + page)),
                        Some((at, len)) => {
                            self.ram.zero(at, len);
                            Some((off, page))
                        }
                        None => Some((off, page)),
                    };
                }
                *entry = PfnEntry {
                    state: PageState::Active,
                    usage: req.usage,
                    cache: req.cache,
                    start_of_allocation: req.contiguous && i == 0,
                    end_of_allocation: req.contiguous && i == count - 1,
                    reference_count: 1,
                    ..PfnEntry::default()
                };
            }
            if let Some((at, len)) = stretch {
                self.ram.zero(at, len);
            }
        }
        Ok(frames)
    }

    fn find(&self, inner: &Inner, req: &FrameRequest) -> Result<Frames, MmError> {
        let page = self.shift.page_size();
        if req.count == 0 {
            return Err(MmError::InvalidRequest("zero pages requested"));
        }
        if req.boundary != 0 && (!req.boundary.is_power_of_two() || !req.boundary.is_multiple_of(page)) {
            return Err(MmError::InvalidRequest("boundary is not a power-of-two multiple of the page size"));
        }
        let frames = inner.map.frames();
        let named_range = req.lowest.is_some() || req.highest.is_some();
        let low_floor = if self.physmap.nolowmem && !named_range { FOUR_GB } else { 0 };
        let first = req.lowest.map_or(0, |pa| pa.get().div_ceil(page)).max(low_floor >> self.shift.0);
        let last = req.highest.map_or(frames - 1, |pa| (pa.get() >> self.shift.0).min(frames - 1));
        if first > last {
            return Err(MmError::NoMemory);
        }
        let boundary = req.boundary >> self.shift.0;
        if req.contiguous {
            let start =
                find_run(&inner.map, first, last, req.count, boundary, req.direction).ok_or(MmError::NoMemory)?;
            return Ok(Frames { runs: vec![(Pfn::new(start), req.count)] });
        }
        let mut runs = Vec::new();
        let mut need = req.count;
        let _ = inner.map.visit_runs::<()>(first, last, 1, req.direction, &mut |s, len| {
            let take = len.min(need);
            let start = match req.direction {
                Direction::TopDown => s + len - take,
                Direction::BottomUp => s,
            };
            runs.push((Pfn::new(start), take));
            need -= take;
            if need == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if runs.is_empty() || (need > 0 && !req.partial) {
            return Err(MmError::NoMemory);
        }
        Ok(Frames { runs })
    }

    /// Returns `count` frames from `start` to the free list.
    ///
    /// # Errors
    /// [`MmError::NotAllocated`] naming the first frame that was already free
    /// (nothing is freed then).
    pub fn free(&self, start: Pfn, count: u64) -> Result<(), MmError> {
        let mut inner = self.lock();
        for i in 0..count {
            let pfn = start.add(i);
            if inner.pfn.get(pfn).state != PageState::Active {
                return Err(MmError::NotAllocated(pfn));
            }
        }
        for i in 0..count {
            *inner.pfn.get_mut(start.add(i)) = PfnEntry { state: PageState::Free, ..PfnEntry::default() };
        }
        inner.map.set(start.get(), count, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
