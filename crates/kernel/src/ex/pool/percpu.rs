//! Per-processor state of the pool: caches of free small blocks (Windows'
//! per-processor pool lookaside lists, research/nt-algorithms.md §1.4 step 4, §1.5
//! step 6) and tag counters (PoolMon's numbers, summed at snapshot time).
//!
//! **Why this is safe without a lock.** A processor's state is only written by the
//! thread running on that processor: [`crate::Machine::run`] lets one thread at a
//! time claim a processor (an acquire/release handshake, so one claimant's writes
//! happen-before the next one's reads), and the pool routines index this state by
//! `cpu.number()`. Every field is an atomic, read and written with relaxed
//! single-writer load/store pairs (plain moves on x86-64, no locked instructions).
//! Other threads only *read* the tag counters (a snapshot), which is race-free and
//! exact once the processors are quiet. Misuse — a `Cpu` handle smuggled to another
//! thread while its processor runs — can lose counts or cached blocks but cannot
//! cause undefined behaviour.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::types::PoolKind;

/// Block sizes (in units, 1..=32) that have a per-processor cache, as Windows'
/// NUMBER_POOL_LOOKASIDE_LISTS (§1.2).
pub const CACHED_CLASSES: u64 = 32;
/// Blocks one cache holds (Windows adapts a pool lookaside's depth between 2 and
/// 256; ntmem keeps a fixed depth until the lookaside work adds the adjustment).
pub const CACHE_DEPTH: usize = 64;
/// Tags one processor tracks before falling back to the shared overflow table.
const TAG_SLOTS: usize = 1024;

fn bump(a: &AtomicU64, by: u64) {
    a.store(a.load(Relaxed).wrapping_add(by), Relaxed);
}

#[derive(Debug)]
struct Stack {
    count: AtomicUsize,
    slots: [AtomicU64; CACHE_DEPTH],
}

impl Stack {
    fn new() -> Stack {
        Stack { count: AtomicUsize::new(0), slots: std::array::from_fn(|_| AtomicU64::new(0)) }
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        let n = self.count.load(Relaxed).checked_sub(1)?;
        let entry = self.slots.get(n)?.load(Relaxed);
        self.count.store(n, Relaxed);
        Some(entry)
    }

    #[inline]
    fn push(&self, entry: u64) -> bool {
        let n = self.count.load(Relaxed);
        let Some(slot) = self.slots.get(n) else { return false };
        slot.store(entry, Relaxed);
        self.count.store(n + 1, Relaxed);
        true
    }
}

/// One tag's counters on one processor: `[kind][allocs, frees, bytes]`; bytes
/// wrap (a block freed on another processor than it was allocated on makes one
/// side negative; the sum is right).
#[derive(Debug, Default)]
pub(crate) struct TagCounters {
    pub key: AtomicU32,
    pub counts: [[AtomicU64; 3]; 2],
}

/// A processor's pool state, on its own cache line (`last` is written by its
/// processor only; neighbours must not share the line).
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct PerCpu {
    caches: Box<[[Stack; CACHED_CLASSES as usize]; 2]>,
    tags: Box<[TagCounters]>,
    /// The tag counted last and its slot, `(slot + 1) << 32 | tag` (0: none): a
    /// driver allocating and freeing under one tag skips the hash probe.
    last: AtomicU64,
}

impl PerCpu {
    pub fn new() -> PerCpu {
        let classes = || std::array::from_fn(|_| Stack::new());
        PerCpu {
            caches: Box::new([classes(), classes()]),
            tags: (0..TAG_SLOTS).map(|_| TagCounters::default()).collect(),
            last: AtomicU64::new(0),
        }
    }

    /// A cached block of `units` units: its header address.
    #[inline]
    pub fn pop(&self, kind: PoolKind, units: u64) -> Option<u64> {
        self.caches[kind.index()].get(units.wrapping_sub(1) as usize)?.pop()
    }

    /// Parks a free block; false if its cache is full (or the size has none).
    #[inline]
    pub fn push(&self, kind: PoolKind, units: u64, entry: u64) -> bool {
        self.caches[kind.index()].get(units.wrapping_sub(1) as usize).is_some_and(|s| s.push(entry))
    }

    /// Whether the cache of `units`-unit blocks has room for one more.
    #[inline]
    pub fn has_room(&self, kind: PoolKind, units: u64) -> bool {
        self.caches[kind.index()]
            .get(units.wrapping_sub(1) as usize)
            .is_some_and(|s| s.count.load(Relaxed) < CACHE_DEPTH)
    }

    /// Takes every cached block of `kind`: `(entry, units)`.
    pub fn drain(&self, kind: PoolKind) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (i, s) in self.caches[kind.index()].iter().enumerate() {
            while let Some(e) = s.pop() {
                out.push((e, i as u64 + 1));
            }
        }
        out
    }

    /// Counts an allocation or (`free`) a free of `bytes` for `tag`; false when
    /// this processor's table is full (the caller uses the shared table).
    #[inline(always)]
    pub fn track(&self, tag: u32, kind: PoolKind, bytes: u64, free: bool) -> bool {
        let last = self.last.load(Relaxed);
        let slot = if last as u32 == tag && last >> 32 != 0 {
            (last >> 32) as usize - 1
        } else {
            match self.slot_of(tag) {
                Some(slot) => slot,
                None => return false,
            }
        };
        let Some(t) = self.tags.get(slot) else { return false };
        let c = &t.counts[kind.index()];
        if free {
            bump(&c[1], 1);
            bump(&c[2], bytes.wrapping_neg());
        } else {
            bump(&c[0], 1);
            bump(&c[2], bytes);
        }
        true
    }

    /// `tag`'s slot (claimed if new; open addressing), remembered in `last`; `None`
    /// when the table is full.
    fn slot_of(&self, tag: u32) -> Option<usize> {
        let mask = TAG_SLOTS - 1;
        let m = u64::from(tag).wrapping_mul(40543);
        let mut i = ((m as u32) ^ ((m >> 32) as u32)) as usize & mask;
        for _ in 0..TAG_SLOTS {
            let key = self.tags[i].key.load(Relaxed);
            if key == 0 {
                self.tags[i].key.store(tag, std::sync::atomic::Ordering::Release);
            }
            if key == 0 || key == tag {
                self.last.store((i as u64 + 1) << 32 | u64::from(tag), Relaxed);
                return Some(i);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Every tag this processor has seen, with its counters.
    pub fn tags(&self) -> impl Iterator<Item = &TagCounters> {
        self.tags.iter().filter(|t| t.key.load(std::sync::atomic::Ordering::Acquire) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_bounded_stacks() {
        let p = PerCpu::new();
        assert_eq!(p.pop(PoolKind::Paged, 3), None);
        for i in 0..CACHE_DEPTH as u64 {
            assert!(p.push(PoolKind::Paged, 3, 0x1000 + i));
        }
        assert!(!p.push(PoolKind::Paged, 3, 0x9999));
        assert!(!p.push(PoolKind::Paged, 33, 0x9999));
        assert_eq!(p.pop(PoolKind::Paged, 3), Some(0x1000 + CACHE_DEPTH as u64 - 1));
        assert_eq!(p.pop(PoolKind::Nonpaged, 3), None);
        assert_eq!(p.drain(PoolKind::Paged).len(), CACHE_DEPTH - 1);
    }

    #[test]
    fn tag_counters_sum() {
        let p = PerCpu::new();
        assert!(p.track(7, PoolKind::Nonpaged, 32, false));
        assert!(p.track(7, PoolKind::Nonpaged, 32, false));
        assert!(p.track(7, PoolKind::Nonpaged, 32, true));
        let t = p.tags().next().unwrap();
        let c = &t.counts[0];
        assert_eq!([c[0].load(Relaxed), c[1].load(Relaxed), c[2].load(Relaxed)], [2, 1, 32]);
    }
}
