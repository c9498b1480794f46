use proptest::prelude::*;

use super::*;
use crate::addr::Va;
use crate::limits::PAGED_POOL_SIZE_MAXIMUM;

fn config(edition: &str, ram: u64, boot: &str) -> MachineConfig {
    MachineConfig {
        edition: find_edition(edition).unwrap(),
        ram,
        boot: BootOptions::parse(boot).unwrap(),
        ..MachineConfig::default()
    }
}

fn build(edition: &str, ram: u64, boot: &str) -> Result<MachineProfile, MachineError> {
    config(edition, ram, boot).build()
}

/// Checks the layout invariants every profile must keep.
fn check_layout(p: &MachineProfile) {
    let l = &p.layout;
    let page = p.page_shift().page_size();
    for pair in l.regions.windows(2) {
        assert!(pair[0].end() < pair[1].start, "{:?} overlaps {:?}", pair[0], pair[1]);
    }
    for r in &l.regions {
        assert!(r.size > 0 && r.start.get() % page == 0 && r.size % page == 0, "{r:?}");
        if r.kind == RegionKind::UserSpace {
            assert_eq!((r.start, r.end()), (l.user_start, l.user_end));
        } else {
            assert!(l.is_system(r.start) && l.is_system(r.end()), "{r:?} outside system space");
        }
        assert_eq!(l.region_at(r.start), Some(r));
        assert_eq!(l.region_at(r.end()), Some(r));
    }
    if p.arch == Arch::X86 {
        for kind in
            [RegionKind::PagedPool, RegionKind::NonPagedPool, RegionKind::NonPagedPoolExpansion, RegionKind::SystemPtes]
        {
            assert_eq!(l.region(kind).unwrap().start.get() % (4 * MB), 0, "{kind:?}");
        }
    }
    let size = |kind| l.region(kind).unwrap().size;
    assert!(p.limits.nonpaged_initial <= size(RegionKind::NonPagedPool));
    assert!(p.limits.nonpaged_max - p.limits.nonpaged_initial <= size(RegionKind::NonPagedPoolExpansion));
    assert!(p.limits.paged_max <= size(RegionKind::PagedPool));
    assert!(p.system_ptes * page <= size(RegionKind::SystemPtes));
    assert!(p.system_ptes > 0 && p.limits.paged_max > 0 && p.limits.nonpaged_initial > 0);
    assert_eq!(l.user_probe_address.get(), l.user_end.get() + 1);
}

#[test]
fn default_config_builds() {
    let p = MachineConfig::default().build().unwrap();
    assert_eq!(p.edition.key, DEFAULT_EDITION);
    assert_eq!((p.ram_installed, p.processors, p.paging), (8 * GB, 2, PagingMode::X64));
    assert_eq!(p.layout.system_start, Va::new(0x800_0000_0000));
    assert_eq!(p.layout.user_end, Va::new(0x7FF_FFFE_FFFF));
    assert_eq!(p.layout.user_probe_address, Va::new(0x7FF_FFFF_0000));
    assert_eq!(p.system_ptes, 128 * GB / 4096);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.physmap.ram_file_len(), 8 * GB);
    check_layout(&p);
}

#[test]
fn xp_with_3gb_moves_the_system_range() {
    let p = build("xp-professional", 2 * GB, "/3GB").unwrap();
    assert_eq!(p.layout.user_end, Va::new(0xBFFE_FFFF));
    assert_eq!(p.layout.user_probe_address, Va::new(0xBFFF_0000));
    assert_eq!(p.layout.system_start, Va::new(0xC000_0000));
    assert_eq!(p.layout.region(RegionKind::PageTables).unwrap().start, Va::new(0xC000_0000));
    assert_eq!(p.layout.region(RegionKind::Hyperspace).unwrap().start, Va::new(0xC040_0000));
    assert!(p.limits.nonpaged_max <= 128 * MB);
    assert!(p.layout.is_user(Va::new(0xA000_0000)) && !p.layout.is_system(Va::new(0xA000_0000)));
    check_layout(&p);
}

#[test]
fn x86_default_layout_keeps_the_fixed_addresses() {
    let p = build("ws03sp1-enterprise", 16 * GB, "/PAE").unwrap();
    let l = &p.layout;
    assert_eq!((l.user_end, l.system_start), (Va::new(0x7FFE_FFFF), Va::new(0x8000_0000)));
    let at = |kind| l.region(kind).unwrap().start.get();
    assert_eq!(at(RegionKind::Hyperspace), 0xC080_0000, "PAE hyperspace");
    assert_eq!(at(RegionKind::SystemCache), 0xC100_0000);
    assert_eq!(at(RegionKind::Hal), 0xFFC0_0000);
    assert_eq!(l.region(RegionKind::NonPagedPoolExpansion).unwrap().end(), Va::new(0xFFBD_FFFF));
    assert_eq!(l.region(RegionKind::SessionSpace).unwrap().end(), Va::new(0xBFFF_FFFF));
    assert_eq!(p.paging, PagingMode::X86Pae);
    assert_eq!(p.system_ptes, 44000);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    check_layout(&p);
}

#[test]
fn big_x64_machines_build_up_to_the_edition_maximum() {
    let p = build("ws03sp1-enterprise-x64", 1 << 40, "").unwrap();
    assert_eq!(p.physmap.ram_file_len(), 1 << 40);
    assert_eq!(p.limits.nonpaged_max, 128 * GB);
    assert!(p.warnings[0].contains("40 physical address bits"), "{:?}", p.warnings);
    check_layout(&p);
    let err = build("ws03sp1-enterprise-x64", 2 << 40, "").unwrap_err();
    assert_eq!(err.to_string(), "2 TB of RAM exceeds the 1 TB maximum of Windows Server 2003 SP1 Enterprise (64-bit)");
}

#[test]
fn four_gb_xp_shows_about_three_gb() {
    let p = build("xp-professional", 4 * GB, "").unwrap();
    assert!(p.physmap.usable_ram() < 3 * GB && p.physmap.usable_ram() > 3 * GB - 2 * MB);
    assert!(p.warnings[0].contains("4 GB of physical address space"), "{:?}", p.warnings);
    let p = build("ws03-enterprise", 8 * GB, "").unwrap();
    assert!(p.warnings[0].contains("/PAE"), "{:?}", p.warnings);
    let p = build("ws03-enterprise", 8 * GB, "/PAE").unwrap();
    assert_eq!(p.physmap.managed_ram(), 8 * GB);
}

#[test]
fn invalid_boot_options_are_errors_naming_what_is_valid() {
    let err = build("w2k-professional", GB, "/3GB").unwrap_err().to_string();
    assert!(
        err.starts_with("/3GB is not supported on w2k-professional (Windows 2000 Professional); it is supported on "),
        "{err}"
    );
    assert!(err.contains("xp-professional, ") && !err.contains("Windows XP Professional,"), "--machine names: {err}");
    assert!(err.contains("w2k-advanced-server") && !err.contains("x64"), "{err}");
    assert!(build("ws03sp1-enterprise-x64", 8 * GB, "/3GB").is_err());
    let err = build("w2k-server", GB, "/BURNMEMORY=16").unwrap_err().to_string();
    assert!(
        err.contains("/BURNMEMORY is not supported on w2k-server (Windows 2000 Server)") && err.contains("Windows XP"),
        "{err}"
    );
    assert!(matches!(build("xp-home", GB, "/MAXMEM=32"), Err(MachineError::TooLittleMemory { .. })));
    assert!(matches!(build("xp-home", GB, "/BURNMEMORY=1000"), Err(MachineError::TooLittleMemory { .. })));
}

#[test]
fn ignored_boot_options_are_warnings() {
    let p = build("vista-x64", 8 * GB, "/PAE /NOLOWMEM").unwrap();
    assert_eq!(p.paging, PagingMode::X64);
    assert!(p.physmap.nolowmem);
    assert!(p.warnings.iter().any(|w| w.contains("/PAE is ignored")), "{:?}", p.warnings);
    let p = build("ws03sp1-enterprise", 4 * GB, "/NOLOWMEM").unwrap();
    assert!(!p.physmap.nolowmem && p.warnings.iter().any(|w| w.contains("/NOLOWMEM is ignored")));
    let p = build("ws03sp1-enterprise", 8 * GB, "/PAE /NOLOWMEM").unwrap();
    assert!(p.physmap.nolowmem, "{:?}", p.warnings);
}

#[test]
fn maxmem_and_burnmemory_reduce_memory() {
    let p = build("ws03sp1-datacenter-x64", 16 * GB, "/MAXMEM=2048 /BURNMEMORY=512").unwrap();
    assert_eq!(p.physmap.highest_ram_address().get(), 2 * GB - 1);
    assert_eq!(p.physmap.burned, 512 * MB);
    assert_eq!(p.physmap.usable_ram(), p.physmap.managed_ram() - 512 * MB);
    assert!(p.warnings[0].contains("/MAXMEM=2048"), "{:?}", p.warnings);
    let p = build("ws03sp1-datacenter", 128 * GB, "/PAE /3GB").unwrap();
    assert_eq!(p.physmap.highest_ram_address().get(), 16 * GB - 1);
    check_layout(&p);
}

#[test]
fn ram_and_processor_counts_are_checked() {
    let mut c = config("xp-professional", 32 * MB, "");
    assert!(matches!(c.build(), Err(MachineError::TooLittleMemory { .. })));
    c.ram = 8 * GB;
    assert_eq!(c.build().unwrap_err().to_string(), "8 GB of RAM exceeds the 4 GB maximum of Windows XP Professional");
    c.ram = GB + 100;
    assert!(matches!(c.build(), Err(MachineError::RamNotPageMultiple { .. })));
    c.ram = GB;
    c.processors = 0;
    assert!(c.build().is_err());
    c.processors = 33;
    assert_eq!(c.build().unwrap_err().to_string(), "33 processors: x86 Windows supports 1 to 32");
    c.processors = 32;
    assert!(c.build().is_ok());
}

#[test]
fn registry_knobs_apply_and_out_of_range_values_warn() {
    let mut c = config("ws03sp1-standard", 2 * GB, "");
    c.registry.non_paged_pool_size = Some(160 * MB);
    let p = c.build().unwrap();
    assert_eq!(p.limits.nonpaged_initial, 160 * MB);
    c.registry.non_paged_pool_size = Some(3 * GB);
    assert!(c.build().unwrap().warnings.iter().any(|w| w.contains("NonPagedPoolSize")));
    c.registry =
        RegistryKnobs { non_paged_pool_size: None, paged_pool_size: Some(PAGED_POOL_SIZE_MAXIMUM), system_pages: None };
    check_layout(&c.build().unwrap());
}

#[test]
fn every_edition_builds_at_its_maximum_and_serializes() {
    for e in EDITIONS {
        let boot = if e.arch == Arch::X86 && e.max_physical_memory > 4 * GB { "/PAE" } else { "" };
        let p = MachineConfig {
            edition: e,
            ram: e.max_physical_memory,
            boot: BootOptions::parse(boot).unwrap(),
            ..MachineConfig::default()
        }
        .build()
        .unwrap_or_else(|err| panic!("{e}: {err}"));
        check_layout(&p);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["edition"]["key"], e.key);
        assert_eq!(json["arch"], e.arch.name());
        assert_eq!(json["ram_installed"], e.max_physical_memory);
        assert_eq!(json["layout"]["user_end"], p.layout.user_end.get());
        assert!(json["layout"]["regions"][0]["kind"].is_string());
        assert!(json["physmap"].get("file_starts").is_none());
    }
}

fn any_config() -> impl Strategy<Value = MachineConfig> {
    let ram_mb = prop_oneof![64u64..1024, 64u64..=131_072];
    let maxmem_mb = proptest::option::of(prop_oneof![64u64..1024, 64u64..200_000]);
    let burnmemory_mb = proptest::option::of(0u64..256);
    let registry = (
        proptest::option::of(prop_oneof![0u64..=512 * MB, Just(200 * GB)]),
        proptest::option::of(prop_oneof![0u64..=GB, Just(PAGED_POOL_SIZE_MAXIMUM)]),
    )
        .prop_map(|(non_paged_pool_size, paged_pool_size)| RegistryKnobs {
            non_paged_pool_size,
            paged_pool_size,
            system_pages: None,
        });
    (0..EDITIONS.len(), ram_mb, any::<[bool; 3]>(), maxmem_mb, burnmemory_mb, registry).prop_map(
        |(index, ram_mb, [three_gb, pae, nolowmem], maxmem_mb, burnmemory_mb, registry)| {
            let edition = &EDITIONS[index];
            MachineConfig {
                edition,
                ram: (ram_mb * MB).min(edition.max_physical_memory),
                boot: BootOptions {
                    three_gb: three_gb && edition.supports_3gb,
                    pae,
                    nolowmem,
                    maxmem_mb,
                    burnmemory_mb,
                    debug: false,
                },
                registry,
                ..MachineConfig::default()
            }
        },
    )
}

proptest! {
    #[test]
    fn regions_never_overlap_and_lie_in_system_space(c in any_config()) {
        match c.build() {
            Ok(p) => {
                check_layout(&p);
                prop_assert!(p.physmap.usable_ram() >= MIN_USABLE_RAM);
                prop_assert!(p.physmap.managed_ram() <= c.ram);
            }
            Err(MachineError::BootOptionUnsupported { switch: "/BURNMEMORY", .. }) => {
                prop_assert_eq!(c.edition.release, crate::Release::Windows2000);
            }
            Err(MachineError::TooLittleMemory { what, .. }) => prop_assert!(what.starts_with("/BURNMEMORY")),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}

#[test]
fn the_fullest_x86_machine_still_fits() {
    let mut c = config("ws03sp1-datacenter", 128 * GB, "/PAE");
    c.registry = RegistryKnobs {
        non_paged_pool_size: Some(256 * MB),
        paged_pool_size: Some(PAGED_POOL_SIZE_MAXIMUM),
        system_pages: None,
    };
    let p = c.build().unwrap();
    check_layout(&p);
    assert!(p.warnings.iter().any(|w| w.contains("limited to")), "{:?}", p.warnings);
}
