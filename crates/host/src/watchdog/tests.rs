use super::*;
use crate::testing::TestStack;
use crate::{call_guarded, Escape};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Escapes on the third tick with kind 7 and the interrupted IP.
struct ThirdTick(AtomicUsize);

impl Watch for ThirdTick {
    fn on_tick(&self, ip: usize) -> Option<Escape> {
        (self.0.fetch_add(1, Ordering::SeqCst) >= 2).then_some(Escape { kind: 7, words: [ip as u64, 0, 0, 0, 0, 0, 0] })
    }
}

fn dog() -> Watchdog {
    Watchdog::start(Duration::from_millis(2), Arc::new(ThirdTick(AtomicUsize::new(0)))).expect("timer")
}

#[test]
fn an_exposed_endless_loop_escapes_with_the_watchs_payload_and_its_ip() {
    let ts = TestStack::new(64 * 1024);
    let _dog = dog();
    let r = call_guarded(Some(ts.stack()), None, || {
        exposed(|| loop {
            black_box(0);
        })
    });
    let e: Escape = r.expect_err("the loop ends by escape");
    assert_eq!(e.kind, 7);
    assert_ne!(e.words[0], 0, "the interrupted IP is recorded");
}

#[test]
fn a_shielded_loop_is_not_abandoned_it_sees_the_escape_pending_and_takes_it() {
    let ts = TestStack::new(64 * 1024);
    let _dog = dog();
    let r = call_guarded(Some(ts.stack()), None, || {
        exposed(|| {
            shielded(|| {
                let owned = vec![1u8; 16];
                while !pending() {
                    black_box(&owned);
                }
                take_pending()
            })
        })
    });
    let e = r.expect("a shielded loop returns").expect("the escape was pending");
    assert_eq!(e.kind, 7);
    assert_eq!(take_pending(), None, "taken once");
}

#[test]
fn dropping_the_watchdog_stops_it_and_forgets_pending_escapes() {
    let ts = TestStack::new(64 * 1024);
    {
        let _dog = dog();
        let r = call_guarded(Some(ts.stack()), None, || shielded(|| while !pending() {}));
        assert_eq!(r, Ok(()));
    }
    assert!(!pending());
    // No watchdog: an exposed call runs to its end.
    assert_eq!(call_guarded(Some(ts.stack()), None, || exposed(|| 5)), Ok(5));
}

#[test]
fn an_escape_left_pending_by_shielded_code_is_taken_once_the_code_is_exposed_again() {
    let ts = TestStack::new(64 * 1024);
    let _dog = dog();
    let r = call_guarded(Some(ts.stack()), None, || {
        exposed(|| {
            shielded(|| while !pending() {});
            loop {
                black_box(0);
            }
        })
    });
    assert_eq!(r.expect_err("escaped").kind, 7);
}

#[test]
fn a_thread_reuses_its_disarmed_timer_and_a_nested_watchdog_gets_its_own() {
    let ts = TestStack::new(64 * 1024);
    let first = dog().timer;
    let second = dog();
    assert_eq!(second.timer, first, "the spare timer is armed again");
    {
        let nested = dog();
        assert_ne!(nested.timer, second.timer, "the spare is in use: a nested watchdog creates its own");
    }
    // The re-armed spare still ticks: an endless loop escapes.
    let r = call_guarded(Some(ts.stack()), None, || {
        exposed(|| loop {
            black_box(0);
        })
    });
    assert_eq!(r.expect_err("the loop ends by escape").kind, 7);
    drop(second);
    // A disarmed spare does not tick: an exposed call runs to its end.
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(call_guarded(Some(ts.stack()), None, || exposed(|| 5)), Ok(5));
}
