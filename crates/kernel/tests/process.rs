//! User processes (issue 4 item 1) and ProbeForRead / ProbeForWrite (item 3).

use std::sync::Arc;

use ntmem_kernel::ex::pool::NtStatus;
use ntmem_kernel::mm::pfn::PageState;
use ntmem_kernel::mm::probe::{mm_highest_user_address, mm_user_probe_address, probe_for_read, probe_for_write};
use ntmem_kernel::mm::process::{
    ke_stack_attach_process, ke_unstack_detach_process, nt_allocate_virtual_memory, nt_free_virtual_memory,
    nt_protect_virtual_memory, ps_create_process, ps_get_current_process, ps_terminate_process, AllocationType,
    FreeType, PageProtection, Process,
};
use ntmem_kernel::{Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Pfn, Va};

const MB: u64 = 1 << 20;
const RW: PageProtection = PageProtection::ReadWrite;
const BOTH: AllocationType = AllocationType::RESERVE.union(AllocationType::COMMIT);

fn boot(edition: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = 512 * MB;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

fn process(cpu: &Cpu<'_>, name: &str) -> Arc<Process> {
    ps_create_process(cpu, name).unwrap().unwrap()
}

/// The frame behind a user address of `p`.
fn frame_of(cpu: &Cpu<'_>, p: &Arc<Process>, va: Va) -> Pfn {
    let m = cpu.machine();
    let state = ke_stack_attach_process(cpu, p).unwrap();
    let pa = m.space().walk(m.phys(), va).phys.unwrap();
    ke_unstack_detach_process(cpu, state).unwrap();
    pa.pfn(m.profile().arch.page_shift())
}

#[test]
fn user_bounds_come_from_the_layout() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let m = boot(edition);
        m.run(0, |cpu| {
            let layout = &m.profile().layout;
            assert_eq!(mm_highest_user_address(cpu), layout.user_end);
            assert_eq!(mm_user_probe_address(cpu), layout.user_probe_address);
            assert_eq!(mm_user_probe_address(cpu).get(), layout.user_end.get() + 1);
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn allocate_is_zero_filled_page_granular_and_private_to_each_process() {
    let m = boot("ws03sp1-enterprise-x64");
    m.run(0, |cpu| {
        let a = process(cpu, "a.exe");
        let b = process(cpu, "b.exe");
        let (va, size) = nt_allocate_virtual_memory(cpu, &a, None, 5000, BOTH, RW).unwrap();
        assert_eq!(size, 8192);
        assert_eq!(va.get() % 0x10000, 0);
        assert!(m.profile().layout.is_user(va));
        let (vb, _) = nt_allocate_virtual_memory(cpu, &b, Some(va), 4096, BOTH, RW).unwrap();
        assert_eq!(vb, va, "each process has its own user space");
        let mut buf = [0xFFu8; 16];
        a.read(cpu, va, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        a.write(cpu, va, b"process a").unwrap();
        b.write(cpu, va, b"process b").unwrap();
        let mut got = [0u8; 9];
        a.read(cpu, va, &mut got).unwrap();
        assert_eq!(&got, b"process a");
        b.read(cpu, va, &mut got).unwrap();
        assert_eq!(&got, b"process b");
        assert_ne!(frame_of(cpu, &a, va), frame_of(cpu, &b, va));
        // Attach: driver code sees the attached process's pages at the address.
        let state = ke_stack_attach_process(cpu, &a).unwrap();
        assert!(Arc::ptr_eq(&ps_get_current_process(cpu).unwrap(), &a));
        let mut direct = [0u8; 9];
        m.space().read(va, &mut direct).unwrap();
        assert_eq!(&direct, b"process a");
        ke_unstack_detach_process(cpu, state).unwrap();
        assert!(ps_get_current_process(cpu).is_none());
        // Reserving a taken range conflicts.
        assert_eq!(nt_allocate_virtual_memory(cpu, &a, Some(va), 4096, BOTH, RW), Err(NtStatus::CONFLICTING_ADDRESSES));
        Ok(())
    })
    .unwrap();
}

#[test]
fn reserve_then_commit_protect_and_free() {
    let m = boot("ws03sp1-enterprise-x64");
    m.run(0, |cpu| {
        let p = process(cpu, "p.exe");
        let (va, size) = nt_allocate_virtual_memory(cpu, &p, None, 0x10000, AllocationType::RESERVE, RW).unwrap();
        assert_eq!(size, 0x10000);
        assert_eq!(p.read(cpu, va, &mut [0u8; 1]), Err(NtStatus::ACCESS_VIOLATION), "reserved, not committed");
        let page2 = Va::new(va.get() + 0x1000);
        nt_allocate_virtual_memory(cpu, &p, Some(page2), 0x1000, AllocationType::COMMIT, RW).unwrap();
        p.write(cpu, page2, b"hello").unwrap();
        assert_eq!(nt_protect_virtual_memory(cpu, &p, page2, 1, PageProtection::ReadOnly), Ok(RW));
        assert_eq!(p.write(cpu, page2, b"x"), Err(NtStatus::ACCESS_VIOLATION));
        let mut got = [0u8; 5];
        p.read(cpu, page2, &mut got).unwrap();
        assert_eq!(&got, b"hello", "protection changes keep the contents");
        nt_protect_virtual_memory(cpu, &p, page2, 1, PageProtection::NoAccess).unwrap();
        assert_eq!(p.read(cpu, page2, &mut got), Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(nt_protect_virtual_memory(cpu, &p, va, 1, RW), Err(NtStatus::NOT_COMMITTED));
        nt_protect_virtual_memory(cpu, &p, page2, 1, RW).unwrap();
        let frame = frame_of(cpu, &p, page2);
        nt_free_virtual_memory(cpu, &p, page2, 0x1000, FreeType::Decommit).unwrap();
        assert_ne!(m.phys().pfn(frame).state, PageState::Active, "decommit frees the frame");
        assert_eq!(nt_free_virtual_memory(cpu, &p, page2, 1, FreeType::Release), Err(NtStatus::INVALID_PARAMETER));
        nt_free_virtual_memory(cpu, &p, va, 0, FreeType::Release).unwrap();
        assert_eq!(nt_free_virtual_memory(cpu, &p, va, 0, FreeType::Release), Err(NtStatus::MEMORY_NOT_ALLOCATED));
        Ok(())
    })
    .unwrap();
}

#[test]
fn exit_tears_everything_down() {
    let m = boot("ws03sp1-enterprise-x64");
    m.run(0, |cpu| {
        let p = process(cpu, "p.exe");
        let root = p.root();
        let (va, _) = nt_allocate_virtual_memory(cpu, &p, None, 0x3000, BOTH, RW).unwrap();
        p.write(cpu, va, b"bye").unwrap();
        let frame = frame_of(cpu, &p, va);
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        ps_terminate_process(cpu, &p)?;
        assert!(ps_get_current_process(cpu).is_none(), "an exited process is no longer current");
        ke_unstack_detach_process(cpu, state).unwrap();
        assert!(p.exited());
        assert_ne!(m.phys().pfn(frame).state, PageState::Active);
        assert_ne!(m.phys().pfn(root).state, PageState::Active, "page tables freed");
        assert!(m.processes().list().is_empty());
        assert_eq!(nt_allocate_virtual_memory(cpu, &p, None, 1, BOTH, RW), Err(NtStatus::PROCESS_IS_TERMINATING));
        Ok(())
    })
    .unwrap();
}

#[test]
fn probes_check_length_alignment_range_and_writability() {
    let m = boot("ws03sp1-enterprise-x64");
    m.run(0, |cpu| {
        let p = process(cpu, "p.exe");
        let (va, _) = nt_allocate_virtual_memory(cpu, &p, None, 0x2000, BOTH, RW).unwrap();
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        let system = m.profile().layout.system_start;
        let probe = mm_user_probe_address(cpu).get();
        // Length 0: nothing is checked.
        assert_eq!(probe_for_read(cpu, system, 0, 8), Ok(()));
        assert_eq!(probe_for_write(cpu, Va::new(3), 0, 4), Ok(()));
        // Misaligned start.
        assert_eq!(probe_for_read(cpu, Va::new(va.get() + 2), 4, 4), Err(NtStatus::DATATYPE_MISALIGNMENT));
        assert_eq!(probe_for_write(cpu, Va::new(va.get() + 8), 4, 16), Err(NtStatus::DATATYPE_MISALIGNMENT));
        // Undocumented alignments are masked as the free kernel masks them (Alignment - 1).
        assert_eq!(probe_for_read(cpu, Va::new(va.get() + 2), 4, 3), Err(NtStatus::DATATYPE_MISALIGNMENT));
        assert_eq!(probe_for_read(cpu, Va::new(va.get() + 8), 4, 3), Ok(()));
        assert_eq!(probe_for_read(cpu, va, 4, 0), Err(NtStatus::DATATYPE_MISALIGNMENT), "alignment 0");
        // A system address in a user request.
        assert_eq!(probe_for_read(cpu, system, 16, 1), Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(probe_for_read(cpu, Va::new(probe - 8), 16, 1), Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(probe_for_read(cpu, Va::new(probe - 16), 16, 1), Ok(()));
        assert_eq!(probe_for_read(cpu, Va::new(u64::MAX - 3), 16, 1), Err(NtStatus::ACCESS_VIOLATION), "wraps");
        // ProbeForRead does not touch: an uncommitted user range passes.
        assert_eq!(probe_for_read(cpu, Va::new(0x7000_0000), 64, 8), Ok(()));
        // ProbeForWrite touches every page for write.
        assert_eq!(probe_for_write(cpu, va, 0x2000, 8), Ok(()));
        assert_eq!(probe_for_write(cpu, va, 0x2001, 1), Err(NtStatus::ACCESS_VIOLATION), "runs into reserved space");
        ke_unstack_detach_process(cpu, state).unwrap();
        nt_protect_virtual_memory(cpu, &p, Va::new(va.get() + 0x1000), 1, PageProtection::ReadOnly).unwrap();
        let state = ke_stack_attach_process(cpu, &p).unwrap();
        assert_eq!(probe_for_write(cpu, va, 0x2000, 8), Err(NtStatus::ACCESS_VIOLATION));
        assert_eq!(probe_for_read(cpu, va, 0x2000, 8), Ok(()));
        ke_unstack_detach_process(cpu, state).unwrap();
        Ok(())
    })
    .unwrap();
}

/// Issue 9 item 2: sizes and bases whose sum wraps, or larger than user space,
/// fail with STATUS_INVALID_PARAMETER instead of overflowing.
#[test]
fn sizes_that_wrap_are_invalid_parameters() {
    for edition in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let m = boot(edition);
        m.run(0, |cpu| {
            let p = process(cpu, "app.exe");
            for (base, size) in
                [(None, u64::MAX), (None, u64::MAX - 0xFFF), (Some(Va::new(u64::MAX - 0xFFFF)), 0x2_0000)]
            {
                let r = nt_allocate_virtual_memory(cpu, &p, base, size, BOTH, RW);
                assert_eq!(r, Err(NtStatus::INVALID_PARAMETER), "{edition} {base:?} {size:#x}");
            }
            let r = nt_allocate_virtual_memory(
                cpu,
                &p,
                Some(Va::new(u64::MAX - 0xFFF)),
                0x2000,
                AllocationType::COMMIT,
                RW,
            );
            assert_eq!(r, Err(NtStatus::INVALID_PARAMETER), "{edition}: commit range wraps");
            Ok(())
        })
        .unwrap();
    }
}

/// A commit RAM cannot back (4,000,000,000 bytes on a 512 MB x64 machine, whose
/// user space would hold it) is all or nothing: STATUS_NO_MEMORY, the frames
/// it took given back and the region it reserved gone (the same range can be
/// reserved again), and the process is torn down without stopping the machine.
#[test]
fn a_commit_ram_cannot_back_takes_nothing() {
    let m = boot("ws03sp1-enterprise-x64");
    m.run(0, |cpu| {
        let p = process(cpu, "huge.exe");
        // Above 4 GB: the range must not cross KUSER_SHARED_DATA's user view (0x7FFE0000).
        let base = Some(Va::new(0x1_0000_0000));
        let free = m.phys().free_pages();
        assert_eq!(nt_allocate_virtual_memory(cpu, &p, base, 4_000_000_000, BOTH, RW), Err(NtStatus::NO_MEMORY));
        // Page tables the attempt built may stay with the process (at most one
        // per 2 MB of the range, and the levels above).
        assert!(free - m.phys().free_pages() <= 4_000_000_000 / (2 * MB) + 8, "{free} {}", m.phys().free_pages());
        let (va, size) = nt_allocate_virtual_memory(cpu, &p, base, 64 * MB, BOTH, RW).unwrap();
        assert_eq!((va, size), (Va::new(0x1_0000_0000), 64 * MB));
        ps_terminate_process(cpu, &p)
    })
    .unwrap();
}

/// What the host shows at `va`: `Some(byte)` when the page is mapped to RAM (its first
/// byte), `None` when nothing is mapped there (`mincore`: not resident).
fn host_view(cpu: &Cpu<'_>, va: Va) -> Option<u8> {
    let addr = cpu.machine().space().host_addr(va);
    let mut resident = 0u8;
    // SAFETY: `addr` is page-aligned inside the machine's reservation; mincore only
    // reports residency into `resident` (one page).
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, 1, &mut resident) };
    assert_eq!(r, 0, "mincore");
    // SAFETY: a resident page of the reservation is a mapped RAM page: readable.
    (resident & 1 != 0).then(|| unsafe { std::ptr::read_volatile(addr as *const u8) })
}

#[derive(Clone, Debug)]
enum Op {
    Attach(usize),
    Detach,
    Allocate(usize, usize, u8),
    Write(usize, usize, u8),
    Free(usize, usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0..3usize).prop_map(Op::Attach),
        Just(Op::Detach),
        (0..3usize, 0..4usize, 1..255u8).prop_map(|(p, s, b)| Op::Allocate(p, s, b)),
        (0..3usize, 0..4usize, 1..255u8).prop_map(|(p, s, b)| Op::Write(p, s, b)),
        (0..3usize, 0..4usize).prop_map(|(p, s)| Op::Free(p, s)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Switching between processes (views of their pages kept and reused) shows, in
    /// the host, exactly the current process's pages with their contents — never a
    /// page of another process or one freed — against a map per process.
    #[test]
    fn the_host_shows_exactly_the_current_processs_pages(ops in proptest::collection::vec(op(), 1..40)) {
        let m = boot("ws03sp1-enterprise-x64");
        m.run(0, |cpu| {
            let processes: Vec<_> = (0..3).map(|i| process(cpu, &format!("p{i}.exe"))).collect();
            let slot = |s: usize| Va::new(0x1000_0000 + s as u64 * 0x1_0000);
            let mut model = [[None::<u8>; 4]; 3];
            let mut attached: Option<(usize, _)> = None;
            for op in &ops {
                match *op {
                    Op::Attach(p) => {
                        if let Some((_, state)) = attached.take() {
                            ke_unstack_detach_process(cpu, state).unwrap();
                        }
                        attached = Some((p, ke_stack_attach_process(cpu, &processes[p]).unwrap()));
                    }
                    Op::Detach => {
                        if let Some((_, state)) = attached.take() {
                            ke_unstack_detach_process(cpu, state).unwrap();
                        }
                    }
                    Op::Allocate(p, s, b) if model[p][s].is_none() => {
                        nt_allocate_virtual_memory(cpu, &processes[p], Some(slot(s)), 4096, BOTH, RW).unwrap();
                        processes[p].write(cpu, slot(s), &[b; 4096]).unwrap();
                        model[p][s] = Some(b);
                    }
                    Op::Write(p, s, b) if model[p][s].is_some() => {
                        processes[p].write(cpu, slot(s), &[b; 4096]).unwrap();
                        model[p][s] = Some(b);
                    }
                    Op::Free(p, s) if model[p][s].is_some() => {
                        nt_free_virtual_memory(cpu, &processes[p], slot(s), 0, FreeType::Release).unwrap();
                        model[p][s] = None;
                    }
                    _ => {}
                }
                let current = attached.as_ref().map(|(p, _)| *p);
                let shown = current.map_or([None; 4], |p| model[p]);
                for (s, expected) in shown.into_iter().enumerate() {
                    assert_eq!(host_view(cpu, slot(s)), expected, "slot {s} after {op:?}, process {current:?}");
                }
            }
            if let Some((_, state)) = attached.take() {
                ke_unstack_detach_process(cpu, state).unwrap();
            }
            Ok(())
        })
        .unwrap();
    }
}
