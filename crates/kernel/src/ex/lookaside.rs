//! Lookaside lists (seed 000 §5.2, §7.2; research/nt-algorithms.md §5).
//!
//! A list's head is the driver's memory — a `GENERAL_LOOKASIDE` inside its
//! `NPAGED_LOOKASIDE_LIST`, `PAGED_LOOKASIDE_LIST` or `LOOKASIDE_LIST_EX` — and
//! ntmem keeps every field a driver or debugger reads *in that memory*, at the
//! offsets of the x64 layout (the layout of the drivers ntmem builds, which are
//! compiled for the 64-bit host, whatever the simulated machine):
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | `ListHead` (`SLIST_HEADER`: depth and sequence, then the first entry) |
//! | 0x10 | `Depth` (USHORT), starts at 4 |
//! | 0x12 | `MaximumDepth` (USHORT), 256 |
//! | 0x14 | `TotalAllocates` | 0x18 `AllocateMisses` | 0x1C `TotalFrees` | 0x20 `FreeMisses` |
//! | 0x24 | `Type` (POOL_TYPE) | 0x28 `Tag` | 0x2C `Size` |
//! | 0x30 | `Allocate` | 0x38 `Free` (NULL: the pool routines) |
//! | 0x50 | `LastTotalAllocates` | 0x54 `LastAllocateMisses` |
//!
//! Free entries are chained through their first 8 bytes (`SINGLE_LIST_ENTRY`),
//! holding the driver-visible address of the next entry.
//!
//! Depth follows demand on simulated time, by ntmem's rule (Windows' constants are
//! not public; nt-algorithms.md §5 [DESIGN]): every 1000 ms one of the two list
//! groups (nonpaged, paged) is scanned in turn. For each list, with A allocations
//! and M misses since its last scan: A < 75 → Depth −= 10; otherwise with
//! m = 1000·M/A: m < 5 → Depth −= 1, else Depth += clamp((MaximumDepth −
//! Depth)·m/2000 + 5, 1, 30); Depth stays within [4, MaximumDepth]. Shrinking never
//! frees entries at once: the excess drains through frees that miss.
//!
//! Locking: operations on one list are serialised by one of a few striped locks
//! (Windows uses an interlocked SLIST; the effect a driver sees is the same). A
//! hit is that lock plus a handful of single-word loads and stores in the head and
//! the entry; the list registry (routines) is consulted only on a miss.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ntmem_machine::Va;

use crate::bugcheck::BugCheck;
use crate::ex::pool::{self, PoolKind, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::mm::space::AddressSpace;

/// `sizeof(GENERAL_LOOKASIDE)` on x64.
pub const GENERAL_LOOKASIDE_SIZE: u64 = 0x80;
/// The depth a list starts with (`ExInitialize…LookasideList` ignores the caller's).
pub const INITIAL_DEPTH: u16 = 4;
/// `MaximumDepth` of every driver list.
pub const MAXIMUM_DEPTH: u16 = 256;
/// Allocations per scan below which a list shrinks by ten.
const MIN_ALLOCATION_RATE: u32 = 75;
/// Simulated milliseconds between scans.
pub const SCAN_PERIOD_MS: u64 = 1000;

const LIST_HEAD: u64 = 0x00;
const DEPTH: u64 = 0x10;
const MAX_DEPTH: u64 = 0x12;
const TOTAL_ALLOCATES: u64 = 0x14;
const ALLOCATE_MISSES: u64 = 0x18;
const TOTAL_FREES: u64 = 0x1C;
const FREE_MISSES: u64 = 0x20;
const TYPE: u64 = 0x24;
const TAG: u64 = 0x28;
const SIZE: u64 = 0x2C;
const LAST_TOTAL_ALLOCATES: u64 = 0x50;
const LAST_ALLOCATE_MISSES: u64 = 0x54;

/// A custom allocate routine (`PALLOCATE_FUNCTION`): pool type, size, tag.
pub type AllocateRoutine = Arc<dyn Fn(&Cpu<'_>, PoolType, u64, PoolTag) -> Result<Option<Va>, BugCheck> + Send + Sync>;
/// A custom free routine (`PFREE_FUNCTION`).
pub type FreeRoutine = Arc<dyn Fn(&Cpu<'_>, Va) -> Result<(), BugCheck> + Send + Sync>;

/// How a list gets and returns its entries: the pool (NULL routines) or the
/// driver's own routines.
#[derive(Clone, Default)]
pub struct Routines {
    /// `Allocate`, or `None` for ExAllocatePoolWithTag.
    pub allocate: Option<AllocateRoutine>,
    /// `Free`, or `None` for ExFreePool.
    pub free: Option<FreeRoutine>,
}

impl std::fmt::Debug for Routines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routines")
            .field("custom_allocate", &self.allocate.is_some())
            .field("custom_free", &self.free.is_some())
            .finish()
    }
}

/// The fields of a list as a debugger's `!lookaside` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LookasideInfo {
    /// Entries cached now (`ExQueryDepthSList`).
    pub current_depth: u16,
    /// `Depth`.
    pub depth: u16,
    /// `MaximumDepth`.
    pub maximum_depth: u16,
    /// `TotalAllocates`.
    pub total_allocates: u32,
    /// `AllocateMisses`.
    pub allocate_misses: u32,
    /// `TotalFrees`.
    pub total_frees: u32,
    /// `FreeMisses`.
    pub free_misses: u32,
    /// `Type`.
    pub pool_type: u32,
    /// `Tag`.
    pub tag: u32,
    /// `Size`.
    pub size: u32,
}

#[derive(Debug)]
struct List {
    kind: PoolKind,
    routines: Routines,
}

/// Every initialised lookaside list of a machine.
#[derive(Debug)]
pub struct Lookasides {
    lists: Mutex<BTreeMap<u64, List>>,
    stripes: Vec<Stripe>,
    /// Simulated time of the next scan, and which group it visits.
    scan: Mutex<(u64, PoolKind)>,
}

impl Default for Lookasides {
    fn default() -> Self {
        Lookasides {
            lists: Mutex::default(),
            stripes: (0..16).map(|_| Stripe(AtomicBool::new(false))).collect(),
            scan: Mutex::new((SCAN_PERIOD_MS, PoolKind::Nonpaged)),
        }
    }
}

/// One of the locks that serialise list operations: a spin lock, as the list
/// operations it covers are a handful of memory accesses (the hit path of
/// `ExAllocateFrom…LookasideList` must be cheap, issue 3 item 9).
#[derive(Debug)]
struct Stripe(AtomicBool);

/// A held [`Stripe`]; released when dropped.
struct StripeGuard<'a>(&'a Stripe);

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        (self.0).0.store(false, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Typed access to a list head in simulated memory.
struct Head<'a, 'm> {
    cpu: &'a Cpu<'m>,
    va: Va,
}

impl Head<'_, '_> {
    fn space(&self) -> &AddressSpace {
        self.cpu.machine().space()
    }
    fn at(&self, off: u64) -> Va {
        Va::new(self.va.get() + off)
    }
    fn bytes<const N: usize>(&self, off: u64) -> [u8; N] {
        let mut b = [0u8; N];
        self.space().read(self.at(off), &mut b).expect("list heads are in the space");
        b
    }
    fn put(&self, off: u64, data: &[u8]) {
        self.space().write(self.at(off), data).expect("list heads are in the space");
    }
    // The typed accessors take one load or store when the field is aligned (a head
    // Windows accepts always is); a misaligned head is read byte by byte.
    fn u16(&self, off: u64) -> u16 {
        let va = self.at(off);
        if va.get().is_multiple_of(2) {
            return self.space().read_u16(va).expect("list heads are in the space");
        }
        u16::from_le_bytes(self.bytes(off))
    }
    fn u32(&self, off: u64) -> u32 {
        let va = self.at(off);
        if va.get().is_multiple_of(4) {
            return self.space().read_u32(va).expect("list heads are in the space");
        }
        u32::from_le_bytes(self.bytes(off))
    }
    fn set_u32(&self, off: u64, v: u32) {
        let va = self.at(off);
        if va.get().is_multiple_of(4) {
            return self.space().write_u32(va, v).expect("list heads are in the space");
        }
        self.put(off, &v.to_le_bytes());
    }
    fn u64(&self, off: u64) -> u64 {
        let va = self.at(off);
        if va.get().is_multiple_of(8) {
            return self.space().read_u64(va).expect("list heads are in the space");
        }
        u64::from_le_bytes(self.bytes(off))
    }
    fn set_u64(&self, off: u64, v: u64) {
        let va = self.at(off);
        if va.get().is_multiple_of(8) {
            return self.space().write_u64(va, v).expect("list heads are in the space");
        }
        self.put(off, &v.to_le_bytes());
    }
    fn bump(&self, off: u64) {
        self.set_u32(off, self.u32(off).wrapping_add(1));
    }

    /// The `SLIST_HEADER`: (current depth, sequence, first entry's host address).
    fn slist(&self) -> (u16, u64, u64) {
        let first = self.u64(LIST_HEAD);
        let second = self.u64(LIST_HEAD + 8);
        // Bit 0 is HeaderType; entries of an x86 machine's pool may be only
        // 8-aligned, so only the low three bits are flags here.
        ((first & 0xFFFF) as u16, first >> 16, second & !0x7)
    }

    /// Writes the `SLIST_HEADER` in its 16-byte x64 form (`HeaderType` 1).
    fn set_slist(&self, depth: u16, sequence: u64, next: u64) {
        let first = u64::from(depth) | (sequence & 0xFFFF_FFFF_FFFF) << 16;
        let second = if next == 0 { 0 } else { next | 1 };
        self.set_u64(LIST_HEAD, first);
        self.set_u64(LIST_HEAD + 8, second);
    }
}

impl Lookasides {
    fn stripe(&self, head: Va) -> StripeGuard<'_> {
        let stripe = &self.stripes[((head.get() >> 7) as usize) % self.stripes.len()];
        while stripe.0.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        StripeGuard(stripe)
    }

    /// `ExInitializeNPagedLookasideList` / `ExInitializePagedLookasideList` /
    /// `ExInitializeLookasideListEx`: fills the head at `head` (`Depth` 4,
    /// `MaximumDepth` 256, counters zero, `Type`, `Tag`, `Size`, the routines) and
    /// adds the list to the scan. The caller's depth argument does not exist here:
    /// Windows ignores it.
    pub fn initialize(
        &self,
        cpu: &Cpu<'_>,
        head: Va,
        pool_type: PoolType,
        size: u32,
        tag: PoolTag,
        routines: Routines,
    ) {
        let _guard = self.stripe(head);
        let h = Head { cpu, va: head };
        h.put(0, &[0u8; GENERAL_LOOKASIDE_SIZE as usize]);
        h.put(DEPTH, &INITIAL_DEPTH.to_le_bytes());
        h.put(MAX_DEPTH, &MAXIMUM_DEPTH.to_le_bytes());
        h.put(TYPE, &pool_type.raw().to_le_bytes());
        h.put(TAG, &tag.0.to_le_bytes());
        h.put(SIZE, &size.to_le_bytes());
        lock(&self.lists).insert(head.get(), List { kind: pool_type.kind(), routines });
    }

    fn routines(&self, head: Va) -> Routines {
        lock(&self.lists).get(&head.get()).map(|l| l.routines.clone()).unwrap_or_default()
    }

    /// `ExAllocateFrom…LookasideList`: an entry from the list, or from its allocate
    /// routine when the list is empty (a miss). `None` is NULL.
    ///
    /// # Errors
    /// A bugcheck raised by the allocation (e.g. paged pool at DISPATCH_LEVEL).
    pub fn allocate(&self, cpu: &Cpu<'_>, head: Va) -> Result<Option<Va>, BugCheck> {
        let (pool_type, size, tag) = {
            let _guard = self.stripe(head);
            let h = Head { cpu, va: head };
            h.bump(TOTAL_ALLOCATES);
            let (depth, sequence, first) = h.slist();
            if first != 0 {
                let entry = cpu.machine().space().va_of_host(first as usize).expect("entries are in the space");
                let next = Head { cpu, va: entry }.u64(0);
                h.set_slist(depth - 1, sequence + 1, next);
                return Ok(Some(entry));
            }
            h.bump(ALLOCATE_MISSES);
            (h.u32(TYPE), u64::from(h.u32(SIZE)), PoolTag(h.u32(TAG)))
        };
        let pool_type = PoolType::from_raw(pool_type).unwrap_or(PoolType::NonPagedPool);
        match self.routines(head).allocate {
            Some(routine) => routine(cpu, pool_type, size, tag),
            None => pool::allocate(cpu, pool_type, size, tag),
        }
    }

    /// `ExFreeTo…LookasideList`: keeps `entry` on the list while it holds fewer
    /// than `Depth` entries, else gives it to the free routine (a miss).
    ///
    /// # Errors
    /// A bugcheck raised by the free.
    pub fn free(&self, cpu: &Cpu<'_>, head: Va, entry: Va) -> Result<(), BugCheck> {
        {
            let _guard = self.stripe(head);
            let h = Head { cpu, va: head };
            h.bump(TOTAL_FREES);
            let (depth, sequence, first) = h.slist();
            if depth < h.u16(DEPTH) {
                Head { cpu, va: entry }.set_u64(0, first);
                h.set_slist(depth + 1, sequence + 1, cpu.machine().space().host_addr(entry) as u64);
                return Ok(());
            }
            h.bump(FREE_MISSES);
        }
        self.release(cpu, head, entry)
    }

    fn release(&self, cpu: &Cpu<'_>, head: Va, entry: Va) -> Result<(), BugCheck> {
        match self.routines(head).free {
            Some(routine) => routine(cpu, entry),
            None => pool::free(cpu, entry, None),
        }
    }

    /// `ExDelete…LookasideList`: frees every entry the list holds and removes it
    /// from the scan (the list need not be empty, seed §7.2).
    ///
    /// # Errors
    /// A bugcheck raised by a free.
    pub fn delete(&self, cpu: &Cpu<'_>, head: Va) -> Result<(), BugCheck> {
        let entries = {
            let _guard = self.stripe(head);
            let h = Head { cpu, va: head };
            let (_, sequence, mut next) = h.slist();
            let mut entries = Vec::new();
            while next != 0 {
                let entry = cpu.machine().space().va_of_host(next as usize).expect("entries are in the space");
                entries.push(entry);
                next = Head { cpu, va: entry }.u64(0);
            }
            h.set_slist(0, sequence + 1, 0);
            entries
        };
        for entry in entries {
            self.release(cpu, head, entry)?;
        }
        lock(&self.lists).remove(&head.get());
        Ok(())
    }

    /// The fields of the list at `head`.
    pub fn info(&self, cpu: &Cpu<'_>, head: Va) -> LookasideInfo {
        let h = Head { cpu, va: head };
        LookasideInfo {
            current_depth: h.slist().0,
            depth: h.u16(DEPTH),
            maximum_depth: h.u16(MAX_DEPTH),
            total_allocates: h.u32(TOTAL_ALLOCATES),
            allocate_misses: h.u32(ALLOCATE_MISSES),
            total_frees: h.u32(TOTAL_FREES),
            free_misses: h.u32(FREE_MISSES),
            pool_type: h.u32(TYPE),
            tag: h.u32(TAG),
            size: h.u32(SIZE),
        }
    }

    /// Runs the depth scans due by simulated time `now_ms` (module docs give the rule).
    pub fn advance_to(&self, cpu: &Cpu<'_>, now_ms: u64) {
        loop {
            let group = {
                let mut scan = lock(&self.scan);
                if scan.0 > now_ms {
                    return;
                }
                let group = scan.1;
                scan.0 += SCAN_PERIOD_MS;
                scan.1 = match group {
                    PoolKind::Nonpaged => PoolKind::Paged,
                    PoolKind::Paged => PoolKind::Nonpaged,
                };
                group
            };
            let heads: Vec<u64> = lock(&self.lists).iter().filter(|(_, l)| l.kind == group).map(|(&h, _)| h).collect();
            for head in heads {
                let head = Va::new(head);
                let _guard = self.stripe(head);
                adjust_depth(&Head { cpu, va: head });
            }
        }
    }
}

/// One list's depth adjustment (module docs).
fn adjust_depth(h: &Head<'_, '_>) {
    let (allocates, misses) = (h.u32(TOTAL_ALLOCATES), h.u32(ALLOCATE_MISSES));
    let a = allocates.wrapping_sub(h.u32(LAST_TOTAL_ALLOCATES));
    let m = misses.wrapping_sub(h.u32(LAST_ALLOCATE_MISSES));
    let (depth, max) = (u32::from(h.u16(DEPTH)), u32::from(h.u16(MAX_DEPTH)));
    let new = if a < MIN_ALLOCATION_RATE {
        depth.saturating_sub(10)
    } else {
        let per_mille = (1000 * u64::from(m) / u64::from(a)) as u32;
        if per_mille < 5 {
            depth.saturating_sub(1)
        } else {
            depth + ((max - depth.min(max)) * per_mille / 2000 + 5).clamp(1, 30)
        }
    };
    let new = new.clamp(u32::from(INITIAL_DEPTH), max) as u16;
    h.put(DEPTH, &new.to_le_bytes());
    h.put(LAST_TOTAL_ALLOCATES, &allocates.to_le_bytes());
    h.put(LAST_ALLOCATE_MISSES, &misses.to_le_bytes());
}
