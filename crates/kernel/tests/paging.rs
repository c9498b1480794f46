//! Pageable memory really pages: trimmed to the paging file, back on a touch below
//! DISPATCH_LEVEL, fatal at or above it (issue 3, item 6).

use std::sync::atomic::AtomicUsize;

use ntmem_kernel::mm::frames::FrameRequest;
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
        assert_eq!((stats.pages_out, stats.pages_in, stats.slots_in_use), (4, 4, 0));
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
