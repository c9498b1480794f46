//! System PTEs: the finite pool of kernel virtual pages that mappings draw from
//! (research/nt-algorithms.md §4).
//!
//! MDL mappings, MmMapIoSpace, contiguous and noncached memory and kernel stacks
//! each take a run of system PTEs; when none is left Windows returns NULL or stops
//! with NO_MORE_SYSTEM_PTES (0x3F). ntmem keeps the free runs as extents, and a
//! reservation takes the tail of the smallest run that fits (best fit, as the
//! classic cluster list does, §4.1), so fragmentation behaves like Windows'.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use ntmem_machine::{PageShift, Va};

/// The system PTE pool.
#[derive(Debug)]
pub struct SystemPtes {
    base: Va,
    shift: PageShift,
    total: u64,
    inner: Mutex<Extents>,
    /// Contents of reserved PTEs that map nothing but carry data (the two header
    /// PTEs of a reserved mapping, nt-algorithms.md §4.2), by PTE index.
    soft: Mutex<BTreeMap<u64, u64>>,
}

#[derive(Debug, Default)]
struct Extents {
    by_start: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    free: u64,
}

impl Extents {
    fn insert(&mut self, start: u64, len: u64) {
        self.by_start.insert(start, len);
        self.by_size.insert((len, start));
    }
    fn remove(&mut self, start: u64, len: u64) {
        self.by_start.remove(&start);
        self.by_size.remove(&(len, start));
    }
}

impl SystemPtes {
    /// `count` PTEs mapping the pages from `base`.
    pub fn new(base: Va, count: u64, shift: PageShift) -> SystemPtes {
        let mut e = Extents::default();
        if count > 0 {
            e.insert(0, count);
        }
        e.free = count;
        SystemPtes { base, shift, total: count, inner: Mutex::new(e), soft: Mutex::default() }
    }

    /// All system PTEs.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Free system PTEs.
    pub fn free(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).free
    }

    /// Reserves `count` consecutive PTEs; the virtual address of the first page.
    pub fn reserve(&self, count: u64) -> Option<Va> {
        if count == 0 {
            return None;
        }
        let mut e = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let &(len, start) = e.by_size.range((count, 0)..).next()?;
        e.remove(start, len);
        if len > count {
            e.insert(start, len - count);
        }
        e.free -= count;
        let index = start + len - count;
        Some(Va::new(self.base.get() + self.shift.pages_to_bytes(index)))
    }

    /// Writes `raw` into the reserved, non-valid PTE of `va` (a header PTE); it
    /// reads back through [`SystemPtes::soft`] until the PTE is released.
    pub fn set_soft(&self, va: Va, raw: u64) {
        let index = (va.get() - self.base.get()) >> self.shift.0;
        self.soft.lock().unwrap_or_else(|e| e.into_inner()).insert(index, raw);
    }

    /// What [`SystemPtes::set_soft`] wrote into the PTE of `va`; 0 for any other
    /// PTE, and for an address outside the pool.
    pub fn soft(&self, va: Va) -> u64 {
        let Some(offset) = va.get().checked_sub(self.base.get()) else { return 0 };
        let index = offset >> self.shift.0;
        self.soft.lock().unwrap_or_else(|e| e.into_inner()).get(&index).copied().unwrap_or(0)
    }

    /// Whether `[va, va + count pages)` is a page-aligned range of the pool none of
    /// whose PTEs is free: what may be given back. Callers check a range derived
    /// from a driver's arguments (an address to unmap, an MDL's byte count) with
    /// this before [`SystemPtes::release`].
    pub fn owns(&self, va: Va, count: u64) -> bool {
        let Some(offset) = va.get().checked_sub(self.base.get()) else { return false };
        let start = offset >> self.shift.0;
        if count == 0 || self.shift.offset(offset) != 0 || start.checked_add(count).is_none_or(|end| end > self.total) {
            return false;
        }
        let e = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before = e.by_start.range(..=start).next_back().is_some_and(|(&s, &l)| s + l > start);
        !before && e.by_start.range(start..start + count).next().is_none()
    }

    /// Gives back `count` PTEs from `va`, merging with free neighbours.
    ///
    /// # Panics
    /// If the range is outside the pool or overlaps free PTEs (a kernel bug: a
    /// range that comes from a driver is checked with [`SystemPtes::owns`] first).
    pub fn release(&self, va: Va, count: u64) {
        let mut start = (va.get() - self.base.get()) >> self.shift.0;
        assert!(start + count <= self.total, "system PTEs {va:?}+{count} outside the pool");
        {
            let mut soft = self.soft.lock().unwrap_or_else(|e| e.into_inner());
            let stale: Vec<u64> = soft.range(start..start + count).map(|(&i, _)| i).collect();
            for i in stale {
                soft.remove(&i);
            }
        }
        let mut len = count;
        let mut e = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((&s, &l)) = e.by_start.range(..=start).next_back() {
            assert!(s + l <= start, "system PTEs {va:?} released twice");
            if s + l == start {
                e.remove(s, l);
                start = s;
                len += l;
            }
        }
        if let Some((&s, &l)) = e.by_start.range(start + len..).next() {
            if s == start + len {
                e.remove(s, l);
                len += l;
            }
        }
        assert!(e.by_start.range(start..start + len).next().is_none(), "system PTEs {va:?} released twice");
        e.insert(start, len);
        e.free += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release_merge_back_to_one_run() {
        let ptes = SystemPtes::new(Va::new(0x1000_0000), 100, PageShift::K4);
        let a = ptes.reserve(10).unwrap();
        let b = ptes.reserve(20).unwrap();
        assert_eq!(a, Va::new(0x1000_0000 + 90 * 4096));
        assert_eq!(b, Va::new(0x1000_0000 + 70 * 4096));
        assert_eq!(ptes.free(), 70);
        ptes.release(a, 10);
        ptes.release(b, 20);
        assert_eq!(ptes.free(), 100);
        assert!(ptes.reserve(100).is_some());
        assert!(ptes.reserve(1).is_none());
    }

    #[test]
    fn only_reserved_ranges_inside_the_pool_are_owned() {
        let ptes = SystemPtes::new(Va::new(0x1000_0000), 100, PageShift::K4);
        let a = ptes.reserve(10).unwrap();
        assert!(ptes.owns(a, 10));
        assert!(ptes.owns(Va::new(a.get() + 4096), 9));
        assert!(!ptes.owns(a, 11), "runs past the pool");
        assert!(!ptes.owns(Va::new(a.get() - 4096), 2), "starts on a free PTE");
        assert!(!ptes.owns(Va::new(a.get() + 1), 1), "not page aligned");
        assert!(!ptes.owns(Va::new(0x1000), 1), "below the pool");
        assert!(!ptes.owns(a, u64::MAX), "wraps");
        ptes.release(a, 10);
        assert!(!ptes.owns(a, 10), "released");
    }

    #[test]
    fn best_fit_leaves_big_runs_whole() {
        let ptes = SystemPtes::new(Va::new(0), 100, PageShift::K4);
        let runs: Vec<_> = (0..10).map(|_| ptes.reserve(10).unwrap()).collect();
        ptes.release(runs[1], 10);
        ptes.release(runs[5], 10);
        ptes.release(runs[6], 10);
        assert_eq!(ptes.reserve(5), Some(Va::new(runs[1].get() + 5 * 4096)));
        assert_eq!(ptes.reserve(20), Some(runs[6]));
    }
}
