//! Executive pool: `ExAllocatePool*` / `ExFreePool*` as drivers see them (seed 000
//! §5.1, §7.1; seed 002; research/nt-algorithms.md §1).
//!
//! **What a driver observes.** A small request (up to 4080 bytes on x86, 4064 on
//! x64: [`header`]) gets a block of whole 8/16-byte units with a byte-exact
//! POOL_HEADER in front, never crossing a page; a larger one gets whole pages,
//! page-aligned, with no header, recorded in a big-page table (tag, pages). The
//! cache-aligned types start the block on a cache line. `ExAllocatePoolWithTag`
//! does not zero: a new block's body is filled with [`ALLOCATED_FILL`] and a freed
//! one's with [`FREED_FILL`] (the MSVC debug heap's "clean" and "dead" bytes, so
//! reading uninitialised or freed pool shows), unless [`Pool::set_fill`] turns the
//! patterns off. `ExAllocatePool2` zeroes unless `POOL_FLAG_UNINITIALIZED`.
//! Both fills are kept on every allocation and free, also for blocks recycled
//! from a processor's cache (a recycled block could keep its freed pattern and
//! save one fill, but then reading uninitialised memory would look like reading
//! freed memory); a fill is one `memset` through the host mapping
//! ([`AddressSpace::fill`]). The two cost about as much as the rest of a pair
//! (BENCHMARKS.md): they are bound by store bandwidth, and mimalloc doing the same
//! two fills itself takes twice its own time.
//!
//! [`AddressSpace::fill`]: crate::mm::space::AddressSpace::fill
//!
//! **Limits.** Each pool commits pages up to its maximum from the profile
//! (`PoolLimits`: x86 256 MB nonpaged, 128 MB with /3GB, the registry knobs …) and
//! only while physical memory lasts; then allocations return NULL. Pages go back
//! only when every block on them is free, so fragmentation is real ([`pages`],
//! [`descriptor`]).
//!
//! **Priorities** (`ExAllocatePoolWithTagPriority`; ntmem's thresholds, Windows
//! does not publish its own): `LowPoolPriority` fails while the pool has less than
//! 1/8 of its maximum left or free physical memory is below 1/16 of usable RAM;
//! `NormalPoolPriority` below 1/32 of the pool or 1/64 of RAM; `HighPoolPriority`
//! fails only when the memory is really gone.
//!
//! **IRQL and locking.** Nonpaged pool at ≤ DISPATCH_LEVEL, paged pool at ≤
//! APC_LEVEL (seed §5.1), else BAD_POOL_CALLER 8/9. The hit paths (`fast.rs`) serve
//! a plain request of 1..=32 units from a per-processor cache of free blocks
//! (`percpu.rs`) with no lock, no allocation and no system call: a pop or push, the
//! header's words written or checked through one window each, the fill, and the
//! tag's per-processor counters — compiled once per architecture so that every
//! size is a constant. Everything else takes the general paths here, which check
//! the same rules one by one and name the one broken; behind them each pool has a
//! descriptor lock (free lists) and a page lock (back end, big-page table), always
//! taken in that order. Tag counters are per processor and summed by
//! [`Pool::snapshot`].
//!
//! **Special pool.** With Driver Verifier's special pool on, the general path sends
//! each small request to [`special`] first (a page of its own against a guard page)
//! and serves it here only when special pool is exhausted; frees of its region go
//! back to it.
//!
//! **Where ntmem differs from Windows.** A block parked in a processor's cache is
//! marked free in its header, so a double free is always caught (Windows may miss
//! one that went to a lookaside). Free lists are address-ordered. Session pool is
//! not modelled. On x86 the quota process sits in the block's last 4 bytes, as in
//! the NT 5 design; on 64-bit machines in ProcessBilled, unobfuscated.

pub mod checks;
pub mod descriptor;
mod fast;
pub mod header;
pub mod pages;
mod percpu;
pub mod quota;
mod routines;
pub mod special;
pub mod types;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ntmem_host::HostError;
use ntmem_machine::{MachineProfile, RegionKind, Va};

use self::checks::{caller, header as bad_header};
use self::descriptor::{Descriptor, Stamp};
use self::header::{Geometry, Mem, PoolHeader, POOL_QUOTA_MASK};
use self::pages::{Backend, Mm, PageMap, PageState};
use self::percpu::{PerCpu, CACHED_CLASSES};
use self::quota::QuotaProcess;
pub use self::routines::*;
use self::special::SpecialPool;
pub use self::types::{NtStatus, Pool2Request, PoolFlags, PoolKind, PoolPriority, PoolTag, PoolType, Raise, Raising};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::mm::pfn::PageUse;
use crate::vf::Violation;

/// The byte a new `ExAllocatePoolWithTag` block's body is filled with.
pub const ALLOCATED_FILL: u8 = 0xCD;
/// The byte a freed block's body is filled with.
pub const FREED_FILL: u8 = 0xDD;

/// Whether new and freed blocks get [`ALLOCATED_FILL`] / [`FREED_FILL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Fill (the default).
    Patterns,
    /// Leave memory as it is (faster; benchmarks).
    None,
}

/// A row of PoolMon: one tag in one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolMonRow {
    /// The tag (without PROTECTED_POOL).
    pub tag: PoolTag,
    /// `Nonp` or `Paged`.
    pub pool_type: PoolKind,
    /// Allocations so far.
    pub allocs: u64,
    /// Frees so far.
    pub frees: u64,
    /// Allocs − Frees.
    pub diff: u64,
    /// Bytes in use: small blocks their BlockSize × unit, big ones whole pages.
    pub bytes: u64,
    /// Bytes / Diff (0 when Diff is 0).
    pub per_alloc: u64,
}

/// One pool's state, as [`Pool::usage`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    /// Pages handed out (small-block pages and big allocations).
    pub pages_in_use: u64,
    /// Pages committed (mapped, backed by frames).
    pub pages_committed: u64,
    /// The most pages the pool may commit.
    pub max_pages: u64,
    /// Pages carved into small blocks (`TotalPages`).
    pub small_pages: u64,
    /// Live big allocations (`TotalBigPages` counts their pages).
    pub big_allocations: u64,
}

/// What `ExQueryPoolBlockSize` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSize {
    /// Usable bytes of the block.
    pub bytes: u64,
    /// `QuotaCharged`.
    pub quota_charged: bool,
}

/// How `ExAllocatePoolWithQuotaTag` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnQuotaFailure {
    /// Raise (the default).
    Raise,
    /// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` (8): return NULL.
    ReturnNull,
}

#[derive(Debug)]
struct BigEntry {
    tag: u32,
    pages: u64,
    quota: u64,
}

#[derive(Debug)]
struct Pages {
    backend: Backend,
    big: HashMap<u64, BigEntry>,
}

#[derive(Debug)]
struct KindPool {
    descriptor: Mutex<Descriptor>,
    pages: Mutex<Pages>,
    map: PageMap,
    start: u64,
    size: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why an allocation produced no block.
enum Failure {
    NoMemory,
    Quota,
}

/// The extras of one allocation request.
#[derive(Clone, Copy)]
struct Request<'a> {
    zero: bool,
    priority: PoolPriority,
    quota: Option<&'a QuotaProcess>,
    /// Special pool asked for whatever the options (I/O verification's IRPs).
    special: bool,
}

const PLAIN: Request<'static> = Request { zero: false, priority: PoolPriority::High, quota: None, special: false };

/// The machine's executive pool: nonpaged and paged.
#[derive(Debug)]
pub struct Pool {
    g: Geometry,
    kinds: [KindPool; 2],
    cpus: Box<[PerCpu]>,
    overflow: Mutex<BTreeMap<(PoolKind, u32), [u64; 3]>>,
    quota: Mutex<HashMap<u64, Arc<QuotaProcess>>>,
    system_process: std::sync::OnceLock<Arc<QuotaProcess>>,
    next_process: AtomicU64,
    fill: AtomicBool,
    system_start: u64,
    phys_pages: u64,
    failures: AtomicU64,
    special: SpecialPool,
}

impl Pool {
    /// The pools of `profile`; nothing is committed until the first allocation.
    ///
    /// # Errors
    /// When the host cannot map the page-state tables.
    pub fn new(profile: &MachineProfile) -> Result<Pool, HostError> {
        let g = Geometry::of(profile.arch);
        let region = |k: RegionKind| profile.layout.region(k).map(|r| (r.start.get(), r.size));
        let kind = |regions: Vec<(u64, u64)>, max: u64, usage: PageUse| -> Result<KindPool, HostError> {
            let (start, size) = regions.first().copied().unwrap_or((0, 0));
            Ok(KindPool {
                descriptor: Mutex::new(Descriptor::new(g)),
                pages: Mutex::new(Pages { backend: Backend::new(&regions, g.page, max, usage), big: HashMap::new() }),
                map: PageMap::new(&regions, g.page)?,
                start,
                size,
            })
        };
        let nonpaged: Vec<_> =
            [RegionKind::NonPagedPool, RegionKind::NonPagedPoolExpansion].into_iter().filter_map(region).collect();
        let paged: Vec<_> = region(RegionKind::PagedPool).into_iter().collect();
        Ok(Pool {
            g,
            kinds: [
                kind(nonpaged, profile.limits.nonpaged_max, PageUse::NonPagedPool)?,
                kind(paged, profile.limits.paged_max, PageUse::PagedPool)?,
            ],
            cpus: (0..profile.processors).map(|_| PerCpu::new()).collect(),
            overflow: Mutex::new(BTreeMap::new()),
            quota: Mutex::new(HashMap::new()),
            system_process: std::sync::OnceLock::new(),
            next_process: AtomicU64::new(1),
            fill: AtomicBool::new(true),
            system_start: profile.layout.system_start.get(),
            phys_pages: profile.physmap.usable_ram() / g.page,
            failures: AtomicU64::new(0),
            special: SpecialPool::new(profile, g)?,
        })
    }

    /// The block geometry.
    pub fn geometry(&self) -> Geometry {
        self.g
    }

    /// Turns the fill patterns on or off.
    pub fn set_fill(&self, fill: Fill) {
        self.fill.store(fill == Fill::Patterns, Ordering::Relaxed);
    }

    /// Driver Verifier's special pool ([`special`]).
    pub fn special(&self) -> &SpecialPool {
        &self.special
    }

    /// Allocations that returned NULL (`ExPoolFailures`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A process to charge quota to (a stand-in for an EPROCESS until processes
    /// exist): `limits` bytes of nonpaged and paged pool. Its
    /// [`QuotaProcess::address`] is what a charged block records.
    pub fn create_quota_process(&self, name: &str, nonpaged_limit: u64, paged_limit: u64) -> Arc<QuotaProcess> {
        let n = self.next_process.fetch_add(1, Ordering::Relaxed);
        let address = if self.g.packed { 0x8600_0000 + n * 0x400 } else { 0xFFFF_FA80_0600_0000 + n * 0x800 };
        let p = Arc::new(QuotaProcess::new(address, name, [nonpaged_limit, paged_limit]));
        lock(&self.quota).insert(address, Arc::clone(&p));
        p
    }

    /// The System process as a quota stand-in: what the WDK boundary charges
    /// `ExAllocatePoolWithQuotaTag` and `POOL_FLAG_USE_QUOTA` to, since drivers run
    /// in system threads here. Its limits are unlimited, as the System process's
    /// default quota block is on Windows, so only a real shortage fails a charge.
    pub fn system_process(&self) -> Arc<QuotaProcess> {
        Arc::clone(self.system_process.get_or_init(|| self.create_quota_process("System", u64::MAX, u64::MAX)))
    }

    /// One pool's page usage.
    pub fn usage(&self, kind: PoolKind) -> PoolUsage {
        let k = &self.kinds[kind.index()];
        let small_pages = lock(&k.descriptor).pages;
        let p = lock(&k.pages);
        PoolUsage {
            pages_in_use: p.backend.in_use(),
            pages_committed: p.backend.committed(),
            max_pages: p.backend.max_pages(),
            small_pages,
            big_allocations: p.big.len() as u64,
        }
    }

    /// PoolMon: every tag and pool with allocations, sorted by tag then pool.
    /// Exact when no processor is allocating.
    pub fn snapshot(&self) -> Vec<PoolMonRow> {
        let mut sums: BTreeMap<(u32, PoolKind), [u64; 3]> = BTreeMap::new();
        let mut add = |tag: u32, kind: PoolKind, c: [u64; 3]| {
            let s = sums.entry((tag, kind)).or_default();
            for i in 0..3 {
                s[i] = s[i].wrapping_add(c[i]);
            }
        };
        for cpu in self.cpus.iter() {
            for t in cpu.tags() {
                let tag = t.key.load(Ordering::Acquire);
                for kind in [PoolKind::Nonpaged, PoolKind::Paged] {
                    let c = &t.counts[kind.index()];
                    add(tag, kind, [0, 1, 2].map(|i| c[i].load(Ordering::Relaxed)));
                }
            }
        }
        for (&(kind, tag), &c) in lock(&self.overflow).iter() {
            add(tag, kind, c);
        }
        sums.into_iter()
            .filter(|(_, c)| c[0] != 0)
            .map(|((tag, kind), [allocs, frees, bytes])| {
                let diff = allocs - frees;
                PoolMonRow {
                    tag: PoolTag(tag),
                    pool_type: kind,
                    allocs,
                    frees,
                    diff,
                    bytes,
                    per_alloc: bytes.checked_div(diff).unwrap_or(0),
                }
            })
            .collect()
    }

    #[inline(always)]
    fn track(&self, cpu: &Cpu<'_>, tag: u32, kind: PoolKind, bytes: u64, free: bool) {
        self.track_on(&self.cpus[cpu.number() as usize], tag, kind, bytes, free);
    }

    /// [`Pool::track`] on processor state the caller already holds.
    #[inline(always)]
    fn track_on(&self, per: &PerCpu, tag: u32, kind: PoolKind, bytes: u64, free: bool) {
        let tag = PoolTag(tag).tracked().0;
        if !per.track(tag, kind, bytes, free) {
            self.track_overflow(tag, kind, bytes, free);
        }
    }

    /// Counts in the shared table, for a processor whose own table is full.
    #[cold]
    fn track_overflow(&self, tag: u32, kind: PoolKind, bytes: u64, free: bool) {
        let mut o = lock(&self.overflow);
        let c = o.entry((kind, tag)).or_default();
        c[usize::from(free)] += 1;
        c[2] = if free { c[2].wrapping_sub(bytes) } else { c[2].wrapping_add(bytes) };
    }

    /// The pages of `kind` pool that hold small blocks now (`!poolfind` walks them).
    pub fn small_pages(&self, kind: PoolKind) -> Vec<u64> {
        let k = &self.kinds[kind.index()];
        let pages = lock(&k.pages).backend.small_segment_pages();
        pages.into_iter().filter(|&p| k.map.lookup(p) == Some(PageState::Small)).collect()
    }

    /// The big (page-sized or larger) allocations of `kind` pool: address, bytes
    /// (whole pages) and tag.
    pub fn big_blocks(&self, kind: PoolKind) -> Vec<(u64, u64, PoolTag)> {
        let p = lock(&self.kinds[kind.index()].pages);
        p.big.iter().map(|(&va, b)| (va, b.pages * self.g.page, PoolTag(b.tag))).collect()
    }

    /// The pool `va` lies in (allocated or not), if any.
    pub fn kind_at(&self, va: Va) -> Option<PoolKind> {
        self.kind_of(va.get())
    }

    fn kind_of(&self, va: u64) -> Option<PoolKind> {
        self.locate(va).map(|(kind, _)| kind)
    }

    /// Which pool `va` belongs to and the state of its page.
    #[inline]
    fn locate(&self, va: u64) -> Option<(PoolKind, PageState)> {
        [PoolKind::Nonpaged, PoolKind::Paged]
            .into_iter()
            .find_map(|k| self.kinds[k.index()].map.lookup(va).map(|state| (k, state)))
    }

    #[inline]
    fn fills(&self) -> bool {
        self.fill.load(Ordering::Relaxed)
    }

    #[inline]
    fn short(&self, cpu: &Cpu<'_>, kind: PoolKind, priority: PoolPriority) -> bool {
        let (divisor_pool, divisor_ram) = match priority.base() {
            PoolPriority::Low => (8, 16),
            PoolPriority::Normal => (32, 64),
            _ => return false,
        };
        let (in_use, max) = {
            let p = lock(&self.kinds[kind.index()].pages);
            (p.backend.in_use(), p.backend.max_pages())
        };
        let free_phys = cpu.machine().phys().free_pages();
        (max - in_use) * divisor_pool < max || free_phys * divisor_ram < self.phys_pages
    }

    #[cold]
    #[inline(never)]
    fn stop(cpu: &Cpu<'_>, code: BugCheckCode, p: [u64; 4]) -> BugCheck {
        cpu.machine().bugcheck(code, p)
    }

    #[inline]
    fn check_request(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32) -> Result<(), BugCheck> {
        if let Some(p) = refusal(cpu.irql(), t, bytes, tag) {
            // Under Driver Verifier a bad IRQL is its own violation (0xC4: 0x01, 0x02).
            if p[0] == caller::ALLOCATE_AT_BAD_IRQL && !cpu.machine().verifier().is_empty() {
                let (irql, pool_type) = (cpu.irql(), u64::from(t.raw()));
                return Err(match t.kind() {
                    PoolKind::Paged => Violation::PagedAllocationAboveApc { irql, pool_type, bytes },
                    PoolKind::Nonpaged => Violation::NonpagedAllocationAboveDispatch { irql, pool_type, bytes },
                }
                .stop(cpu.machine()));
            }
            return Err(Self::stop(cpu, BugCheckCode::BAD_POOL_CALLER, p));
        }
        let tag = PoolTag(tag);
        if t.must_succeed() {
            if let Some(b) = verifier_must_succeed(cpu, t, bytes, tag) {
                return Err(b);
            }
        }
        Ok(())
    }

    fn allocate(
        &self,
        cpu: &Cpu<'_>,
        t: PoolType,
        bytes: u64,
        tag: u32,
        req: Request<'_>,
    ) -> Result<Result<Va, Failure>, BugCheck> {
        let special = self.special.selects(cpu, t, bytes, tag, &req);
        if special {
            self.special.check_allocate_irql(cpu, t, bytes)?;
        }
        self.check_request(cpu, t, bytes, tag)?;
        let kind = t.kind();
        let result = if self.short(cpu, kind, req.priority) {
            Err(Failure::NoMemory)
        } else if let Some(va) = special.then(|| self.place_special(cpu, t, bytes, tag, req)).flatten() {
            Ok(va)
        } else {
            self.place(cpu, t, bytes, tag, req)
        };
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            if t.must_succeed() {
                let n = self.usage(PoolKind::Nonpaged);
                let free = cpu.machine().phys().free_pages();
                return Err(Self::stop(
                    cpu,
                    BugCheckCode::MUST_SUCCEED_POOL_EMPTY,
                    [bytes, n.pages_in_use, n.big_allocations, free],
                ));
            }
        }
        Ok(result)
    }

    /// A block from special pool, counted as the small block normal pool would have
    /// given; `None` when special pool is exhausted.
    fn place_special(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32, req: Request<'_>) -> Option<Va> {
        let va = self.special.allocate(cpu, t, bytes, tag, self.special.alignment(req.priority))?;
        if req.zero {
            self.mem(cpu).fill(va.get(), bytes, 0);
        }
        self.track(cpu, tag, t.kind(), self.special.charge(bytes), false);
        Some(va)
    }

    fn place(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32, req: Request<'_>) -> Result<Va, Failure> {
        let g = &self.g;
        let kind = t.kind();
        let trailer = if g.packed && req.quota.is_some() { g.pointer } else { 0 };
        // Saturating: a request near 2^64 bytes must not wrap into a small block
        // (issue 9: SIZE_MAX with quota on x86 gave 4 bytes); it goes to the big
        // path, which refuses it.
        let units = g.units_for(bytes.saturating_add(trailer));
        let align = (t.cache_aligned() && g.cache_line > g.unit).then_some(g.cache_line);
        let extra = align.map_or(0, |a| a / g.unit - 1);
        if units + extra > g.max_block {
            return self.place_big(cpu, t, bytes, tag, req);
        }
        let charge = units * g.unit;
        if let Some(q) = req.quota {
            q.charge(kind, charge).map_err(|()| Failure::Quota)?;
        }
        let billed = if g.packed { 0 } else { req.quota.map_or(0, |q| q.address()) };
        let quota_bit = if req.quota.is_some() { POOL_QUOTA_MASK } else { 0 };
        let stamp = Stamp { pool_type: t.header_value() | quota_bit, tag, billed };
        let mem = self.mem(cpu);
        let entry = match self.small_entry(cpu, kind, units, align, stamp) {
            Some(e) => e,
            None => {
                if let Some(q) = req.quota {
                    q.release(kind, charge);
                }
                return Err(Failure::NoMemory);
            }
        };
        if trailer > 0 {
            let address = req.quota.map_or(0, |q| q.address()) as u32;
            mem.write(entry + units * g.unit - trailer, &address.to_le_bytes());
        }
        let body = entry + g.unit;
        let len = units * g.unit - g.unit - trailer;
        if req.zero {
            mem.fill(body, len, 0);
        } else if self.fills() {
            mem.fill(body, len, ALLOCATED_FILL);
        }
        self.track(cpu, tag, kind, charge, false);
        Ok(Va::new(body))
    }

    /// A block of `units`: from this processor's cache, else the descriptor (after
    /// giving the cache back once if the pool is out of pages).
    #[inline]
    fn small_entry(&self, cpu: &Cpu<'_>, kind: PoolKind, units: u64, align: Option<u64>, s: Stamp) -> Option<u64> {
        let mem = self.mem(cpu);
        let per = &self.cpus[cpu.number() as usize];
        if align.is_none() && units <= CACHED_CLASSES {
            if let Some(entry) = per.pop(kind, units) {
                mem.set_type_and_tag(entry, units, s.pool_type, s.tag, s.billed);
                return Some(entry);
            }
        }
        let k = &self.kinds[kind.index()];
        let mm = self.mm(cpu);
        for attempt in 0..2 {
            {
                let mut d = lock(&k.descriptor);
                let mut p = lock(&k.pages);
                if let Some(e) = d.allocate(mem, mm, &mut p.backend, &k.map, units, align, s) {
                    return Some(e);
                }
            }
            if attempt == 0 && !self.flush(cpu, kind) {
                break;
            }
        }
        None
    }

    /// Gives this processor's cached blocks of `kind` back to the descriptor;
    /// false if there were none.
    fn flush(&self, cpu: &Cpu<'_>, kind: PoolKind) -> bool {
        let blocks = self.cpus[cpu.number() as usize].drain(kind);
        if blocks.is_empty() {
            return false;
        }
        let k = &self.kinds[kind.index()];
        let mem = self.mem(cpu);
        let mm = self.mm(cpu);
        let mut d = lock(&k.descriptor);
        let mut p = lock(&k.pages);
        for (entry, _) in blocks {
            // The blocks were checked when they were freed into the cache.
            let _ = d.free(mem, mm, &mut p.backend, &k.map, entry);
        }
        true
    }

    fn place_big(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32, req: Request<'_>) -> Result<Va, Failure> {
        let g = self.g;
        let kind = t.kind();
        let pages = bytes.div_ceil(g.page);
        let k = &self.kinds[kind.index()];
        // A request larger than the whole pool fails as no memory before any quota
        // is charged (Windows allocates first, then charges the quota).
        if pages > lock(&k.pages).backend.max_pages() {
            return Err(Failure::NoMemory);
        }
        let charge = pages * g.page;
        if let Some(q) = req.quota {
            q.charge(kind, charge).map_err(|()| Failure::Quota)?;
        }
        let va = {
            let mut p = lock(&k.pages);
            let va = p.backend.allocate(self.mm(cpu), pages);
            if let Some(va) = va {
                k.map.set(va, 1, PageState::BigStart);
                k.map.set(va + g.page, pages - 1, PageState::BigInterior);
                p.big.insert(va, BigEntry { tag, pages, quota: req.quota.map_or(0, |q| q.address()) });
            }
            va
        };
        let Some(va) = va else {
            if let Some(q) = req.quota {
                q.release(kind, charge);
            }
            return Err(Failure::NoMemory);
        };
        if req.zero {
            self.mem(cpu).fill(va, charge, 0);
        } else if self.fills() {
            self.mem(cpu).fill(va, charge, ALLOCATED_FILL);
        }
        self.track(cpu, tag, kind, charge, false);
        Ok(Va::new(va))
    }

    #[inline]
    fn mem<'a>(&'a self, cpu: &Cpu<'a>) -> Mem<'a> {
        Mem { space: cpu.machine().space(), g: &self.g }
    }

    fn mm<'a>(&self, cpu: &Cpu<'a>) -> Mm<'a> {
        Mm { phys: cpu.machine().phys(), space: cpu.machine().space() }
    }

    fn release_quota(
        &self,
        cpu: &Cpu<'_>,
        va: u64,
        tag: u32,
        address: u64,
        kind: PoolKind,
        bytes: u64,
    ) -> Result<(), BugCheck> {
        let process = lock(&self.quota).get(&address).cloned();
        match process {
            Some(p) => {
                p.release(kind, bytes);
                Ok(())
            }
            None => Err(Self::stop(
                cpu,
                BugCheckCode::BAD_POOL_CALLER,
                [caller::BAD_QUOTA_PROCESS, va, u64::from(tag), address],
            )),
        }
    }

    #[inline]
    fn free(&self, cpu: &Cpu<'_>, va: u64, tag_used: u32) -> Result<(), BugCheck> {
        if self.free_cached(cpu, va, tag_used) {
            return Ok(());
        }
        self.free_general(cpu, va, tag_used)
    }

    /// Every free [`Pool::free_cached`] does not take: checked rule by rule.
    #[inline(never)]
    fn free_general(&self, cpu: &Cpu<'_>, va: u64, tag_used: u32) -> Result<(), BugCheck> {
        let g = &self.g;
        let bad_caller = |p: [u64; 4]| Err(Self::stop(cpu, BugCheckCode::BAD_POOL_CALLER, p));
        let bad_header = |p: [u64; 4]| Err(Self::stop(cpu, BugCheckCode::BAD_POOL_HEADER, p));
        if va < self.system_start {
            return bad_caller([caller::USER_ADDRESS, va, self.system_start, 0]);
        }
        if self.special.contains(va) {
            let freed = self.special.free(cpu, va, tag_used)?;
            self.track(cpu, freed.tag, freed.kind, self.special.charge(freed.bytes), true);
            return Ok(());
        }
        let Some((kind, state)) = self.locate(va) else {
            return bad_caller([caller::NOT_POOL, va, 0, 0]);
        };
        let irql = cpu.irql();
        if irql > kind.ceiling() {
            if !cpu.machine().verifier().is_empty() {
                let (pool_type, address) = (kind.base_type(), va);
                return Err(match kind {
                    PoolKind::Paged => Violation::PagedFreeAboveApc { irql, pool_type, address },
                    PoolKind::Nonpaged => Violation::NonpagedFreeAboveDispatch { irql, pool_type, address },
                }
                .stop(cpu.machine()));
            }
            return bad_caller([caller::FREE_AT_BAD_IRQL, u64::from(irql.0), kind.base_type(), va]);
        }
        let k = &self.kinds[kind.index()];
        let page_offset = (va - k.start) >> g.page_shift;
        if g.page_aligned(va) && state == PageState::BigStart {
            return self.free_big(cpu, kind, va, tag_used);
        }
        match (state, kind) {
            (PageState::BigInterior | PageState::BigStart, PoolKind::Paged) => {
                return bad_caller([caller::PAGED_MIDDLE_OF_ALLOCATION, 0, 0, page_offset]);
            }
            _ if g.page_aligned(va) => return bad_header([bad_header::NO_TRACKING_ENTRY, va, 0, 0]),
            (PageState::Small, _) => {}
            (_, PoolKind::Paged) => return bad_caller([caller::PAGED_NOT_ALLOCATED, va, page_offset, k.size]),
            (_, PoolKind::Nonpaged) => return bad_caller([caller::NONPAGED_NOT_ALLOCATED, va, 0, 0]),
        }
        if !g.unit_aligned(va) {
            return bad_caller([caller::INVALID_ADDRESS, va, 0, 0]);
        }
        let mem = self.mem(cpu);
        let b = small_block(mem, va, tag_used).map_err(|(code, p)| Self::stop(cpu, code, p))?;
        let charge = b.units * g.unit;
        let mut trailer = 0;
        if b.header.pool_type & POOL_QUOTA_MASK != 0 {
            let address = if g.packed {
                trailer = g.pointer;
                let mut word = [0u8; 4];
                mem.read(b.entry + charge - 4, &mut word);
                u64::from(u32::from_le_bytes(word))
            } else {
                mem.header(b.entry).process_billed
            };
            self.release_quota(cpu, va, b.header.tag, address, kind, charge)?;
        }
        let per = &self.cpus[cpu.number() as usize];
        self.retire_small(per, mem, kind, b, trailer);
        if per.push(kind, b.units, b.entry) {
            return Ok(());
        }
        let result = {
            let mut d = lock(&k.descriptor);
            let mut p = lock(&k.pages);
            d.free(mem, self.mm(cpu), &mut p.backend, &k.map, b.entry)
        };
        result.or_else(bad_header)
    }

    /// What every free of a checked small block does before the block goes to a
    /// cache or the descriptor: the freed pattern over its body (less an x86 quota
    /// `trailer`), the PoolMon count, the header marked free.
    #[inline(always)]
    fn retire_small(&self, per: &PerCpu, mem: Mem<'_>, kind: PoolKind, b: SmallBlock, trailer: u64) {
        let g = mem.g;
        let charge = b.units << g.unit_shift;
        if self.fills() {
            mem.fill(b.entry + g.unit, charge - g.unit - trailer, FREED_FILL);
        }
        self.track_on(per, b.header.tag, kind, charge, true);
        mem.set_pool_type(b.entry, b.units, 0);
    }

    fn free_big(&self, cpu: &Cpu<'_>, kind: PoolKind, va: u64, tag_used: u32) -> Result<(), BugCheck> {
        let g = self.g;
        let k = &self.kinds[kind.index()];
        let (tag, pages, quota) = {
            let p = lock(&k.pages);
            let e = p.big.get(&va).expect("a BigStart page has a big-page entry");
            (e.tag, e.pages, e.quota)
        };
        if PoolTag(tag).is_protected() && tag_used != tag {
            return Err(Self::stop(
                cpu,
                BugCheckCode::BAD_POOL_CALLER,
                [caller::WRONG_TAG, va, u64::from(tag), u64::from(tag_used)],
            ));
        }
        let bytes = pages * g.page;
        if quota != 0 {
            self.release_quota(cpu, va, tag, quota, kind, bytes)?;
        }
        if self.fills() {
            self.mem(cpu).fill(va, bytes, FREED_FILL);
        }
        {
            let mut p = lock(&k.pages);
            p.big.remove(&va);
            k.map.set(va, pages, PageState::Free);
            p.backend.free(self.mm(cpu), va, pages);
        }
        self.track(cpu, tag, kind, bytes, true);
        Ok(())
    }

    fn query(&self, cpu: &Cpu<'_>, va: u64) -> Option<BlockSize> {
        if self.special.contains(va) {
            return self.special.query(cpu, va);
        }
        let g = self.g;
        let kind = self.kind_of(va)?;
        let k = &self.kinds[kind.index()];
        match k.map.get(va) {
            PageState::BigStart if g.page_aligned(va) => {
                let p = lock(&k.pages);
                let e = p.big.get(&va)?;
                Some(BlockSize { bytes: e.pages * g.page, quota_charged: e.quota != 0 })
            }
            PageState::Small if g.unit_aligned(va) && !g.page_aligned(va) => {
                let h = self.mem(cpu).header(va - g.unit);
                let quota = h.pool_type & POOL_QUOTA_MASK != 0;
                let trailer = if quota && g.packed { g.pointer } else { 0 };
                let size = u64::from(h.block_size) * g.unit;
                (h.in_use() && size > g.unit)
                    .then(|| BlockSize { bytes: size - g.unit - trailer, quota_charged: quota })
            }
            _ => None,
        }
    }
}

/// A small block being freed: its header's address, its size in units and the
/// header's first eight bytes.
#[derive(Clone, Copy)]
struct SmallBlock {
    entry: u64,
    units: u64,
    header: PoolHeader,
}

/// The checks every free of the small block at `va` makes on its header and the
/// next one, in Windows' order, each failure the bugcheck and parameters it is
/// (Microsoft's 0xC2 and 0x19 pages; [`checks`]): freed already (0xC2 7), BlockSize
/// zero (0x19 8) or past the page (9), PreviousSize inconsistent with the offset (7,
/// 6), the next header's PreviousSize (0x20), a protected tag freed with another tag
/// (0xC2 0xA). `va` must be unit-aligned, not page-aligned, on a small-block page.
#[inline(always)]
fn small_block(mem: Mem<'_>, va: u64, tag_used: u32) -> Result<SmallBlock, (BugCheckCode, [u64; 4])> {
    let g = mem.g;
    let bad_caller = |p| Err((BugCheckCode::BAD_POOL_CALLER, p));
    let corrupt = |p| Err((BugCheckCode::BAD_POOL_HEADER, p));
    let entry = va - g.unit;
    let h = PoolHeader::from_first_word(mem.first_word(entry), g);
    if !h.in_use() {
        return bad_caller([caller::ALREADY_FREED, 0, h.contents(g), va]);
    }
    let units = u64::from(h.block_size);
    let offset = g.unit_offset(entry);
    if units == 0 {
        return corrupt([bad_header::BLOCK_SIZE_ZERO, 0, 0, entry]);
    }
    if offset + units > g.units_per_page {
        return corrupt([bad_header::BLOCK_SIZE_TOO_LARGE, entry + units * g.unit, 0, entry]);
    }
    let previous = u64::from(h.previous_size);
    if previous == 0 && offset != 0 {
        return corrupt([bad_header::SIZE_CORRUPT, 0, 0, entry]);
    }
    if previous > offset {
        return corrupt([bad_header::PREVIOUS_TOO_LARGE, entry.wrapping_sub(previous * g.unit), 0, entry]);
    }
    let next = entry + units * g.unit;
    if offset + units < g.units_per_page {
        let nh = PoolHeader::from_first_word(mem.first_word(next), g);
        if u64::from(nh.previous_size) != units {
            return corrupt([bad_header::NEXT_DISAGREES, entry, next, u64::from(nh.ulong1(g))]);
        }
    }
    if PoolTag(h.tag).is_protected() && tag_used != h.tag {
        return bad_caller([caller::WRONG_TAG, va, u64::from(h.tag), u64::from(tag_used)]);
    }
    Ok(SmallBlock { entry, units, header: h })
}

/// The BAD_POOL_CALLER parameters an allocation request earns before any memory is
/// touched, or `None` (Microsoft's 0xC2 page; [`checks::caller`]): a bad IRQL (8),
/// zero bytes (0), tag 0 (0x9B), "BIG " (0x9C), a tag with no letter or digit (0x9D).
#[inline(always)]
fn refusal(irql: Irql, t: PoolType, bytes: u64, tag: u32) -> Option<[u64; 4]> {
    let raw = u64::from(t.raw());
    let tracked = PoolTag(tag).tracked();
    if irql > t.kind().ceiling() {
        Some([caller::ALLOCATE_AT_BAD_IRQL, u64::from(irql.0), raw, bytes])
    } else if bytes == 0 {
        Some([caller::ZERO_BYTES, 0, raw, u64::from(tag)])
    } else if tracked.0 == 0 {
        Some([caller::TAG_ZERO, raw, bytes, 0])
    } else if tracked == PoolTag::BIG {
        Some([caller::TAG_BIG, raw, bytes, 0])
    } else if !tracked.has_alphanumeric() {
        Some([caller::TAG_NOT_ALPHANUMERIC, u64::from(tag), raw, 0])
    } else {
        None
    }
}
