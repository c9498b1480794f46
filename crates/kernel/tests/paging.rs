//! Pageable memory really pages: trimmed to the paging file, back on a touch below
//! DISPATCH_LEVEL, fatal at or above it (issue 3, item 6).

use std::sync::atomic::AtomicUsize;

use ntmem_kernel::ex::pool::{self, PoolTag, PoolType};
use ntmem_kernel::mm::contiguous::mm_get_physical_address;
use ntmem_kernel::mm::frames::FrameRequest;
use ntmem_kernel::mm::mdl::{
    io_allocate_mdl, io_free_mdl, mm_get_system_address_for_mdl_safe, mm_probe_and_lock_pages, mm_unlock_pages,
    LockOperation, PagePriority, ProcessorMode,
};
use ntmem_kernel::mm::pfn::PageUse;
use ntmem_kernel::mm::space::Access;
use ntmem_kernel::{BugCheckCode, Irql, Machine};
use ntmem_machine::{MachineConfig, RegionKind, Va};

fn machine(edition: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = 512 << 20;
    Machine::boot(config.build().unwrap()).unwrap()
}

/// Maps `pages` fresh frames at the start of the paged pool region, as paged pool
/// would, and fills page `i` with byte `i + 1`.
fn paged_memory(m: &Machine, pages: u64) -> Va {
    let region = m.profile().layout.region(RegionKind::PagedPool).unwrap();
    let page = m.profile().arch.page_shift().page_size();
    let pages = pages.min(region.size / page);
    let va = region.start;
    let frames = m.phys().allocate(&FrameRequest::new(pages, PageUse::PagedPool)).unwrap();
    m.space().map(m.phys(), va, &frames, Access::ReadWrite).unwrap();
    let r = m.run(0, |_| {
        for i in 0..pages {
            m.space().write(Va::new(va.get() + i * page), &vec![i as u8 + 1; page as usize]).unwrap();
        }
        Ok(())
    });
    if let Err(b) = r {
        panic!("filling paged memory stopped the machine: {b}");
    }
    va
}

#[test]
fn trimmed_pages_come_back_intact_at_passive_level() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64", "xp-64bit-ia64"] {
        let m = machine(edition);
        let page = m.profile().arch.page_shift().page_size();
        let va = paged_memory(&m, 4);
        let free_before = m.phys().free_pages();
        assert_eq!(m.trim().unwrap(), 4, "{edition}");
        assert_eq!(m.phys().free_pages(), free_before + 4, "trimming frees the frames");
        assert_eq!(m.space().walk(m.phys(), va).phys, None, "the PTE is a paging-file PTE now");
        m.run(0, |_| {
            for i in (0..4).rev() {
                let mut buf = vec![0u8; page as usize];
                m.space().read(Va::new(va.get() + i * page), &mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == i as u8 + 1), "{edition} page {i}");
            }
            Ok(())
        })
        .unwrap();
        let stats = m.paging_stats();
        assert_eq!((stats.pages_out, stats.pages_in, stats.slots_in_use), (4, 4, 4), "clean copies stay");
        assert!(m.space().walk(m.phys(), va).phys.is_some());
    }
}

#[test]
fn touching_paged_out_memory_at_dispatch_level_is_fatal() {
    let m = machine("ws03sp1-enterprise-x64");
    let va = paged_memory(&m, 1);
    m.trim().unwrap();
    let b = m
        .run(0, |cpu| {
            cpu.raise_irql(Irql::DISPATCH)?;
            let mut buf = [0u8; 4];
            m.space().read(Va::new(va.get() + 8), &mut buf).unwrap();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&b.parameters[..3], &[va.get() + 8, 2, 0]);
}

#[test]
fn a_spin_lock_in_paged_out_memory_fails_when_acquired() {
    let m = machine("ws03sp1-enterprise-x64");
    let va = paged_memory(&m, 1);
    m.run(0, |_| m.space().write(va, &[0u8; 8]).map_err(|e| panic!("{e}"))).unwrap();
    m.trim().unwrap();
    let host = m.space().host_addr(va);
    // SAFETY: `host` is a page of the machine's address space, 8-aligned, valid for as
    // long as the machine lives, and only ever accessed atomically here; when it is
    // not mapped, the access faults into the machine's fault handler.
    let lock = unsafe { &*(host as *const AtomicUsize) };
    let b = m.run(1, |cpu| cpu.acquire_spin_lock(lock).map(|_| ())).unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(b.parameters[0], va.get());
    assert_eq!(b.parameters[1], 2, "KeAcquireSpinLock raised to DISPATCH_LEVEL first");
}

#[test]
fn unmapping_paged_out_pages_frees_their_slots() {
    let m = machine("xp-professional");
    let va = paged_memory(&m, 3);
    m.trim().unwrap();
    assert_eq!(m.paging_stats().slots_in_use, 3);
    assert!(m.space().unmap(m.phys(), va, 3).unwrap().is_empty());
    assert_eq!(m.paging_stats().slots_in_use, 0);
    assert_eq!(m.trim().unwrap(), 0);
}

#[test]
fn a_driver_touching_paged_out_memory_at_dispatch_is_named_by_0xd1() {
    let m = machine("ws03sp1-enterprise-x64");
    let va = paged_memory(&m, 1);
    m.trim().unwrap();
    m.images().load("pager.sys", 0, usize::MAX).unwrap();
    let b = m
        .run(0, |cpu| {
            cpu.raise_irql(Irql::DISPATCH)?;
            m.space().write(Va::new(va.get() + 0x20), &[7]).unwrap();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&b.parameters[..3], &[va.get() + 0x20, 2, 1]);
    assert_eq!(b.driver.as_deref(), Some("pager.sys"));
    assert!(b.analysis().contains("IMAGE_NAME:  pager.sys"));
}

#[test]
fn running_out_of_memory_trims_pageable_memory_first() {
    let mut config = MachineConfig::for_edition("xp-professional").unwrap();
    config.ram = 64 << 20;
    let m = Machine::boot(config.build().unwrap()).unwrap();
    let region = m.profile().layout.region(RegionKind::PagedPool).unwrap();
    let pages = (m.phys().free_pages() - 16).min(region.size / 4096);
    let frames = m.phys().allocate(&FrameRequest::new(pages, PageUse::PagedPool)).unwrap();
    m.space().map(m.phys(), region.start, &frames, Access::ReadWrite).unwrap();
    let seventh = frames.pfns().nth(7).unwrap();
    m.phys().ram().write(m.phys().file_offset(seventh).unwrap(), &[8]);
    let free = m.phys().free_pages();
    let f = m.phys().allocate(&FrameRequest::new(free + 64, PageUse::NonPagedPool)).expect("the trimmer made room");
    assert_eq!(f.count(), free + 64);
    assert!(m.paging_stats().pages_out >= 64, "{:?}", m.paging_stats());
    m.run(0, |_| {
        let mut byte = [0u8; 1];
        m.space().read(Va::new(region.start.get() + 7 * 4096), &mut byte).unwrap();
        assert_eq!(byte[0], 8, "paged-out data comes back");
        Ok(())
    })
    .unwrap();
}

#[test]
fn force_irql_checking_trims_on_every_raise() {
    let m = machine("ws03sp1-enterprise-x64");
    let va = paged_memory(&m, 2);
    m.set_verifier(ntmem_kernel::vf::VerifierFlags::FORCE_IRQL_CHECKING);
    let b = m
        .run(0, |cpu| {
            let old = cpu.raise_irql(Irql::DISPATCH)?;
            cpu.lower_irql(old)?;
            assert_eq!(m.paging_stats().pages_out, 2, "the raise trimmed paged memory");
            cpu.raise_irql(Irql::DISPATCH)?;
            let mut buf = [0u8; 1];
            m.space().read(va, &mut buf).unwrap();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
}

#[test]
fn a_trim_writes_only_the_pages_modified_since_they_were_last_written() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64", "xp-64bit-ia64"] {
        let m = machine(edition);
        let page = m.profile().arch.page_shift().page_size();
        let va = paged_memory(&m, 4);
        assert_eq!(m.trim().unwrap(), 4);
        assert_eq!(m.paging_stats().pages_out, 4, "{edition}: fresh pages are all modified");
        let at = |i: u64| Va::new(va.get() + i * page);
        m.run(0, |cpu| {
            let mut buf = vec![0u8; page as usize];
            for i in 0..4 {
                m.space().read(at(i), &mut buf).unwrap();
            }
            m.space().write(at(1), &[0xEE; 16]).unwrap();
            // Setting the dirty bit is no page fault: a write at DISPATCH_LEVEL to a
            // resident clean page works.
            cpu.raise_irql(Irql::DISPATCH)?;
            m.space().write(at(3), &[0xDD; 16]).unwrap();
            cpu.lower_irql(Irql::PASSIVE)
        })
        .unwrap();
        assert_eq!(m.trim().unwrap(), 4, "{edition}: every page leaves memory");
        assert_eq!(m.paging_stats().pages_out, 6, "{edition}: only the two written pages were written again");
        assert_eq!(m.trim().unwrap(), 0, "{edition}: nothing resident is left");
        m.run(0, |_| {
            let mut buf = vec![0u8; page as usize];
            for i in 0..4 {
                m.space().read(at(i), &mut buf).unwrap();
                let head = match i {
                    1 => 0xEE,
                    3 => 0xDD,
                    _ => i as u8 + 1,
                };
                assert!(buf[..16].iter().all(|&b| b == head), "{edition} page {i}");
                assert!(buf[16..].iter().all(|&b| b == i as u8 + 1), "{edition} page {i}");
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(m.paging_stats().pages_out, 6);
    }
}

/// Issue 9 item 1: paged pool locked by MmProbeAndLockPages stays resident through
/// trims; a write through the MDL's system mapping is read back through the pool
/// address, before and after the pages are unlocked and paged out.
#[test]
fn locked_paged_pool_is_never_trimmed() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let m = machine(edition);
        let page = m.profile().arch.page_shift().page_size();
        let bytes = 64 * page;
        m.run(0, |cpu| {
            let block = pool::allocate(cpu, PoolType::PagedPool, bytes, PoolTag::new(*b"Lock"))?.unwrap();
            m.space().fill(block, bytes, 0x5A).unwrap();
            let mdl = io_allocate_mdl(cpu, block, bytes)?.unwrap();
            mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoWriteAccess)?.unwrap();
            let physical: Vec<_> =
                (0..64).map(|i| mm_get_physical_address(cpu, Va::new(block.get() + i * page))).collect();
            assert!(physical.iter().all(|pa| pa.get() != 0), "{edition}");
            m.trim().unwrap();
            m.trim().unwrap();
            for (i, pa) in physical.iter().enumerate() {
                let now = mm_get_physical_address(cpu, Va::new(block.get() + i as u64 * page));
                assert_eq!(now, *pa, "{edition}: locked page {i} stays where it was");
            }
            let system = mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.unwrap();
            m.trim().unwrap();
            for i in 0..64 {
                m.space().write(Va::new(system.get() + i * page + 8), &(i as u32).to_le_bytes()).unwrap();
            }
            m.trim().unwrap();
            let mut word = [0u8; 4];
            for i in 0..64 {
                m.space().read(Va::new(block.get() + i * page + 8), &mut word).unwrap();
                assert_eq!(u32::from_le_bytes(word), i as u32, "{edition}: the write through the MDL, page {i}");
            }
            mm_unlock_pages(cpu, mdl)?;
            io_free_mdl(cpu, mdl)?;
            assert!(m.trim().unwrap() >= 64, "{edition}: unlocked, the pages may leave");
            for i in 0..64 {
                m.space().read(Va::new(block.get() + i * page + 8), &mut word).unwrap();
                assert_eq!(u32::from_le_bytes(word), i as u32, "{edition}: paged out and back, page {i}");
            }
            pool::free(cpu, block, None)
        })
        .unwrap();
    }
}

/// A paged-pool page mapped a second time (an MDL built for "nonpaged" pool over
/// paged pool and mapped, a driver bug Windows does not catch) is not freed by a
/// trim while the second mapping lives: its share count pins it.
#[test]
fn a_page_mapped_twice_is_not_trimmed() {
    let m = machine("ws03sp1-enterprise-x64");
    let va = paged_memory(&m, 2);
    let frame = m.space().walk(m.phys(), va).phys.unwrap();
    let pfn = frame.pfn(m.profile().arch.page_shift());
    let alias = m.system_ptes().reserve(1).unwrap();
    m.space()
        .map(m.phys(), alias, &ntmem_kernel::mm::frames::Frames { runs: vec![(pfn, 1)] }, Access::ReadWrite)
        .unwrap();
    assert_eq!(m.trim().unwrap(), 1, "only the page mapped once leaves");
    assert_eq!(m.space().walk(m.phys(), va).phys, Some(frame));
    m.space().unmap(m.phys(), alias, 1).unwrap();
    m.system_ptes().release(alias, 1);
    assert_eq!(m.trim().unwrap(), 1, "unmapped, it may leave");
}

/// Freeing paged pool whose pages were trimmed and paged back into other frames
/// frees the frames mapped now — not the ones it was made with, which by then
/// belong to someone else — and leaks nothing.
#[test]
fn freeing_paged_pool_after_paging_frees_the_frames_it_holds_now() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let m = machine(edition);
        let page = m.profile().arch.page_shift().page_size();
        let pages = 100;
        let tag = PoolTag::new(*b"Big ");
        let block = m.run(0, |cpu| pool::allocate(cpu, PoolType::PagedPool, pages * page, tag)).unwrap().unwrap();
        m.run(0, |_| m.space().fill(block, pages * page, 0x33).map_err(|e| panic!("{e}"))).unwrap();
        let before = m.phys().free_pages();
        let first = m.space().walk(m.phys(), block).phys.unwrap();
        m.trim().unwrap();
        // Someone takes the frames the trim freed.
        let hog = m.phys().allocate(&FrameRequest::new(m.phys().free_pages() - 200, PageUse::Reserved)).unwrap();
        m.run(0, |cpu| {
            m.space().fill(block, pages * page, 0x44).unwrap();
            assert_ne!(m.space().walk(m.phys(), block).phys, Some(first), "{edition}: paged back elsewhere");
            let free = m.phys().free_pages();
            pool::free(cpu, block, None)?;
            assert_eq!(m.phys().free_pages(), free + pages, "{edition}: the frames it held are freed");
            Ok(())
        })
        .unwrap();
        assert!(hog.pfns().all(|p| m.phys().pfn(p).state == ntmem_kernel::mm::pfn::PageState::Active), "{edition}");
        for &(p, n) in &hog.runs {
            m.phys().free(p, n).unwrap();
        }
        assert_eq!(m.phys().free_pages(), before + pages, "{edition}: nothing leaked");
    }
}
