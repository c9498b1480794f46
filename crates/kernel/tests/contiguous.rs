//! Contiguous and noncached memory (seed 000 §7.3, issue 4 item 6): placement
//! against a naive reference, the seed's sample, a 1 TB machine, PTE cache bits,
//! cache-type conflicts and the bad-free bugcheck.

use ntmem_kernel::mm::contiguous::{
    mm_allocate_contiguous_memory, mm_allocate_contiguous_memory_specify_cache, mm_allocate_noncached_memory,
    mm_free_contiguous_memory, mm_free_contiguous_memory_specify_cache, mm_free_noncached_memory,
    mm_get_physical_address, MemoryCachingType,
};
use ntmem_kernel::mm::io_space::{mm_map_io_space, mm_unmap_io_space, IoSpaceFinding};
use ntmem_kernel::mm::pfn::{CacheType, PageState, PageUse};
use ntmem_kernel::mm::pte::{PteFlags, PteFormat};
use ntmem_kernel::{BugCheckCode, Cpu, Irql, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Pfn, PhysAddr, Va};
use proptest::prelude::*;

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

fn boot(edition: &str, ram: u64) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

/// The leaf PTE flags of `va`.
fn pte_flags(m: &Machine, va: Va) -> PteFlags {
    let walk = m.space().walk(m.phys(), va);
    PteFormat::new(m.profile().paging).decode(walk.steps.last().unwrap().raw).1
}

/// Checks an allocation: every page maps the next frame, within the range, inside
/// one boundary window, Active, Contiguous, with `cache`; returns its first frame.
fn check_run(cpu: &Cpu<'_>, va: Va, pages: u64, lowest: u64, highest: u64, boundary: u64, cache: CacheType) -> Pfn {
    let m = cpu.machine();
    let page = 4096;
    let first = mm_get_physical_address(cpu, va);
    assert_eq!(first.get() % page, 0);
    for i in 0..pages {
        let pa = mm_get_physical_address(cpu, Va::new(va.get() + i * page + 7));
        assert_eq!(pa.get(), first.get() + i * page + 7, "page {i} not physically contiguous");
        let pfn = Pfn::new(pa.get() / page);
        let e = m.phys().pfn(pfn);
        assert_eq!((e.state, e.usage, e.cache), (PageState::Active, PageUse::Contiguous, cache));
        assert_eq!(e.start_of_allocation, i == 0);
        assert_eq!(e.end_of_allocation, i == pages - 1);
    }
    let last = first.get() + pages * page - 1;
    assert!(first.get() >= lowest.next_multiple_of(page), "{first:?} below {lowest:#x}");
    assert!(last <= highest | (page - 1) && last / page <= highest / page, "{last:#x} above {highest:#x}");
    if let (Some(a), Some(b)) = (first.get().checked_div(boundary), last.checked_div(boundary)) {
        assert_eq!(a, b, "crosses a {boundary:#x} multiple");
    }
    first.pfn(ntmem_machine::PageShift::K4)
}

/// The naive reference: is there any run of `pages` free frames in the range that
/// does not cross the boundary? (A linear scan of the PFN database.)
fn reference_fits(m: &Machine, pages: u64, lowest: u64, highest: u64, boundary: u64) -> bool {
    let page = 4096;
    let lo = lowest.div_ceil(page);
    let hi = (highest / page).min(m.profile().physmap.highest_ram_address().get() / page);
    let free = |p: u64| {
        m.phys().file_offset(Pfn::new(p)).is_some()
            && matches!(m.phys().pfn(Pfn::new(p)).state, PageState::Zeroed | PageState::Free)
    };
    let mut start = lo;
    while start + pages <= hi + 1 {
        let last = start + pages - 1;
        let crosses = boundary != 0 && (start * page) / boundary != (last * page) / boundary;
        if !crosses {
            if let Some(bad) = (start..=last).rev().find(|&p| !free(p)) {
                start = bad + 1;
                continue;
            }
            return true;
        }
        start += 1;
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn contiguous_runs_lie_in_range_and_never_cross_the_boundary(
        lowest in 0u64..48 * MB,
        span in 0u64..16 * MB,
        boundary_log in prop::option::of(12u32..24),
        odd_boundary in any::<bool>(),
        bytes in 1u64..(80 * 4096),
        cached in any::<bool>(),
    ) {
        let m = machine();
        let highest = lowest + span;
        let boundary = boundary_log.map_or(0, |b| (1u64 << b) + if odd_boundary { 4096 } else { 0 });
        let cache = if cached { MemoryCachingType::Cached } else { MemoryCachingType::NonCached };
        let pages = bytes.div_ceil(4096);
        m.run(0, |cpu| {
            let got = mm_allocate_contiguous_memory_specify_cache(
                cpu, bytes, PhysAddr::new(lowest), PhysAddr::new(highest), PhysAddr::new(boundary), cache);
            let valid_boundary = boundary == 0 || boundary.is_power_of_two();
            match got {
                Some(va) => {
                    assert!(valid_boundary, "boundary {boundary:#x} accepted");
                    check_run(cpu, va, pages, lowest, highest, boundary, cache.attribute());
                    mm_free_contiguous_memory(cpu, va)?;
                }
                None => assert!(
                    !valid_boundary || !reference_fits(m, pages, lowest, highest, boundary),
                    "refused although a run fits: {pages} pages in [{lowest:#x}, {highest:#x}] boundary {boundary:#x}"
                ),
            }
            Ok(())
        }).unwrap();
    }
}

/// One shared x86 machine for the property test, with low memory fragmented so
/// that placement has to search.
fn machine() -> &'static Machine {
    use std::sync::OnceLock;
    static M: OnceLock<Machine> = OnceLock::new();
    M.get_or_init(|| {
        let m = boot("xp-professional", 256 * MB);
        // Take every fifth 64 KB chunk of the first 64 MB.
        for chunk in (0..64 * MB).step_by(320 * 1024) {
            let req = ntmem_kernel::mm::frames::FrameRequest::new(16, PageUse::Reserved)
                .contiguous()
                .lowest(PhysAddr::new(chunk))
                .highest(PhysAddr::new(chunk + 64 * 1024 - 1));
            let _ = m.phys().allocate(&req);
        }
        m
    })
}

#[test]
fn the_seed_sample_gets_noncached_memory_below_4_gb() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    m.run(0, |cpu| {
        // Seed §7.3: LowestAcceptable 0, BoundaryMultiple 0, HighestAcceptable 0xFFFFFFFF, MmNonCached.
        let mem_length = 0x12345;
        let mem_buff = mm_allocate_contiguous_memory_specify_cache(
            cpu,
            mem_length,
            PhysAddr::new(0),
            PhysAddr::new(0xFFFF_FFFF),
            PhysAddr::new(0),
            MemoryCachingType::NonCached,
        )
        .expect("STATUS_INSUFFICIENT_RESOURCES");
        let pages = 0x13; // rounded up to whole pages
        check_run(cpu, mem_buff, pages, 0, 0xFFFF_FFFF, 0, CacheType::NonCached);
        for i in 0..pages {
            let va = Va::new(mem_buff.get() + i * 4096);
            assert!(mm_get_physical_address(cpu, va).get() < 1 << 32);
            let flags = pte_flags(&m, va);
            assert!(flags.contains(PteFlags::VALID | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH), "{flags:?}");
        }
        // The memory is real: written through the mapping, it is in the RAM file.
        m.space().write(Va::new(mem_buff.get() + 0x12340), b"tail").unwrap();
        let pa = mm_get_physical_address(cpu, Va::new(mem_buff.get() + 0x12340));
        let mut buf = [0; 4];
        m.phys().ram().read(m.profile().physmap.file_offset(pa).unwrap(), &mut buf);
        assert_eq!(&buf, b"tail");
        let ptes = m.system_ptes().free();
        mm_free_contiguous_memory_specify_cache(cpu, mem_buff, mem_length, MemoryCachingType::NonCached)?;
        assert_eq!(m.system_ptes().free(), ptes + pages);
        assert_eq!(m.phys().pfn(pa.pfn(ntmem_machine::PageShift::K4)).state, PageState::Free);
        assert_eq!(mm_get_physical_address(cpu, mem_buff), PhysAddr::new(0), "unmapped reads as 0");
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_terabyte_machine_serves_contiguous_memory_below_and_above_4_gb() {
    let m = boot("ws03sp1-enterprise-x64", 1 << 40);
    m.run(0, |cpu| {
        let low = mm_allocate_contiguous_memory(cpu, 64 * MB, PhysAddr::new(0xFFFF_FFFF)).unwrap();
        check_run(cpu, low, 64 * MB / 4096, 0, 0xFFFF_FFFF, 0, CacheType::Cached);
        let high = mm_allocate_contiguous_memory(cpu, 256 * MB, PhysAddr::new(u64::MAX)).unwrap();
        let first = check_run(cpu, high, 256 * MB / 4096, 0, u64::MAX, 0, CacheType::Cached);
        assert!(first.get() * 4096 >= 4 * GB, "top-down placement: {first:?}");
        mm_free_contiguous_memory(cpu, low)?;
        mm_free_contiguous_memory(cpu, high)?;
        Ok(())
    })
    .unwrap();
    assert!(m.phys().ram().resident_bytes() < 8 * MB, "contents are not zeroed, so nothing is touched");
}

#[test]
fn requests_windows_refuses_return_none() {
    let m = boot("xp-professional", 256 * MB);
    m.run(0, |cpu| {
        let any = |bytes, lo, hi, b| {
            mm_allocate_contiguous_memory_specify_cache(
                cpu,
                bytes,
                PhysAddr::new(lo),
                PhysAddr::new(hi),
                PhysAddr::new(b),
                MemoryCachingType::Cached,
            )
        };
        assert_eq!(any(0, 0, u64::MAX, 0), None, "zero bytes");
        assert_eq!(any(4096, 0, u64::MAX, 0x3000), None, "boundary not a power of two");
        assert_eq!(any(4096, 0, u64::MAX, 0x800), None, "boundary below a page");
        assert_eq!(any(0x3000, 0, u64::MAX, 0x2000), None, "larger than the boundary");
        assert_eq!(any(4096, 0x200_0000, 0x100_0000, 0), None, "lowest above highest");
        assert_eq!(any(512 * MB, 0, u64::MAX, 0), None, "more than the machine has");
        // Lowest is rounded up to a page.
        let va = any(4096, 0x100_0001, 0x100_1FFF, 0).unwrap();
        assert_eq!(mm_get_physical_address(cpu, va), PhysAddr::new(0x100_1000));
        mm_free_contiguous_memory(cpu, va)?;
        // Above APC_LEVEL the physical scan is not allowed (no pool fast path yet).
        let old = cpu.raise_irql(Irql::DISPATCH)?;
        assert_eq!(any(4096, 0, u64::MAX, 0), None);
        assert_eq!(mm_allocate_noncached_memory(cpu, 4096), None);
        cpu.lower_irql(old)?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn noncached_memory_has_noncached_ptes_and_is_freed_by_size() {
    let m = boot("ws03sp1-enterprise", 4 * GB);
    m.run(0, |cpu| {
        let free = m.phys().free_pages();
        let va = mm_allocate_noncached_memory(cpu, 3 * 4096 + 1).unwrap();
        assert_eq!(m.phys().free_pages(), free - 4);
        for i in 0..4 {
            let at = Va::new(va.get() + i * 4096);
            let flags = pte_flags(&m, at);
            assert!(flags.contains(PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH), "{flags:?}");
            let pfn = mm_get_physical_address(cpu, at).pfn(ntmem_machine::PageShift::K4);
            assert_eq!(m.phys().pfn(pfn).cache, CacheType::NonCached);
        }
        m.space().write(Va::new(va.get() + 3 * 4096), b"last page").unwrap();
        mm_free_noncached_memory(cpu, va, 3 * 4096 + 1)?;
        assert_eq!(m.phys().free_pages(), free);
        Ok(())
    })
    .unwrap();
}

#[test]
fn freeing_noncached_memory_with_the_wrong_size_is_bad_pool_caller() {
    let m = boot("xp-professional", 256 * MB);
    let mut at = 0;
    let b = m
        .run(0, |cpu| {
            let va = mm_allocate_noncached_memory(cpu, 2 * 4096).unwrap();
            at = va.get();
            mm_free_noncached_memory(cpu, va, 4096)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::BAD_POOL_CALLER, [0x60, at, 4096, 0]));
}

fn bad_free(setup: impl FnOnce(&Cpu<'_>) -> Va) {
    let m = boot("xp-professional", 256 * MB);
    let mut at = 0;
    let b = m
        .run(0, |cpu| {
            let va = setup(cpu);
            at = va.get();
            mm_free_contiguous_memory(cpu, va)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::BAD_POOL_CALLER);
    assert_eq!(b.parameters, [0x60, at, 0, 0]);
    assert_eq!(m.stopped(), Some(b));
}

#[test]
fn freeing_the_middle_of_a_contiguous_allocation_is_bad_pool_caller_0x60() {
    bad_free(|cpu| {
        let va = mm_allocate_contiguous_memory(cpu, 3 * 4096, PhysAddr::new(u64::MAX)).unwrap();
        Va::new(va.get() + 4096)
    });
}

#[test]
fn freeing_an_unmapped_address_as_contiguous_memory_is_bad_pool_caller_0x60() {
    bad_free(|cpu| {
        let va = mm_allocate_contiguous_memory(cpu, 4096, PhysAddr::new(u64::MAX)).unwrap();
        mm_free_contiguous_memory(cpu, va).unwrap();
        va
    });
}

#[test]
fn freeing_noncached_memory_as_contiguous_memory_is_bad_pool_caller_0x60() {
    bad_free(|cpu| mm_allocate_noncached_memory(cpu, 4096).unwrap());
}

#[test]
fn a_cached_mapping_of_noncached_memory_keeps_the_page_attribute_and_is_reported() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    m.run(0, |cpu| {
        let va = mm_allocate_contiguous_memory_specify_cache(
            cpu,
            2 * 4096,
            PhysAddr::new(0),
            PhysAddr::new(0xFFFF_FFFF),
            PhysAddr::new(0),
            MemoryCachingType::NonCached,
        )
        .unwrap();
        let pa = mm_get_physical_address(cpu, va);
        let alias =
            mm_map_io_space(cpu, PhysAddr::new(pa.get() + 0x10), 2 * 4096 - 0x10, MemoryCachingType::Cached).unwrap();
        assert_eq!(alias.get() % 4096, 0x10);
        // Windows lets the existing attribute win: the alias is noncached too.
        assert!(pte_flags(&m, alias).contains(PteFlags::CACHE_DISABLE));
        let findings = m.hal().io_space_findings();
        assert_eq!(findings.len(), 2, "{findings:?}");
        let IoSpaceFinding::CacheConflict { conflict, .. } = findings[0] else { panic!("{findings:?}") };
        assert_eq!((conflict.existing, conflict.requested), (CacheType::NonCached, CacheType::Cached));
        // The alias is the same memory.
        m.space().write(Va::new(va.get() + 0x10), b"aliased").unwrap();
        let mut buf = [0; 7];
        m.space().read(alias, &mut buf).unwrap();
        assert_eq!(&buf, b"aliased");
        // A matching request is no finding.
        let same = mm_map_io_space(cpu, pa, 4096, MemoryCachingType::NonCached).unwrap();
        assert_eq!(m.hal().io_space_findings().len(), 2);
        mm_unmap_io_space(cpu, same, 4096)?;
        mm_unmap_io_space(cpu, alias, 2 * 4096 - 0x10)?;
        mm_free_contiguous_memory(cpu, va)?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn mapping_free_ram_with_mm_map_io_space_is_reported() {
    let m = boot("xp-professional", 256 * MB);
    m.run(0, |cpu| {
        let va = mm_map_io_space(cpu, PhysAddr::new(0x80_0000), 4096, MemoryCachingType::Cached).unwrap();
        assert!(matches!(m.hal().io_space_findings()[..], [IoSpaceFinding::UnownedRam { .. }]));
        mm_unmap_io_space(cpu, va, 4096)?;
        Ok(())
    })
    .unwrap();
}
