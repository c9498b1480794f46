//! Pool limits, system PTE counts and the registry knobs that change them.
//!
//! These are the sizes a machine *wants*; [`crate::layout`] then fits them into the
//! system address space and the profile reports what fitted. Rules and sources:
//!
//! - **x86 nonpaged pool** (Windows 2000, XP, Server 2003; Vista x86 uses the same rule,
//!   its dynamic VA is not modelled): the KB 126402-style computation of
//!   `research/nt-algorithms.md` §1.11, capped at 256 MB, 128 MB with `/3GB` (Microsoft,
//!   "Memory Limits for Windows Releases").
//! - **x86 paged pool**: twice the nonpaged maximum, at least 32 MB (§1.11), capped at the
//!   release's documented maximum: Windows 2000 350 MB, XP 490 MB, Server 2003 (RTM and
//!   SP1) 530 MB; Vista x86 "limited only by kernel mode virtual address space" (all from
//!   "Memory Limits for Windows Releases").
//! - **64-bit nonpaged pool**: the docs say "up to 128 GB depending on configuration and
//!   RAM" for XP/2003 and "40% of RAM, max 128 GB" for Vista. ntmem uses min(75% of RAM,
//!   128 GB) for XP/2003 (the rule the same page gives for the next fixed-layout release,
//!   Windows 7) and min(40% of RAM, 128 GB) for Vista. Initial size: 3% of RAM, or 40 MB
//!   if that is more and 10% of RAM exceeds 40 MB, else 10% of RAM (Windows Internals,
//!   public excerpt, §1.11).
//! - **64-bit paged pool**: 128 GB ("up to 128 GB"); ntmem has no commit limit here, the
//!   kernel's commit accounting bounds actual use.
//! - **System PTEs** (§4.1): x86 7000 below 19 MB of RAM, else 11000, doubled above 32 MB,
//!   doubled again above 256 MB; 64-bit: the pages of the 128 GB system-PTE region.
//! - **Special pool** (§2, ReactOS special.c): x86 one third of the system PTEs (a sixth
//!   below 0x3000), at most 0x6000 pages; 64-bit: ntmem gives it 4 GB of VA.
//! - **Registry** (seed 001; KB 126402): `NonPagedPoolSize` sets the initial nonpaged pool
//!   and raises the maximum to at least that; more than 7/8 of RAM is ignored, more than
//!   the architecture's cap is capped. `PagedPoolSize` sets the paged pool size; more than
//!   the cap is capped; `0xFFFFFFFF` asks for the largest possible, which ntmem takes to
//!   be the release's documented maximum (the layout then limits it by VA). 0 means the
//!   system default for both.
//! - **`SystemPages`** (TechNet "SystemPages", Jungo TechDoc #59, research
//!   dma-verifier-views.md §4.2): on 32-bit Windows a fixed count of system PTEs
//!   replacing the computed one; `0xFFFFFFFF` asks for the most possible, which ntmem
//!   asks of the layout as 2 GB of PTEs and the layout then cuts to the room left
//!   (with the other regions at their minimum). 64-bit Windows ignores it (warning).

use crate::addr::{format_size, PageShift};
use crate::arch::Arch;
use crate::edition::Release;

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// `PagedPoolSize = 0xFFFFFFFF`: the largest paged pool possible (Microsoft docs).
pub const PAGED_POOL_SIZE_MAXIMUM: u64 = 0xFFFF_FFFF;

/// `SystemPages = 0xFFFFFFFF`: as many system PTEs as possible (TechNet "SystemPages";
/// research/dma-verifier-views.md §4.2).
pub const SYSTEM_PAGES_MAXIMUM: u64 = 0xFFFF_FFFF;

/// Values under `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management`.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, serde::Serialize)]
pub struct RegistryKnobs {
    /// `NonPagedPoolSize`, bytes; 0 or absent = system default.
    pub non_paged_pool_size: Option<u64>,
    /// `PagedPoolSize`, bytes; 0 or absent = system default; 0xFFFFFFFF = largest possible.
    pub paged_pool_size: Option<u64>,
    /// `SystemPages`, a count of system PTEs; 0 or absent = computed; 0xFFFFFFFF = as
    /// many as the system address space holds. 32-bit only: 64-bit Windows ignores it.
    pub system_pages: Option<u64>,
}

/// Pool sizes of a machine, bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct PoolLimits {
    /// Nonpaged pool mapped at boot.
    pub nonpaged_initial: u64,
    /// Most the nonpaged pool can grow to (initial + expansion).
    pub nonpaged_max: u64,
    /// Most the paged pool can grow to.
    pub paged_max: u64,
}

/// What a machine wants before the layout fits it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Wants {
    pub limits: PoolLimits,
    pub system_ptes: u64,
    pub special_pool: u64,
}

/// The facts [`Wants::compute`] reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizing {
    pub arch: Arch,
    pub release: Release,
    pub three_gb: bool,
    /// RAM the system can use, bytes.
    pub ram: u64,
    /// Bytes of the PFN database.
    pub pfn_database: u64,
}

impl Sizing {
    fn shift(&self) -> PageShift {
        self.arch.page_shift()
    }

    /// Most nonpaged pool the architecture allows.
    fn nonpaged_cap(&self) -> u64 {
        match (self.arch.is_64bit(), self.three_gb) {
            (true, _) => 128 * GB,
            (false, true) => 128 * MB,
            (false, false) => 256 * MB,
        }
    }

    /// Most paged pool the release documents, `None` if only VA limits it.
    fn paged_cap(&self) -> Option<u64> {
        if self.arch.is_64bit() {
            return Some(128 * GB);
        }
        match self.release {
            Release::Windows2000 => Some(350 * MB),
            Release::WindowsXp => Some(490 * MB),
            Release::WindowsServer2003 | Release::WindowsServer2003Sp1 => Some(530 * MB),
            Release::WindowsVista | Release::Windows8 => None,
        }
    }

    /// (initial, maximum) nonpaged pool by the §1.11 x86 computation.
    fn x86_nonpaged(&self) -> (u64, u64) {
        let pages = self.ram / (4 * KB);
        let steps = pages.saturating_sub(1024) / 256;
        let initial = if self.ram <= 255 * MB { 2 * MB } else { (256 * KB + steps * 32 * KB).min(128 * MB) };
        let mut max = MB + self.pfn_database;
        if pages >= 0x1F000 {
            max = (max + steps * 200 * KB).max(128 * MB);
        } else {
            max += steps * 400 * KB;
        }
        max = max.max(initial + 16 * 4 * KB + self.pfn_database).min(256 * MB);
        if max > 128 * MB {
            max = max.min(initial + 128 * MB);
        }
        (initial, max)
    }

    /// (initial, maximum) nonpaged pool on 64-bit.
    fn wide_nonpaged(&self) -> (u64, u64) {
        let percent = if self.release >= Release::WindowsVista { 40 } else { 75 };
        let max = (self.ram / 100 * percent).min(128 * GB);
        let (three, ten) = (self.ram / 100 * 3, self.ram / 10);
        let initial = if three >= 40 * MB {
            three
        } else if ten > 40 * MB {
            40 * MB
        } else {
            ten
        };
        (initial.min(max), max)
    }
}

impl Wants {
    /// The sizes `sizing` wants, with `registry` applied; out-of-range knobs add a warning.
    pub(crate) fn compute(sizing: &Sizing, registry: &RegistryKnobs, warnings: &mut Vec<String>) -> Wants {
        let shift = sizing.shift();
        let (mut initial, mut nonpaged_max) =
            if sizing.arch.is_64bit() { sizing.wide_nonpaged() } else { sizing.x86_nonpaged() };
        let cap = sizing.nonpaged_cap();
        nonpaged_max = nonpaged_max.min(cap);
        if let Some(value) = registry.non_paged_pool_size.filter(|&v| v != 0) {
            if value > sizing.ram / 8 * 7 {
                warnings.push(format!(
                    "NonPagedPoolSize {} is more than 7/8 of RAM ({}); ignored",
                    format_size(value),
                    format_size(sizing.ram)
                ));
            } else {
                if value > cap {
                    warnings.push(format!(
                        "NonPagedPoolSize {} is above the {} nonpaged pool maximum; capped",
                        format_size(value),
                        format_size(cap)
                    ));
                }
                initial = value.min(cap);
                nonpaged_max = nonpaged_max.max(initial);
            }
        }
        let paged_cap = sizing.paged_cap();
        let paged_default = if sizing.arch.is_64bit() { 128 * GB } else { (2 * nonpaged_max).max(32 * MB) };
        let mut paged = paged_cap.map_or(paged_default, |c| paged_default.min(c));
        match registry.paged_pool_size.filter(|&v| v != 0) {
            None => {}
            Some(PAGED_POOL_SIZE_MAXIMUM) => paged = paged_cap.unwrap_or(2 * GB),
            Some(value) => {
                paged = paged_cap.map_or(value, |c| {
                    if value > c {
                        warnings.push(format!(
                            "PagedPoolSize {} is above the {} paged pool maximum; capped",
                            format_size(value),
                            format_size(c)
                        ));
                    }
                    value.min(c)
                })
            }
        }
        let system_pages = registry.system_pages.filter(|&v| v != 0);
        let (system_ptes, special_pool) = if sizing.arch.is_64bit() {
            if system_pages.is_some() {
                warnings.push("SystemPages has no effect on 64-bit Windows; ignored".to_string());
            }
            (shift.bytes_to_pages(128 * GB), 4 * GB)
        } else {
            let computed = match sizing.ram {
                r if r < 19 * MB => 7000,
                r if r <= 32 * MB => 11000,
                r if r <= 256 * MB => 22000,
                _ => 44000,
            };
            let special = if computed >= 0x3000 { computed / 3 } else { computed / 6 };
            let ptes = match system_pages {
                None => computed,
                Some(SYSTEM_PAGES_MAXIMUM) => shift.bytes_to_pages(2 * GB),
                Some(v) => v.min(shift.bytes_to_pages(2 * GB)),
            };
            (ptes, shift.pages_to_bytes(special.min(0x6000)))
        };
        Wants {
            limits: PoolLimits {
                nonpaged_initial: shift.round_up(initial),
                nonpaged_max: shift.round_up(nonpaged_max),
                paged_max: shift.round_up(paged),
            },
            system_ptes,
            special_pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizing(arch: Arch, release: Release, ram: u64, three_gb: bool) -> Sizing {
        let pfn_database = ram / arch.page_shift().page_size() * arch.pfn_entry_size();
        Sizing { arch, release, three_gb, ram, pfn_database }
    }

    fn wants(s: &Sizing, registry: RegistryKnobs) -> (Wants, Vec<String>) {
        let mut warnings = Vec::new();
        (Wants::compute(s, &registry, &mut warnings), warnings)
    }

    #[test]
    fn x86_follows_kb_126402_and_the_documented_caps() {
        let (big, _) = wants(&sizing(Arch::X86, Release::WindowsXp, 3 * GB, false), RegistryKnobs::default());
        assert!(big.limits.nonpaged_max <= 256 * MB && big.limits.nonpaged_max > 200 * MB);
        assert_eq!(big.limits.paged_max, 2 * big.limits.nonpaged_max);
        let (xp, _) = wants(&sizing(Arch::X86, Release::WindowsXp, 8 * GB, false), RegistryKnobs::default());
        assert_eq!(xp.limits.paged_max, 490 * MB);
        assert_eq!(big.system_ptes, 44000);
        let (three, _) = wants(&sizing(Arch::X86, Release::WindowsServer2003, 3 * GB, true), RegistryKnobs::default());
        assert_eq!(three.limits.nonpaged_max, 128 * MB);
        let (small, _) = wants(&sizing(Arch::X86, Release::Windows2000, 64 * MB, false), RegistryKnobs::default());
        assert_eq!(small.limits.nonpaged_initial, 2 * MB);
        assert_eq!(small.limits.paged_max, 2 * small.limits.nonpaged_max);
        assert_eq!(small.system_ptes, 22000);
    }

    #[test]
    fn wide_pools_scale_with_ram() {
        let (x64, _) =
            wants(&sizing(Arch::X64, Release::WindowsServer2003Sp1, 8 * GB, false), RegistryKnobs::default());
        assert_eq!(x64.limits.nonpaged_max, 6 * GB);
        assert_eq!(x64.limits.paged_max, 128 * GB);
        assert_eq!(x64.system_ptes, 32 << 20);
        let (vista, _) = wants(&sizing(Arch::X64, Release::WindowsVista, 1024 * GB, false), RegistryKnobs::default());
        assert_eq!(vista.limits.nonpaged_max, 128 * GB);
        let (ia64, _) = wants(&sizing(Arch::Ia64, Release::WindowsXp, 64 * GB, false), RegistryKnobs::default());
        assert_eq!(ia64.system_ptes, 16 << 20);
    }

    #[test]
    fn registry_knobs_override_within_bounds() {
        let s = sizing(Arch::X86, Release::WindowsServer2003Sp1, 2 * GB, false);
        let (raised, warnings) = wants(
            &s,
            RegistryKnobs { non_paged_pool_size: Some(200 * MB), paged_pool_size: Some(0), system_pages: None },
        );
        assert!(warnings.is_empty());
        assert_eq!(raised.limits.nonpaged_initial, 200 * MB);
        assert!(raised.limits.nonpaged_max >= 200 * MB);
        let (capped, warnings) = wants(
            &s,
            RegistryKnobs { non_paged_pool_size: Some(512 * MB), paged_pool_size: Some(GB), system_pages: None },
        );
        assert_eq!(capped.limits.nonpaged_initial, 256 * MB);
        assert_eq!(capped.limits.paged_max, 530 * MB);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let (ignored, warnings) =
            wants(&s, RegistryKnobs { non_paged_pool_size: Some(2 * GB), paged_pool_size: None, system_pages: None });
        assert!(warnings[0].contains("ignored"));
        assert!(ignored.limits.nonpaged_initial < 256 * MB);
        let (max, _) = wants(
            &s,
            RegistryKnobs {
                non_paged_pool_size: None,
                paged_pool_size: Some(PAGED_POOL_SIZE_MAXIMUM),
                system_pages: None,
            },
        );
        assert_eq!(max.limits.paged_max, 530 * MB);
    }

    #[test]
    fn system_pages_replaces_the_computed_count_on_32_bit_only() {
        let s = sizing(Arch::X86, Release::WindowsXp, 2 * GB, false);
        let knob = |v| RegistryKnobs { system_pages: Some(v), ..RegistryKnobs::default() };
        assert_eq!(wants(&s, knob(100_000)).0.system_ptes, 100_000);
        assert_eq!(wants(&s, knob(0)).0.system_ptes, 44000);
        assert_eq!(wants(&s, knob(SYSTEM_PAGES_MAXIMUM)).0.system_ptes, 2 * GB / 4096);
        let wide = sizing(Arch::X64, Release::WindowsServer2003Sp1, 8 * GB, false);
        let (w, warnings) = wants(&wide, knob(100_000));
        assert_eq!(w.system_ptes, 32 << 20);
        assert!(warnings[0].contains("SystemPages"), "{warnings:?}");
    }
}
