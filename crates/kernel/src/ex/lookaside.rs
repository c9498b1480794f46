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
//! not public; nt-algorithms.md §5 \[DESIGN\]): every 1000 ms one of the two list
//! groups (nonpaged, paged) is scanned in turn. For each list, with A allocations
//! and M misses since its last scan: A < 75 → Depth −= 10; otherwise with
//! m = 1000·M/A: m < 5 → Depth −= 1, else Depth += clamp((MaximumDepth −
//! Depth)·m/2000 + 5, 1, 30); Depth stays within [4, MaximumDepth]. Shrinking never
//! frees entries at once: the excess drains through frees that miss.
//!
//! A head must be 16-byte aligned (8 on an x86 machine), as 64-bit Windows'
//! `InitializeSListHead` demands: initialising a misaligned one raises
//! STATUS_DATATYPE_MISALIGNMENT. An operation on a head no list could be at stops
//! the machine with 0x1E (the general-protection fault of a misaligned interlocked
//! exchange); a first-entry pointer outside the machine with 0x50. An entry
//! outside the machine's address space — NULL, or memory the machine does not hold,
//! such as a driver's global variable or what a custom allocate routine took from
//! there (a difference from Windows, where driver globals are system memory, as for
//! heads) — stops the machine as the push's or pop's touch of its link would
//! ([`wild_touch`]: 0x8E for an address outside system space) instead of being
//! written through.
//!
//! Locking: operations on one list are serialised by one of a few striped spin
//! locks (Windows uses an interlocked SLIST; the effect a driver sees is the same).
//! A hit is that lock plus a handful of loads and stores through one window on the
//! head ([`AddressSpace::window`](crate::mm::space::AddressSpace::window)) and one on the entry; the list registry
//! (routines) is consulted only on a miss.
//!
//! The rule of those locks: nothing under one touches the driver's memory for the
//! first time. A touch can fault, and a fault the driver's `__try` takes leaves by
//! a `longjmp` that never drops the guard — the next operation on any list of that
//! stripe would spin for ever (a stripe its own processor still holds is taken
//! over, see [`Stripe`], as the last defence). So every operation touches the head (a write that
//! changes nothing, [`Window::touch`]) and the entry it is given (its link, read and
//! written back, as the push will) before it takes the lock; the pop reads the
//! first entry's link outside the lock too, and takes it only if the list is
//! unchanged meanwhile (the `SLIST_HEADER` sequence, as Windows' interlocked pop
//! compares it); delete detaches the whole chain under the lock and walks it
//! outside. Where ntmem differs: a fault on an entry another processor popped and
//! freed meanwhile is the driver's fault here, where Windows' page-fault handler
//! retries the pop (`ExpInterlockedPopEntrySListFault`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ntmem_machine::Va;

use ntmem_host::Window;

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolKind, PoolTag, PoolType, Raise};
use crate::ke::processor::Cpu;
use crate::trap::wild_touch;

/// `sizeof(GENERAL_LOOKASIDE_POOL)` on x64: the bytes of a head ntmem reads and
/// writes. `LOOKASIDE_LIST_EX` is exactly this (0x60); `GENERAL_LOOKASIDE`, the head
/// of the classic `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST`, has the same
/// fields padded to a cache line (0x80), and the padding is the driver's: nothing
/// past 0x60 is written (WDK wdm.h; the C side asserts both sizes in
/// include/ntmem/lookaside.h).
pub const GENERAL_LOOKASIDE_POOL_SIZE: u64 = 0x60;
/// The depth a list starts with (`ExInitialize…LookasideList` ignores the caller's).
pub const INITIAL_DEPTH: u16 = 4;
/// `MaximumDepth` of every driver list.
pub const MAXIMUM_DEPTH: u16 = 256;
/// Allocations per scan below which a list shrinks by ten.
const MIN_ALLOCATION_RATE: u32 = 75;
/// Locks serialising list operations (a power of two).
const STRIPES: usize = 16;
/// Simulated milliseconds between scans.
pub const SCAN_PERIOD_MS: u64 = 1000;

const DEPTH: usize = 0x10;
const MAX_DEPTH: usize = 0x12;
const TOTAL_ALLOCATES: usize = 0x14;
const ALLOCATE_MISSES: usize = 0x18;
const TOTAL_FREES: usize = 0x1C;
const FREE_MISSES: usize = 0x20;
const TYPE: usize = 0x24;
const TAG: usize = 0x28;
const SIZE: usize = 0x2C;
const LAST_TOTAL_ALLOCATES: usize = 0x50;
const LAST_ALLOCATE_MISSES: usize = 0x54;
/// `Allocate` / `AllocateEx` and `Free` / `FreeEx` (written by the WDK boundary).
pub const ALLOCATE_ROUTINE: usize = 0x30;
/// See [`ALLOCATE_ROUTINE`].
pub const FREE_ROUTINE: usize = 0x38;

// Every field ntmem touches lies inside the smallest head a driver may pass.
const _: () = assert!(LAST_ALLOCATE_MISSES + 4 <= GENERAL_LOOKASIDE_POOL_SIZE as usize);
const _: () = assert!(FREE_ROUTINE + 8 <= GENERAL_LOOKASIDE_POOL_SIZE as usize);
const _: () = assert!(TYPE == 0x24 && TAG == 0x28 && SIZE == 0x2C && DEPTH == 0x10 && MAX_DEPTH == 0x12);

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
            stripes: (0..STRIPES).map(|_| Stripe(AtomicU32::new(0))).collect(),
            scan: Mutex::new((SCAN_PERIOD_MS, PoolKind::Nonpaged)),
        }
    }
}

/// One of the locks that serialise list operations: a spin lock, as the list
/// operations it covers are a handful of memory accesses (the hit path of
/// `ExAllocateFrom…LookasideList` must be cheap, issue 3 item 9). It holds 0 when
/// free, else the number of the processor holding it plus one: list operations do
/// not nest, and a processor runs on one thread at a time, so a stripe its own
/// processor holds was abandoned by a fault that left through `longjmp` (module
/// docs) and is taken over.
#[derive(Debug)]
struct Stripe(AtomicU32);

/// A held [`Stripe`]; released when dropped.
struct StripeGuard<'a>(&'a Stripe);

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        (self.0).0.store(0, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A list head in simulated memory: the x64 `GENERAL_LOOKASIDE_POOL`, its fields read
/// and written by constant offset through one window (checked once per call).
#[derive(Clone, Copy)]
struct Head<'a>(Window<'a, { GENERAL_LOOKASIDE_POOL_SIZE as usize }>);

impl<'a> Head<'a> {
    /// The head at `va`: inside the space and aligned as `InitializeSListHead`
    /// requires on 64-bit Windows (16 bytes; 8 on an x86 machine, whose
    /// `SLIST_HEADER` is 8 bytes). `None` otherwise.
    fn at(cpu: &Cpu<'a>, va: Va) -> Option<Head<'a>> {
        let align = if cpu.machine().profile().arch.pointer_size() == 8 { 16 } else { 8 };
        if va.get() & (align - 1) != 0 {
            return None;
        }
        cpu.machine().space().window(va).map(Head)
    }

    fn bump<const OFF: usize>(self) {
        self.0.write_u32::<OFF>(self.0.read_u32::<OFF>().wrapping_add(1));
    }

    /// The `SLIST_HEADER`: (current depth, sequence, first entry's host address).
    fn slist(self) -> (u16, u64, u64) {
        let (depth, sequence, _) = super::slist::decode(self.0.read_u64::<0>(), 0);
        // Bit 0 is HeaderType; entries of an x86 machine's pool may be only
        // 8-aligned, so only the low three bits are flags here.
        (depth, sequence, self.0.read_u64::<8>() & !0x7)
    }

    /// Writes the `SLIST_HEADER` in its 16-byte x64 form ([`super::slist::encode`];
    /// an x86 machine's 8-aligned entry keeps its bit 3).
    fn set_slist(self, depth: u16, sequence: u64, next: u64) {
        let (alignment, _) = super::slist::encode(depth, sequence, 0);
        self.0.write_u64::<0>(alignment);
        self.0.write_u64::<8>(if next == 0 { 0 } else { next | 1 });
    }
}

/// The `Next` link in the first 8 bytes of a free entry (one load when the entry is
/// 8-aligned, as pool blocks are; byte by byte for a custom routine's odd address).
/// An entry outside the machine stops it as the touch would ([`wild_touch`]).
fn link(cpu: &Cpu<'_>, entry: Va) -> Result<u64, BugCheck> {
    let space = cpu.machine().space();
    match space.window::<8>(entry) {
        Some(w) => Ok(w.read_u64::<0>()),
        None => {
            let mut b = [0u8; 8];
            space.read(entry, &mut b).map_err(|_| wild_touch(cpu, entry, false))?;
            Ok(u64::from_le_bytes(b))
        }
    }
}

/// Writes the `Next` link of `entry`; see [`link`].
fn set_link(cpu: &Cpu<'_>, entry: Va, next: u64) -> Result<(), BugCheck> {
    let space = cpu.machine().space();
    match space.window::<8>(entry) {
        Some(w) => {
            w.write_u64::<0>(next);
            Ok(())
        }
        None => space.write(entry, &next.to_le_bytes()).map_err(|_| wild_touch(cpu, entry, true)),
    }
}

impl Lookasides {
    fn stripe(&self, cpu: &Cpu<'_>, head: Va) -> StripeGuard<'_> {
        let stripe = &self.stripes[(head.get() >> 7) as usize & (STRIPES - 1)];
        let me = cpu.number() + 1;
        loop {
            match stripe.0.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                // Abandoned by this processor (see [`Stripe`]).
                Err(owner) if owner == me => break,
                Err(_) => std::hint::spin_loop(),
            }
        }
        StripeGuard(stripe)
    }

    /// `ExInitializeNPagedLookasideList` / `ExInitializePagedLookasideList` /
    /// `ExInitializeLookasideListEx`: fills the head at `head` (`Depth` 4,
    /// `MaximumDepth` 256, counters zero, `Type`, `Tag`, `Size`, the routines) and
    /// adds the list to the scan. The caller's depth argument does not exist here:
    /// Windows ignores it.
    ///
    /// # Errors
    /// `STATUS_DATATYPE_MISALIGNMENT` for a head that is not 16-byte aligned (8 on
    /// an x86 machine), raised as 64-bit Windows' `InitializeSListHead` raises it
    /// (wdm.h); nothing is initialised.
    pub fn initialize(
        &self,
        cpu: &Cpu<'_>,
        head: Va,
        pool_type: PoolType,
        size: u32,
        tag: PoolTag,
        routines: Routines,
    ) -> Result<(), Raise> {
        let h = Head::at(cpu, head).ok_or(Raise(NtStatus::DATATYPE_MISALIGNMENT))?;
        h.0.touch();
        let _guard = self.stripe(cpu, head);
        cpu.machine().space().fill(head, GENERAL_LOOKASIDE_POOL_SIZE, 0).expect("the head is in the space");
        h.0.write_u16::<DEPTH>(INITIAL_DEPTH);
        h.0.write_u16::<MAX_DEPTH>(MAXIMUM_DEPTH);
        h.0.write_u32::<TYPE>(pool_type.raw());
        h.0.write_u32::<TAG>(tag.0);
        h.0.write_u32::<SIZE>(size);
        lock(&self.lists).insert(head.get(), List { kind: pool_type.kind(), routines });
        Ok(())
    }

    /// The head at `va` for an operation on an initialised list. A head
    /// `InitializeSListHead` would have refused is stopped as the processor would
    /// stop an interlocked 16-byte exchange on it: KMODE_EXCEPTION_NOT_HANDLED
    /// (0x1E) for a general-protection fault (STATUS_ACCESS_VIOLATION, address
    /// unknown: parameter 4 is −1).
    /// The head is touched ([`Window::touch`]) before it is returned, outside any
    /// lock (module docs).
    fn head<'a>(cpu: &Cpu<'a>, va: Va) -> Result<Head<'a>, BugCheck> {
        let h = Head::at(cpu, va).ok_or_else(|| crate::trap::misaligned_interlocked(cpu))?;
        h.0.touch();
        Ok(h)
    }

    /// The simulated address of the entry a list's `SLIST_HEADER` names; a pointer
    /// outside the machine (a corrupted head) stops it as touching that address
    /// would: PAGE_FAULT_IN_NONPAGED_AREA (0x50), a read.
    fn entry(cpu: &Cpu<'_>, host: u64) -> Result<Va, BugCheck> {
        cpu.machine()
            .space()
            .va_of_host(host as usize)
            .ok_or_else(|| cpu.machine().bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [host, 0, 0, 0]))
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
        let h = Self::head(cpu, head)?;
        // The pop: the first entry's link is read outside the lock (module docs),
        // and the entry taken only if the list has not changed meanwhile.
        let mut seen = {
            let _guard = self.stripe(cpu, head);
            h.slist()
        };
        let (pool_type, size, tag) = loop {
            let next = match seen.2 {
                0 => None,
                first => {
                    let entry = Self::entry(cpu, first)?;
                    Some((entry, link(cpu, entry)?))
                }
            };
            let _guard = self.stripe(cpu, head);
            let now = h.slist();
            if (now.1, now.2) != (seen.1, seen.2) {
                seen = now;
                continue;
            }
            h.bump::<TOTAL_ALLOCATES>();
            if let Some((entry, link)) = next {
                h.set_slist(now.0.wrapping_sub(1), now.1 + 1, link);
                return Ok(Some(entry));
            }
            h.bump::<ALLOCATE_MISSES>();
            break (h.0.read_u32::<TYPE>(), u64::from(h.0.read_u32::<SIZE>()), PoolTag(h.0.read_u32::<TAG>()));
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
        let h = Self::head(cpu, head)?;
        // The push's touch of the link, outside the lock (module docs).
        set_link(cpu, entry, link(cpu, entry)?)?;
        {
            let _guard = self.stripe(cpu, head);
            h.bump::<TOTAL_FREES>();
            let (depth, sequence, first) = h.slist();
            if depth < h.0.read_u16::<DEPTH>() {
                set_link(cpu, entry, first)?;
                h.set_slist(depth + 1, sequence + 1, cpu.machine().space().host_addr(entry) as u64);
                return Ok(());
            }
            h.bump::<FREE_MISSES>();
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
        let h = Self::head(cpu, head)?;
        // The chain is detached under the lock and walked outside it (module docs).
        let mut next = {
            let _guard = self.stripe(cpu, head);
            let (_, sequence, first) = h.slist();
            h.set_slist(0, sequence + 1, 0);
            first
        };
        while next != 0 {
            let entry = Self::entry(cpu, next)?;
            next = link(cpu, entry)?;
            self.release(cpu, head, entry)?;
        }
        lock(&self.lists).remove(&head.get());
        Ok(())
    }

    /// The fields of the list at `head`; `None` when no list could be there
    /// (misaligned, or outside the machine).
    pub fn info(&self, cpu: &Cpu<'_>, head: Va) -> Option<LookasideInfo> {
        let h = Head::at(cpu, head)?;
        Some(LookasideInfo {
            current_depth: h.slist().0,
            depth: h.0.read_u16::<DEPTH>(),
            maximum_depth: h.0.read_u16::<MAX_DEPTH>(),
            total_allocates: h.0.read_u32::<TOTAL_ALLOCATES>(),
            allocate_misses: h.0.read_u32::<ALLOCATE_MISSES>(),
            total_frees: h.0.read_u32::<TOTAL_FREES>(),
            free_misses: h.0.read_u32::<FREE_MISSES>(),
            pool_type: h.0.read_u32::<TYPE>(),
            tag: h.0.read_u32::<TAG>(),
            size: h.0.read_u32::<SIZE>(),
        })
    }

    /// Runs the depth scans due by simulated time `now_ms` (module docs give the rule).
    ///
    /// Once two scans in a row (one of each pool) change nothing — no list was
    /// allocated from and every depth is at its floor — the scans left before
    /// `now_ms` would change nothing either, and are skipped in one step: a
    /// scenario may advance simulated time by years without running them one by one.
    pub fn advance_to(&self, cpu: &Cpu<'_>, now_ms: u64) {
        let mut idle_scans = 0;
        loop {
            let group = {
                let mut scan = lock(&self.scan);
                if scan.0 > now_ms {
                    return;
                }
                if idle_scans >= 2 {
                    let skipped = (now_ms - scan.0) / SCAN_PERIOD_MS;
                    scan.0 += skipped * SCAN_PERIOD_MS;
                    if skipped % 2 == 1 {
                        scan.1 = match scan.1 {
                            PoolKind::Nonpaged => PoolKind::Paged,
                            PoolKind::Paged => PoolKind::Nonpaged,
                        };
                    }
                    idle_scans = 0;
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
            let mut changed = false;
            for head in heads.into_iter().map(Va::new) {
                if let Some(h) = Head::at(cpu, head) {
                    h.0.touch();
                    let _guard = self.stripe(cpu, head);
                    changed |= adjust_depth(h);
                }
            }
            idle_scans = if changed { 0 } else { idle_scans + 1 };
        }
    }
}

/// One list's depth adjustment (module docs); whether it changed anything.
fn adjust_depth(h: Head<'_>) -> bool {
    let (allocates, misses) = (h.0.read_u32::<TOTAL_ALLOCATES>(), h.0.read_u32::<ALLOCATE_MISSES>());
    let a = allocates.wrapping_sub(h.0.read_u32::<LAST_TOTAL_ALLOCATES>());
    let m = misses.wrapping_sub(h.0.read_u32::<LAST_ALLOCATE_MISSES>());
    let (depth, max) = (u32::from(h.0.read_u16::<DEPTH>()), u32::from(h.0.read_u16::<MAX_DEPTH>()));
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
    let new = new.clamp(u32::from(INITIAL_DEPTH), max);
    h.0.write_u16::<DEPTH>(new as u16);
    h.0.write_u32::<LAST_TOTAL_ALLOCATES>(allocates);
    h.0.write_u32::<LAST_ALLOCATE_MISSES>(misses);
    new != depth || a != 0 || m != 0
}
