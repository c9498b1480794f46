//! The pool's hit paths: `ExAllocatePoolWithTag` and `ExFreePool[WithTag]` of a
//! small block that a processor's cache ([`super::percpu`]) can serve, when nothing
//! about the call is unusual.
//!
//! Drivers spend most of their pool time here (issue 3 item 9 measures it against
//! mimalloc), so these paths are written for few instructions: no lock, no
//! allocation, no bugcheck construction, the header read and written through
//! [`Mem`]'s windows, one page-state lookup. They accept exactly what the general
//! paths in `mod.rs` accept and do what those do for it — the allocation path the
//! same request checks (`refusal`), the free path the same header checks
//! (`small_block`) and the same retirement of the block; anything
//! else — a bad
//! IRQL, a bad tag, a damaged header, a protected tag freed with the wrong one, a
//! quota charge, a cache-aligned or must-succeed type, a full or empty cache, Driver
//! Verifier's special pool switched on (one atomic load; its frees never come here,
//! since its region is no pool region `Pool::locate` knows) — makes
//! them answer `None` before touching anything, and the general path, which checks
//! the same rules one by one, names the problem (the bugcheck and its parameters) or
//! serves the request from the descriptor.

use ntmem_machine::Va;

use super::header::{Geometry, Mem, POOL_QUOTA_MASK};
use super::pages::PageState;
use super::percpu::CACHED_CLASSES;
use super::special;
use super::types::{PoolKind, PoolType};
use super::{refusal, small_block, Pool, ALLOCATED_FILL};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;

impl PoolKind {
    /// The highest IRQL the pool may be used at (seed 000 §5.1): DISPATCH_LEVEL for
    /// nonpaged pool, APC_LEVEL for paged.
    #[inline]
    pub(crate) fn ceiling(self) -> Irql {
        match self {
            PoolKind::Nonpaged => Irql::DISPATCH,
            PoolKind::Paged => Irql::APC,
        }
    }
}

/// A pool geometry known at compile time: the hit paths are compiled once per
/// architecture, so every size, shift and header layout in them is a constant.
trait Shape {
    const G: Geometry;
}

enum X86 {}
enum X64 {}
enum Ia64 {}

impl Shape for X86 {
    const G: Geometry = Geometry::X86;
}
impl Shape for X64 {
    const G: Geometry = Geometry::X64;
}
impl Shape for Ia64 {
    const G: Geometry = Geometry::IA64;
}

impl Pool {
    /// A plain `ExAllocatePoolWithTag` (no quota, not zeroed, any priority that
    /// cannot be refused early) served from this processor's cache: the body's
    /// address, or `None` for the general path.
    #[inline]
    pub(super) fn allocate_cached(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32) -> Option<Va> {
        match (self.g.packed, self.g.page) {
            (false, 4096) => self.allocate_shaped::<X64>(cpu, t, bytes, tag),
            (true, _) => self.allocate_shaped::<X86>(cpu, t, bytes, tag),
            _ => self.allocate_shaped::<Ia64>(cpu, t, bytes, tag),
        }
    }

    /// `ExFreePool[WithTag]` of a sound small block into this processor's cache;
    /// `false` (nothing done) for the general path.
    #[inline]
    pub(super) fn free_cached(&self, cpu: &Cpu<'_>, va: u64, tag_used: u32) -> bool {
        match (self.g.packed, self.g.page) {
            (false, 4096) => self.free_shaped::<X64>(cpu, va, tag_used),
            (true, _) => self.free_shaped::<X86>(cpu, va, tag_used),
            _ => self.free_shaped::<Ia64>(cpu, va, tag_used),
        }
    }

    #[inline(always)]
    fn allocate_shaped<S: Shape>(&self, cpu: &Cpu<'_>, t: PoolType, bytes: u64, tag: u32) -> Option<Va> {
        let g = &S::G;
        let units = g.units_for(bytes);
        if units > CACHED_CLASSES
            || t.cache_aligned()
            || t.must_succeed()
            || special::enabled(cpu)
            || self.special.by_tag()
        {
            return None;
        }
        if refusal(cpu.irql(), t, bytes, tag).is_some() {
            return None;
        }
        let kind = t.kind();
        let per = &self.cpus[cpu.number() as usize];
        let entry = per.pop(kind, units)?;
        let mem = Mem { space: cpu.machine().space(), g };
        mem.set_type_and_tag(entry, units, t.header_value(), tag, 0);
        let body = entry + g.unit;
        if self.fills() {
            mem.fill(body, (units - 1) << g.unit_shift, ALLOCATED_FILL);
        }
        self.track_on(per, tag, kind, units << g.unit_shift, false);
        Some(Va::new(body))
    }

    #[inline(always)]
    fn free_shaped<S: Shape>(&self, cpu: &Cpu<'_>, va: u64, tag_used: u32) -> bool {
        let g = &S::G;
        if g.page_aligned(va) || !g.unit_aligned(va) {
            return false;
        }
        let Some((kind, PageState::Small)) = self.locate(va) else { return false };
        if cpu.irql() > kind.ceiling() {
            return false;
        }
        let mem = Mem { space: cpu.machine().space(), g };
        let Ok(b) = small_block(mem, va, tag_used) else { return false };
        if b.units > CACHED_CLASSES || b.header.pool_type & POOL_QUOTA_MASK != 0 {
            return false;
        }
        let per = &self.cpus[cpu.number() as usize];
        if !per.has_room(kind, b.units) {
            return false;
        }
        self.retire_small(per, mem, kind, b, 0);
        per.push(kind, b.units, b.entry)
    }
}
