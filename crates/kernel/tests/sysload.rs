//! MmLoadSystemImage (`mm::sysload`): a real driver image built by clang and
//! lld-link is mapped into system PTE space, relocated, bound and protected;
//! INIT is discarded; unload gives everything back.

use std::path::PathBuf;

use ntmem_kernel::mm::pte::{PteFlags, PteFormat};
use ntmem_kernel::mm::sysload::{LoadError, LoadedImage, MissingImport};
use ntmem_kernel::Machine;
use ntmem_machine::layout::RegionKind;
use ntmem_machine::{BootOptions, MachineConfig, Va};
use ntmem_pe::ExportTarget;
use ntmem_toolchain::{ImportLibrary, Toolchain};

const DRIVER: &str = r#"
void *ExAllocatePoolWithTag(int PoolType, unsigned long long Size, unsigned Tag);
__declspec(dllimport) extern void *MmSystemRangeStart;

__declspec(dllexport) int Global = 0x1234;
__declspec(dllexport) int *GlobalPointer = &Global;
__declspec(dllexport) const char Message[] = "read-only";

__declspec(code_seg("INIT")) __declspec(dllexport) long InitOnly(void) { return 7; }

__declspec(dllexport) void *Allocate(void) { return ExAllocatePoolWithTag(0, 16, 'tseT'); }
__declspec(dllexport) void *RangeStart(void) { return MmSystemRangeStart; }

long DriverEntry(void *DriverObject, void *RegistryPath) {
    (void)DriverObject; (void)RegistryPath;
    return InitOnly() == 7 ? 0 : 1;
}
"#;

/// The image, built once: the tests run in parallel and would otherwise write the
/// same files at once.
fn build() -> Vec<u8> {
    static IMAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMAGE.get_or_init(build_once).clone()
}

fn build_once() -> Vec<u8> {
    let tc = Toolchain::find().expect("the driver toolchain (clang >= 19, lld, llvm)");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sysload");
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("image.c");
    std::fs::write(&c, DRIVER).unwrap();
    let imports = [ImportLibrary {
        dll: "ntoskrnl.exe".into(),
        routines: vec!["ExAllocatePoolWithTag".into()],
        data: vec!["MmSystemRangeStart".into()],
    }];
    let out = dir.join("image.sys");
    tc.build(&[c], &imports, &["-O2".into()], &dir.join("work"), &out).unwrap();
    std::fs::read(out).unwrap()
}

fn boot(edition: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = 512 << 20;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

const ALLOCATE_AT: u64 = 0x0000_7000_0000_1000;
const RANGE_START_AT: u64 = 0x0000_7000_0000_2000;

fn resolve(dll: &str, name: &str) -> Option<u64> {
    match (dll, name) {
        ("ntoskrnl.exe", "ExAllocatePoolWithTag") => Some(ALLOCATE_AT),
        ("ntoskrnl.exe", "MmSystemRangeStart") => Some(RANGE_START_AT),
        _ => None,
    }
}

fn export(image: &LoadedImage, name: &str) -> u32 {
    let e = image.image().exports.iter().find(|e| e.name.as_deref() == Some(name)).unwrap();
    match e.target {
        ExportTarget::Rva(rva) => rva,
        ExportTarget::Forwarder(_) => panic!("{name} is forwarded"),
    }
}

fn read_u64(m: &Machine, va: Va) -> u64 {
    let mut b = [0u8; 8];
    m.space().read(va, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn flags(m: &Machine, va: Va) -> Option<PteFlags> {
    let walk = m.space().walk(m.phys(), va);
    walk.phys?;
    Some(PteFormat::new(m.profile().paging).decode(walk.steps.last()?.raw).1)
}

#[test]
fn an_image_is_mapped_in_system_pte_space_relocated_bound_and_protected() {
    let bytes = build();
    let m = boot("ws03sp1-enterprise-x64");
    let free_before = m.phys().free_pages();
    let ptes_before = m.system_ptes().free();
    let mut image = LoadedImage::load(&m, "image.sys", &bytes, &resolve).unwrap();
    let base = image.base();
    let region = m.profile().layout.region(RegionKind::SystemPtes).unwrap();
    assert!(region.contains(base), "{base:?} in system PTE space");
    assert!(base.get() >= m.profile().layout.system_start.get());
    let mut mz = [0u8; 2];
    m.space().read(base, &mut mz).unwrap();
    assert_eq!(&mz, b"MZ");

    // The relocation: GlobalPointer holds Global's address where the image runs.
    let global = Va::new(base.get() + u64::from(export(&image, "Global")));
    let pointer = Va::new(base.get() + u64::from(export(&image, "GlobalPointer")));
    assert_eq!(read_u64(&m, pointer), image.host_base() + u64::from(export(&image, "Global")));
    // The global has a physical page of its own, in the image's frames.
    let phys = m.space().walk(m.phys(), global).phys.expect("the global is resident");
    assert_eq!(phys.get() % 4096, global.get() % 4096);

    // The imports: each IAT slot holds what the resolver gave, the variable's address for data.
    let iat: Vec<(String, u32)> =
        image.image().imports.iter().flat_map(|d| d.functions.iter().map(|f| (f.name.clone(), f.iat_rva))).collect();
    for (name, rva) in &iat {
        let want = resolve("ntoskrnl.exe", name).unwrap();
        assert_eq!(read_u64(&m, Va::new(base.get() + u64::from(*rva))), want, "{name}");
    }

    // Protection: code executable and not writable, data writable, read-only data not.
    let text = image.image().sections.iter().find(|s| s.name == ".text").unwrap().virtual_address;
    let data = Va::new(base.get() + u64::from(export(&image, "Global")));
    let rdata = Va::new(base.get() + u64::from(export(&image, "Message")));
    assert!(!flags(&m, Va::new(base.get() + u64::from(text))).unwrap().contains(PteFlags::WRITE));
    assert!(flags(&m, data).unwrap().contains(PteFlags::WRITE));
    assert!(!flags(&m, rdata).unwrap().contains(PteFlags::WRITE));
    assert!(!flags(&m, base).unwrap().contains(PteFlags::WRITE), "headers are read-only");

    // INIT goes after DriverEntry: its page is no longer mapped.
    let init = Va::new(base.get() + u64::from(export(&image, "InitOnly")));
    assert!(flags(&m, init).is_some());
    let freed = image.discard_init(&m);
    assert!(freed >= 1, "INIT's page is freed");
    assert!(flags(&m, init).is_none(), "INIT is unmapped");
    assert!(flags(&m, Va::new(base.get() + u64::from(text))).is_some(), ".text stays");
    assert_eq!(m.images().name_at(image.host_base() as usize + 0x1000).as_deref(), Some("image.sys"));

    let host_base = image.host_base() as usize;
    image.unload(&m);
    assert_eq!(m.phys().free_pages(), free_before, "every page of the image is free again");
    assert_eq!(m.system_ptes().free(), ptes_before);
    assert_eq!(m.images().name_at(host_base + 0x1000), None);
}

#[test]
fn every_missing_import_is_named_and_nothing_stays_allocated() {
    let bytes = build();
    let m = boot("ws03sp1-enterprise-x64");
    let free_before = m.phys().free_pages();
    let ptes_before = m.system_ptes().free();
    let only_routines = |dll: &str, name: &str| if name == "MmSystemRangeStart" { None } else { resolve(dll, name) };
    let err = LoadedImage::load(&m, "image.sys", &bytes, &only_routines).unwrap_err();
    match &err {
        LoadError::MissingImports(missing) => {
            assert_eq!(missing, &[MissingImport { dll: "ntoskrnl.exe".into(), name: "MmSystemRangeStart".into() }])
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("ntoskrnl.exe!MmSystemRangeStart"), "{err}");
    assert_eq!(m.phys().free_pages(), free_before);
    assert_eq!(m.system_ptes().free(), ptes_before);
}

#[test]
fn garbage_is_not_an_image() {
    let m = boot("ws03sp1-enterprise-x64");
    assert!(matches!(LoadedImage::load(&m, "x.sys", b"MZ not really", &resolve), Err(LoadError::Image(_))));
}

#[test]
fn images_load_on_x86_machines_too() {
    // The code is x64 (drivers stay 64-bit code on x86 machines for now), mapped in the
    // x86 machine's system PTE space.
    let bytes = build();
    let m = boot("xp-professional");
    let image = LoadedImage::load(&m, "image.sys", &bytes, &resolve).unwrap();
    assert!(image.base().get() >= 0x8000_0000);
    let pointer = Va::new(image.base().get() + u64::from(export(&image, "GlobalPointer")));
    assert_eq!(read_u64(&m, pointer), image.host_base() + u64::from(export(&image, "Global")));
    image.unload(&m);
}
