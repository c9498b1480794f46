//! Machine-level tests: boot, aliasing, page-table walks on every architecture, and
//! each bugcheck of the foundation with its parameters.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use ntmem_kernel::ke::watchdog::WatchdogLimits;
use ntmem_kernel::mm::frames::FrameRequest;
use ntmem_kernel::mm::pfn::PageUse;
use ntmem_kernel::mm::space::Access;
use ntmem_kernel::vf::VerifierFlags;
use ntmem_kernel::{BugCheckCode, Irql, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};

fn boot(edition: &str, ram: u64, boot: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse(boot).unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

/// Maps `pages` fresh frames at a new run of system PTEs; returns the address.
fn map_fresh(m: &Machine, pages: u64) -> (Va, ntmem_kernel::mm::frames::Frames) {
    let va = m.system_ptes().reserve(pages).unwrap();
    let frames = m.phys().allocate(&FrameRequest::new(pages, PageUse::NonPagedPool)).unwrap();
    m.space().map(m.phys(), va, &frames, Access::ReadWrite).unwrap();
    (va, frames)
}

#[test]
fn one_frame_at_two_system_addresses_aliases() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let (a, frames) = map_fresh(&m, 1);
    let b = m.system_ptes().reserve(1).unwrap();
    m.space().map(m.phys(), b, &frames, Access::ReadWrite).unwrap();
    assert_ne!(a, b);
    m.run(0, |_| {
        m.space().write(Va::new(a.get() + 0x10), b"written through a").unwrap();
        let mut buf = [0u8; 17];
        m.space().read(Va::new(b.get() + 0x10), &mut buf).unwrap();
        assert_eq!(&buf, b"written through a");
        Ok(())
    })
    .unwrap();
    assert_eq!(m.phys().pfn(frames.first()).share_count, 2);
}

#[test]
fn page_table_walks_find_the_allocated_frame_on_every_architecture() {
    for (edition, ram, opts, levels) in [
        ("xp-professional", 512 * MB, "", 2),
        ("ws03sp1-enterprise", 8 * GB, "/PAE", 3),
        ("ws03sp1-enterprise-x64", 8 * GB, "", 4),
        ("xp-64bit-ia64", 4 * GB, "", 3),
    ] {
        let m = boot(edition, ram, opts);
        let (va, frames) = map_fresh(&m, 3);
        let page = m.profile().arch.page_shift().page_size();
        for i in 0..3 {
            let at = Va::new(va.get() + i * page + 0x123);
            let walk = m.space().walk(m.phys(), at);
            assert_eq!(walk.steps.len(), levels, "{edition}");
            let expected = frames.first().add(i).addr(m.profile().arch.page_shift()).get() + 0x123;
            assert_eq!(walk.phys.map(|p| p.get()), Some(expected), "{edition} page {i}");
        }
        let unmapped = m.space().walk(m.phys(), Va::new(va.get() + 3 * page));
        assert_eq!(unmapped.phys, None, "{edition}");
        assert_eq!(m.space().unmap(m.phys(), va, 3).unwrap().len(), 3);
        assert_eq!(m.space().walk(m.phys(), va).phys, None);
    }
}

#[test]
fn touching_unmapped_system_space_is_page_fault_in_nonpaged_area() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let va = m.system_ptes().reserve(4).unwrap();
    let b = m
        .run(0, |_| {
            let mut buf = [0u8; 8];
            m.space().read(Va::new(va.get() + 0x40), &mut buf).unwrap();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA);
    assert_eq!(b.parameters[0], va.get() + 0x40);
    assert_eq!(b.parameters[1], 0, "a read");
    assert_ne!(b.parameters[2], 0, "the faulting instruction");
    assert_eq!(b.parameters[3], 0);
    assert!(b.analysis().contains("PAGE_FAULT_IN_NONPAGED_AREA (50)"));
    let again = m.run(1, |_| Ok(())).unwrap_err();
    assert_eq!(again, b, "a stopped machine stays stopped");
}

#[test]
fn a_write_at_dispatch_level_to_unmapped_memory_is_irql_not_less_or_equal() {
    let m = boot("xp-professional", 512 * MB, "");
    let va = m.system_ptes().reserve(1).unwrap();
    let b = m
        .run(1, |cpu| {
            cpu.raise_irql(Irql::DISPATCH)?;
            m.space().write(va, &[1, 2, 3, 4]).unwrap();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&b.parameters[..3], &[va.get(), 2, 1]);
}

#[test]
fn kernel_stack_overflow_is_a_double_fault() {
    fn recurse(depth: u64) -> u64 {
        let frame = [depth; 64];
        std::hint::black_box(&frame);
        if depth == 0 {
            0
        } else {
            recurse(depth - 1) + std::hint::black_box(frame[3])
        }
    }
    for edition in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let m = boot(edition, 512 * MB, "");
        let b = m.run(0, |_| Ok(recurse(1_000_000))).unwrap_err();
        assert_eq!(b.code, BugCheckCode::UNEXPECTED_KERNEL_MODE_TRAP, "{edition}");
        assert_eq!(b.parameters, [8, 0, 0, 0]);
    }
}

#[test]
fn stack_limits_are_the_architectures_kernel_stack() {
    for (edition, size) in [("xp-professional", 12 * 1024), ("ws03sp1-enterprise-x64", 24 * 1024)] {
        let m = boot(edition, 512 * MB, "");
        m.run(0, |cpu| {
            let (low, high) = cpu.stack_limits();
            assert_eq!(high - low, size, "{edition}");
            let remaining = cpu.remaining_stack();
            assert!(remaining > 0 && remaining < size, "{remaining}");
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn raising_irql_downwards_is_irql_not_greater_or_equal() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let b = m
        .run(0, |cpu| {
            cpu.raise_irql(Irql::DISPATCH)?;
            cpu.raise_irql(Irql::APC)?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_GREATER_OR_EQUAL);
    assert_eq!(b.parameters, [2, 1, 0, 0]);
}

#[test]
fn lowering_irql_upwards_is_irql_not_less_or_equal() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let b = m.run(0, |cpu| cpu.lower_irql(Irql::DISPATCH)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(b.parameters, [2, 0, 0, 0]);
}

#[test]
fn spin_locks_raise_to_dispatch_and_catch_misuse() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let lock = AtomicUsize::new(0);
    m.run(0, |cpu| {
        let old = cpu.acquire_spin_lock(&lock)?;
        assert_eq!(cpu.irql(), Irql::DISPATCH);
        assert_eq!(old, Irql::PASSIVE);
        cpu.release_spin_lock(&lock, old)?;
        assert_eq!(cpu.irql(), Irql::PASSIVE);
        Ok(())
    })
    .unwrap();
}

/// Takes `lock` twice on processor 1 under the watchdog (limits 0.2 s).
fn take_twice(m: &Machine, lock: &AtomicUsize) -> ntmem_kernel::BugCheck {
    m.set_watchdog(WatchdogLimits { timeout: Duration::from_millis(200), dpc_period: Duration::from_millis(200) });
    m.run_driver(1, |cpu| {
        cpu.acquire_spin_lock(lock)?;
        cpu.acquire_spin_lock(lock)?;
        Ok(())
    })
    .unwrap_err()
}

#[test]
fn a_spin_lock_taken_twice_deadlocks_until_the_dpc_watchdog_0x133() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let lock = AtomicUsize::new(0);
    let b = take_twice(&m, &lock);
    assert_eq!(b.code, BugCheckCode::DPC_WATCHDOG_VIOLATION, "{b}");
    // Cumulative, the period in 15.625 ms ticks (0.2 s: 12), no triage block.
    assert_eq!(b.parameters, [1, 12, 0, 0]);
}

#[test]
fn under_verifier_releasing_a_spin_lock_below_dispatch_level_is_0xc4_0x32() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    m.set_verifier(VerifierFlags::FORCE_IRQL_CHECKING);
    let lock = AtomicUsize::new(0);
    let b = m
        .run(0, |cpu| {
            cpu.acquire_spin_lock(&lock)?;
            cpu.lower_irql(Irql::PASSIVE)?;
            cpu.release_spin_lock(&lock, Irql::PASSIVE)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::DRIVER_VERIFIER_DETECTED_VIOLATION, "{b}");
    assert_eq!(b.parameters, [0x32, 0, &lock as *const AtomicUsize as u64, 0]);
}

#[test]
fn a_garbage_lock_word_spins_until_the_dpc_watchdog() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    m.set_verifier(VerifierFlags::DEADLOCK_DETECTION);
    let lock = AtomicUsize::new(0xCCCC_CCCC_CCCC_CCCC);
    m.set_watchdog(WatchdogLimits { timeout: Duration::from_millis(200), dpc_period: Duration::from_millis(200) });
    let b = m.run_driver(0, |cpu| cpu.acquire_spin_lock(&lock)).unwrap_err();
    assert_eq!(b.code, BugCheckCode::DPC_WATCHDOG_VIOLATION, "{b}");
}

#[test]
fn two_processors_run_at_once_with_their_own_irql() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB, "");
    let lock = AtomicUsize::new(0);
    let counter = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for cpu_number in 0..2 {
            let (m, lock, counter) = (&m, &lock, &counter);
            s.spawn(move || {
                m.run(cpu_number, |cpu| {
                    for _ in 0..10_000 {
                        let old = cpu.acquire_spin_lock(lock)?;
                        let v = counter.load(std::sync::atomic::Ordering::Relaxed);
                        counter.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                        cpu.release_spin_lock(lock, old)?;
                    }
                    Ok(())
                })
                .unwrap();
            });
        }
    });
    assert_eq!(counter.into_inner(), 20_000);
}

#[test]
fn machines_in_one_process_relocate_when_the_real_range_is_taken() {
    let a = boot("xp-professional", 256 * MB, "");
    let b = boot("xp-professional", 256 * MB, "");
    assert!(a.space().relocation() != b.space().relocation());
    assert!(a.space().relocation() != 0 || b.space().relocation() != 0, "only one can sit at the real addresses");
    for m in [&a, &b] {
        let (va, _) = map_fresh(m, 1);
        m.run(0, |_| m.space().write(va, b"alive").map_err(|e| panic!("{e}"))).unwrap();
    }
}

#[test]
fn a_terabyte_machine_boots_sparse() {
    let m = boot("ws03sp1-enterprise-x64", 1 << 40, "");
    let s = m.summary();
    assert_eq!(s.ram, 1 << 40);
    assert!(s.free_pages > (1u64 << 40) / 4096 - 1_000_000);
    assert!(s.largest_free_run > 200_000_000, "{}", s.largest_free_run);
    assert!(m.phys().ram().resident_bytes() < 4 * MB, "{}", m.phys().ram().resident_bytes());
}
