//! A pool descriptor: the free lists of small blocks, split and coalesce
//! (research/nt-algorithms.md §1.3–§1.5, §1.7), always under the descriptor's lock.
//!
//! Free blocks of N units (N ≥ 2) are listed by size; a 1-unit fragment (a bare
//! header) is never listed and only comes back by coalescing, as in Windows. The
//! lists are kept on the Rust side, ordered by address, and an allocation takes the
//! lowest-addressed block of the first non-empty list at or above its size — an
//! exact fit included (§1.4 \[DESIGN\]); Windows takes a list's head instead, which
//! changes only fragmentation statistics. Splitting follows §1.4 step 6: a block
//! that starts its page gives its front, any other block its tail. Freeing merges
//! with a free next and previous neighbour (§1.5 step 7) and gives the page back
//! when the merged block covers it (step 8).
//!
//! Blocks parked in a processor's cache are marked free in their header (PoolType
//! 0) but are on no list; the coalescer tells them apart by list membership and
//! leaves them alone.

use std::collections::BTreeSet;

use super::header::{Geometry, Mem, PoolHeader};
use super::pages::{Backend, Mm, PageMap, PageState};

/// BAD_POOL_HEADER parameters found while freeing.
pub(crate) type BadHeader = [u64; 4];

/// The fields of a block being allocated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    pub pool_type: u8,
    pub tag: u32,
    pub billed: u64,
}

/// One pool's small-block state.
#[derive(Debug)]
pub struct Descriptor {
    g: Geometry,
    lists: Vec<BTreeSet<u64>>,
    nonempty: Vec<u64>,
    /// Pages carved into small blocks (`TotalPages`).
    pub pages: u64,
}

impl Descriptor {
    /// An empty descriptor.
    pub fn new(g: Geometry) -> Descriptor {
        let n = g.units_per_page as usize;
        Descriptor { g, lists: vec![BTreeSet::new(); n], nonempty: vec![0; n.div_ceil(64)], pages: 0 }
    }

    fn insert(&mut self, entry: u64, units: u64) {
        if units >= 2 {
            let i = (units - 1) as usize;
            self.lists[i].insert(entry);
            self.nonempty[i / 64] |= 1 << (i % 64);
        }
    }

    fn remove(&mut self, entry: u64, units: u64) -> bool {
        let i = (units - 1) as usize;
        if i >= self.lists.len() || !self.lists[i].remove(&entry) {
            return false;
        }
        if self.lists[i].is_empty() {
            self.nonempty[i / 64] &= !(1 << (i % 64));
        }
        true
    }

    fn pop(&mut self, min_units: u64) -> Option<(u64, u64)> {
        let start = (min_units - 1) as usize;
        let mut word = start / 64;
        let mut bits = self.nonempty.get(word)? & (!0u64 << (start % 64));
        loop {
            if bits != 0 {
                let i = word * 64 + bits.trailing_zeros() as usize;
                let entry = *self.lists[i].first().expect("non-empty list");
                let units = i as u64 + 1;
                self.remove(entry, units);
                return Some((entry, units));
            }
            word += 1;
            bits = *self.nonempty.get(word)?;
        }
    }

    /// Whether a free block sits on a list (as opposed to a processor's cache).
    #[cfg(test)]
    pub fn is_listed(&self, entry: u64, units: u64) -> bool {
        self.lists.get((units - 1) as usize).is_some_and(|l| l.contains(&entry))
    }

    /// Allocates a block of `units` (header included); with `align`, its body
    /// starts on a multiple of `align` bytes. Returns the block's header address,
    /// or `None` when the pool cannot get a page.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn allocate(
        &mut self,
        mem: Mem<'_>,
        mm: Mm<'_>,
        backend: &mut Backend,
        pages: &PageMap,
        units: u64,
        align: Option<u64>,
        stamp: Stamp,
    ) -> Option<u64> {
        let g = self.g;
        let extra = align.map_or(0, |a| a / g.unit - 1);
        let offset_for = |entry: u64| {
            align.map(|a| {
                let body = entry + g.unit;
                ((a - body % a) % a) / g.unit
            })
        };
        if let Some((entry, size)) = self.pop(units + extra) {
            let h = mem.header(entry);
            let previous = u64::from(h.previous_size);
            let offset = offset_for(entry).unwrap_or(if previous == 0 { 0 } else { size - units });
            return Some(self.place(mem, entry, size, previous, offset, units, stamp, h.tag));
        }
        let page = backend.allocate(mm, 1)?;
        pages.set(page, 1, PageState::Small);
        self.pages += 1;
        let offset = offset_for(page).unwrap_or(0);
        Some(self.place(mem, page, g.units_per_page, 0, offset, units, stamp, 0))
    }

    /// Carves `units` at `offset` out of the free run of `size` units at `entry`
    /// (whose PreviousSize is `previous`); the pieces before and after become free
    /// blocks. Returns the allocated block's header address.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        mem: Mem<'_>,
        entry: u64,
        size: u64,
        previous: u64,
        offset: u64,
        units: u64,
        stamp: Stamp,
        free_tag: u32,
    ) -> u64 {
        let g = self.g;
        let page_end = g.page_of(entry) + g.page;
        let (mut at, mut prev) = (entry, previous);
        if offset > 0 {
            prev = self.free_run(mem, at, prev, offset, free_tag);
            at += offset * g.unit;
        }
        let block = at;
        mem.set_header(
            at,
            &PoolHeader {
                previous_size: prev as u16,
                pool_index: 0,
                block_size: units as u16,
                pool_type: stamp.pool_type,
                tag: stamp.tag,
                process_billed: stamp.billed,
            },
        );
        (at, prev) = (at + units * g.unit, units);
        let tail = size - offset - units;
        if tail > 0 {
            prev = self.free_run(mem, at, prev, tail, free_tag);
            at += tail * g.unit;
        }
        if at < page_end {
            mem.set_previous_size(at, prev);
        }
        block
    }

    /// Writes a free run of `size` units at `at` (the block before it `previous` units)
    /// as free blocks the header can describe — at most `max_block` units each, which
    /// on IA-64 (8 KB pages, 512 units, an 8-bit BlockSize) is less than a page — and
    /// lists them. Returns the last block's size, the PreviousSize of what follows.
    fn free_run(&mut self, mem: Mem<'_>, at: u64, previous: u64, size: u64, tag: u32) -> u64 {
        let g = self.g;
        let (mut at, mut prev, mut left) = (at, previous, size);
        while left > 0 {
            let n = left.min(g.max_block);
            let h = PoolHeader { previous_size: prev as u16, block_size: n as u16, tag, ..PoolHeader::default() };
            mem.set_header(at, &h);
            self.insert(at, n);
            (at, prev, left) = (at + n * g.unit, n, left - n);
        }
        prev
    }

    /// Frees the block at `entry` (its header already checked by the caller):
    /// checks its neighbours, coalesces, and gives the page back when it is empty.
    /// The header is read again here, under the lock: while the caller was not
    /// holding it, a neighbour's merge may have changed this block's PreviousSize.
    pub(crate) fn free(
        &mut self,
        mem: Mem<'_>,
        mm: Mm<'_>,
        backend: &mut Backend,
        pages: &PageMap,
        entry: u64,
    ) -> Result<(), BadHeader> {
        let g = self.g;
        let h = mem.header(entry);
        let page = g.page_of(entry);
        let page_end = page + g.page;
        let (mut start, mut size, mut prev, mut tag) =
            (entry, u64::from(h.block_size), u64::from(h.previous_size), h.tag);
        let next = entry + size * g.unit;
        if next < page_end {
            let nh = mem.header(next);
            if u64::from(nh.previous_size) != size {
                return Err([0x5, entry, 0, next]);
            }
            let n = u64::from(nh.block_size);
            if !nh.in_use() && n != 0 && (n == 1 || self.remove(next, n)) {
                size += n;
            }
        }
        if prev != 0 {
            let pe = entry - prev * g.unit;
            let ph = mem.header(pe);
            if u64::from(ph.block_size) != prev {
                return Err([0x5, pe, 0, entry]);
            }
            if !ph.in_use() && (prev == 1 || self.remove(pe, prev)) {
                (start, size, prev, tag) = (pe, size + prev, u64::from(ph.previous_size), ph.tag);
            }
        }
        // Where a page holds more units than one header describes (IA-64), a free run
        // is several free blocks: take in the free blocks beyond the neighbours too.
        if g.max_block < g.units_per_page - 1 {
            loop {
                let next = start + size * g.unit;
                if next >= page_end {
                    break;
                }
                let nh = mem.header(next);
                let n = u64::from(nh.block_size);
                if nh.in_use() || n == 0 || !(n == 1 || self.remove(next, n)) {
                    break;
                }
                size += n;
            }
            while prev != 0 {
                let pe = start - prev * g.unit;
                let ph = mem.header(pe);
                if ph.in_use() || u64::from(ph.block_size) != prev || !(prev == 1 || self.remove(pe, prev)) {
                    break;
                }
                (start, size, prev, tag) = (pe, size + prev, u64::from(ph.previous_size), ph.tag);
            }
        }
        if size >= g.units_per_page {
            self.pages -= 1;
            pages.set(page, 1, PageState::Free);
            backend.free(mm, page, 1);
            return Ok(());
        }
        let last = self.free_run(mem, start, prev, size, tag);
        let end = start + size * g.unit;
        if end < page_end {
            mem.set_previous_size(end, last);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_machine::Arch;

    #[test]
    fn lists_pop_the_first_fit_at_or_above() {
        let mut d = Descriptor::new(Geometry::of(Arch::X64));
        d.insert(0x2000, 5);
        d.insert(0x1000, 5);
        d.insert(0x3000, 200);
        d.insert(0x4000, 1);
        assert!(d.is_listed(0x1000, 5) && !d.is_listed(0x4000, 1));
        assert_eq!(d.pop(3), Some((0x1000, 5)));
        assert_eq!(d.pop(5), Some((0x2000, 5)));
        assert_eq!(d.pop(6), Some((0x3000, 200)));
        assert_eq!(d.pop(2), None);
    }
}
