//! What `RtlGetVersion` and `RtlIsNtDdiVersionAvailable` answer for the simulated
//! machine's edition (learn.microsoft.com, "RtlGetVersion function (wdm.h)",
//! "OSVERSIONINFOEXW structure (wdm.h)", "RtlIsNtDdiVersionAvailable function
//! (wdm.h)"), computed from the edition table ([`ntmem_machine::EDITIONS`]): the
//! release's `NTDDI_VERSION` gives the major and minor version (its high bytes) and
//! the service pack (its `SPVER` byte); the edition's name gives the product type
//! and suite.

use ntmem_machine::{Edition, Release};

/// `VER_PLATFORM_WIN32_NT`.
pub const VER_PLATFORM_WIN32_NT: u32 = 2;
/// `VER_NT_WORKSTATION`.
pub const VER_NT_WORKSTATION: u8 = 1;
/// `VER_NT_SERVER`.
pub const VER_NT_SERVER: u8 = 3;
/// `VER_SUITE_ENTERPRISE`.
pub const VER_SUITE_ENTERPRISE: u16 = 0x0002;
/// `VER_SUITE_DATACENTER`.
pub const VER_SUITE_DATACENTER: u16 = 0x0080;
/// `VER_SUITE_PERSONAL` (Windows XP Home Edition).
pub const VER_SUITE_PERSONAL: u16 = 0x0200;
/// `VER_SUITE_BLADE` (Windows Server 2003 Web Edition).
pub const VER_SUITE_BLADE: u16 = 0x0400;

/// The fields of `RTL_OSVERSIONINFOEXW` for one edition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsVersion {
    /// `dwMajorVersion`.
    pub major: u32,
    /// `dwMinorVersion`.
    pub minor: u32,
    /// `dwBuildNumber`.
    pub build: u32,
    /// `szCSDVersion`: "Service Pack N", or empty.
    pub csd: String,
    /// `wServicePackMajor`.
    pub service_pack_major: u16,
    /// `wServicePackMinor`.
    pub service_pack_minor: u16,
    /// `wSuiteMask`.
    pub suite_mask: u16,
    /// `wProductType`.
    pub product_type: u8,
}

impl OsVersion {
    /// The version `edition` reports.
    pub fn of(edition: &Edition) -> OsVersion {
        let ntddi = edition.release.ntddi_version();
        let service_pack_major = ((ntddi >> 8) & 0xFF) as u16;
        let name = edition.edition;
        let server = matches!(edition.release, Release::WindowsServer2003 | Release::WindowsServer2003Sp1)
            || (edition.release == Release::Windows2000 && name.contains("Server"));
        let suite_mask = if name.contains("Datacenter") {
            VER_SUITE_DATACENTER
        } else if name.contains("Enterprise") || name.contains("Advanced Server") {
            VER_SUITE_ENTERPRISE
        } else if name == "Web" {
            VER_SUITE_BLADE
        } else if name == "Home" {
            VER_SUITE_PERSONAL
        } else {
            0
        };
        OsVersion {
            major: ntddi >> 24,
            minor: (ntddi >> 16) & 0xFF,
            build: edition.release.build_number(),
            csd: if service_pack_major == 0 { String::new() } else { format!("Service Pack {service_pack_major}") },
            service_pack_major,
            service_pack_minor: 0,
            suite_mask,
            product_type: if server { VER_NT_SERVER } else { VER_NT_WORKSTATION },
        }
    }
}

/// `IoIsWdmVersionAvailable(MajorVersion, MinorVersion)` (learn.microsoft.com,
/// "IoIsWdmVersionAvailable function (wdm.h)"): whether the running system supports
/// WDM `major.minor`. The WDM version of each release is the documented table: 1.10
/// (0x10) for Windows 2000, 1.20 for Windows XP, 1.30 for Windows Server 2003, and
/// from Windows Vista on the NT version itself (6.00, 6.01 for Windows 7, 6.02 for
/// Windows 8).
pub fn wdm_version_available(edition: &Edition, major: u8, minor: u8) -> bool {
    let v = OsVersion::of(edition);
    let wdm = match (v.major, v.minor) {
        (5, 0) => (1, 0x10),
        (5, 1) => (1, 0x20),
        (5, _) => (1, 0x30),
        (major, minor) => (major, minor),
    };
    (u32::from(major), u32::from(minor)) <= wdm
}

/// `RtlIsNtDdiVersionAvailable`: whether the running release is `version` or later
/// (`NTDDI_*` values compared whole, service-pack byte included).
pub fn ntddi_available(edition: &Edition, version: u32) -> bool {
    version <= edition.release.ntddi_version()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_machine::find_edition;

    #[test]
    fn editions_report_their_release_and_product() {
        let v = OsVersion::of(find_edition("ws03sp1-enterprise-x64").unwrap());
        assert_eq!((v.major, v.minor, v.build, v.service_pack_major), (5, 2, 3790, 1));
        assert_eq!(
            (v.csd.as_str(), v.suite_mask, v.product_type),
            ("Service Pack 1", VER_SUITE_ENTERPRISE, VER_NT_SERVER)
        );
        let xp = OsVersion::of(find_edition("xp-home").unwrap());
        assert_eq!((xp.major, xp.minor, xp.build, xp.csd.as_str()), (5, 1, 2600, ""));
        assert_eq!((xp.suite_mask, xp.product_type), (VER_SUITE_PERSONAL, VER_NT_WORKSTATION));
        let w2k = OsVersion::of(find_edition("w2k-datacenter").unwrap());
        assert_eq!(
            (w2k.major, w2k.minor, w2k.product_type, w2k.suite_mask),
            (5, 0, VER_NT_SERVER, VER_SUITE_DATACENTER)
        );
        let vista = OsVersion::of(find_edition("vista-x64").unwrap());
        assert_eq!((vista.major, vista.minor, vista.build, vista.product_type), (6, 0, 6000, VER_NT_WORKSTATION));
    }

    #[test]
    fn wdm_versions_follow_the_documented_table() {
        let available =
            |edition: &str, major, minor| wdm_version_available(find_edition(edition).unwrap(), major, minor);
        assert!(available("w2k-datacenter", 1, 0x10) && !available("w2k-datacenter", 1, 0x20));
        assert!(available("xp-home", 1, 0x20) && !available("xp-home", 1, 0x30));
        assert!(available("ws03sp1-enterprise-x64", 1, 0x30) && !available("ws03sp1-enterprise-x64", 6, 0));
        assert!(available("vista-x64", 6, 0) && available("vista-x64", 1, 0x30) && !available("vista-x64", 6, 1));
        assert!(available("win8-x64", 6, 2) && !available("win8-x64", 6, 3));
    }

    #[test]
    fn ntddi_versions_up_to_the_running_release_are_available() {
        let e = find_edition("ws03sp1-enterprise-x64").unwrap();
        assert!(ntddi_available(e, 0x0500_0000));
        assert!(ntddi_available(e, 0x0502_0000));
        assert!(ntddi_available(e, 0x0502_0100));
        assert!(!ntddi_available(e, 0x0600_0000));
    }
}
