use ntmem_machine::{BootOptions, MachineConfig, PhysAddr};

use super::*;

fn memory(edition: &str, ram: u64, boot: &str) -> PhysicalMemory {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse(boot).unwrap();
    let profile = config.build().unwrap();
    PhysicalMemory::new(&profile.physmap, profile.arch.page_shift()).unwrap()
}

const GB: u64 = 1 << 30;
const MB: u64 = 1 << 20;

#[test]
fn general_requests_come_from_the_top_of_memory() {
    let mem = memory("ws03sp1-enterprise-x64", 8 * GB, "");
    let f = mem.allocate(&FrameRequest::new(1, PageUse::NonPagedPool)).unwrap();
    assert!(f.first().addr(mem.shift()).get() >= 8 * GB, "{f:?}");
    assert_eq!(mem.pfn(f.first()).state, PageState::Active);
    assert_eq!(mem.pfn(f.first()).usage, PageUse::NonPagedPool);
}

#[test]
fn contiguous_runs_honour_range_and_boundary() {
    let mem = memory("ws03sp1-enterprise-x64", 8 * GB, "");
    let page = mem.shift().page_size();
    for (bytes, boundary) in [(64 * MB, 0), (3 * MB, 4 * MB), (40 * page, 64 * 1024 * 4)] {
        let req = FrameRequest::new(bytes / page, PageUse::Contiguous)
            .contiguous()
            .highest(PhysAddr::new(0xFFFF_FFFF))
            .boundary(boundary);
        let f = mem.allocate(&req).unwrap();
        assert_eq!(f.runs.len(), 1);
        let start = f.first().addr(mem.shift()).get();
        let end = start + bytes - 1;
        assert!(end <= 0xFFFF_FFFF, "{start:#x}");
        if let (Some(a), Some(b)) = (start.checked_div(boundary), end.checked_div(boundary)) {
            assert_eq!(a, b, "{start:#x}..{end:#x} crosses {boundary:#x}");
        }
        assert!(mem.pfn(f.first()).start_of_allocation);
        assert!(mem.pfn(f.first().add(bytes / page - 1)).end_of_allocation);
    }
}

#[test]
fn nolowmem_keeps_general_requests_above_4_gb() {
    let mem = memory("ws03sp1-enterprise-x64", 8 * GB, "/NOLOWMEM");
    let f = mem.allocate(&FrameRequest::new(256, PageUse::NonPagedPool).bottom_up()).unwrap();
    assert!(f.pfns().all(|p| p.addr(mem.shift()).get() >= 1 << 32), "{f:?}");
    let low = mem.allocate(&FrameRequest::new(1, PageUse::Contiguous).highest(PhysAddr::new(0xFFFF_FFFF))).unwrap();
    assert!(low.first().addr(mem.shift()).get() < 1 << 32);
}

#[test]
fn freeing_twice_is_refused_and_zeroed_frames_read_zero() {
    let mem = memory("xp-professional", 256 * MB, "");
    let f = mem.allocate(&FrameRequest::new(2, PageUse::NonPagedPool)).unwrap();
    let off = mem.file_offset(f.first()).unwrap();
    mem.ram().fill(off, 16, 0xAB);
    mem.free(f.first(), f.count()).unwrap();
    assert!(matches!(mem.free(f.first(), 1), Err(MmError::NotAllocated(p)) if p == f.first()));
    assert_eq!(mem.pfn(f.first()).state, PageState::Free);
    let again = mem.allocate(&FrameRequest::new(2, PageUse::PagedPool).zeroed()).unwrap();
    assert_eq!(again.first(), f.first());
    let mut buf = [0xFFu8; 16];
    mem.ram().read(off, &mut buf);
    assert_eq!(buf, [0; 16]);
}

#[test]
fn partial_requests_take_what_there_is() {
    let mem = memory("xp-professional", 64 * MB, "");
    let free = mem.free_pages();
    assert!(matches!(mem.allocate(&FrameRequest::new(free + 1, PageUse::MdlPages)), Err(MmError::NoMemory)));
    let f = mem.allocate(&FrameRequest::new(free + 1, PageUse::MdlPages).allow_partial()).unwrap();
    assert_eq!(f.count(), free);
    assert_eq!(mem.free_pages(), 0);
}
