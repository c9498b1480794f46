//! `MmQuerySystemSize`: small, medium or large, by the machine's RAM and product
//! type (learn.microsoft.com, "MmQuerySystemSize function (wdm.h)": "an estimate of
//! the amount of memory in the system").
//!
//! The thresholds are the memory manager's initialization (Windows Research Kernel
//! and Windows Server 2003 `mminit.c`, where `MmSystemSize` is set from
//! `MmNumberOfPhysicalPages`): up to 19 MB small; otherwise medium; from 32 MB large
//! on a workstation (product type "WinNt"), from 64 MB on a server. ntmem boots with
//! at least 64 MB ([`ntmem_machine::MIN_RAM`]) but `/BURNMEMORY` can leave a
//! server less.

use crate::ke::processor::Cpu;
use crate::rtl::version::{OsVersion, VER_NT_WORKSTATION};

const MB: u64 = 1 << 20;

/// `MM_SYSTEMSIZE` (WDK `wdm.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MmSystemSize {
    /// `MmSmallSystem` (0).
    Small = 0,
    /// `MmMediumSystem` (1).
    Medium = 1,
    /// `MmLargeSystem` (2).
    Large = 2,
}

/// The size a machine with `pages` physical pages of `page_size` bytes reports;
/// `server` for a product type other than VER_NT_WORKSTATION.
pub fn system_size(pages: u64, page_size: u64, server: bool) -> MmSystemSize {
    let at_least = |mb: u64| pages >= mb * MB / page_size;
    if at_least(if server { 64 } else { 32 }) {
        MmSystemSize::Large
    } else if pages <= 19 * MB / page_size {
        MmSystemSize::Small
    } else {
        MmSystemSize::Medium
    }
}

/// `MmQuerySystemSize()`: [`system_size`] of the machine's usable RAM
/// (`MmNumberOfPhysicalPages`: RAM less what `/BURNMEMORY` takes) and edition.
pub fn mm_query_system_size(cpu: &Cpu<'_>) -> MmSystemSize {
    let profile = cpu.machine().profile();
    let page = profile.arch.page_shift().page_size();
    let server = OsVersion::of(profile.edition).product_type != VER_NT_WORKSTATION;
    system_size(profile.physmap.usable_ram() / page, page, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_the_product_type() {
        let pages = |mb: u64| mb * MB / 4096;
        assert_eq!(system_size(pages(12), 4096, false), MmSystemSize::Small);
        assert_eq!(system_size(pages(19), 4096, false), MmSystemSize::Small);
        assert_eq!(system_size(pages(19) + 1, 4096, false), MmSystemSize::Medium);
        assert_eq!(system_size(pages(32) - 1, 4096, false), MmSystemSize::Medium);
        assert_eq!(system_size(pages(32), 4096, false), MmSystemSize::Large);
        assert_eq!(system_size(pages(32), 4096, true), MmSystemSize::Medium);
        assert_eq!(system_size(pages(64) - 1, 4096, true), MmSystemSize::Medium);
        assert_eq!(system_size(pages(64), 4096, true), MmSystemSize::Large);
        assert_eq!(system_size(32 * MB / 8192, 8192, false), MmSystemSize::Large, "IA-64's 8 KB pages");
    }
}
