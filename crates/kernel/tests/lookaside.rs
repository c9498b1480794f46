//! Lookaside lists (issue 3, item 7): fields as a driver reads them, hits and
//! misses, custom routines, delete, and depth following demand on simulated time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ntmem_kernel::bugcheck::BugCheckCode;
use ntmem_kernel::ex::lookaside::{LookasideInfo, Routines, INITIAL_DEPTH, MAXIMUM_DEPTH};
use ntmem_kernel::ex::pool::{self, NtStatus, PoolTag, PoolType, Raise};
use ntmem_kernel::{BugCheck, Cpu, Machine};
use ntmem_machine::{MachineConfig, Va};

const LCIN: PoolTag = PoolTag(u32::from_le_bytes(*b"NicL"));

fn machine() -> Machine {
    Machine::boot(MachineConfig::default().build().unwrap()).unwrap()
}

/// A list head in nonpaged pool, as a driver's device extension would hold it.
fn head(cpu: &Cpu<'_>) -> Va {
    pool::allocate(cpu, PoolType::NonPagedPool, 0x80, PoolTag(u32::from_le_bytes(*b"Head"))).unwrap().unwrap()
}

#[test]
fn a_new_list_reads_as_windows_initialises_it() {
    let m = machine();
    m.run(0, |cpu| {
        let h = head(cpu);
        m.lookasides().initialize(cpu, h, PoolType::NonPagedPool, 1514, LCIN, Routines::default()).unwrap();
        let info = m.lookasides().info(cpu, h).unwrap();
        assert_eq!(
            info,
            LookasideInfo {
                current_depth: 0,
                depth: INITIAL_DEPTH,
                maximum_depth: MAXIMUM_DEPTH,
                total_allocates: 0,
                allocate_misses: 0,
                total_frees: 0,
                free_misses: 0,
                pool_type: 0,
                tag: LCIN.0,
                size: 1514,
            }
        );
        let mut raw = [0u8; 2];
        m.space().read(Va::new(h.get() + 0x10), &mut raw).unwrap();
        assert_eq!(u16::from_le_bytes(raw), 4, "Depth at offset 0x10");
        Ok(())
    })
    .unwrap();
}

#[test]
fn entries_are_reused_up_to_depth_and_the_rest_go_back_to_pool() {
    let m = machine();
    m.run(0, |cpu| {
        let h = head(cpu);
        let l = m.lookasides();
        l.initialize(cpu, h, PoolType::NonPagedPool, 200, LCIN, Routines::default()).unwrap();
        let entries: Vec<Va> = (0..6).map(|_| l.allocate(cpu, h).unwrap().unwrap()).collect();
        for &e in &entries {
            l.free(cpu, h, e)?;
        }
        let info = l.info(cpu, h).unwrap();
        assert_eq!((info.total_allocates, info.allocate_misses), (6, 6));
        assert_eq!((info.total_frees, info.free_misses, info.current_depth), (6, 2, 4));
        let again = l.allocate(cpu, h)?.unwrap();
        assert_eq!(again, entries[3], "last in, first out");
        assert_eq!(l.info(cpu, h).unwrap().allocate_misses, 6, "a hit");
        let row = |tag: PoolTag| m.pool().snapshot().into_iter().find(|r| r.tag == tag).unwrap();
        assert_eq!(row(LCIN).diff, 4, "two entries went back to pool, one is in use, three cached");
        l.free(cpu, h, again)?;
        l.delete(cpu, h)?;
        assert_eq!(row(LCIN).diff, 0, "delete frees what the list holds");
        Ok(())
    })
    .unwrap();
}

#[test]
fn custom_routines_are_called_on_misses() {
    let m = machine();
    let calls = Arc::new(AtomicU64::new(0));
    let (a, f) = (calls.clone(), calls.clone());
    let routines = Routines {
        allocate: Some(Arc::new(
            move |cpu: &Cpu<'_>, t: PoolType, size: u64, tag: PoolTag| -> Result<Option<Va>, BugCheck> {
                a.fetch_add(1, Ordering::Relaxed);
                pool::allocate(cpu, t, size, tag)
            },
        )),
        free: Some(Arc::new(move |cpu: &Cpu<'_>, va: Va| -> Result<(), BugCheck> {
            f.fetch_add(100, Ordering::Relaxed);
            pool::free(cpu, va, None)
        })),
    };
    m.run(0, |cpu| {
        let h = head(cpu);
        m.lookasides().initialize(cpu, h, PoolType::NonPagedPool, 64, LCIN, routines).unwrap();
        let e = m.lookasides().allocate(cpu, h)?.unwrap();
        m.lookasides().free(cpu, h, e)?;
        m.lookasides().delete(cpu, h)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 101);
}

#[test]
fn depth_grows_under_demand_and_shrinks_when_idle() {
    let m = machine();
    m.run(0, |cpu| {
        let h = head(cpu);
        let l = m.lookasides();
        l.initialize(cpu, h, PoolType::NonPagedPool, 128, LCIN, Routines::default()).unwrap();
        let mut held = Vec::new();
        for _ in 0..10 {
            for _ in 0..200 {
                held.push(l.allocate(cpu, h)?.unwrap());
            }
            for e in held.drain(..) {
                l.free(cpu, h, e)?;
            }
            cpu.advance_time(2000);
        }
        let busy = l.info(cpu, h).unwrap().depth;
        assert!(busy > 100, "depth {busy} after ten busy seconds");
        cpu.advance_time(60_000);
        assert_eq!(l.info(cpu, h).unwrap().depth, INITIAL_DEPTH, "idle lists shrink back");
        l.delete(cpu, h)
    })
    .unwrap();
}

#[test]
fn heads_must_be_aligned_as_slist_headers_are() {
    let m = machine();
    m.run(0, |cpu| {
        let h = head(cpu);
        let l = m.lookasides();
        for off in [8, 4, 1] {
            let r = l.initialize(cpu, Va::new(h.get() + off), PoolType::NonPagedPool, 64, LCIN, Routines::default());
            assert_eq!(r, Err(Raise(NtStatus(0x8000_0002))), "+{off}: STATUS_DATATYPE_MISALIGNMENT");
        }
        assert_eq!(l.info(cpu, Va::new(h.get() + 8)), None);
        pool::free(cpu, h, None)
    })
    .unwrap();
    let b = m.run(0, |cpu| m.lookasides().allocate(cpu, Va::new(head(cpu).get() + 8)).map(|_| ())).unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED, [0xC000_0005, 0, 0, u64::MAX]));
}

#[test]
fn a_corrupted_list_head_stops_the_machine_as_the_pop_would() {
    let m = machine();
    let b = m
        .run(0, |cpu| {
            let h = head(cpu);
            m.lookasides().initialize(cpu, h, PoolType::NonPagedPool, 64, LCIN, Routines::default()).unwrap();
            let e = m.lookasides().allocate(cpu, h)?.unwrap();
            m.lookasides().free(cpu, h, e)?;
            // The driver scribbles over the SLIST_HEADER's entry pointer: an address
            // outside the machine.
            m.space().write(Va::new(h.get() + 8), &0x8000_0000_0000_0001u64.to_le_bytes()).unwrap();
            m.lookasides().allocate(cpu, h).map(|_| ())
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [0x8000_0000_0000_0000, 0, 0, 0]));
}

/// Issue 9 item 2: a `LOOKASIDE_LIST_EX` is 0x60 bytes; initialising one writes
/// nothing past it (it wrote 0x80 bytes, zeroing the caller's next 32).
#[test]
fn initialising_writes_only_the_0x60_bytes_of_lookaside_list_ex() {
    let m = machine();
    m.run(0, |cpu| {
        let block = pool::allocate(cpu, PoolType::NonPagedPool, 0x80, PoolTag(u32::from_le_bytes(*b"Head")))?.unwrap();
        m.space().fill(block, 0x80, 0xA5).unwrap();
        m.lookasides().initialize(cpu, block, PoolType::PagedPool, 64, LCIN, Routines::default()).unwrap();
        let mut tail = [0u8; 0x20];
        m.space().read(Va::new(block.get() + 0x60), &mut tail).unwrap();
        assert_eq!(tail, [0xA5; 0x20], "the caller's bytes after the list are untouched");
        pool::free(cpu, block, None)
    })
    .unwrap();
}

/// Issue 9 item 3: freeing NULL or a pointer outside the machine to a list stops
/// the machine as the push's write would, instead of panicking: the access
/// violation no handler takes (0x8E).
#[test]
fn freeing_a_wild_entry_stops_as_the_write_would() {
    let m = machine();
    let b = m
        .run(0, |cpu| {
            let h = head(cpu);
            m.lookasides().initialize(cpu, h, PoolType::NonPagedPool, 64, LCIN, Routines::default()).unwrap();
            m.lookasides().free(cpu, h, Va::new(0))
        })
        .unwrap_err();
    // Parameter 2 is the faulting IP: 0 when NULL lies outside the machine's space
    // (refused before the touch), the touching instruction when a relocated
    // layout (tests booting machines in parallel) maps something there.
    assert_eq!(b.code, BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED);
    assert_eq!((b.parameters[0], b.parameters[2], b.parameters[3]), (0xC000_0005, 0, 0));

    let m = machine();
    let wild = Va::new(0xDEAD_BEEF_0000_0000);
    let b = m
        .run(0, |cpu| {
            let h = head(cpu);
            m.lookasides().initialize(cpu, h, PoolType::NonPagedPool, 64, LCIN, Routines::default()).unwrap();
            m.lookasides().free(cpu, h, wild)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters, [0xC000_0005, 0, 0, 0]);
}

/// Simulated time can advance by centuries in one step: once the scans change
/// nothing (idle lists at their floor), the rest are skipped, and the lists still
/// answer as before; new demand after the jump is seen by the next scan.
#[test]
fn a_huge_advance_of_simulated_time_skips_idle_scans() {
    let m = machine();
    m.run(0, |cpu| {
        let h = head(cpu);
        let l = m.lookasides();
        l.initialize(cpu, h, PoolType::NonPagedPool, 128, LCIN, Routines::default()).unwrap();
        cpu.advance_time(900_000_000_000_000);
        assert_eq!(l.info(cpu, h).unwrap().depth, INITIAL_DEPTH);
        let mut held = Vec::new();
        for _ in 0..3 {
            for _ in 0..200 {
                held.push(l.allocate(cpu, h)?.unwrap());
            }
            for e in held.drain(..) {
                l.free(cpu, h, e)?;
            }
            cpu.advance_time(2000);
        }
        assert!(l.info(cpu, h).unwrap().depth > INITIAL_DEPTH, "demand after the jump still deepens the list");
        l.delete(cpu, h)
    })
    .unwrap();
}
