//! Special pool: Driver Verifier's option 0x1 (Microsoft, "Special Pool" in the Driver
//! Verifier docs; research/nt-algorithms.md §2).
//!
//! **What a driver observes.** With [`VerifierFlags::SPECIAL_POOL`] on, every
//! `ExAllocatePoolWithTag`-family request that normal pool would serve as a small
//! block with a header (up to 0xFF0 bytes on x86, 0xFE0 on x64 and IA-64), paged or
//! nonpaged, gets a page of its own from the layout's special pool region, backed by
//! a fresh frame and mapped for real, beside a page that is never mapped:
//!
//! ```text
//!            Verify End (the default)                 Verify Start (XxxSpecialPoolUnderrun)
//!   | header | pattern … | block | slack | guard |   | guard | block | pattern … | header |
//!   ^ data page                           ^ no access          ^ data page
//! ```
//!
//! * **Verify End**: the block ends at the page end, at the highest address that keeps
//!   the header's alignment (8 on x86, 16 on 64-bit), so up to alignment − 1 bytes
//!   of slack may follow it. An overrun past the page touches the guard page and
//!   faults at once: PAGE_FAULT_BEYOND_END_OF_ALLOCATION (0xCD), or
//!   DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION (0xD6) when the faulting instruction
//!   is in a loaded driver (`crate::trap`). An underrun, or an overrun into the
//!   slack, damages the pattern and is found at free: 0xC1.
//! * **Verify Start**: the block starts the page, the guard page is before it;
//!   `ExAllocatePoolWithTagPriority` with a `XxxSpecialPoolUnderrun` priority chooses
//!   it for one allocation. An underrun faults (0xCD/0xD6), an overrun is found at free.
//! * **Freed** special pool is unmapped and its frame freed; a touch faults:
//!   PAGE_FAULT_IN_FREED_SPECIAL_POOL (0xCC) / DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL
//!   (0xD5). These faults are on system addresses, so no `__try` catches them, as
//!   Windows documents ("This cannot be protected by a try - except handler").
//!
//! The header (nt-algorithms.md §2): `Ulong1` = bytes requested, `| 0x8000` for paged
//! pool, with the pattern byte in its BlockSize byte (byte 2); PoolTag at offset 4.
//! The rest of the page holds the pattern byte, the block too (special pool does not
//! clear it; `ExAllocatePool2` zeroes it as usual). Windows does not publish its
//! pattern; ntmem's is derived from the simulated tick count, as ReactOS's is, among
//! the bytes with at least two bits set: never 0x00, the byte an underrun most often
//! writes, nor one bit away from it, so a NUL one past the end is an overrun (0x24),
//! never a single-bit error (0x32).
//!
//! **Frees** (`SpecialPool::free`) check, in this order, with 0xC1 and the subcodes
//! of [`checks::special`]: the page holds a live block (0x20), the IRQL (0x31), the
//! address against the size in the header (0x21, 0x22), the pattern before and after
//! the block (0x23, 0x24; 0x32 when the only damage is one flipped bit); then a
//! protected tag freed with another tag is BAD_POOL_CALLER 0xA as in normal pool.
//! The page is unmapped (its frame freed) and its pair of pages queued at the tail:
//! pairs are reused first in, first out, after every never-used pair, so a freed
//! address stays unmapped for as long as possible and a use after free faults.
//!
//! **Limits.** Live special allocations are bounded by the region's pairs of pages, by
//! 1/16 of the machine's RAM pages (1/8 above 0x3FFF pages; §2, after ReactOS), and by
//! [`HOST_LIVE_PAGES`]; none is made while fewer than 0x100 frames are free. Past a
//! limit the request is silently served by normal pool, as Windows does ("If the pool
//! is exhausted, memory is allocated in the standard way"). [`SpecialPoolUsage`] has
//! the counters Driver Verifier shows for this.
//!
//! **PoolMon.** A special allocation is counted under its tag and pool type with the
//! bytes normal pool would have charged for it (header and rounding), so PoolMon
//! reads the same with and without the verifier; `ExQueryPoolBlockSize` answers the
//! bytes requested.
//!
//! **Why here and not in `vf`.** Special pool is pool: it hands out pool blocks with
//! the pool's header geometry, tags and counters, and the pool's free path sends it
//! every address in its region. The verifier only switches it on; the pool's own
//! routines steer it (`ExAllocatePoolWithTagPriority`'s special-pool priorities).
//! Placed in `vf`, it would need the pool's internals and the pool would call up a
//! layer to reach it.
//!
//! **Where ntmem differs from Windows.** Every allocation of the machine is eligible,
//! the kernel's own included (Windows verifies the drivers named to Verifier; since
//! Windows 7 it also puts their IRPs and MDLs in special pool). Charged allocations
//! (`ExAllocatePoolWithQuotaTag`, `POOL_FLAG_USE_QUOTA`) and the cache-aligned types
//! ("for internal use only" in the WDK's POOL_TYPE page) keep normal pool. Paged
//! special pool is never paged out (Microsoft: each allocation "uses one page of
//! nonpageable physical memory"). No freed-block record is written into the page.
//!
//! **Locking.** One lock over the pairs; page roles are atomic bytes, which the fault
//! handler reads without a lock ([`SpecialPages`]).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use ntmem_host::{HostError, SparseBytes};
use ntmem_machine::{MachineProfile, RegionKind, Va};

use super::checks::{self, caller};
use super::header::{Geometry, Mem};
use super::types::{PoolKind, PoolPriority, PoolTag, PoolType};
use super::{lock, BlockSize, Request};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::processor::Cpu;
use crate::mm::frames::FrameRequest;
use crate::mm::pfn::PageUse;
use crate::mm::space::{to_usize, Access};
use crate::mm::MmError;
use crate::vf::VerifierFlags;

/// Live special-pool pages one machine may have. Each is a host mapping between two
/// stretches of the reservation, two of the host's memory mappings; 8192 of them
/// keep a machine's special pool within a quarter of Linux's default
/// `vm.max_map_count` (65,530), so the host is never what fails first (DESIGN.md,
/// "Host budget").
pub const HOST_LIVE_PAGES: u64 = 8192;

/// No special allocation is made while fewer frames than this are free (nt-algorithms.md
/// §2: ReactOS refuses below 0x100 available pages).
const MIN_FREE_FRAMES: u64 = 0x100;

/// `Ulong1`'s flag for a paged-pool block (nt-algorithms.md §2).
const PAGED_FLAG: u32 = 0x8000;

/// Clock ticks a second: Windows' default clock interval is 15.625 ms.
const TICKS_PER_SECOND: u64 = 64;

/// Where a block sits in its special-pool page (Microsoft, "Special Pool": the Verify
/// Start and Verify End alignments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alignment {
    /// At the page end, the guard page after it: overruns fault (the default).
    VerifyEnd,
    /// At the page start, the guard page before it: underruns fault.
    VerifyStart,
}

impl PoolPriority {
    /// The special-pool alignment the priority asks for: Verify Start for the
    /// `XxxSpecialPoolUnderrun` priorities, Verify End otherwise (`ExAllocatePoolWithTagPriority`
    /// can choose the alignment, not whether special pool is used).
    pub fn special_alignment(self) -> Alignment {
        match self {
            PoolPriority::LowSpecialPoolUnderrun
            | PoolPriority::NormalSpecialPoolUnderrun
            | PoolPriority::HighSpecialPoolUnderrun => Alignment::VerifyStart,
            _ => Alignment::VerifyEnd,
        }
    }
}

/// What a page of the special pool region is (one atomic byte a page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Role {
    /// Never handed out.
    Unused = 0,
    /// The mapped page of a live block.
    Data = 1,
    /// The never-mapped neighbour of a data page.
    Guard = 2,
    /// The data page of a freed block: unmapped.
    Freed = 3,
}

/// What a touch of an inaccessible special-pool page means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialFault {
    /// A guard page: beyond the end (or, Verify Start, before the start) of a block:
    /// 0xCD / 0xD6.
    BeyondEnd,
    /// The page of a freed block: 0xCC / 0xD5.
    Freed,
}

/// The role of every page of the special pool region, which the fault handler reads
/// without a lock (async-signal-safe).
#[derive(Debug)]
pub struct SpecialPages {
    start: u64,
    end: u64,
    page_shift: u32,
    roles: SparseBytes,
}

impl SpecialPages {
    fn new(start: u64, size: u64, page: u64) -> Result<SpecialPages, HostError> {
        let roles = SparseBytes::new(to_usize(size / page))?;
        Ok(SpecialPages { start, end: start + size, page_shift: page.trailing_zeros(), roles })
    }

    /// Whether `va` lies in the special pool region.
    #[inline]
    pub fn contains(&self, va: u64) -> bool {
        va >= self.start && va < self.end
    }

    fn slot(&self, va: u64) -> Option<&AtomicU8> {
        if !self.contains(va) {
            return None;
        }
        self.roles.bytes().get(to_usize((va - self.start) >> self.page_shift))
    }

    fn role(&self, va: u64) -> Role {
        match self.slot(va).map_or(0, |s| s.load(Ordering::Acquire)) {
            1 => Role::Data,
            2 => Role::Guard,
            3 => Role::Freed,
            _ => Role::Unused,
        }
    }

    fn set(&self, va: u64, role: Role) {
        if let Some(slot) = self.slot(va) {
            slot.store(role as u8, Ordering::Release);
        }
    }

    /// What a fault at `va` means, if `va` is a guard page or a freed page of the
    /// special pool (never-used pages are ordinary unmapped system space).
    pub fn fault_at(&self, va: Va) -> Option<SpecialFault> {
        match self.role(va.get()) {
            Role::Guard => Some(SpecialFault::BeyondEnd),
            Role::Freed => Some(SpecialFault::Freed),
            Role::Unused | Role::Data => None,
        }
    }
}

/// Special pool's counters (what `!verifier` and Driver Verifier Manager show as
/// "Pool Allocations Succeeded in Special Pool").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpecialPoolUsage {
    /// Live special allocations.
    pub live: u64,
    /// The most there may be at once (see the module docs).
    pub limit: u64,
    /// Allocations served from special pool so far.
    pub allocations: u64,
    /// Eligible allocations served from normal pool because special pool was exhausted.
    pub fallbacks: u64,
}

/// The free pairs of pages: never-used pairs are handed out in order, then freed
/// ones, oldest first.
#[derive(Debug, Default)]
struct Pairs {
    fresh: u64,
    freed: VecDeque<u64>,
    live: u64,
}

/// A freed special block, for the pool's counters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Freed {
    pub tag: u32,
    pub kind: PoolKind,
    pub bytes: u64,
}

/// A live block's header, decoded.
#[derive(Clone, Copy, Debug)]
struct Header {
    requested: u64,
    kind: PoolKind,
    pattern: u8,
    tag: u32,
}

/// Special pool requested by tag or size with GFlags, independent of Driver
/// Verifier (Microsoft, "Requesting Special Pool by Pool Tag" and "… by Allocation
/// Size"; research note `dma-verifier-views.md` §3.6): the `PoolTag` value of the
/// Memory Management key and `PoolTagOverruns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSelection {
    /// What is selected.
    pub selector: Selector,
    /// `PoolTagOverruns`: 1 (true, the default) Verify End — the block ends against
    /// the guard page, overruns fault; 0 Verify Start — underruns fault.
    pub overruns: bool,
}

/// The `PoolTag` value: a tag pattern or a size class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A tag pattern (`?` one character, `*` the rest; `*` alone: every allocation).
    Tag(String),
    /// A value below PAGE_SIZE: the block size, header included, of the allocations
    /// selected (x64: 0x20 for 1–16 bytes, 0x30 for 17–32 …; x86: 0x10 for 1–8 …);
    /// an allocation whose tag numerically equals the value is selected too.
    Size(u64),
}

impl TagSelection {
    /// Reads a GFlags value as `gflags /k +spp` takes it: a number below `page` is a
    /// size class (`0x30`), anything else a tag pattern of one to four characters
    /// (`Tag1`, `Fat*`, `*`).
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub fn parse(text: &str, page: u64, overruns: bool) -> Result<TagSelection, String> {
        let t = text.trim();
        let number = t.strip_prefix("0x").map_or_else(|| t.parse::<u64>().ok(), |h| u64::from_str_radix(h, 16).ok());
        let selector = match number {
            Some(n) if n > 0 && n < page => Selector::Size(n),
            _ if !t.is_empty() && t.chars().count() <= 4 && t.is_ascii() => Selector::Tag(t.to_string()),
            _ => {
                return Err(format!(
                    "special pool tag {text:?}: give a tag of one to four characters (with ? and * wildcards) or a block size below {page:#x}"
                ))
            }
        };
        Ok(TagSelection { selector, overruns })
    }
}

/// The machine's special pool.
#[derive(Debug)]
pub struct SpecialPool {
    g: Geometry,
    pages: Arc<SpecialPages>,
    /// GFlags' selection, if any; `by_tag` says whether there is one without a lock.
    selection: std::sync::RwLock<Option<TagSelection>>,
    by_tag: std::sync::atomic::AtomicBool,
    pairs: Mutex<Pairs>,
    total: u64,
    limit: u64,
    allocations: AtomicU64,
    fallbacks: AtomicU64,
}

/// Whether the machine's verifier options include special pool (an atomic load: the
/// pool's hit path asks on every allocation).
#[inline]
pub(crate) fn enabled(cpu: &Cpu<'_>) -> bool {
    cpu.machine().verifier().contains(VerifierFlags::SPECIAL_POOL)
}

impl SpecialPool {
    /// The special pool of `profile`, over its layout's special pool region (none:
    /// every eligible request falls back to normal pool).
    ///
    /// # Errors
    /// When the host cannot map the page-role table.
    pub(super) fn new(profile: &MachineProfile, g: Geometry) -> Result<SpecialPool, HostError> {
        let (start, size) = profile.layout.region(RegionKind::SpecialPool).map_or((0, 0), |r| (r.start.get(), r.size));
        let total = size / g.page / 2;
        let ram_pages = profile.physmap.usable_ram() / g.page;
        let by_ram = ram_pages / if ram_pages > 0x3FFF { 8 } else { 16 };
        Ok(SpecialPool {
            g,
            pages: Arc::new(SpecialPages::new(start, size, g.page)?),
            pairs: Mutex::new(Pairs::default()),
            selection: std::sync::RwLock::new(None),
            by_tag: std::sync::atomic::AtomicBool::new(false),
            total,
            limit: total.min(by_ram).min(HOST_LIVE_PAGES),
            allocations: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The page roles, for the fault handler.
    pub fn pages(&self) -> Arc<SpecialPages> {
        Arc::clone(&self.pages)
    }

    /// Whether `va` lies in the special pool region: its frees and queries come here.
    #[inline]
    pub fn contains(&self, va: u64) -> bool {
        self.pages.contains(va)
    }

    /// The counters.
    pub fn usage(&self) -> SpecialPoolUsage {
        SpecialPoolUsage {
            live: lock(&self.pairs).live,
            limit: self.limit,
            allocations: self.allocations.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// The bytes PoolMon counts for a special block of `bytes`: what normal pool would
    /// have charged (header and rounding to the block unit).
    pub(super) fn charge(&self, bytes: u64) -> u64 {
        self.g.units_for(bytes) * self.g.unit
    }

    /// Sets (or with `None` clears) GFlags' special pool by tag or size.
    pub fn set_selection(&self, selection: Option<TagSelection>) {
        let on = selection.is_some();
        *self.selection.write().unwrap_or_else(std::sync::PoisonError::into_inner) = selection;
        self.by_tag.store(on, Ordering::Release);
    }

    /// GFlags' selection.
    pub fn selection(&self) -> Option<TagSelection> {
        self.selection.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether GFlags selects some allocations (an atomic load).
    #[inline]
    pub(super) fn by_tag(&self) -> bool {
        self.by_tag.load(Ordering::Acquire)
    }

    /// Whether GFlags' selection takes an allocation of `bytes` tagged `tag`.
    fn tag_selects(&self, bytes: u64, tag: u32) -> bool {
        if !self.by_tag() {
            return false;
        }
        let selection = self.selection.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match selection.as_ref().map(|s| &s.selector) {
            Some(Selector::Tag(p)) => crate::vf::faults::tag_matches(p, super::PoolTag(tag).tracked()),
            Some(Selector::Size(size)) => {
                self.g.units_for(bytes) * self.g.unit == *size || u64::from(super::PoolTag(tag).tracked().0) == *size
            }
            None => false,
        }
    }

    /// Where a block goes: Verify Start when the caller asks for it (the
    /// `…SpecialPoolUnderrun` priorities) or GFlags says `PoolTagOverruns` 0, else
    /// Verify End.
    pub(super) fn alignment(&self, priority: PoolPriority) -> Alignment {
        let underruns = self.by_tag() && self.selection().is_some_and(|s| !s.overruns);
        if underruns {
            Alignment::VerifyStart
        } else {
            priority.special_alignment()
        }
    }

    /// Whether special pool takes this request: the verifier option is on or GFlags
    /// selects its tag or size, the request is one normal pool would serve as a small
    /// block (up to 0xFF0 bytes on x86, 0xFE0 on 64-bit: [`super::header`]), and it
    /// is neither charged nor cache-aligned.
    pub(super) fn selects(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32, req: &Request<'_>) -> bool {
        let fits = bytes != 0 && self.g.units_for(bytes) <= self.g.max_block;
        fits && !t.cache_aligned()
            && req.quota.is_none()
            && (req.special || enabled(cpu) || self.tag_selects(bytes, tag))
    }

    /// The IRQL rule for a request special pool takes: 0xC1 (IRQL, pool type, bytes,
    /// 0x30) above DISPATCH_LEVEL for nonpaged pool, above APC_LEVEL for paged.
    ///
    /// # Errors
    /// The bugcheck.
    pub(super) fn check_allocate_irql(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64) -> Result<(), BugCheck> {
        let irql = cpu.irql();
        if irql > t.kind().ceiling() {
            return Err(corruption(
                cpu,
                [u64::from(irql.0), u64::from(t.raw()), bytes, checks::special::ALLOCATE_AT_BAD_IRQL],
            ));
        }
        Ok(())
    }

    /// A block of `bytes` (eligible: [`SpecialPool::selects`]) placed as `alignment`
    /// says, filled with the pattern; `None` when special pool is exhausted (the
    /// caller falls back to normal pool).
    pub(super) fn allocate(
        &self,
        cpu: &Cpu<'_>,
        t: PoolType,
        bytes: u64,
        tag: u32,
        alignment: Alignment,
    ) -> Option<Va> {
        let va = self.place(cpu, t, bytes, tag, alignment);
        let counter = if va.is_some() { &self.allocations } else { &self.fallbacks };
        counter.fetch_add(1, Ordering::Relaxed);
        va
    }

    fn place(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32, alignment: Alignment) -> Option<Va> {
        let g = &self.g;
        let machine = cpu.machine();
        if machine.phys().free_pages() < MIN_FREE_FRAMES {
            return None;
        }
        let pair = {
            let mut p = lock(&self.pairs);
            if p.live >= self.limit {
                return None;
            }
            let pair = if p.fresh < self.total {
                p.fresh += 1;
                p.fresh - 1
            } else {
                p.freed.pop_front()?
            };
            p.live += 1;
            pair
        };
        let (data, guard) = self.pages_of(pair, alignment);
        if self.map_fresh_frame(cpu, data, t.kind()).is_err() {
            let mut p = lock(&self.pairs);
            p.freed.push_front(pair);
            p.live -= 1;
            return None;
        }
        self.pages.set(guard, Role::Guard);
        self.pages.set(data, Role::Data);
        let mem = Mem { space: machine.space(), g };
        let pattern = pattern_at(machine.now_ms());
        mem.fill(data, g.page, pattern);
        let paged = if t.kind() == PoolKind::Paged { PAGED_FLAG } else { 0 };
        let ulong1 = bytes as u32 | paged | u32::from(pattern) << 16;
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&ulong1.to_le_bytes());
        h[4..].copy_from_slice(&tag.to_le_bytes());
        mem.write(self.header_at(data), &h);
        Some(Va::new(self.block_of(data, bytes)))
    }

    /// Maps a fresh frame at `page`, for `kind` pool.
    fn map_fresh_frame(&self, cpu: &Cpu<'_>, page: u64, kind: PoolKind) -> Result<(), MmError> {
        let (phys, space) = (cpu.machine().phys(), cpu.machine().space());
        let usage = match kind {
            PoolKind::Nonpaged => PageUse::NonPagedPool,
            PoolKind::Paged => PageUse::PagedPool,
        };
        let frames = phys.allocate(&FrameRequest::new(1, usage))?;
        space.map(phys, Va::new(page), &frames, Access::ReadWrite).inspect_err(|_| {
            let _ = phys.free(frames.first(), 1);
        })
    }

    /// The data and guard page of pair `pair` for `alignment`: a pair is two pages,
    /// data then guard for Verify End, guard then data for Verify Start.
    fn pages_of(&self, pair: u64, alignment: Alignment) -> (u64, u64) {
        let first = self.pages.start + pair * 2 * self.g.page;
        let second = first + self.g.page;
        match alignment {
            Alignment::VerifyEnd => (first, second),
            Alignment::VerifyStart => (second, first),
        }
    }

    /// The alignment of the block on data page `page`: which page of its pair it is.
    fn alignment_of(&self, page: u64) -> Alignment {
        if ((page - self.pages.start) >> self.g.page_shift).is_multiple_of(2) {
            Alignment::VerifyEnd
        } else {
            Alignment::VerifyStart
        }
    }

    /// Where the header of the block on data page `page` is: the page's start (Verify
    /// End) or its last header-sized bytes (Verify Start).
    fn header_at(&self, page: u64) -> u64 {
        match self.alignment_of(page) {
            Alignment::VerifyEnd => page,
            Alignment::VerifyStart => page + self.g.page - self.g.unit,
        }
    }

    /// Reads the header of the live block on data page `page`.
    fn header(&self, mem: &Mem<'_>, page: u64) -> Header {
        let mut h = [0u8; 8];
        mem.read(self.header_at(page), &mut h);
        let ulong1 = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        Header {
            requested: u64::from(ulong1 & (PAGED_FLAG - 1)),
            kind: if ulong1 & PAGED_FLAG != 0 { PoolKind::Paged } else { PoolKind::Nonpaged },
            pattern: h[2],
            tag: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        }
    }

    /// Where the block of `requested` bytes on data page `page` starts: the highest
    /// header-aligned address that fits it (Verify End), or the page's start.
    fn block_of(&self, page: u64, requested: u64) -> u64 {
        match self.alignment_of(page) {
            Alignment::VerifyEnd => (page + self.g.page).saturating_sub(requested) & !(self.g.unit - 1),
            Alignment::VerifyStart => page,
        }
    }

    /// `ExFreePool[WithTag]` of `va` in the special pool region: the checks of the
    /// module docs, then the page is unmapped and its pair queued for reuse.
    ///
    /// # Errors
    /// SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION (0xC1) with subcode 0x20, 0x21, 0x22,
    /// 0x23, 0x24, 0x31 or 0x32; BAD_POOL_CALLER 0xA for a protected tag.
    pub(super) fn free(&self, cpu: &Cpu<'_>, va: u64, tag_used: u32) -> Result<Freed, BugCheck> {
        use checks::special::*;
        let g = &self.g;
        let page = g.page_of(va);
        if self.pages.role(page) != Role::Data {
            return Err(corruption(cpu, [va, 0, 0, NOT_ALLOCATED]));
        }
        let mem = Mem { space: cpu.machine().space(), g };
        let h = self.header(&mem, page);
        let irql = cpu.irql();
        if irql > h.kind.ceiling() {
            return Err(corruption(cpu, [u64::from(irql.0), h.kind.base_type(), va, FREE_AT_BAD_IRQL]));
        }
        // The pattern runs from the header to the block and from the block's end to the
        // page's end (Verify End), or from the block's end to the header (Verify Start).
        let header = self.header_at(page);
        let (before, after_end) = match self.alignment_of(page) {
            Alignment::VerifyEnd => (header + g.unit..va, page + g.page),
            Alignment::VerifyStart => (page..page, header),
        };
        let calculated = after_end.saturating_sub(va);
        if h.requested > calculated {
            return Err(corruption(cpu, [va, h.requested, calculated, SIZE_TOO_SMALL]));
        }
        if va != self.block_of(page, h.requested) {
            return Err(corruption(cpu, [va, h.requested, calculated, SIZE_MISPLACED]));
        }
        let mut bytes = vec![0u8; to_usize(g.page)];
        mem.read(page, &mut bytes);
        let ranges = [(before, CORRUPT_BEFORE), (va + h.requested..after_end, CORRUPT_AFTER)];
        if let Some((at, subcode)) = damage(&bytes, page, ranges, h.pattern) {
            return Err(corruption(cpu, [va, at, u64::from(h.pattern), subcode]));
        }
        if PoolTag(h.tag).is_protected() && tag_used != h.tag {
            let p = [caller::WRONG_TAG, va, u64::from(h.tag), u64::from(tag_used)];
            return Err(cpu.machine().bugcheck(BugCheckCode::BAD_POOL_CALLER, p));
        }
        self.release(cpu, va, page)?;
        Ok(Freed { tag: h.tag, kind: h.kind, bytes: h.requested })
    }

    /// Unmaps data page `page` (freeing its frame) and queues its pair at the tail.
    fn release(&self, cpu: &Cpu<'_>, va: u64, page: u64) -> Result<(), BugCheck> {
        let (phys, space) = (cpu.machine().phys(), cpu.machine().space());
        let mut p = lock(&self.pairs);
        // Another processor may have freed the block since the checks began.
        if self.pages.role(page) != Role::Data {
            drop(p);
            return Err(corruption(cpu, [va, 0, 0, checks::special::NOT_ALLOCATED]));
        }
        self.pages.set(page, Role::Freed);
        for pfn in space.unmap(phys, Va::new(page), 1).expect("special pool lies inside the address space") {
            let _ = phys.free(pfn, 1);
        }
        p.freed.push_back((page - self.pages.start) >> self.g.page_shift >> 1);
        p.live -= 1;
        Ok(())
    }

    /// `ExQueryPoolBlockSize` of `va` in the special pool region: the bytes requested,
    /// when `va` is a live block.
    pub(super) fn query(&self, cpu: &Cpu<'_>, va: u64) -> Option<BlockSize> {
        let page = self.g.page_of(va);
        if self.pages.role(page) != Role::Data {
            return None;
        }
        let h = self.header(&Mem { space: cpu.machine().space(), g: &self.g }, page);
        (va == self.block_of(page, h.requested)).then_some(BlockSize { bytes: h.requested, quota_charged: false })
    }
}

/// The bytes a pattern may be: at least two bits away from 0x00, 0x01 and 0xFF, so
/// that the most common overruns — a NUL, a TRUE or a -1 written one past the end —
/// are never one bit away from the pattern and read as a flipped bit (0x32) instead
/// of the overrun they are (0x24).
const PATTERNS: [u8; 231] = {
    let mut table = [0u8; 231];
    let (mut b, mut n) = (0u32, 0);
    while b < 256 {
        if b.count_ones() >= 2 && (b ^ 1).count_ones() >= 2 && (b ^ 0xFF).count_ones() >= 2 {
            table[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    table
};

/// The pattern byte of a block allocated at simulated time `now_ms`: chosen by the
/// tick count (as ReactOS's; Windows does not publish its own) among [`PATTERNS`].
fn pattern_at(now_ms: u64) -> u8 {
    let ticks = now_ms * TICKS_PER_SECOND / 1000;
    PATTERNS[(ticks % PATTERNS.len() as u64) as usize]
}

/// The first byte of `ranges` (addresses; `page` holds the bytes from `base`) that is
/// not `pattern`, with its range's subcode — or SINGLE_BIT_ERROR (0x32) when it is the
/// only such byte and one bit away from the pattern.
fn damage(page: &[u8], base: u64, ranges: [(Range<u64>, u64); 2], pattern: u8) -> Option<(u64, u64)> {
    let mut first = None;
    let mut damaged = 0;
    for (range, subcode) in ranges {
        for at in range {
            let b = page[to_usize(at - base)];
            if b != pattern {
                damaged += 1;
                first = first.or(Some((at, subcode, b)));
            }
        }
    }
    let (at, subcode, b) = first?;
    let single_bit = damaged == 1 && (b ^ pattern).count_ones() == 1;
    Some((at, if single_bit { checks::special::SINGLE_BIT_ERROR } else { subcode }))
}

#[cold]
#[inline(never)]
fn corruption(cpu: &Cpu<'_>, p: [u64; 4]) -> BugCheck {
    cpu.machine().bugcheck(BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_follows_the_tick_count_and_a_nul_true_or_minus_one_is_never_one_bit_from_it() {
        assert_eq!(pattern_at(0), 0x06, "the first byte two bits from 0x00, 0x01 and 0xFF");
        assert_eq!(pattern_at(16), 0x07, "one 15.625 ms tick later");
        // A NUL, 1 or 0xFF one past the end of any block is an overrun (0x24), never a
        // bit flip.
        let ranges = || [(0x1008..0x1020, 0x23), (0x1028..0x1040, 0x24)];
        for ms in (0..100_000).step_by(15) {
            let p = pattern_at(ms);
            for written in [0x00, 0x01, 0xFF] {
                let mut page = vec![p; 64];
                page[0x28] = written;
                let found = damage(&page, 0x1000, ranges(), p);
                assert_eq!(found, Some((0x1028, 0x24)), "pattern {p:#04x}, {written:#04x} written");
            }
        }
    }

    #[test]
    fn damage_names_the_first_corrupt_byte_or_a_lone_flipped_bit() {
        // A 64-byte page at 0x1000: pattern at 8..32 (before the block) and 40..64 (after).
        let ranges = || [(0x1008..0x1020, 0x23), (0x1028..0x1040, 0x24)];
        let mut page = vec![0x5A; 64];
        assert_eq!(damage(&page, 0x1000, ranges(), 0x5A), None);
        page[45] = 0x5B;
        assert_eq!(damage(&page, 0x1000, ranges(), 0x5A), Some((0x102D, 0x32)));
        page[33] = 0; // the block itself is not checked
        assert_eq!(damage(&page, 0x1000, ranges(), 0x5A), Some((0x102D, 0x32)));
        page[20] = 0x5A ^ 0x40;
        assert_eq!(damage(&page, 0x1000, ranges(), 0x5A), Some((0x1014, 0x23)), "two bytes: not a single bit error");
        page.fill(0x5A);
        page[50] = 0xA5;
        assert_eq!(damage(&page, 0x1000, ranges(), 0x5A), Some((0x1032, 0x24)));
    }

    #[test]
    fn underrun_priorities_choose_verify_start() {
        assert_eq!(PoolPriority::LowSpecialPoolUnderrun.special_alignment(), Alignment::VerifyStart);
        assert_eq!(PoolPriority::HighSpecialPoolUnderrun.special_alignment(), Alignment::VerifyStart);
        assert_eq!(PoolPriority::NormalSpecialPoolOverrun.special_alignment(), Alignment::VerifyEnd);
        assert_eq!(PoolPriority::Normal.special_alignment(), Alignment::VerifyEnd);
    }
}
