//! A driver image's pageable parts (`mm::image_paging`, `mm::sysload`, `trap`): `PAGE*`
//! sections are trimmed and paged back in below DISPATCH_LEVEL, fatal at or above it
//! (0xD1); discarded INIT is 0x50; locks keep sections resident and count;
//! MmPageEntireDriver / MmResetDriverPaging; a call into an unloaded image is 0xCE
//! (0xD4 at raised IRQL). The image is built by clang and lld-link and its code runs
//! for real: each touch below is made by the driver's own instructions.

use std::path::PathBuf;
use std::sync::OnceLock;

use ntmem_kernel::mm::frames::FrameRequest;
use ntmem_kernel::mm::image_paging::{
    mm_lock_pagable_data_section, mm_lock_pagable_section_by_handle, mm_page_entire_driver, mm_reset_driver_paging,
    mm_unlock_pagable_image_section,
};
use ntmem_kernel::mm::pfn::PageUse;
use ntmem_kernel::mm::pte::{PteFlags, PteFormat};
use ntmem_kernel::mm::sysload::LoadedImage;
use ntmem_kernel::vf::VerifierFlags;
use ntmem_kernel::{BugCheck, BugCheckCode, Irql, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};
use ntmem_pe::ExportTarget;
use ntmem_toolchain::Toolchain;

const DRIVER: &str = r#"
#pragma section("PAGEDATA", read, write)
__declspec(allocate("PAGEDATA")) __declspec(dllexport) volatile int PagedData[1024] = { 0x5A5A, 7 };

__declspec(code_seg("PAGE")) __declspec(dllexport) int PagedCode(int x) { return x * 3 + 1; }

__declspec(code_seg("INIT")) __declspec(dllexport) int InitOnly(int x) { return x + 100; }

/* Resident code that touches what it is given, as a driver's routine would. */
__declspec(dllexport) __declspec(noinline) int ReadAt(const volatile int *p) { return *p; }
__declspec(dllexport) __declspec(noinline) void WriteAt(volatile int *p, int v) { *p = v; }

long DriverEntry(void *DriverObject, void *RegistryPath) {
    (void)DriverObject; (void)RegistryPath;
    return InitOnly(0) == 100 ? 0 : 1;
}
"#;

fn built() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let tc = Toolchain::find().expect("the driver toolchain (clang >= 19, lld, llvm)");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image_paging");
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("pageable.c");
        std::fs::write(&c, DRIVER).unwrap();
        let out = dir.join("pageable.sys");
        tc.build(&[c], &[], &["-O2".into()], &dir.join("work"), &out).unwrap();
        std::fs::read(out).unwrap()
    })
}

struct Driver {
    m: Machine,
    image: Option<LoadedImage>,
}

fn boot(edition: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = 256 << 20;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

fn load(edition: &str) -> Driver {
    let m = boot(edition);
    let image = LoadedImage::load(&m, "pageable.sys", built(), &|_, _| None).unwrap();
    Driver { m, image: Some(image) }
}

impl Driver {
    fn image(&self) -> &LoadedImage {
        self.image.as_ref().unwrap()
    }

    /// The host address of export `name`.
    fn address(&self, name: &str) -> u64 {
        let e = self.image().image().exports.iter().find(|e| e.name.as_deref() == Some(name)).unwrap();
        match e.target {
            ExportTarget::Rva(rva) => self.image().host_base() + u64::from(rva),
            ExportTarget::Forwarder(_) => panic!("{name} is forwarded"),
        }
    }

    /// The simulated address of export `name`.
    fn va(&self, name: &str) -> Va {
        Va::new(self.address(name) - self.m.space().relocation())
    }

    /// Whether the page holding `va` is resident, and its PTE flags.
    fn flags(&self, va: Va) -> Option<PteFlags> {
        let walk = self.m.space().walk(self.m.phys(), va);
        walk.phys?;
        Some(PteFormat::new(self.m.profile().paging).decode(walk.steps.last()?.raw).1)
    }

    fn paged_code(&self) -> extern "win64" fn(i32) -> i32 {
        // SAFETY: PagedCode is `int PagedCode(int)` (DRIVER above), Microsoft x64, in the loaded image.
        unsafe { std::mem::transmute::<usize, extern "win64" fn(i32) -> i32>(self.address("PagedCode") as usize) }
    }

    fn init_only(&self) -> extern "win64" fn(i32) -> i32 {
        // SAFETY: InitOnly is `int InitOnly(int)` (DRIVER above), Microsoft x64; once INIT is
        // discarded its address is unmapped and a call faults into the machine's handler.
        unsafe { std::mem::transmute::<usize, extern "win64" fn(i32) -> i32>(self.address("InitOnly") as usize) }
    }

    fn read_at(&self) -> extern "win64" fn(u64) -> i32 {
        // SAFETY: ReadAt is `int ReadAt(const volatile int *)` (DRIVER above), Microsoft x64; the
        // pointers passed are machine addresses, whose faults the machine's handler takes.
        unsafe { std::mem::transmute::<usize, extern "win64" fn(u64) -> i32>(self.address("ReadAt") as usize) }
    }

    fn write_at(&self) -> extern "win64" fn(u64, i32) {
        // SAFETY: WriteAt is `void WriteAt(volatile int *, int)` (DRIVER above), as read_at.
        unsafe { std::mem::transmute::<usize, extern "win64" fn(u64, i32)>(self.address("WriteAt") as usize) }
    }

    fn page(&self) -> u64 {
        self.m.profile().arch.page_shift().page_size()
    }

    /// Asserts that `ip` lies in the first bytes of export `name`.
    fn assert_in(&self, ip: u64, name: &str) {
        let f = self.address(name);
        assert!((f..f + 0x20).contains(&ip), "{ip:#x} is not in {name} ({f:#x})");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(image) = self.image.take() {
            image.unload(&self.m);
        }
    }
}

fn at_dispatch<R>(d: &Driver, f: impl FnOnce() -> R) -> Result<R, BugCheck> {
    d.m.run(0, |c| {
        c.raise_irql(Irql::DISPATCH)?;
        let r = f();
        c.lower_irql(Irql::PASSIVE)?;
        Ok(r)
    })
}

#[test]
fn page_sections_leave_memory_and_come_back_below_dispatch_level() {
    for edition in ["ws03sp1-enterprise-x64", "xp-professional"] {
        page_sections_come_back(edition);
    }
}

fn page_sections_come_back(edition: &str) {
    let d = load(edition);
    let (data, code, text) = (d.va("PagedData"), d.va("PagedCode"), d.va("ReadAt"));
    let (read, write, paged) = (d.read_at(), d.write_at(), d.paged_code());
    let at = d.address("PagedData");
    assert_eq!(d.m.run(0, |_| Ok(read(at))).unwrap(), 0x5A5A);

    let trimmed = d.m.trim().unwrap();
    assert!(trimmed >= 2, "PAGE and PAGEDATA leave memory ({trimmed} pages)");
    assert_eq!(d.flags(data), None, "PAGEDATA is a paging-file PTE now");
    assert_eq!(d.flags(code), None, "PAGE too");
    assert!(d.flags(text).is_some(), ".text stays");
    assert!(d.flags(d.image().base()).is_some(), "the headers stay");

    // Below DISPATCH_LEVEL the driver never notices: a read, an instruction fetch, a write.
    assert_eq!(d.m.run(0, |_| Ok(read(at))).unwrap(), 0x5A5A);
    assert_eq!(d.m.run(0, |_| Ok(paged(5))).unwrap(), 16);
    let code_flags = d.flags(code).expect("PAGE is back");
    assert!(!code_flags.contains(PteFlags::WRITE), "code comes back read-only: {code_flags:?}");
    d.m.run(0, |_| {
        write(at + 4, 0x1234);
        Ok(())
    })
    .unwrap();
    assert!(d.flags(data).unwrap().contains(PteFlags::WRITE | PteFlags::DIRTY), "written: dirty");

    // The write survives another trip to the paging file.
    assert!(d.m.trim().unwrap() >= 2);
    assert_eq!(d.m.run(0, |_| Ok(read(at + 4))).unwrap(), 0x1234);
    assert!(d.m.stopped().is_none());
}

#[test]
fn a_trimmed_page_section_touched_at_dispatch_level_is_0xd1() {
    let d = load("ws03sp1-enterprise-x64");
    let read = d.read_at();
    let at = d.address("PagedData") + 8;
    d.m.trim().unwrap();
    let b = at_dispatch(&d, || read(at)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&b.parameters[..3], &[d.va("PagedData").get() + 8, 2, 0]);
    d.assert_in(b.parameters[3], "ReadAt");
    assert_eq!(b.driver.as_deref(), Some("pageable.sys"));
}

#[test]
fn trimmed_page_code_run_at_dispatch_level_is_0xd1_execute() {
    let d = load("ws03sp1-enterprise-x64");
    let paged = d.paged_code();
    d.m.trim().unwrap();
    let b = at_dispatch(&d, || paged(1)).unwrap_err();
    let f = d.va("PagedCode").get();
    assert_eq!(b.code, BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(b.parameters, [f, 2, 8, d.address("PagedCode")]);
    assert_eq!(b.driver.as_deref(), Some("pageable.sys"));
}

#[test]
fn force_irql_checking_trims_page_sections_on_a_raise() {
    let d = load("ws03sp1-enterprise-x64");
    let read = d.read_at();
    let at = d.address("PagedData");
    d.m.set_verifier(VerifierFlags::FORCE_IRQL_CHECKING);
    // Resident until the raise: the verifier's trim takes it.
    assert_eq!(d.m.run(0, |_| Ok(read(at))).unwrap(), 0x5A5A);
    let b = at_dispatch(&d, || read(at)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&b.parameters[..3], &[d.va("PagedData").get(), 2, 0]);
}

#[test]
fn discarded_init_read_or_run_is_0x50() {
    let mut d = load("ws03sp1-enterprise-x64");
    let (read, init) = (d.read_at(), d.init_only());
    assert_eq!(d.m.run(0, |_| Ok(init(1))).unwrap(), 101, "INIT runs before it is discarded");
    let m = &d.m;
    assert!(d.image.as_mut().unwrap().discard_init(m) >= 1);

    let at = d.address("InitOnly");
    let b = d.m.run(0, |_| Ok(read(at))).unwrap_err();
    assert_eq!(b.code, BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA);
    assert_eq!(&b.parameters[..2], &[d.va("InitOnly").get(), 0]);
    d.assert_in(b.parameters[2], "ReadAt");
    assert_eq!(b.parameters[3], 0);

    let mut d = load("ws03sp1-enterprise-x64");
    let init = d.init_only();
    let m = &d.m;
    d.image.as_mut().unwrap().discard_init(m);
    let b = d.m.run(0, |_| Ok(init(1))).unwrap_err();
    assert_eq!(b.code, BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA);
    assert_eq!(b.parameters, [d.va("InitOnly").get(), 8, d.address("InitOnly"), 0]);
    assert_eq!(b.driver.as_deref(), Some("pageable.sys"));

    // At DISPATCH_LEVEL the IRQL rule comes first, as for any fault there.
    let mut d = load("ws03sp1-enterprise-x64");
    let init = d.init_only();
    let m = &d.m;
    d.image.as_mut().unwrap().discard_init(m);
    let b = at_dispatch(&d, || init(1)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(b.parameters, [d.va("InitOnly").get(), 2, 8, d.address("InitOnly")]);
}

#[test]
fn running_out_of_memory_trims_page_sections_too() {
    let mut config = MachineConfig::for_edition("xp-professional").unwrap();
    config.ram = 64 << 20;
    let m = Machine::boot(config.build().unwrap()).unwrap();
    let image = LoadedImage::load(&m, "pageable.sys", built(), &|_, _| None).unwrap();
    let page_va = |name: &str| {
        let rva = image.image().sections.iter().find(|s| s.name == name).unwrap().virtual_address;
        Va::new(image.base().get() + u64::from(rva))
    };
    let (code, data) = (page_va("PAGE"), page_va("PAGEDATA"));
    let free = m.phys().free_pages();
    // More than is free: the low-memory trimmer must find room, and only the image's
    // PAGE sections are pageable on this machine.
    let f = m.phys().allocate(&FrameRequest::new(free + 1, PageUse::NonPagedPool));
    let f = f.unwrap_or_else(|e| panic!("the trimmer made room: {e} {:?}", m.paging_stats()));
    assert!(m.space().walk(m.phys(), code).phys.is_none() && m.space().walk(m.phys(), data).phys.is_none());
    for pfn in f.pfns() {
        m.phys().free(pfn, 1).unwrap();
    }
    let mut word = [0u8; 4];
    m.run(0, |_| m.space().read(data, &mut word).map_err(|e| panic!("{e}"))).unwrap();
    assert_eq!(u32::from_le_bytes(word), 0x5A5A, "paged-out data comes back");
}

#[test]
fn locked_sections_stay_resident_across_trims_and_locks_nest() {
    let d = load("ws03sp1-enterprise-x64");
    let (code, data) = (d.va("PagedCode"), d.va("PagedData"));
    let paged = d.paged_code();
    d.m.trim().unwrap();
    assert_eq!(d.flags(code), None);

    let handle = d.m.run(0, |c| mm_lock_pagable_data_section(c, d.address("PagedCode"))).unwrap();
    let (base, page) = (d.image().host_base(), d.page());
    assert!((base..base + page).contains(&handle), "the handle is a section header: {handle:#x}");
    assert!(d.flags(code).is_some(), "locking pages the section in");
    d.m.trim().unwrap();
    assert!(d.flags(code).is_some(), "locked: the trimmer leaves it");
    assert_eq!(d.flags(data), None, "PAGEDATA is not locked");
    assert_eq!(at_dispatch(&d, || paged(2)).unwrap(), 7, "locked code runs at DISPATCH_LEVEL");

    // Lock twice more (by address and by handle): three unlocks before it may leave.
    let again = d.m.run(0, |c| mm_lock_pagable_data_section(c, d.address("PagedCode") + 1)).unwrap();
    assert_eq!(again, handle, "one section, one handle");
    d.m.run(0, |c| mm_lock_pagable_section_by_handle(c, handle)).unwrap();
    for left in [2, 1] {
        d.m.run(0, |c| mm_unlock_pagable_image_section(c, handle)).unwrap();
        d.m.trim().unwrap();
        assert!(d.flags(code).is_some(), "{left} lock(s) left: resident");
    }
    d.m.run(0, |c| mm_unlock_pagable_image_section(c, handle)).unwrap();
    d.m.trim().unwrap();
    assert_eq!(d.flags(code), None, "unlocked: pageable again");

    // The handle stays valid at count 0: a lock by handle pages the section in.
    d.m.run(0, |c| mm_lock_pagable_section_by_handle(c, handle)).unwrap();
    assert!(d.flags(code).is_some());

    // A data section has a handle of its own.
    let data_handle = d.m.run(0, |c| mm_lock_pagable_data_section(c, d.address("PagedData") + 64)).unwrap();
    assert_ne!(data_handle, handle);
    assert!(d.flags(data).is_some());
    d.m.trim().unwrap();
    assert!(d.flags(data).is_some() && d.flags(code).is_some());
    assert!(d.m.stopped().is_none());
}

#[test]
fn unlocking_a_section_not_locked_is_0x1a_0x1010() {
    let d = load("ws03sp1-enterprise-x64");
    let handle = d.m.run(0, |c| mm_lock_pagable_data_section(c, d.address("PagedData"))).unwrap();
    d.m.run(0, |c| mm_unlock_pagable_image_section(c, handle)).unwrap();
    let b = d.m.run(0, |c| mm_unlock_pagable_image_section(c, handle)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::MEMORY_MANAGEMENT);
    assert_eq!(b.parameters, [0x1010, handle, 0, 0]);
}

#[test]
fn locking_an_address_in_no_image_is_0x1a_0x1234() {
    let d = load("ws03sp1-enterprise-x64");
    let outside = d.image().host_base() + d.image().size(&d.m);
    let b = d.m.run(0, |c| mm_lock_pagable_data_section(c, outside)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::MEMORY_MANAGEMENT);
    assert_eq!(b.parameters, [0x1234, outside, 0, 0]);
}

#[test]
fn paging_the_entire_driver_pages_text_until_reset() {
    let d = load("ws03sp1-enterprise-x64");
    let text = d.va("ReadAt");
    let read = d.read_at();
    let at = d.address("PagedData");
    let base = d.m.run(0, |c| Ok(mm_page_entire_driver(c, d.address("ReadAt")))).unwrap();
    assert_eq!(base, Some(d.image().host_base()));
    d.m.trim().unwrap();
    assert_eq!(d.flags(text), None, ".text is pageable now");
    assert_eq!(d.m.run(0, |_| Ok(read(at))).unwrap(), 0x5A5A, "and runs again below DISPATCH_LEVEL");
    d.m.trim().unwrap();

    d.m.run(0, |c| {
        mm_reset_driver_paging(c, d.address("PagedData"));
        Ok(())
    })
    .unwrap();
    assert!(d.flags(text).is_some(), "reset brings .text back");
    d.m.trim().unwrap();
    assert!(d.flags(text).is_some(), "and keeps it");
    assert_eq!(d.flags(d.va("PagedData")), None, "PAGEDATA stays pageable");
    assert_eq!(d.m.run(0, |c| Ok(mm_page_entire_driver(c, 0x1000))).unwrap(), None, "no image there");
}

#[test]
fn calling_into_an_unloaded_image_is_0xce_below_dispatch_and_0xd4_at_it() {
    for dispatch in [false, true] {
        let mut d = load("ws03sp1-enterprise-x64");
        // Trimmed first: unloading gives paged-out pages' slots back too.
        d.m.trim().unwrap();
        assert!(d.m.paging_stats().slots_in_use >= 2);
        let (paged, f, va) = (d.paged_code(), d.address("PagedCode"), d.va("PagedCode").get());
        d.image.take().unwrap().unload(&d.m);
        assert_eq!(d.m.paging_stats().slots_in_use, 0);
        let b = if dispatch { at_dispatch(&d, || paged(1)) } else { d.m.run(0, |_| Ok(paged(1))) }.unwrap_err();
        if dispatch {
            assert_eq!(b.code, BugCheckCode::SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD);
            assert_eq!(b.parameters, [va, 2, 8, f]);
        } else {
            assert_eq!(b.code, BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS);
            assert_eq!(b.parameters, [va, 8, f, 0]);
        }
        assert_eq!(b.driver.as_deref(), Some("pageable.sys"));
        assert_eq!(d.m.images().unloaded().len(), 1);
    }
}

#[test]
fn load_trim_touch_unload_gives_every_frame_and_slot_back() {
    let m = boot("xp-professional");
    let free = m.phys().free_pages();
    let image = LoadedImage::load(&m, "pageable.sys", built(), &|_, _| None).unwrap();
    assert!(m.trim().unwrap() >= 2);
    let rva = image.image().sections.iter().find(|s| s.name == "PAGE").unwrap().virtual_address;
    let mut byte = [0u8; 1];
    m.run(0, |_| m.space().read(Va::new(image.base().get() + u64::from(rva)), &mut byte).map_err(|e| panic!("{e}")))
        .unwrap();
    image.unload(&m);
    assert_eq!(m.phys().free_pages(), free, "every frame back, paged in or not");
    assert_eq!(m.paging_stats().slots_in_use, 0, "every paging-file slot back");
}
