//! Run-down protection from a C driver (`drivers/rundown.c`; issue 11 item 3).

mod common;

use serde_json::Value;

fn run(rule: u32) -> Value {
    common::run_json("rundown.c", rule, &[])
}

/// References count in twos above EX_RUNDOWN_ACTIVE; the wait lets the holder run
/// (10 ms of simulated time) and returns once it releases; acquires then fail until
/// the reference is initialized again.
#[test]
fn the_wait_for_run_down_returns_when_the_last_reference_is_released() {
    let v = run(0);
    assert_eq!(v["exit"], 0, "{v}");
    let expected = "acquire 1, acquire 3 1, Count 8\n\
                    after releasing 3: Count 2\n\
                    holder: releasing, Count 3\n\
                    run down: Count 1, acquire 0\n\
                    again: acquire 1\n";
    assert_eq!(v["debug_output"], expected, "{v}");
}

/// A reference never released: the wait can never end, and the run says so, naming
/// the routine and the EX_RUNDOWN_REF (Windows would wait forever).
#[test]
fn a_reference_never_released_is_a_wait_that_never_ends() {
    let v = run(1);
    let halt = &v["halt"];
    assert_eq!((v["exit"].as_u64(), halt["kind"].as_str()), (Some(4), Some("wait_never_ends")), "{v}");
    assert_eq!(halt["routine"], "ExWaitForRundownProtectionRelease", "{v}");
}
