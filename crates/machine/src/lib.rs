//! Machine profiles, as data: the simulated machine a driver runs on.
//!
//! A machine is an edition of Windows (a row of seed 000 Table 1, [`EDITIONS`]), its
//! installed RAM, its Boot.ini options ([`BootOptions`]), its processors and its Memory
//! Management registry values ([`RegistryKnobs`]). [`MachineConfig::build`] turns that
//! into a [`MachineProfile`]: the architecture facts ([`Arch`], [`PagingMode`]), the
//! physical address map ([`PhysMap`]: RAM runs, the PC holes, device windows, the RAM
//! file's offsets), the virtual layout ([`Layout`]: user space, system space and its
//! regions), the pool limits ([`PoolLimits`]) and the system PTE count — with warnings
//! for whatever Windows would ignore.
//!
//! Every number comes from a table in one place, cited in its doc comment: seed 000
//! (Table 1, §2, §3, §7.1, §12.1), seed 001 (`NonPagedPoolSize`), Microsoft's public
//! documentation, and `research/nt-algorithms.md` (§1.11 pool limits, §4.1 system PTEs,
//! §8 layouts and paging). Nothing here touches the host; this crate is pure data and
//! arithmetic, and forbids `unsafe`.

#![forbid(unsafe_code)]

pub mod addr;
mod arch;
mod boot;
mod edition;
mod error;
pub mod layout;
pub mod limits;
mod physmap;
mod profile;

pub use addr::{format_size, parse_size, PageShift, Pfn, PhysAddr, Va};
pub use arch::{Arch, PagingMode};
pub use boot::BootOptions;
pub use edition::{find_edition, Edition, Release, DEFAULT_EDITION, EDITIONS};
pub use error::MachineError;
pub use layout::{Layout, Region, RegionKind};
pub use limits::{PoolLimits, RegistryKnobs, PAGED_POOL_SIZE_MAXIMUM, SYSTEM_PAGES_MAXIMUM};
pub use physmap::{PhysMap, PhysRange, RamRun};
pub use profile::{MachineConfig, MachineProfile, MIN_RAM, MIN_USABLE_RAM};
