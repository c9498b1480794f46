//! MDLs (issue 4 item 4): aliasing mappings, PFN lock counts, partial MDLs,
//! MmAllocatePagesForMdlEx, MmAdvanceMdl and the misuse bugchecks.

use std::sync::Arc;

use ntmem_kernel::ex::pool::{self, NtStatus, PoolTag, PoolType};
use ntmem_kernel::mm::contiguous::MemoryCachingType;
use ntmem_kernel::mm::mdl::*;
use ntmem_kernel::mm::process::{
    ke_stack_attach_process, ke_unstack_detach_process, nt_allocate_virtual_memory, ps_create_process,
    ps_terminate_process, AllocationType, PageProtection, Process,
};
use ntmem_kernel::{BugCheckCode, Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Pfn, PhysAddr, Va};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;
const BOTH: AllocationType = AllocationType::RESERVE.union(AllocationType::COMMIT);

fn boot(ram: u64) -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

/// A process with `pages` committed read-write pages filled with `i as u8` per page.
fn user_buffer(cpu: &Cpu<'_>, pages: u64) -> (Arc<Process>, Va) {
    let p = ps_create_process(cpu, "app.exe").unwrap().unwrap();
    let (va, _) = nt_allocate_virtual_memory(cpu, &p, None, pages * 4096, BOTH, PageProtection::ReadWrite).unwrap();
    for i in 0..pages {
        p.write(cpu, Va::new(va.get() + i * 4096), &[i as u8 + 1; 4096]).unwrap();
    }
    (p, va)
}

fn pfns(cpu: &Cpu<'_>, mdl: Mdl, n: u64) -> Vec<Pfn> {
    (0..n).map(|i| Pfn::new(read_pfn(cpu, mdl, i).unwrap())).collect()
}

#[test]
fn mdl_layout_is_the_x64_one() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let shift = m.profile().arch.page_shift();
        assert_eq!(address_and_size_to_span_pages(shift, Va::new(0x1FF0), 0x20), 2);
        assert_eq!(address_and_size_to_span_pages(shift, Va::new(0x1000), 0x1000), 1);
        assert_eq!(mm_size_of_mdl(shift, Va::new(0x10_0FF0), 0x2000), 0x30 + 3 * 8);
        let mdl = io_allocate_mdl(cpu, Va::new(0x10_0FF0), 0x2000)?.unwrap();
        let mut raw = [0u8; 0x30];
        m.space().read(mdl.0, &mut raw).unwrap();
        assert_eq!(u64::from_le_bytes(raw[0..8].try_into().unwrap()), 0, "Next");
        assert_eq!(u16::from_le_bytes(raw[8..10].try_into().unwrap()), 0x48, "Size");
        assert_eq!(u16::from_le_bytes(raw[0xA..0xC].try_into().unwrap()), 0, "MdlFlags");
        assert_eq!(u64::from_le_bytes(raw[0x20..0x28].try_into().unwrap()), 0x10_0000, "StartVa");
        assert_eq!(u32::from_le_bytes(raw[0x28..0x2C].try_into().unwrap()), 0x2000, "ByteCount");
        assert_eq!(u32::from_le_bytes(raw[0x2C..0x30].try_into().unwrap()), 0xFF0, "ByteOffset");
        assert_eq!(mdl.pfn_array(), Va::new(mdl.0.get() + 0x30));
        io_free_mdl(cpu, mdl)?;
        assert_eq!(io_allocate_mdl(cpu, Va::new(0x10_0000), 64 * MB)?, None, "beyond the CSHORT Size limit");
        assert_eq!(io_allocate_mdl(cpu, Va::new(0x10_0000), 0)?, None);
        Ok(())
    })
    .unwrap();
}

#[test]
fn what_the_driver_writes_through_the_system_address_the_user_reads() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let (p, va) = user_buffer(cpu, 3);
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let buf = Va::new(va.get() + 0x100);
        let mdl = io_allocate_mdl(cpu, buf, 0x2000)?.unwrap();
        mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoWriteAccess)?.unwrap();
        let h = read_header(cpu, mdl)?;
        assert!(h.flags.contains(MdlFlags::PAGES_LOCKED | MdlFlags::WRITE_OPERATION));
        assert_eq!(h.process, p.object().get());
        assert_eq!(p.locked_pages(), 3);
        let frames = pfns(cpu, mdl, 3);
        for &f in &frames {
            let e = m.phys().pfn(f);
            assert_eq!((e.reference_count, e.lock_count), (2, 1), "locked once");
        }
        ke_unstack_detach_process(cpu, state).unwrap();
        // The driver maps and writes from another context.
        let sys = mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.unwrap();
        assert!(m.profile().layout.is_system(sys));
        assert_eq!(sys.get() & 0xFFF, 0x100);
        assert_eq!(mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?, Some(sys), "mapped once");
        m.space().write(sys, b"written by the driver").unwrap();
        m.space().write(Va::new(sys.get() + 0x1F00), b"end").unwrap();
        let mut got = [0u8; 21];
        p.read(cpu, buf, &mut got).unwrap();
        assert_eq!(&got, b"written by the driver");
        let mut end = [0u8; 3];
        p.read(cpu, Va::new(buf.get() + 0x1F00), &mut end).unwrap();
        assert_eq!(&end, b"end");
        // Unlock unmaps, and the counts go back down.
        let free_ptes = m.system_ptes().free();
        mm_unlock_pages(cpu, mdl)?;
        assert_eq!(m.system_ptes().free(), free_ptes + 3);
        assert!(!read_header(cpu, mdl)?.flags.intersects(MdlFlags::PAGES_LOCKED | MdlFlags::MAPPED_TO_SYSTEM_VA));
        for &f in &frames {
            let e = m.phys().pfn(f);
            assert_eq!((e.reference_count, e.lock_count), (1, 0));
        }
        assert_eq!(p.locked_pages(), 0);
        io_free_mdl(cpu, mdl)?;
        ps_terminate_process(cpu, &p)
    })
    .unwrap();
}

#[test]
fn user_mode_mapping_lands_in_the_current_process() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x2000, PoolTag::new(*b"Test"))?.unwrap();
        m.space().write(block, b"shared with user").unwrap();
        let mdl = io_allocate_mdl(cpu, block, 0x2000)?.unwrap();
        mm_build_mdl_for_nonpaged_pool(cpu, mdl)?;
        let h = read_header(cpu, mdl)?;
        assert!(h.flags.contains(MdlFlags::SOURCE_IS_NONPAGED_POOL));
        assert_eq!(mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?, Some(block));
        let p = ps_create_process(cpu, "viewer.exe").unwrap().unwrap();
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let uva = mm_map_locked_pages_specify_cache(
            cpu,
            mdl,
            ProcessorMode::UserMode,
            MemoryCachingType::Cached,
            None,
            OnFailure::ReturnNull,
            PagePriority::Normal,
        )?
        .unwrap()
        .unwrap();
        assert!(m.profile().layout.is_user(uva));
        ke_unstack_detach_process(cpu, state).unwrap();
        let mut got = [0u8; 16];
        p.read(cpu, uva, &mut got).unwrap();
        assert_eq!(&got, b"shared with user");
        p.write(cpu, uva, b"SHARED").unwrap();
        let mut k = [0u8; 6];
        m.space().read(block, &mut k).unwrap();
        assert_eq!(&k, b"SHARED");
        // Exit unmaps it (seed §10); the pool pages stay.
        ps_terminate_process(cpu, &p)?;
        m.space().read(block, &mut k).unwrap();
        io_free_mdl(cpu, mdl)?;
        pool::free(cpu, block, None)
    })
    .unwrap();
}

#[test]
fn probe_and_lock_of_a_system_address_in_user_mode_raises() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x100, PoolTag::new(*b"Test"))?.unwrap();
        let mdl = io_allocate_mdl(cpu, block, 0x100)?.unwrap();
        let r = mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoReadAccess)?;
        assert_eq!(r, Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(read_pfn(cpu, mdl, 0)?, PFN_END);
        assert!(!read_header(cpu, mdl)?.flags.contains(MdlFlags::PAGES_LOCKED));
        // KernelMode locks it.
        mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoReadAccess)?.unwrap();
        assert_eq!(read_header(cpu, mdl)?.process, 0);
        mm_unlock_pages(cpu, mdl)?;
        // A read-only user page refuses IoWriteAccess, and nothing stays locked.
        let (p, va) = user_buffer(cpu, 2);
        ntmem_kernel::mm::process::nt_protect_virtual_memory(
            cpu,
            &p,
            Va::new(va.get() + 4096),
            1,
            PageProtection::ReadOnly,
        )
        .unwrap();
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let umdl = io_allocate_mdl(cpu, va, 0x2000)?.unwrap();
        let first = m.space().walk(m.phys(), va).phys.unwrap().pfn(m.profile().arch.page_shift());
        let r = mm_probe_and_lock_pages(cpu, umdl, ProcessorMode::UserMode, LockOperation::IoModifyAccess)?;
        assert_eq!(r, Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(m.phys().pfn(first).lock_count, 0);
        assert_eq!(p.locked_pages(), 0);
        mm_probe_and_lock_pages(cpu, umdl, ProcessorMode::UserMode, LockOperation::IoReadAccess)?.unwrap();
        mm_unlock_pages(cpu, umdl)?;
        ke_unstack_detach_process(cpu, state).unwrap();
        Ok(())
    })
    .unwrap();
}

#[test]
fn process_exit_with_locked_pages_is_0x76() {
    let m = boot(512 * MB);
    let mut object = 0;
    let b = m
        .run(0, |cpu| {
            let (p, va) = user_buffer(cpu, 2);
            object = p.object().get();
            let state = ke_stack_attach_process(cpu, &p).unwrap();
            let mdl = io_allocate_mdl(cpu, va, 0x2000)?.unwrap();
            mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoReadAccess)?.unwrap();
            ke_unstack_detach_process(cpu, state).unwrap();
            ps_terminate_process(cpu, &p)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PROCESS_HAS_LOCKED_PAGES);
    assert_eq!(b.parameters, [0, object, 2, 0]);
}

/// IoFreeMdl of an MDL whose pages are still locked frees the MDL and nothing else, as
/// on Windows: the pages stay locked (resident, their PFN lock counts held), and the
/// process's end finds them — 0x76 with the count the freed MDL locked.
#[test]
fn freeing_an_mdl_still_locked_leaves_its_pages_locked_until_the_process_ends_0x76() {
    let m = boot(512 * MB);
    let mut object = 0;
    let b = m
        .run(0, |cpu| {
            let (p, va) = user_buffer(cpu, 3);
            object = p.object().get();
            let state = ke_stack_attach_process(cpu, &p).unwrap();
            let mdl = io_allocate_mdl(cpu, va, 0x3000)?.unwrap();
            mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoWriteAccess)?.unwrap();
            let first = m.space().walk(m.phys(), va).phys.unwrap().pfn(m.profile().arch.page_shift());
            io_free_mdl(cpu, mdl)?;
            assert_eq!(m.phys().pfn(first).lock_count, 1, "the page is still locked");
            assert_eq!(p.locked_pages(), 3);
            ke_unstack_detach_process(cpu, state).unwrap();
            ps_terminate_process(cpu, &p)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PROCESS_HAS_LOCKED_PAGES);
    assert_eq!(b.parameters, [0, object, 3, 0]);
}

#[test]
fn unlocking_a_user_mdl_twice_is_0x76_parameter_1() {
    let m = boot(512 * MB);
    let mut mdl_va = 0;
    let b = m
        .run(0, |cpu| {
            let (p, va) = user_buffer(cpu, 1);
            let state = ke_stack_attach_process(cpu, &p).unwrap();
            let mdl = io_allocate_mdl(cpu, va, 0x800)?.unwrap();
            mdl_va = mdl.0.get();
            mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoReadAccess)?.unwrap();
            mm_unlock_pages(cpu, mdl)?;
            ke_unstack_detach_process(cpu, state).unwrap();
            mm_unlock_pages(cpu, mdl)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PROCESS_HAS_LOCKED_PAGES);
    assert_eq!(b.parameters, [1, mdl_va, 0, 0]);
}

#[test]
fn unlocking_a_kernel_mdl_twice_is_pfn_list_corrupt() {
    let m = boot(512 * MB);
    let mut frame = 0;
    let b = m
        .run(0, |cpu| {
            let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x100, PoolTag::new(*b"Test"))?.unwrap();
            let mdl = io_allocate_mdl(cpu, block, 0x100)?.unwrap();
            mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoReadAccess)?.unwrap();
            frame = read_pfn(cpu, mdl, 0)?;
            mm_unlock_pages(cpu, mdl)?;
            mm_unlock_pages(cpu, mdl)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PFN_LIST_CORRUPT);
    let share = u64::from(m.phys().pfn(Pfn::new(frame)).share_count);
    assert_eq!(b.parameters, [7, frame, share, 0]);
}

#[test]
fn partial_mdl_maps_the_right_pages() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let (p, va) = user_buffer(cpu, 4);
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let whole = io_allocate_mdl(cpu, va, 4 * 4096)?.unwrap();
        mm_probe_and_lock_pages(cpu, whole, ProcessorMode::UserMode, LockOperation::IoReadAccess)?.unwrap();
        ke_unstack_detach_process(cpu, state).unwrap();
        let frames = pfns(cpu, whole, 4);
        // Pages 2 and 3 (values 3 and 4), from the middle of page 2.
        let start = Va::new(va.get() + 2 * 4096 + 0x80);
        let part = io_allocate_mdl(cpu, start, 0x1000)?.unwrap();
        io_build_partial_mdl(cpu, whole, part, start, 0x1000)?;
        let h = read_header(cpu, part)?;
        assert!(h.flags.contains(MdlFlags::PARTIAL));
        assert_eq!((h.byte_offset, h.byte_count), (0x80, 0x1000));
        assert_eq!(pfns(cpu, part, 2), frames[2..4].to_vec());
        let sys = mm_get_system_address_for_mdl_safe(cpu, part, PagePriority::Normal)?.unwrap();
        assert!(read_header(cpu, part)?.flags.contains(MdlFlags::PARTIAL_HAS_BEEN_MAPPED));
        let mut a = [0u8; 1];
        m.space().read(sys, &mut a).unwrap();
        assert_eq!(a, [3]);
        m.space().read(Va::new(sys.get() + 0xF7F), &mut a).unwrap();
        assert_eq!(a, [3]);
        m.space().read(Va::new(sys.get() + 0xF80), &mut a).unwrap();
        assert_eq!(a, [4]);
        let free = m.system_ptes().free();
        io_free_mdl(cpu, part)?;
        assert_eq!(m.system_ptes().free(), free + 2, "freeing the partial MDL unmaps it");
        // A partial MDL of a mapped parent uses the parent's mapping.
        let parent_sys = mm_get_system_address_for_mdl_safe(cpu, whole, PagePriority::Normal)?.unwrap();
        let part = io_allocate_mdl(cpu, start, 0x10)?.unwrap();
        io_build_partial_mdl(cpu, whole, part, start, 0x10)?;
        assert!(read_header(cpu, part)?.flags.contains(MdlFlags::PARENT_MAPPED_SYSTEM_VA));
        let inside = mm_get_system_address_for_mdl_safe(cpu, part, PagePriority::Normal)?.unwrap();
        assert_eq!(inside.get(), parent_sys.get() + 2 * 4096 + 0x80);
        io_free_mdl(cpu, part)?;
        mm_unlock_pages(cpu, whole)?;
        io_free_mdl(cpu, whole)?;
        ps_terminate_process(cpu, &p)
    })
    .unwrap();
}

#[test]
fn advance_mdl_unlocks_passed_pages_and_unmap_releases_every_pte() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let (p, va) = user_buffer(cpu, 3);
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let mdl = io_allocate_mdl(cpu, Va::new(va.get() + 0x10), 3 * 4096 - 0x10)?.unwrap();
        mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoReadAccess)?.unwrap();
        ke_unstack_detach_process(cpu, state).unwrap();
        let frames = pfns(cpu, mdl, 3);
        let free = m.system_ptes().free();
        let sys = mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.unwrap();
        assert_eq!(mm_advance_mdl(cpu, mdl, 3 * 4096)?, Err(NtStatus::INVALID_PARAMETER_2));
        mm_advance_mdl(cpu, mdl, 4096 + 0x10)?.unwrap();
        let h = read_header(cpu, mdl)?;
        assert_eq!((h.start_va, h.byte_offset, h.byte_count), (va.get() + 4096, 0x20, 2 * 4096 - 0x20));
        assert_eq!(h.mapped_system_va, sys.get() + 4096 + 0x10);
        assert_eq!(m.phys().pfn(frames[0]).lock_count, 0, "the page passed is unlocked");
        assert_eq!(m.phys().pfn(frames[1]).lock_count, 1);
        assert_eq!(pfns(cpu, mdl, 2), frames[1..].to_vec());
        assert_eq!(p.locked_pages(), 2);
        let mut a = [0u8; 1];
        m.space().read(Va::new(h.mapped_system_va), &mut a).unwrap();
        assert_eq!(a, [2]);
        mm_unlock_pages(cpu, mdl)?;
        assert_eq!(m.system_ptes().free(), free, "the advanced-over PTE is released too");
        assert_eq!(p.locked_pages(), 0);
        io_free_mdl(cpu, mdl)?;
        ps_terminate_process(cpu, &p)
    })
    .unwrap();
}

#[test]
fn allocate_pages_for_mdl_ex_below_4gb_may_return_fewer() {
    let m = boot(8 * GB);
    m.run(0, |cpu| {
        let low = PhysAddr::new(0);
        let below_4g = PhysAddr::new(4 * GB - 1);
        let mdl = mm_allocate_pages_for_mdl_ex(
            cpu,
            low,
            below_4g,
            0,
            64 * 4096,
            MemoryCachingType::Cached,
            AllocatePagesFlags::empty(),
        )?
        .unwrap();
        let h = read_header(cpu, mdl)?;
        assert_eq!(h.byte_count, 64 * 4096);
        assert!(h.flags.contains(MdlFlags::PAGES_LOCKED));
        for f in pfns(cpu, mdl, 64) {
            assert!(f.get() < (4 * GB) >> 12);
            assert_eq!(m.phys().pfn(f).usage, ntmem_kernel::mm::pfn::PageUse::MdlPages);
        }
        // Map it, write, unmap, free.
        let sys = mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.unwrap();
        m.space().write(sys, b"x").unwrap();
        mm_unmap_locked_pages(cpu, sys, mdl)?;
        let frames = pfns(cpu, mdl, 64);
        mm_free_pages_from_mdl(cpu, mdl)?;
        assert_eq!(read_pfn(cpu, mdl, 0)?, PFN_END);
        assert_ne!(m.phys().pfn(frames[0]).state, ntmem_kernel::mm::pfn::PageState::Active);
        pool::free(cpu, mdl.0, None)?;
        // 1 MB of range, 64 MB asked: fewer pages, all in range, the array ends with -1.
        let short = mm_allocate_pages_for_mdl(cpu, low, PhysAddr::new(MB - 1), 0, 64 * MB)?.unwrap();
        let h = read_header(cpu, short)?;
        let got = u64::from(h.byte_count) / 4096;
        assert!(got > 0 && got <= 256, "{got} pages");
        for f in pfns(cpu, short, got) {
            assert!(f.get() < 256);
        }
        assert_eq!(read_pfn(cpu, short, got)?, PFN_END);
        mm_free_pages_from_mdl(cpu, short)?;
        pool::free(cpu, short.0, None)?;
        // FULLY_REQUIRED refuses a short allocation; unknown SkipBytes alignment is NULL.
        let full = mm_allocate_pages_for_mdl_ex(
            cpu,
            low,
            PhysAddr::new(MB - 1),
            0,
            64 * MB,
            MemoryCachingType::Cached,
            AllocatePagesFlags::FULLY_REQUIRED,
        )?;
        assert_eq!(full, None);
        assert_eq!(mm_allocate_pages_for_mdl(cpu, low, below_4g, 100, 4096)?, None);
        Ok(())
    })
    .unwrap();
}

#[test]
fn system_pte_exhaustion_is_null_or_0x3f() {
    let m = boot(512 * MB);
    let total = m.system_ptes().total();
    let b = m
        .run(0, |cpu| {
            let mdl = mm_allocate_pages_for_mdl(cpu, PhysAddr::new(0), PhysAddr::new(u64::MAX), 0, 4 * 4096)?.unwrap();
            let mut taken = Vec::new();
            while let Some(va) = m.system_ptes().reserve(1) {
                taken.push(va);
            }
            assert_eq!(mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::High)?, None);
            let null = mm_map_locked_pages_specify_cache(
                cpu,
                mdl,
                ProcessorMode::KernelMode,
                MemoryCachingType::Cached,
                None,
                OnFailure::ReturnNull,
                PagePriority::High,
            )?;
            assert_eq!(null, Ok(None));
            mm_map_locked_pages_specify_cache(
                cpu,
                mdl,
                ProcessorMode::KernelMode,
                MemoryCachingType::Cached,
                None,
                OnFailure::BugCheck,
                PagePriority::High,
            )
            .map(drop)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::NO_MORE_SYSTEM_PTES);
    assert_eq!(b.parameters, [0, 4, 0, total]);
}

// Reserved mappings (MmAllocateMappingAddress & co.; bug check 0xDA's page).

const RSV: PoolTag = PoolTag::new(*b"Rsv1");
const OTHER: PoolTag = PoolTag::new(*b"Othr");

/// A locked kernel MDL over `pages` pages of fresh nonpaged pool, filled with 0x5A.
fn locked_pool_mdl(cpu: &Cpu<'_>, pages: u64, offset: u64) -> (Va, Mdl) {
    let block =
        pool::allocate(cpu, PoolType::NonPagedPool, (pages + 1) * 4096, PoolTag::new(*b"Test")).unwrap().unwrap();
    cpu.machine().space().fill(block, (pages + 1) * 4096, 0x5A).unwrap();
    let buf = Va::new(block.get() + offset);
    let mdl = io_allocate_mdl(cpu, buf, pages * 4096 - offset).unwrap().unwrap();
    mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoWriteAccess).unwrap().unwrap();
    (buf, mdl)
}

fn rsv_misuse(
    f: impl FnOnce(&Cpu<'_>, &mut u64) -> Result<(), ntmem_kernel::BugCheck>,
) -> (ntmem_kernel::BugCheck, u64) {
    let m = boot(512 * MB);
    let mut va = 0;
    let b = m.run(0, |cpu| f(cpu, &mut va)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::SYSTEM_PTE_MISUSE);
    (b, va)
}

#[test]
fn a_reserved_mapping_costs_two_header_ptes_and_aliases_the_buffer() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let free = m.system_ptes().free();
        let base = mm_allocate_mapping_address(cpu, 4 * 4096 - 100, RSV)?.unwrap();
        assert_eq!(m.system_ptes().free(), free - 4 - RESERVED_HEADER_PTES, "4 pages + 2 headers");
        assert!(m.profile().layout.is_system(base));
        assert!(m.space().walk(m.phys(), base).phys.is_none(), "reserved, not mapped");
        let (buf, mdl) = locked_pool_mdl(cpu, 3, 0x10);
        let va = mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached)?.unwrap();
        assert_eq!(va, Va::new(base.get() + 0x10), "the result has the byte offset");
        let h = read_header(cpu, mdl)?;
        assert_eq!(h.mapped_system_va, base.get(), "MappedSystemVa has not");
        assert!(!h.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA));
        // Real aliasing: writes through the reservation land in the buffer, and back.
        m.space().write(va, b"through the reservation").unwrap();
        let mut back = [0u8; 23];
        m.space().read(buf, &mut back).unwrap();
        assert_eq!(&back, b"through the reservation");
        m.space().write(Va::new(buf.get() + 2 * 4096), b"xyz").unwrap();
        let mut b3 = [0u8; 3];
        m.space().read(Va::new(va.get() + 2 * 4096), &mut b3).unwrap();
        assert_eq!(&b3, b"xyz");
        assert_eq!(
            read_pfn(cpu, mdl, 0)?,
            m.space().walk(m.phys(), base).phys.unwrap().pfn(m.profile().arch.page_shift()).get()
        );
        mm_unmap_reserved_mapping(cpu, base, RSV, mdl)?;
        assert!(m.space().walk(m.phys(), base).phys.is_none());
        // The reservation can be used again, then freed.
        let again = mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached)?;
        assert_eq!(again, Some(va));
        mm_unmap_reserved_mapping(cpu, base, RSV, mdl)?;
        mm_free_mapping_address(cpu, base, RSV)?;
        assert_eq!(m.system_ptes().free(), free);
        mm_unlock_pages(cpu, mdl)?;
        io_free_mdl(cpu, mdl)
    })
    .unwrap();
}

#[test]
fn a_user_buffer_through_a_reserved_mapping_and_too_long_an_mdl_is_null() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let (p, va) = user_buffer(cpu, 3);
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let base = mm_allocate_mapping_address(cpu, 2 * 4096, RSV)?.unwrap();
        let long = io_allocate_mdl(cpu, va, 3 * 4096)?.unwrap();
        mm_probe_and_lock_pages(cpu, long, ProcessorMode::UserMode, LockOperation::IoWriteAccess)?.unwrap();
        let r = mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, long, MemoryCachingType::Cached)?;
        assert_eq!(r, None, "3 pages do not fit a 2-page reservation");
        let short = io_allocate_mdl(cpu, Va::new(va.get() + 4096), 2 * 4096)?.unwrap();
        mm_probe_and_lock_pages(cpu, short, ProcessorMode::UserMode, LockOperation::IoWriteAccess)?.unwrap();
        let k = mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, short, MemoryCachingType::Cached)?.unwrap();
        m.space().write(Va::new(k.get() + 4096 + 7), b"driver").unwrap();
        let mut back = [0u8; 6];
        p.read(cpu, Va::new(va.get() + 2 * 4096 + 7), &mut back).unwrap();
        assert_eq!(&back, b"driver", "the process reads what the driver wrote");
        mm_unmap_reserved_mapping(cpu, base, RSV, short)?;
        mm_free_mapping_address(cpu, base, RSV)?;
        mm_unlock_pages(cpu, short)?;
        mm_unlock_pages(cpu, long)?;
        ke_unstack_detach_process(cpu, state).unwrap();
        Ok(())
    })
    .unwrap();
}

#[test]
fn reserving_zero_bytes_is_0xda_0x100() {
    let (b, _) = rsv_misuse(|cpu, _| mm_allocate_mapping_address(cpu, 0, RSV).map(drop));
    assert_eq!(b.parameters, [0x100, 0, u64::from(RSV.0), 0]);
}

#[test]
fn mapping_with_the_wrong_tag_is_0xda_0x104() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, mdl) = locked_pool_mdl(cpu, 1, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, OTHER, mdl, MemoryCachingType::Cached).map(drop)
    });
    assert_eq!(b.parameters, [0x104, va, u64::from(OTHER.0), u64::from(RSV.0)]);
}

#[test]
fn mapping_into_what_is_not_a_reservation_is_0xda_0x104_or_0x105() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        let inside = Va::new(base.get() + 4096);
        *va = inside.get();
        let (_, mdl) = locked_pool_mdl(cpu, 1, 0);
        // Two pages in: the "tag PTE" in front of it is the reservation's first data PTE.
        mm_map_locked_pages_with_reserved_mapping(cpu, inside, PoolTag(0), mdl, MemoryCachingType::Cached).map(drop)
    });
    assert_eq!(b.parameters, [0x105, va, 0, 0], "tag 0 matches the empty PTE, and there is no size");
}

#[test]
fn mapping_into_a_mapped_reservation_is_0xda_0x107() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 2 * 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, mdl) = locked_pool_mdl(cpu, 1, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached)?.unwrap();
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached).map(drop)
    });
    assert_eq!(b.parameters, [0x107, va, va, va + 2 * 4096 - 1]);
}

#[test]
fn unmapping_with_the_wrong_tag_is_0xda_0x108() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, mdl) = locked_pool_mdl(cpu, 1, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached)?.unwrap();
        mm_unmap_reserved_mapping(cpu, base, OTHER, mdl)
    });
    assert_eq!(b.parameters, [0x108, va, u64::from(OTHER.0), u64::from(RSV.0)]);
}

#[test]
fn unmapping_an_empty_reservation_is_0xda_0x109() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, mdl) = locked_pool_mdl(cpu, 1, 0);
        mm_unmap_reserved_mapping(cpu, base, RSV, mdl)
    });
    assert_eq!(b.parameters, [0x109, va, u64::from(RSV.0), 0]);
}

#[test]
fn unmapping_more_than_was_mapped_is_0xda_0x10b_and_less_0x10c() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 3 * 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, one) = locked_pool_mdl(cpu, 1, 0);
        let (_, two) = locked_pool_mdl(cpu, 2, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, one, MemoryCachingType::Cached)?.unwrap();
        mm_unmap_reserved_mapping(cpu, base, RSV, two)
    });
    assert_eq!(b.parameters, [0x10B, va, u64::from(RSV.0), 2]);
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 3 * 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, one) = locked_pool_mdl(cpu, 1, 0);
        let (_, two) = locked_pool_mdl(cpu, 2, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, two, MemoryCachingType::Cached)?.unwrap();
        mm_unmap_reserved_mapping(cpu, base, RSV, one)
    });
    assert_eq!(b.parameters, [0x10C, va, u64::from(RSV.0), 1]);
}

#[test]
fn unmapping_an_mdl_longer_than_the_reservation_is_0xda_0x10a() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, one) = locked_pool_mdl(cpu, 1, 0);
        let (_, three) = locked_pool_mdl(cpu, 3, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, one, MemoryCachingType::Cached)?.unwrap();
        mm_unmap_reserved_mapping(cpu, base, RSV, three)
    });
    assert_eq!(b.parameters, [0x10A, va, 1, 3]);
}

#[test]
fn freeing_with_the_wrong_tag_is_0xda_0x101_and_nothing_there_0x102() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        *va = base.get();
        mm_free_mapping_address(cpu, base, OTHER)
    });
    assert_eq!(b.parameters, [0x101, va, u64::from(OTHER.0), u64::from(RSV.0)]);
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4096, RSV)?.unwrap();
        mm_free_mapping_address(cpu, base, RSV)?;
        *va = base.get();
        mm_free_mapping_address(cpu, base, PoolTag(0))
    });
    assert_eq!(b.parameters, [0x102, va, 0, 0], "freed twice: the headers are gone");
}

#[test]
fn freeing_a_reservation_still_mapped_is_0xda_0x103() {
    let (b, va) = rsv_misuse(|cpu, va| {
        let base = mm_allocate_mapping_address(cpu, 4 * 4096, RSV)?.unwrap();
        *va = base.get();
        let (_, mdl) = locked_pool_mdl(cpu, 2, 0);
        mm_map_locked_pages_with_reserved_mapping(cpu, base, RSV, mdl, MemoryCachingType::Cached)?.unwrap();
        mm_free_mapping_address(cpu, base, RSV)
    });
    assert_eq!(b.parameters, [0x103, va, u64::from(RSV.0), 4]);
}

#[test]
fn reservations_fail_with_null_when_ptes_run_out() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let free = m.system_ptes().free();
        assert_eq!(mm_allocate_mapping_address(cpu, free * 4096, RSV)?, None, "the headers do not fit");
        let all = mm_allocate_mapping_address(cpu, (free - 2) * 4096, RSV)?.unwrap();
        assert_eq!(m.system_ptes().free(), 0);
        mm_free_mapping_address(cpu, all, RSV)
    })
    .unwrap();
}

/// A locked MDL over `pages` pages of nonpaged pool, mapped to system space.
fn mapped_mdl(cpu: &Cpu<'_>, pages: u64) -> Result<(Va, Mdl, Va), ntmem_kernel::BugCheck> {
    let block = pool::allocate(cpu, PoolType::NonPagedPool, pages * 4096, PoolTag::new(*b"Test"))?.unwrap();
    let mdl = io_allocate_mdl(cpu, block, pages * 4096)?.unwrap();
    mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoWriteAccess)?.unwrap();
    let system = mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.unwrap();
    Ok((block, mdl, system))
}

/// Issue 9 items 3 and 6: MmUnmapLockedPages with an address that is not the MDL's
/// mapping (outside the system PTEs: it panicked), or of an MDL not mapped (it was
/// ignored), stops with SYSTEM_PTE_MISUSE (0xDA) as Windows' tracked PTEs do.
#[test]
fn unmapping_an_address_that_is_not_the_mdls_mapping_is_0xda() {
    let m = boot(512 * MB);
    let mut expect = [0; 4];
    let b = m
        .run(0, |cpu| {
            let (block, mdl, system) = mapped_mdl(cpu, 2)?;
            expect = [3, 0, system.get(), block.get()];
            mm_unmap_locked_pages(cpu, block, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, expect));

    let m = boot(512 * MB);
    let b = m
        .run(0, |cpu| {
            let (_, mdl, system) = mapped_mdl(cpu, 2)?;
            mm_unmap_locked_pages(cpu, system, mdl)?;
            expect = [6, mdl.0.get(), system.get(), 2];
            mm_unmap_locked_pages(cpu, system, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, expect), "a double unmap");

    // The driver grew ByteCount after mapping: the PTEs to free are not the mapping's.
    let m = boot(512 * MB);
    let b = m
        .run(0, |cpu| {
            let (_, mdl, system) = mapped_mdl(cpu, 2)?;
            let count = Va::new(mdl.0.get() + 0x28);
            m.space().write(count, &(0x4000_0000u32).to_le_bytes()).unwrap();
            mm_unmap_locked_pages(cpu, system, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, [2, 0, 0, 0x4_0000]));
}

/// Issue 9 item 6: under Driver Verifier, MmUnlockPages of an MDL never locked
/// (0xC4/0x7C) or built for nonpaged pool (0xC4/0x7D), and IoFreeMdl of an MDL
/// still mapped (0xC4/0xB8), stop the machine; without Verifier they do not.
#[test]
fn verifier_stops_unlocking_unlocked_mdls_and_freeing_mapped_ones() {
    let verified = || {
        let m = boot(512 * MB);
        m.set_verifier(ntmem_kernel::vf::VerifierFlags::POOL_TRACKING);
        m
    };
    let tag = PoolTag::new(*b"Test");
    let mut expect = [0; 4];
    let m = verified();
    let b = m
        .run(0, |cpu| {
            let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x1000, tag)?.unwrap();
            let mdl = io_allocate_mdl(cpu, block, 0x1000)?.unwrap();
            expect = [0x7C, mdl.0.get(), 0, 0];
            mm_unlock_pages(cpu, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, expect));

    let m = verified();
    let b = m
        .run(0, |cpu| {
            let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x1000, tag)?.unwrap();
            let mdl = io_allocate_mdl(cpu, block, 0x1000)?.unwrap();
            mm_build_mdl_for_nonpaged_pool(cpu, mdl)?;
            expect = [0x7D, mdl.0.get(), u64::from(read_header(cpu, mdl)?.flags.bits()), 0];
            mm_unlock_pages(cpu, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, expect));

    let m = verified();
    let b = m
        .run(0, |cpu| {
            let (_, mdl, _) = mapped_mdl(cpu, 1)?;
            expect = [0xB8, mdl.0.get(), u64::from(read_header(cpu, mdl)?.flags.bits()), 0];
            assert!(read_header(cpu, mdl)?.flags.contains(MdlFlags::MAPPED_TO_SYSTEM_VA));
            io_free_mdl(cpu, mdl)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, expect));

    // Without Verifier the same calls go on, as on Windows.
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x1000, tag)?.unwrap();
        let mdl = io_allocate_mdl(cpu, block, 0x1000)?.unwrap();
        mm_build_mdl_for_nonpaged_pool(cpu, mdl)?;
        io_free_mdl(cpu, mdl)?;
        let (_, mdl, _) = mapped_mdl(cpu, 1)?;
        mm_unlock_pages(cpu, mdl)?;
        io_free_mdl(cpu, mdl)
    })
    .unwrap();
}

/// Issue 9 item 3: MDLs a driver filled with garbage (a StartVa at the top of the
/// address space, PFNs no machine has) get Windows' outcomes, never a panic.
#[test]
fn garbage_mdls_fail_as_windows_fails_them() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x1000, PoolTag::new(*b"Test"))?.unwrap();
        let mdl = io_allocate_mdl(cpu, block, 0x3000)?.unwrap();
        // A buffer that wraps past the top of the address space.
        mm_initialize_mdl(cpu, mdl, Va::new(u64::MAX - 0xFFF), 0x3000)?;
        let r = mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoReadAccess)?;
        assert_eq!(r, Err(NtStatus::ACCESS_VIOLATION));
        // PFNs beyond any RAM: mapping them fails (NULL); unlocking them drops nothing.
        mm_initialize_mdl(cpu, mdl, block, 0x1000)?;
        m.space().write(mdl.pfn_array(), &(u64::MAX - 1).to_le_bytes()).unwrap();
        let flags = Va::new(mdl.0.get() + 0xA);
        m.space().write(flags, &MdlFlags::PAGES_LOCKED.bits().to_le_bytes()).unwrap();
        assert_eq!(mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?, None);
        mm_unlock_pages(cpu, mdl)?;
        io_free_mdl(cpu, mdl)?;
        pool::free(cpu, block, None)
    })
    .unwrap();
}

/// Issue 9 item 3: a page whose 16-bit reference count is full refuses one more
/// lock with STATUS_WORKING_SET_QUOTA instead of overflowing the count.
#[test]
fn a_lock_past_the_reference_count_limit_is_refused() {
    let m = boot(512 * MB);
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x2000, PoolTag::new(*b"Test"))?.unwrap();
        let mdl = io_allocate_mdl(cpu, block, 0x2000)?.unwrap();
        let second = m.space().walk(m.phys(), Va::new(block.get() + 0x1000)).phys.unwrap();
        let pfn = Pfn::new(second.get() >> 12);
        m.phys().update(pfn, |e| e.reference_count = u16::MAX);
        let r = mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::KernelMode, LockOperation::IoReadAccess)?;
        assert_eq!(r, Err(NtStatus::WORKING_SET_QUOTA));
        assert_eq!(read_pfn(cpu, mdl, 0)?, PFN_END, "nothing stays locked");
        let first = m.space().walk(m.phys(), block).phys.unwrap();
        assert_eq!(m.phys().pfn(Pfn::new(first.get() >> 12)).lock_count, 0);
        m.phys().update(pfn, |e| e.reference_count = 1);
        io_free_mdl(cpu, mdl)?;
        pool::free(cpu, block, None)
    })
    .unwrap();
}
