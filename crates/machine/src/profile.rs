//! A machine's configuration, and the profile built from it.
//!
//! [`MachineConfig`] is what a user chooses (edition, RAM, Boot.ini options, processors,
//! registry knobs); [`MachineConfig::build`] checks it the way Windows would at boot and
//! returns a [`MachineProfile`]: the physical map, the address-space layout, the pool
//! limits and the system PTE count, with warnings for what Windows ignores. Rules:
//!
//! - Processors: 1 to [`crate::Arch::max_processors`].
//! - RAM: a whole number of pages, at least [`MIN_RAM`] (ntmem's floor; Windows XP's
//!   documented minimum is 64 MB), at most the edition's Table 1 maximum.
//! - `/3GB`: only on the editions seed 000 §2.1 lists (an error elsewhere, including all
//!   64-bit editions). With PAE it limits usable RAM to 16 GB (Microsoft, "Physical
//!   Address Extension": with /3GB the PAE kernel uses at most 16 GB).
//! - `/PAE`: selects the PAE kernel on x86 (seed 000 §2.1); ignored with a warning on 64-bit.
//! - Physical-address limit for RAM: the paging mode's bits ([`crate::PagingMode::phys_bits`]);
//!   x86 editions whose maximum is 4 GB use at most 4 GB of physical address space even
//!   with PAE (Microsoft, "Memory Limits for Windows Releases"), so RAM remapped above
//!   4 GB is lost: a 4 GB XP machine shows about 3 GB.
//! - `/MAXMEM=n` (Windows 2000 and later, seed 000 §12.1): RAM at or above n MB is ignored;
//!   n below [`MIN_RAM`] is an error.
//! - `/BURNMEMORY=n` (Windows XP and later, seed 000 §12.1; an error on Windows 2000): n MB
//!   are taken away at boot, and at least [`MIN_USABLE_RAM`] must remain.
//! - `/NOLOWMEM` (seed 000 §12.1): effective on x64 and Itanium, and on x86 with PAE and
//!   more than 5 GB of RAM; otherwise Windows ignores it, and ntmem warns.
//! - Pool limits, system PTEs and layout: [`crate::limits`] and [`crate::layout`]; where the
//!   layout cannot hold what the limits want, the profile reports what fits, with a warning.

use crate::addr::{format_size, PageShift};
use crate::arch::{Arch, PagingMode};
use crate::boot::BootOptions;
use crate::edition::{find_edition, Edition, DEFAULT_EDITION, EDITIONS};
use crate::error::MachineError;
use crate::layout::{self, Layout, LayoutInput, RegionKind};
use crate::limits::{PoolLimits, RegistryKnobs, Sizing, Wants};
use crate::physmap::{PhysMap, FOUR_GB};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// The least RAM ntmem boots with: installed, or the `/MAXMEM` value (Windows XP's
/// documented minimum is 64 MB).
pub const MIN_RAM: u64 = 64 * MB;

/// The least RAM that must remain for the system after `/BURNMEMORY` (ntmem's floor).
pub const MIN_USABLE_RAM: u64 = 32 * MB;

/// What the user chooses about a machine.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// The edition of Windows.
    pub edition: &'static Edition,
    /// Installed RAM, bytes.
    pub ram: u64,
    /// Boot.ini options.
    pub boot: BootOptions,
    /// Number of processors.
    pub processors: u32,
    /// Memory Management registry values.
    pub registry: RegistryKnobs,
}

impl Default for MachineConfig {
    /// [`DEFAULT_EDITION`] with 8 GB of RAM, no boot options, 2 processors.
    fn default() -> Self {
        let edition = EDITIONS.iter().find(|e| e.key == DEFAULT_EDITION).expect("DEFAULT_EDITION is a row of EDITIONS");
        MachineConfig {
            edition,
            ram: 8 * GB,
            boot: BootOptions::default(),
            processors: 2,
            registry: RegistryKnobs::default(),
        }
    }
}

/// Everything the rest of ntmem needs to know about a simulated machine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MachineProfile {
    /// The edition.
    pub edition: &'static Edition,
    /// Its architecture.
    pub arch: Arch,
    /// The paging mode in effect.
    pub paging: PagingMode,
    /// RAM installed, bytes.
    pub ram_installed: u64,
    /// Number of processors.
    pub processors: u32,
    /// Boot options as given.
    pub boot: BootOptions,
    /// Registry values as given.
    pub registry: RegistryKnobs,
    /// The physical memory map.
    pub physmap: PhysMap,
    /// The virtual address-space layout.
    pub layout: Layout,
    /// Pool limits that fit the layout.
    pub limits: PoolLimits,
    /// Number of system PTEs.
    pub system_ptes: u64,
    /// What Windows would ignore or limit, in words.
    pub warnings: Vec<String>,
}

impl MachineProfile {
    /// The page size as a shift.
    pub fn page_shift(&self) -> PageShift {
        self.arch.page_shift()
    }
}

impl MachineConfig {
    /// The default configuration on the named edition (see [`find_edition`]).
    ///
    /// # Errors
    /// [`MachineError::UnknownEdition`].
    pub fn for_edition(name: &str) -> Result<MachineConfig, MachineError> {
        Ok(MachineConfig { edition: find_edition(name)?, ..MachineConfig::default() })
    }

    /// Checks the configuration and builds the machine's profile (module docs list the rules).
    ///
    /// # Errors
    /// A [`MachineError`] naming what is valid instead.
    pub fn build(&self) -> Result<MachineProfile, MachineError> {
        let edition = self.edition;
        let arch = edition.arch;
        let shift = arch.page_shift();
        let mut warnings = Vec::new();
        self.check_basics()?;
        let pae = self.boot.pae && !arch.is_64bit();
        if self.boot.pae && arch.is_64bit() {
            warnings.push(format!("/PAE is ignored on {edition}: 64-bit Windows always uses its own paging"));
        }
        let paging = PagingMode::for_arch(arch, pae);
        let (limit, reason) = self.ram_limit(paging);
        let mut physmap = PhysMap::new(self.ram, shift, limit, 0, false);
        let lost = physmap.ram_file_len() - physmap.managed_ram();
        if lost > 0 {
            warnings.push(format!(
                "{} of installed RAM lies at or above {} and is not used: {reason}",
                format_size(lost),
                format_size(limit)
            ));
        }
        physmap.nolowmem = self.boot.nolowmem && (arch.is_64bit() || (pae && physmap.managed_ram() > 5 * GB));
        if self.boot.nolowmem && !physmap.nolowmem {
            warnings.push(format!(
                "/NOLOWMEM is ignored on this {edition} machine: it takes effect on x64 and Itanium, and on x86 with /PAE and more than 5 GB of RAM"
            ));
        }
        if let Some(mb) = self.boot.burnmemory_mb {
            physmap.burned = mb * MB;
            let left = physmap.managed_ram().saturating_sub(physmap.burned);
            if left < MIN_USABLE_RAM {
                return Err(too_little(format!("/BURNMEMORY={mb}"), left, MIN_USABLE_RAM));
            }
        }
        let pfn_database = (physmap.highest_ram_address().get() >> shift.0).saturating_add(1) * arch.pfn_entry_size();
        let sizing = Sizing {
            arch,
            release: edition.release,
            three_gb: self.boot.three_gb,
            ram: physmap.usable_ram(),
            pfn_database,
        };
        let wants = Wants::compute(&sizing, &self.registry, &mut warnings);
        let layout = layout::build(&LayoutInput {
            arch,
            paging,
            three_gb: self.boot.three_gb,
            pfn_database,
            wants: &wants,
            edition: &edition.to_string(),
        })?;
        let (limits, system_ptes) = fit(&wants, &layout, shift, &mut warnings);
        Ok(MachineProfile {
            edition,
            arch,
            paging,
            ram_installed: self.ram,
            processors: self.processors,
            boot: self.boot,
            registry: self.registry,
            physmap,
            layout,
            limits,
            system_ptes,
            warnings,
        })
    }

    /// The checks that need nothing but the configuration itself.
    fn check_basics(&self) -> Result<(), MachineError> {
        let edition = self.edition;
        let arch = edition.arch;
        if self.processors == 0 || self.processors > arch.max_processors() {
            return Err(MachineError::Processors {
                count: self.processors,
                arch: arch.name(),
                max: arch.max_processors(),
            });
        }
        let page = arch.page_shift().page_size();
        if !self.ram.is_multiple_of(page) {
            return Err(MachineError::RamNotPageMultiple { ram: self.ram, page });
        }
        if self.ram > edition.max_physical_memory {
            return Err(MachineError::RamAboveMaximum {
                ram: format_size(self.ram),
                max: format_size(edition.max_physical_memory),
                edition: edition.to_string(),
            });
        }
        if self.ram < MIN_RAM {
            return Err(too_little("installed RAM".to_string(), self.ram, MIN_RAM));
        }
        if self.boot.three_gb && !edition.supports_3gb {
            // The names `--machine` takes, which the user can type back.
            let supported: Vec<String> =
                EDITIONS.iter().filter(|e| e.supports_3gb).map(|e| e.key.to_string()).collect();
            return Err(unsupported("/3GB", edition, supported));
        }
        if self.boot.burnmemory_mb.is_some() && !edition.release.supports_burnmemory() {
            let mut releases: Vec<String> = Vec::new();
            for e in EDITIONS.iter().filter(|e| e.release.supports_burnmemory()) {
                if !releases.iter().any(|r| r == e.release.name()) {
                    releases.push(e.release.name().to_string());
                }
            }
            return Err(unsupported("/BURNMEMORY", edition, releases));
        }
        match self.boot.maxmem_mb {
            Some(mb) if mb.saturating_mul(MB) < MIN_RAM => Err(too_little(format!("/MAXMEM={mb}"), mb * MB, MIN_RAM)),
            _ => Ok(()),
        }
    }

    /// The first physical address RAM may not use, and why.
    fn ram_limit(&self, paging: PagingMode) -> (u64, String) {
        let edition = self.edition;
        let bits = paging.phys_bits();
        // The most specific reason first: on a tie the first one is reported.
        let mut limits = Vec::new();
        if edition.arch == Arch::X86 && edition.max_physical_memory <= FOUR_GB {
            limits.push((FOUR_GB, format!("{edition} uses at most 4 GB of physical address space, so RAM remapped above 4 GB past the PCI hole is lost")));
        }
        if paging == PagingMode::X86Pae && self.boot.three_gb {
            limits.push((16 * GB, "with /3GB the PAE kernel uses at most 16 GB of RAM".to_string()));
        }
        if let Some(mb) = self.boot.maxmem_mb {
            limits.push((mb.saturating_mul(MB), format!("/MAXMEM={mb}")));
        }
        limits.push((
            1u64 << bits,
            match paging {
                PagingMode::X86 if edition.max_physical_memory > FOUR_GB => {
                    format!(
                        "x86 without PAE decodes 32 physical address bits; boot with /PAE to use up to {} on {edition}",
                        format_size(edition.max_physical_memory)
                    )
                }
                PagingMode::X86 => "x86 without PAE decodes 32 physical address bits".to_string(),
                _ => format!("{} paging uses {bits} physical address bits for RAM (seed 000 §3)", paging.name()),
            },
        ));
        limits.into_iter().min_by_key(|(limit, _)| *limit).unwrap_or((u64::MAX, String::new()))
    }
}

fn too_little(what: String, left: u64, min: u64) -> MachineError {
    MachineError::TooLittleMemory { what, left: format_size(left), min: format_size(min) }
}

fn unsupported(switch: &'static str, edition: &Edition, supported: Vec<String>) -> MachineError {
    let edition = format!("{} ({edition})", edition.key);
    MachineError::BootOptionUnsupported { switch, edition, supported: supported.join(", ") }
}

/// The limits and PTE count the layout can hold, warning where it holds less than wanted.
fn fit(wants: &Wants, layout: &Layout, shift: PageShift, warnings: &mut Vec<String>) -> (PoolLimits, u64) {
    let size = |kind| layout.region(kind).map_or(0, |r| r.size);
    let mut fitted = |kind: RegionKind, want: u64| {
        let got = want.min(size(kind));
        if got < want {
            warnings.push(format!(
                "{} limited to {} by the system address space (wanted {})",
                kind.label(),
                format_size(got),
                format_size(want)
            ));
        }
        got
    };
    let initial = fitted(RegionKind::NonPagedPool, wants.limits.nonpaged_initial);
    let growth = fitted(RegionKind::NonPagedPoolExpansion, wants.limits.nonpaged_max - wants.limits.nonpaged_initial);
    let paged_max = fitted(RegionKind::PagedPool, wants.limits.paged_max);
    let ptes = fitted(RegionKind::SystemPtes, shift.pages_to_bytes(wants.system_ptes));
    (PoolLimits { nonpaged_initial: initial, nonpaged_max: initial + growth, paged_max }, shift.bytes_to_pages(ptes))
}

#[cfg(test)]
mod tests;
