use super::*;
use crate::testing::{handler, peek, poke, TestStack};
use crate::{register_fault_range, Access, Placement, Reservation};
use std::hint::black_box;

fn esc(kind: u32, w0: u64) -> Escape {
    Escape { kind, words: [w0, 0, 0, 0, 0, 0, 0] }
}

#[test]
fn jump_buffer_is_big_enough() {
    // SAFETY: a pure query.
    let size = unsafe { ntmem_jmpbuf_size() };
    assert!(size > 0 && size <= JMPBUF_BYTES, "sigjmp_buf is {size} bytes");
}

#[test]
fn returns_the_value_on_both_stacks() {
    assert!(!in_guarded_call());
    assert_eq!(call_guarded(None, None, || 6 * 7), Ok(42));
    let ts = TestStack::new(64 * 1024);
    let s = ts.stack();
    let inside = call_guarded(Some(s), None, || {
        let sp = stack_pointer();
        (in_guarded_call(), current_stack(), sp)
    })
    .unwrap();
    assert!(inside.0);
    assert_eq!(inside.1, Some(s));
    assert!(inside.2 >= s.base && inside.2 < s.base + s.size, "sp {:#x} not on {s:?}", inside.2);
    assert!(!in_guarded_call());
    assert_eq!(current_stack(), None);
}

#[inline(never)]
fn dive(depth: u32, e: Escape) -> u32 {
    if depth == 0 {
        escape(e);
    }
    black_box(dive(depth - 1, e)) + 1
}

#[test]
fn escape_from_deep_inside_returns_err() {
    let e = esc(0xA, 7);
    assert_eq!(call_guarded(None, None, || dive(50, e)), Err(e));
    assert!(!in_guarded_call());
    let ts = TestStack::new(64 * 1024);
    for i in 0..100 {
        let e = esc(0xB, i);
        assert_eq!(call_guarded(Some(ts.stack()), None, || dive(20, e)), Err(e));
    }
    assert!(!in_guarded_call());
}

#[test]
#[should_panic(expected = "outside any guarded call")]
fn escape_without_a_guard_panics() {
    escape(esc(1, 2));
}

#[test]
fn fault_escape_on_a_custom_stack() {
    let target = Reservation::new(page_size(), Placement::Anywhere { align: page_size() }).unwrap();
    let _range = register_fault_range(
        target.base(),
        target.len(),
        handler(|f| {
            let kind = if f.access == Access::Write { 0x50 } else { 0x51 };
            FaultAction::Escape(esc(kind, f.addr as u64))
        }),
    );
    let ts = TestStack::new(32 * 1024);
    let addr = target.base() + 0x123 * 8;
    assert_eq!(call_guarded(Some(ts.stack()), None, || poke(addr, 1)), Err(esc(0x50, addr as u64)));
    assert_eq!(call_guarded(Some(ts.stack()), None, || peek(addr)), Err(esc(0x51, addr as u64)));
    // The signal mask was restored: faults keep being delivered.
    for _ in 0..20 {
        assert!(call_guarded(Some(ts.stack()), None, || peek(addr)).is_err());
    }
}

#[test]
fn nested_guards_innermost_wins() {
    let outer_stack = TestStack::new(64 * 1024);
    let inner_stack = TestStack::new(64 * 1024);
    let (o, i) = (outer_stack.stack(), inner_stack.stack());
    let result = call_guarded(Some(o), None, || {
        let inner = call_guarded(Some(i), None, || {
            assert_eq!(current_stack(), Some(i));
            let on_same = call_guarded(None, None, current_stack).unwrap();
            assert_eq!(on_same, Some(i), "a call on the current stack reports its caller's");
            dive(5, esc(1, 1))
        });
        assert_eq!(inner, Err(esc(1, 1)));
        assert_eq!(current_stack(), Some(o));
        assert!(in_guarded_call());
        let fine = call_guarded(None, None, || 3);
        assert_eq!(fine, Ok(3));
        dive(3, esc(2, 2))
    });
    assert_eq!(result, Err(esc(2, 2)));
    assert!(!in_guarded_call());
}

#[test]
fn panic_crosses_the_stack_switch() {
    let ts = TestStack::new(64 * 1024);
    let s = ts.stack();
    let caught =
        std::panic::catch_unwind(|| call_guarded(Some(s), None, || -> u32 { panic!("boom on the kernel stack") }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom on the kernel stack"));
    assert!(!in_guarded_call());
    // Escapes still work afterwards.
    assert_eq!(call_guarded(Some(s), None, || dive(2, esc(3, 3))), Err(esc(3, 3)));
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if depth == u64::MAX {
        return 0;
    }
    frame[(depth % 32) as usize].wrapping_add(recurse(depth + 1))
}

#[test]
fn stack_overflow_into_the_guard_page_escapes() {
    let ts = TestStack::new(16 * 1024);
    let guard = ts.guard_page();
    let _range = register_fault_range(
        guard,
        page_size(),
        handler(|f| FaultAction::Escape(Escape { kind: 0x7F, words: [8, f.addr as u64, 0, 0, 0, 0, 0] })),
    );
    for _ in 0..10 {
        let r = call_guarded(Some(ts.stack()), None, || recurse(0));
        let e = r.unwrap_err();
        assert_eq!(e.kind, 0x7F);
        let addr = e.words[1] as usize;
        assert!(addr >= guard && addr < guard + page_size(), "fault at {addr:#x}");
    }
    assert!(!in_guarded_call());
}

#[test]
fn frame_handler_takes_unclaimed_faults() {
    let wild = Reservation::new(page_size(), Placement::Anywhere { align: page_size() }).unwrap();
    let addr = wild.base() + 64;
    let machine =
        handler(
            move |f| {
                if f.addr == addr {
                    FaultAction::Escape(esc(0xD1, f.addr as u64))
                } else {
                    FaultAction::NotMine
                }
            },
        );
    let never = handler(|_| FaultAction::NotMine);
    let ts = TestStack::new(32 * 1024);
    // The outer frame's handler answers when the inner ones pass.
    let r = call_guarded(Some(ts.stack()), Some(machine), || {
        let inner = call_guarded(None, Some(never), || peek(addr));
        assert_eq!(inner, Err(esc(0xD1, addr as u64)), "the innermost frame receives the escape");
        call_guarded(None, None, || poke(addr, 0))
    });
    assert_eq!(r, Ok(Err(esc(0xD1, addr as u64))));
}

#[test]
fn guarded_threads_get_a_large_signal_stack() {
    std::thread::spawn(|| {
        call_guarded(None, None, || ()).unwrap();
        // SAFETY: all-zero is a valid stack_t; querying into a valid out-pointer.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaltstack(ptr::null(), &mut cur) };
        assert_eq!(cur.ss_flags & libc::SS_DISABLE, 0);
        assert!(cur.ss_size >= SIGNAL_STACK_SIZE, "{}", cur.ss_size);
    })
    .join()
    .unwrap();
}

#[test]
fn parallel_overflows_and_escapes() {
    let threads: Vec<_> = (0..6u32)
        .map(|t| {
            std::thread::spawn(move || {
                let ts = TestStack::new(16 * 1024);
                let _range = register_fault_range(
                    ts.guard_page(),
                    page_size(),
                    handler(move |_| FaultAction::Escape(esc(0x7F, u64::from(t)))),
                );
                for i in 0..30u64 {
                    let r = call_guarded(Some(ts.stack()), None, || recurse(0));
                    assert_eq!(r, Err(esc(0x7F, u64::from(t))));
                    let r = call_guarded(Some(ts.stack()), None, || dive(10, esc(t, i)));
                    assert_eq!(r, Err(esc(t, i)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn tokens_name_the_innermost_guarded_call_and_are_never_reused() {
    assert_eq!(token(), 0);
    let outer = call_guarded(None, None, || {
        let mine = token();
        let inner = call_guarded(None, None, token).unwrap();
        assert_ne!(inner, mine);
        assert_eq!(token(), mine);
        (mine, inner)
    })
    .unwrap();
    let later = call_guarded(None, None, token).unwrap();
    assert!(outer.0 != 0 && later != outer.0 && later != outer.1);
    assert_eq!(token(), 0);
}

#[test]
fn exceptions_without_a_catcher_frame_are_not_catchable() {
    // No catcher is registered in this crate's tests.
    assert!(!exception_frame_active());
}
