//! The simulated virtual address space: user space, system space and the system regions.
//!
//! Ends are inclusive (last byte), like `MmHighestUserAddress`. Regions are sorted by
//! start, never overlap, and are page-aligned; the kernel crate carves paged pool,
//! nonpaged pool, system PTEs and special pool out of the regions given here.
//!
//! **x86** (`research/nt-algorithms.md` §8.1, seed 000 §2.1). User space is
//! `0x00010000–0x7FFEFFFF` (probe address `0x7FFF0000`), or `0xBFFEFFFF`/`0xBFFF0000` with
//! `/3GB`. Fixed in both: page tables at `0xC0000000` (4 MB; PAE 8 MB), hyperspace after
//! them (`0xC0400000`; PAE `0xC0800000`), the system-cache working-set list at `0xC0C00000`,
//! the crash-dump area at `0xFFBE0000` and the HAL's 4 MB at `0xFFC00000`. The other
//! regions are sized from the profile and packed, in 4 MB units so no page table is shared
//! by two regions, into the free gaps:
//! - 2 GB system space: `[0x80000000, 0xC0000000)` holds kernel images, the PFN database,
//!   the initial nonpaged pool, system PTEs, special pool, system views and session space
//!   (ending at `0xC0000000`); `[0xC1000000, 0xFFBE0000)` holds the system cache from
//!   `0xC1000000`, then paged pool and nonpaged-pool expansion ending at `0xFFBE0000`.
//! - `/3GB`: everything shares `[0xC1000000, 0xFFBE0000)`.
//!
//! When a gap is too small, regions shrink in this order down to a minimum: system cache
//! (64 MB), special pool (4 MB), system views (16 MB), session space (32 MB), system PTEs
//! (28 MB), paged pool (32 MB), nonpaged-pool expansion (4 MB), initial nonpaged pool
//! (16 MB; only a 128 GB PAE machine with a large `NonPagedPoolSize` gets this far).
//! Unused VA sits after the system cache (and after special pool in the low gap). Vista
//! x86 assigns kernel VA dynamically (§8.1); ntmem gives it this XP layout. `KUSER_SHARED_DATA`'s kernel view
//! (`0xFFDF0000`) lies inside the HAL region, so x86 lists no `SharedUserData` region.
//!
//! **x64 and IA-64** (§8.2, seed 000 §2.2). User space `0x10000–0x7FF_FFFE_FFFF` (8 TB),
//! probe `0x7FF_FFFF_0000`; system space `0x800_0000_0000–0xFFF_FFFF_FFFF` (8–16 TB). This
//! is ntmem's placement of the canonical high-half layout of Windows Server 2003–7 x64
//! into the host-reachable 8–16 TB range: canonical `0xFFFFF680_00000000 + x` becomes
//! `0x800_0000_0000 + x` for page tables (512 GB), hyperspace (512 GB), the shared page
//! and system-cache working set (512 GB), kernel images (512 GB), system PTEs (128 GB),
//! paged pool (128 GB), session space (512 GB), system cache (1 TB) and the PFN database
//! (at +4 TB); the initial nonpaged pool (rounded up to 1 GB), a 128 GB nonpaged-pool
//! expansion and special pool (4 GB) follow the PFN database, and the crash-dump area and HAL (4 MB) sit at the top.
//! IA-64 uses the same placement with 8 KB pages (its region registers are not modelled).

use crate::addr::{format_size, Va};
use crate::arch::{Arch, PagingMode};
use crate::error::MachineError;
use crate::limits::Wants;

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// What a region of the address space is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub enum RegionKind {
    /// User space of the current process.
    UserSpace,
    /// `KUSER_SHARED_DATA`'s kernel view.
    SharedUserData,
    /// ntoskrnl, the HAL and boot drivers.
    KernelImages,
    /// Session space (session pool, session images).
    SessionSpace,
    /// System-wide mapped views.
    SystemViews,
    /// The page tables, mapped through the self-map.
    PageTables,
    /// Per-process temporary mappings and working-set list.
    Hyperspace,
    /// System-cache working-set list.
    SystemCacheWorkingSet,
    /// The file-system cache's views.
    SystemCache,
    /// Paged pool.
    PagedPool,
    /// System PTEs (MDL mappings, `MmMapIoSpace`, kernel stacks).
    SystemPtes,
    /// Nonpaged pool mapped at boot.
    NonPagedPool,
    /// Nonpaged pool's growth.
    NonPagedPoolExpansion,
    /// Driver Verifier special pool.
    SpecialPool,
    /// The PFN database.
    PfnDatabase,
    /// Crash-dump and debugger mappings.
    CrashDump,
    /// HAL-reserved space at the top.
    Hal,
}

impl RegionKind {
    /// A human name for the region.
    pub fn label(self) -> &'static str {
        match self {
            RegionKind::UserSpace => "user space",
            RegionKind::SharedUserData => "shared user data",
            RegionKind::KernelImages => "kernel, HAL and boot drivers",
            RegionKind::SessionSpace => "session space",
            RegionKind::SystemViews => "system views",
            RegionKind::PageTables => "page tables",
            RegionKind::Hyperspace => "hyperspace",
            RegionKind::SystemCacheWorkingSet => "system cache working set",
            RegionKind::SystemCache => "system cache",
            RegionKind::PagedPool => "paged pool",
            RegionKind::SystemPtes => "system PTEs",
            RegionKind::NonPagedPool => "nonpaged pool",
            RegionKind::NonPagedPoolExpansion => "nonpaged pool expansion",
            RegionKind::SpecialPool => "special pool",
            RegionKind::PfnDatabase => "PFN database",
            RegionKind::CrashDump => "crash dump",
            RegionKind::Hal => "HAL",
        }
    }
}

/// A region of the virtual address space.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Region {
    /// What it is for.
    pub kind: RegionKind,
    /// Its name ([`RegionKind::label`]).
    pub name: &'static str,
    /// First byte.
    pub start: Va,
    /// Size in bytes.
    pub size: u64,
}

impl Region {
    fn new(kind: RegionKind, start: u64, size: u64) -> Region {
        Region { kind, name: kind.label(), start: Va::new(start), size }
    }

    /// Last byte (inclusive).
    pub fn end(&self) -> Va {
        Va::new(self.start.get() + self.size - 1)
    }

    /// Whether `va` lies in the region.
    pub fn contains(&self, va: Va) -> bool {
        va >= self.start && va <= self.end()
    }
}

/// The address-space layout of a machine.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Layout {
    /// Lowest user address (the first 64 KB catch NULL pointers).
    pub user_start: Va,
    /// `MmHighestUserAddress`.
    pub user_end: Va,
    /// `MmUserProbeAddress`.
    pub user_probe_address: Va,
    /// `MmSystemRangeStart`.
    pub system_start: Va,
    /// Last byte of system space.
    pub system_end: Va,
    /// `KUSER_SHARED_DATA`'s user-mode view, `0x7FFE0000` on every architecture.
    pub shared_user_data: Va,
    /// The regions, sorted by start, user space first.
    pub regions: Vec<Region>,
}

impl Layout {
    /// The first region of `kind`.
    pub fn region(&self, kind: RegionKind) -> Option<&Region> {
        self.regions.iter().find(|r| r.kind == kind)
    }

    /// The region holding `va`. O(log regions).
    pub fn region_at(&self, va: Va) -> Option<&Region> {
        let index = self.regions.partition_point(|r| r.start <= va).checked_sub(1)?;
        Some(&self.regions[index]).filter(|r| r.contains(va))
    }

    /// Whether `va` is a user-space address.
    pub fn is_user(&self, va: Va) -> bool {
        va >= self.user_start && va <= self.user_end
    }

    /// Whether `va` is a system-space address.
    pub fn is_system(&self, va: Va) -> bool {
        va >= self.system_start && va <= self.system_end
    }
}

/// What [`build`] needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayoutInput<'a> {
    pub arch: Arch,
    pub paging: PagingMode,
    pub three_gb: bool,
    pub pfn_database: u64,
    pub wants: &'a Wants,
    /// For error messages.
    pub edition: &'a str,
}

/// Builds the layout (see the module docs).
pub(crate) fn build(input: &LayoutInput<'_>) -> Result<Layout, MachineError> {
    let (user_end, system_start, system_end, mut regions) = if input.arch.is_64bit() {
        (0x7FF_FFFE_FFFF, 0x800_0000_0000, 0xFFF_FFFF_FFFF, wide_regions(input))
    } else {
        let user_end = if input.three_gb { 0xBFFE_FFFF } else { 0x7FFE_FFFF };
        (user_end, user_end + 1 + 0x10000, 0xFFFF_FFFF, x86_regions(input)?)
    };
    regions.push(Region::new(RegionKind::UserSpace, 0x10000, user_end + 1 - 0x10000));
    regions.sort_by_key(|r| r.start);
    Ok(Layout {
        user_start: Va::new(0x10000),
        user_end: Va::new(user_end),
        user_probe_address: Va::new(user_end + 1),
        system_start: Va::new(system_start),
        system_end: Va::new(system_end),
        shared_user_data: Va::new(0x7FFE_0000),
        regions,
    })
}

/// A flexible x86 region: the size wanted and the least it may shrink to.
#[derive(Clone, Copy, Debug)]
struct Piece {
    kind: RegionKind,
    want: u64,
    min: u64,
}

/// x86 packing unit: one page table's worth of VA.
const UNIT: u64 = 4 * MB;

/// The order x86 regions give up space in, with their minimum sizes.
const SHRINK_ORDER: [(RegionKind, u64); 8] = [
    (RegionKind::SystemCache, 64 * MB),
    (RegionKind::SpecialPool, 4 * MB),
    (RegionKind::SystemViews, 16 * MB),
    (RegionKind::SessionSpace, 32 * MB),
    (RegionKind::SystemPtes, 28 * MB),
    (RegionKind::PagedPool, 32 * MB),
    (RegionKind::NonPagedPoolExpansion, UNIT),
    (RegionKind::NonPagedPool, 16 * MB),
];

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT).max(1) * UNIT
}

fn x86_regions(input: &LayoutInput<'_>) -> Result<Vec<Region>, MachineError> {
    use RegionKind::*;
    let w = input.wants;
    let page = input.arch.page_shift();
    let piece = |kind: RegionKind, bytes: u64| {
        let min = SHRINK_ORDER.iter().find(|(k, _)| *k == kind).map_or(units(bytes), |&(_, m)| m.min(units(bytes)));
        Piece { kind, want: units(bytes), min }
    };
    let page_tables = if input.paging == PagingMode::X86Pae { 8 * MB } else { 4 * MB };
    let mut regions = vec![
        Region::new(PageTables, 0xC000_0000, page_tables),
        Region::new(Hyperspace, 0xC000_0000 + page_tables, 4 * MB),
        Region::new(SystemCacheWorkingSet, 0xC0C0_0000, 4 * MB),
        Region::new(CrashDump, 0xFFBE_0000, 128 * KB),
        Region::new(Hal, 0xFFC0_0000, 4 * MB),
    ];
    let kernel = [
        piece(KernelImages, 16 * MB),
        piece(PfnDatabase, input.pfn_database),
        piece(NonPagedPool, w.limits.nonpaged_initial),
    ];
    let views = [piece(SystemViews, 32 * MB), piece(SessionSpace, 64 * MB)];
    let ptes = [piece(SystemPtes, page.pages_to_bytes(w.system_ptes)), piece(SpecialPool, w.special_pool)];
    let cache = [piece(SystemCache, 512 * MB), piece(PagedPool, w.limits.paged_max)];
    let expansion = piece(NonPagedPoolExpansion, w.limits.nonpaged_max - w.limits.nonpaged_initial);
    let high = (0xC100_0000, 0xFFBE_0000);
    if input.three_gb {
        let all: Vec<Piece> =
            kernel.iter().chain(&views).chain(&cache).chain(&ptes).copied().chain([expansion]).collect();
        regions.extend(pack(high, all, SystemCache, input)?);
    } else {
        let low: Vec<Piece> = kernel.iter().chain(&ptes).chain(&views).copied().collect();
        regions.extend(pack((0x8000_0000, 0xC000_0000), low, SpecialPool, input)?);
        regions.extend(pack(high, cache.iter().copied().chain([expansion]).collect(), SystemCache, input)?);
    }
    Ok(regions)
}

/// Packs `pieces` in order into `[start, end)`, shrinking them by [`SHRINK_ORDER`] if
/// needed; unused space goes after the `slack_after` region, and the last region runs to
/// `end`.
fn pack(
    (start, end): (u64, u64),
    mut pieces: Vec<Piece>,
    slack_after: RegionKind,
    input: &LayoutInput<'_>,
) -> Result<Vec<Region>, MachineError> {
    let room = (end & !(UNIT - 1)) - start;
    let mut total: u64 = pieces.iter().map(|p| p.want).sum();
    for (kind, _) in SHRINK_ORDER {
        for p in pieces.iter_mut().filter(|p| p.kind == kind) {
            let cut = total.saturating_sub(room).min(p.want - p.min);
            p.want -= cut;
            total -= cut;
        }
    }
    if total > room {
        return Err(MachineError::LayoutDoesNotFit {
            edition: input.edition.to_string(),
            space: format_size(room),
            need: format_size(pieces.iter().map(|p| p.min).sum()),
            hint: "use less RAM, /MAXMEM, or drop /3GB",
        });
    }
    let mut at = start;
    let mut regions: Vec<Region> = Vec::with_capacity(pieces.len());
    for p in &pieces {
        regions.push(Region::new(p.kind, at, p.want));
        at += p.want;
        if p.kind == slack_after {
            at += room - total;
        }
    }
    if let Some(last) = regions.last_mut() {
        last.size = end - last.start.get();
    }
    Ok(regions)
}

fn wide_regions(input: &LayoutInput<'_>) -> Vec<Region> {
    use RegionKind::*;
    const BASE: u64 = 0x800_0000_0000;
    let page = input.arch.page_shift().page_size();
    let w = input.wants;
    let mut regions = vec![
        Region::new(PageTables, BASE, 512 * GB),
        Region::new(Hyperspace, BASE + 0x80_0000_0000, 512 * GB),
        Region::new(SharedUserData, BASE + 0x100_0000_0000, page),
        Region::new(SystemCacheWorkingSet, BASE + 0x100_0000_0000 + page, 512 * GB - page),
        Region::new(KernelImages, BASE + 0x180_0000_0000, 512 * GB),
        Region::new(SystemPtes, BASE + 0x200_0000_0000, 128 * GB),
        Region::new(PagedPool, BASE + 0x220_0000_0000, 128 * GB),
        Region::new(SessionSpace, BASE + 0x280_0000_0000, 512 * GB),
        Region::new(SystemCache, BASE + 0x300_0000_0000, 1024 * GB),
    ];
    let pfn_start = BASE + 0x400_0000_0000;
    let pfn_size = input.pfn_database.div_ceil(GB).max(1) * GB;
    let nonpaged = pfn_start + pfn_size;
    let initial = w.limits.nonpaged_initial.div_ceil(GB).max(1) * GB;
    let expansion = nonpaged + initial;
    let special = expansion + 128 * GB;
    regions.extend([
        Region::new(PfnDatabase, pfn_start, pfn_size),
        Region::new(NonPagedPool, nonpaged, initial),
        Region::new(NonPagedPoolExpansion, expansion, 128 * GB),
        Region::new(SpecialPool, special, w.special_pool),
        Region::new(CrashDump, 0xFFF_FFBE_0000, 128 * KB),
        Region::new(Hal, 0xFFF_FFC0_0000, 4 * MB),
    ]);
    regions
}
