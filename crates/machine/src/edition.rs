//! Windows editions: the rows of seed 000 Table 1, plus two Vista rows.
//!
//! [`EDITIONS`] is the one table; everything else reads it. The 19 Table 1 rows keep the
//! table's order and numbers ("Virtual and Physical Memory Support in Windows", seed 000
//! §1). Seed 000 §2.1 says which editions take `/3GB`. 64-bit rows: Windows Server 2003
//! (RTM) and Windows XP 64-bit Edition Version 2003 shipped for Itanium only; the x64
//! editions arrived with Windows Server 2003 SP1, so the SP1 64-bit rows are x64.
//!
//! The Vista rows are Windows Vista Ultimate (Business and Enterprise have the same
//! limits): 4 GB on x86 and 128 GB on x64, per Microsoft, "Memory Limits for Windows
//! Releases" (learn.microsoft.com, win32 memory docs, physical memory table). Vista
//! chooses the 3 GB user split with `BCDEdit /set increaseuserva` (Microsoft, "4-Gigabyte
//! Tuning"); ntmem accepts `/3GB` as its spelling.
//!
//! The Windows 8 rows are Windows 8 Pro: 4 GB on x86 and 512 GB on x64 (same
//! "Memory Limits for Windows Releases" table); Windows 8 x64 keeps the 8 TB user and
//! 8 TB system address space (the 128 TB space came with Windows 8.1). They are here
//! for what Windows 8 added that drivers see: version 3 of the DMA operations
//! (research/dma-verifier-views.md §1.9).

use std::fmt;

use crate::arch::Arch;
use crate::error::MachineError;

const GB: u64 = 1 << 30;
const TB: u64 = 1 << 40;

/// A Windows release (the "Operating system version" column of Table 1), oldest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Release {
    /// Windows 2000.
    Windows2000,
    /// Windows XP.
    WindowsXp,
    /// Windows Server 2003 (RTM).
    WindowsServer2003,
    /// Windows Server 2003 Service Pack 1.
    WindowsServer2003Sp1,
    /// Windows Vista.
    WindowsVista,
    /// Windows 8.
    Windows8,
}

impl Release {
    /// The release's name, as the `os` column spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Release::Windows2000 => "Windows 2000",
            Release::WindowsXp => "Windows XP",
            Release::WindowsServer2003 => "Windows Server 2003",
            Release::WindowsServer2003Sp1 => "Windows Server 2003 SP1",
            Release::WindowsVista => "Windows Vista",
            Release::Windows8 => "Windows 8",
        }
    }

    /// The build number (`NtBuildNumber`'s low 16 bits): 2195 for Windows 2000, 2600
    /// for XP, 3790 for Server 2003 with and without SP1, 6000 for Vista RTM, 9200 for
    /// Windows 8.
    pub const fn build_number(self) -> u32 {
        match self {
            Release::Windows2000 => 2195,
            Release::WindowsXp => 2600,
            Release::WindowsServer2003 | Release::WindowsServer2003Sp1 => 3790,
            Release::WindowsVista => 6000,
            Release::Windows8 => 9200,
        }
    }

    /// The release as `NTDDI_VERSION` names it (sdkddkver.h: `NTDDI_WIN2K`
    /// 0x05000000, `NTDDI_WINXP` 0x05010000, `NTDDI_WS03` 0x05020000, `NTDDI_WS03SP1`
    /// 0x05020100, `NTDDI_VISTA` 0x06000000, `NTDDI_WIN8` 0x06020000); its high 16
    /// bits are `_WIN32_WINNT`.
    pub const fn ntddi_version(self) -> u32 {
        match self {
            Release::Windows2000 => 0x0500_0000,
            Release::WindowsXp => 0x0501_0000,
            Release::WindowsServer2003 => 0x0502_0000,
            Release::WindowsServer2003Sp1 => 0x0502_0100,
            Release::WindowsVista => 0x0600_0000,
            Release::Windows8 => 0x0602_0000,
        }
    }

    /// `/BURNMEMORY` exists on Windows XP and later (seed 000 §12.1).
    pub fn supports_burnmemory(self) -> bool {
        self >= Release::WindowsXp
    }
}

impl serde::Serialize for Release {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One edition of Windows: a row of Table 1.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct Edition {
    /// Stable CLI name, e.g. `ws03sp1-enterprise-x64`.
    pub key: &'static str,
    /// Operating system version, e.g. `Windows Server 2003 SP1`.
    pub os: &'static str,
    /// Edition as Table 1 spells it, e.g. `Enterprise (64-bit)`.
    pub edition: &'static str,
    /// The release.
    pub release: Release,
    /// The architecture.
    pub arch: Arch,
    /// Virtual address space, bytes (4 GB or 16 TB).
    pub virtual_address_space: u64,
    /// Maximum physical memory, bytes.
    pub max_physical_memory: u64,
    /// Table 1 says "if hardware supports PAE" for this row.
    pub pae_required_above_4g: bool,
    /// `/3GB` is supported (seed 000 §2.1; never on 64-bit).
    pub supports_3gb: bool,
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.os, self.edition)
    }
}

const fn row(
    key: &'static str,
    release: Release,
    edition: &'static str,
    arch: Arch,
    max_physical_memory: u64,
    pae_required_above_4g: bool,
    supports_3gb: bool,
) -> Edition {
    let virtual_address_space = match arch {
        Arch::X86 => 4 * GB,
        Arch::X64 | Arch::Ia64 => 16 * TB,
    };
    Edition {
        key,
        os: release.name(),
        edition,
        release,
        arch,
        virtual_address_space,
        max_physical_memory,
        pae_required_above_4g,
        supports_3gb,
    }
}

use Arch::{Ia64, X64, X86};
use Release::*;

/// Every edition ntmem simulates: Table 1's 19 rows in table order, then Vista x86 and x64,
/// then Windows 8 x86 and x64.
pub static EDITIONS: &[Edition] = &[
    row("ws03sp1-standard", WindowsServer2003Sp1, "Standard", X86, 4 * GB, false, true),
    row("ws03sp1-web", WindowsServer2003Sp1, "Web", X86, 2 * GB, false, true),
    row("ws03sp1-enterprise", WindowsServer2003Sp1, "Enterprise", X86, 64 * GB, true, true),
    row("ws03sp1-enterprise-x64", WindowsServer2003Sp1, "Enterprise (64-bit)", X64, TB, false, false),
    row("ws03sp1-datacenter", WindowsServer2003Sp1, "Datacenter", X86, 128 * GB, true, true),
    row("ws03sp1-datacenter-x64", WindowsServer2003Sp1, "Datacenter (64-bit)", X64, TB, false, false),
    row("ws03-standard", WindowsServer2003, "Standard", X86, 4 * GB, false, true),
    row("ws03-web", WindowsServer2003, "Web", X86, 2 * GB, false, true),
    row("ws03-enterprise", WindowsServer2003, "Enterprise", X86, 32 * GB, true, true),
    row("ws03-enterprise-ia64", WindowsServer2003, "Enterprise (64-bit)", Ia64, 64 * GB, false, false),
    row("ws03-datacenter", WindowsServer2003, "Datacenter", X86, 128 * GB, true, true),
    row("ws03-datacenter-ia64", WindowsServer2003, "Datacenter (64-bit)", Ia64, 512 * GB, false, false),
    row("xp-home", WindowsXp, "Home", X86, 4 * GB, false, true),
    row("xp-professional", WindowsXp, "Professional", X86, 4 * GB, false, true),
    row("xp-64bit-ia64", WindowsXp, "64-bit Edition Version 2003", Ia64, 128 * GB, false, false),
    row("w2k-professional", Windows2000, "Professional", X86, 4 * GB, false, false),
    row("w2k-server", Windows2000, "Server", X86, 4 * GB, false, false),
    row("w2k-advanced-server", Windows2000, "Advanced Server", X86, 8 * GB, false, true),
    row("w2k-datacenter", Windows2000, "Datacenter Server", X86, 32 * GB, true, true),
    row("vista-x86", WindowsVista, "Ultimate (32-bit)", X86, 4 * GB, false, true),
    row("vista-x64", WindowsVista, "Ultimate (64-bit)", X64, 128 * GB, false, false),
    row("win8-x86", Windows8, "Pro (32-bit)", X86, 4 * GB, false, true),
    row("win8-x64", Windows8, "Pro (64-bit)", X64, 512 * GB, false, false),
];

/// The edition a machine gets when none is named.
pub const DEFAULT_EDITION: &str = "ws03sp1-enterprise-x64";

/// Lower-case, every run of non-alphanumerics becomes one `-`, a leading `windows-` or
/// `microsoft-windows-` is dropped, and `pro` means `professional`.
fn normalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let skip = match words.as_slice() {
        ["microsoft", "windows", ..] => 2,
        ["windows", ..] => 1,
        _ => 0,
    };
    let words: Vec<&str> = words[skip..].iter().map(|w| if *w == "pro" { "professional" } else { w }).collect();
    words.join("-")
}

/// Finds an edition by name, case-insensitively.
///
/// Accepted forms: the key (`xp-professional`), and the os and edition columns together
/// with or without a leading "Windows" (`Windows XP Professional`, `XP Professional`,
/// `Windows Server 2003 SP1 Enterprise (64-bit)`); `pro` abbreviates `professional`
/// (`xp-pro`). Punctuation and spacing do not matter.
///
/// # Errors
/// [`MachineError::UnknownEdition`], listing every valid key.
pub fn find_edition(name: &str) -> Result<&'static Edition, MachineError> {
    let wanted = normalize(name);
    EDITIONS.iter().find(|e| normalize(e.key) == wanted || normalize(&e.to_string()) == wanted).ok_or_else(|| {
        MachineError::UnknownEdition {
            name: name.to_string(),
            valid: EDITIONS.iter().map(|e| e.key).collect::<Vec<_>>().join(", "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_1_rows_are_present_in_order_with_the_seeds_numbers() {
        let expected: [(&str, &str, u64, bool); 23] = [
            ("Windows Server 2003 SP1", "Standard", 4 * GB, false),
            ("Windows Server 2003 SP1", "Web", 2 * GB, false),
            ("Windows Server 2003 SP1", "Enterprise", 64 * GB, true),
            ("Windows Server 2003 SP1", "Enterprise (64-bit)", TB, false),
            ("Windows Server 2003 SP1", "Datacenter", 128 * GB, true),
            ("Windows Server 2003 SP1", "Datacenter (64-bit)", TB, false),
            ("Windows Server 2003", "Standard", 4 * GB, false),
            ("Windows Server 2003", "Web", 2 * GB, false),
            ("Windows Server 2003", "Enterprise", 32 * GB, true),
            ("Windows Server 2003", "Enterprise (64-bit)", 64 * GB, false),
            ("Windows Server 2003", "Datacenter", 128 * GB, true),
            ("Windows Server 2003", "Datacenter (64-bit)", 512 * GB, false),
            ("Windows XP", "Home", 4 * GB, false),
            ("Windows XP", "Professional", 4 * GB, false),
            ("Windows XP", "64-bit Edition Version 2003", 128 * GB, false),
            ("Windows 2000", "Professional", 4 * GB, false),
            ("Windows 2000", "Server", 4 * GB, false),
            ("Windows 2000", "Advanced Server", 8 * GB, false),
            ("Windows 2000", "Datacenter Server", 32 * GB, true),
            ("Windows Vista", "Ultimate (32-bit)", 4 * GB, false),
            ("Windows Vista", "Ultimate (64-bit)", 128 * GB, false),
            ("Windows 8", "Pro (32-bit)", 4 * GB, false),
            ("Windows 8", "Pro (64-bit)", 512 * GB, false),
        ];
        assert_eq!(EDITIONS.len(), expected.len());
        for (e, (os, edition, max, pae)) in EDITIONS.iter().zip(expected) {
            assert_eq!((e.os, e.edition, e.max_physical_memory, e.pae_required_above_4g), (os, edition, max, pae));
            assert_eq!(e.os, e.release.name());
            let va = if e.arch.is_64bit() { 16 * TB } else { 4 * GB };
            assert_eq!(e.virtual_address_space, va, "{e}");
            assert!(!(e.arch.is_64bit() && e.supports_3gb), "{e}");
        }
    }

    #[test]
    fn three_gb_follows_seed_section_2_1() {
        let with: Vec<&str> = EDITIONS.iter().filter(|e| e.supports_3gb).map(|e| e.key).collect();
        assert!(with.contains(&"w2k-advanced-server") && with.contains(&"w2k-datacenter"));
        assert!(!with.contains(&"w2k-professional") && !with.contains(&"w2k-server"));
        for e in EDITIONS.iter().filter(|e| e.arch == Arch::X86 && e.release != Windows2000) {
            assert!(e.supports_3gb, "{e}");
        }
    }

    #[test]
    fn keys_are_unique_and_found_in_every_form() {
        for e in EDITIONS {
            assert_eq!(find_edition(e.key).unwrap().key, e.key);
            assert_eq!(find_edition(&e.to_string()).unwrap().key, e.key);
            assert_eq!(find_edition(&e.key.to_uppercase()).unwrap().key, e.key);
        }
        for name in ["XP Professional", "Windows XP Professional", "xp-pro", "xp_professional"] {
            assert_eq!(find_edition(name).unwrap().key, "xp-professional", "{name}");
        }
        assert_eq!(find_edition("Windows Server 2003 SP1 Enterprise (64-bit)").unwrap().key, DEFAULT_EDITION);
    }

    #[test]
    fn unknown_names_list_every_key() {
        let err = find_edition("foo").unwrap_err().to_string();
        assert!(err.starts_with("unknown machine `foo`; valid machines: ws03sp1-standard, "));
        assert!(EDITIONS.iter().all(|e| err.contains(e.key)));
    }
}
