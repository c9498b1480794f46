use super::*;
use crate::testing::{handler, in_child, peek, poke};
use crate::{call_guarded, page_size, Placement, Prot, Ram, Reservation};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn reservation(pages: usize) -> Reservation {
    Reservation::new(pages * page_size(), Placement::Anywhere { align: page_size() }).unwrap()
}

#[test]
fn registration_lookup_and_removal() {
    let res = reservation(8);
    let page = page_size();
    let range = register_fault_range(res.base() + page, 2 * page, handler(|_| FaultAction::NotMine));
    assert_eq!(registered_range(res.base() + page), Some((res.base() + page, 2 * page)));
    assert_eq!(registered_range(res.base() + 3 * page - 1), Some((res.base() + page, 2 * page)));
    assert_eq!(registered_range(res.base()), None);
    assert_eq!(registered_range(res.base() + 3 * page), None);
    let overlap = try_register_fault_range(res.base(), 2 * page, handler(|_| FaultAction::NotMine));
    assert!(matches!(overlap, Err(HostError::FaultRangeOverlap { .. })));
    let empty = try_register_fault_range(res.base(), 0, handler(|_| FaultAction::NotMine));
    assert!(matches!(empty, Err(HostError::OutOfRange { .. })));
    drop(range);
    assert_eq!(registered_range(res.base() + page), None);
    // The freed range can be claimed again.
    let again = register_fault_range(res.base(), 8 * page, handler(|_| FaultAction::NotMine));
    assert_eq!(registered_range(res.base() + page), Some((res.base(), 8 * page)));
    drop(again);
}

#[test]
fn retry_after_paging_in_reads_the_ram() {
    let page = page_size();
    let ram = Arc::new(Ram::new(4 * page as u64).unwrap());
    ram.store_u64(8, 0x0123_4567_89ab_cdef);
    let res = Arc::new(reservation(4));
    let faults = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Vec::with_capacity(8)));
    let range = register_fault_range(res.base(), res.len(), {
        let (ram, res, faults, last) = (ram.clone(), res.clone(), faults.clone(), last.clone());
        handler(move |f| {
            faults.fetch_add(1, Ordering::SeqCst);
            last.lock().unwrap().push(*f);
            let offset = (f.addr - res.base()) & !(page_size() - 1);
            match res.map_ram(offset, &ram, offset as u64, page_size(), Prot::ReadWrite) {
                Ok(()) => FaultAction::Retry,
                Err(_) => FaultAction::NotMine,
            }
        })
    });
    // Outside any guarded call: Retry needs no frame.
    assert_eq!(peek(res.base() + 8), 0x0123_4567_89ab_cdef);
    assert_eq!(peek(res.base() + 16), 0);
    assert_eq!(faults.load(Ordering::SeqCst), 1);
    // Inside one, a write fault pages in and lands in RAM.
    call_guarded(None, None, || poke(res.base() + 2 * page + 24, 99)).unwrap();
    assert_eq!(ram.load_u64(2 * page as u64 + 24), 99);
    assert_eq!(faults.load(Ordering::SeqCst), 2);
    let seen = last.lock().unwrap().clone();
    assert_eq!(seen[0].addr, res.base() + 8);
    assert_eq!(seen[0].access, Access::Read);
    assert_eq!(seen[1].addr, res.base() + 2 * page + 24);
    assert_eq!(seen[1].access, Access::Write);
    assert_ne!(seen[1].ip, 0);
    drop(range);
}

#[test]
fn removal_waits_for_a_running_handler() {
    let page = page_size();
    let ram = Arc::new(Ram::new(page as u64).unwrap());
    ram.store_u64(0, 5);
    let res = Arc::new(reservation(1));
    let entered = Arc::new(AtomicBool::new(false));
    let range = register_fault_range(res.base(), page, {
        let (ram, res, entered) = (ram.clone(), res.clone(), entered.clone());
        handler(move |_| {
            entered.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            res.map_ram(0, &ram, 0, page_size(), Prot::Read).unwrap();
            FaultAction::Retry
        })
    });
    let reader = {
        let res = res.clone();
        std::thread::spawn(move || peek(res.base()))
    };
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let start = Instant::now();
    drop(range);
    assert!(start.elapsed() >= Duration::from_millis(50), "removal did not wait");
    assert_eq!(reader.join().unwrap(), 5);
}

#[test]
fn unclaimed_fault_outside_guards_kills_like_before() {
    let res = reservation(1);
    install_handler();
    let (status, _) = in_child(|| {
        peek(res.base());
    });
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
}

#[test]
fn escape_outside_guards_reports_and_aborts() {
    let res = reservation(1);
    let esc = Escape { kind: 0x50, words: [0; 7] };
    let _range = register_fault_range(res.base(), res.len(), handler(move |_| FaultAction::Escape(esc)));
    let (status, err) = in_child(|| poke(res.base() + 0x10, 1));
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGABRT);
    let addr = format!("{:#018x}", res.base() + 0x10);
    assert!(err.contains("outside any guarded call") && err.contains(&addr), "{err}");
}

#[test]
fn many_threads_register_and_fault_at_once() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let res = reservation(2);
                    let _range = register_fault_range(
                        res.base(),
                        res.len(),
                        handler(move |f| {
                            FaultAction::Escape(Escape { kind: t, words: [f.addr as u64, i, 0, 0, 0, 0, 0] })
                        }),
                    );
                    let addr = res.base() + page_size() + 8 * i as usize;
                    let got = call_guarded(None, None, || peek(addr));
                    assert_eq!(got, Err(Escape { kind: t, words: [addr as u64, i, 0, 0, 0, 0, 0] }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
