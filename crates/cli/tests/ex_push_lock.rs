//! Push locks from a C driver (`drivers/push_lock.c`; issue 11 item 3).

mod common;

use serde_json::Value;

fn run(rule: u32) -> Value {
    common::run_json("push_lock.c", rule, &[])
}

/// A writer waits while a reader holds the lock (the reader's 10 ms of simulated
/// time pass) and gets it once the reader releases; readers share it.
#[test]
fn a_writer_waits_for_the_reader_and_readers_share() {
    let v = run(0);
    assert_eq!(v["exit"], 0, "{v}");
    let expected = "reader: holding, word 0x11\n\
                    reader: releasing\n\
                    writer: holding after the reader is done 1, word 0x1\n\
                    two readers: word 0x21\n\
                    free: word 0x0\n";
    assert_eq!(v["debug_output"], expected, "{v}");
}

/// Push locks are not recursive: an exclusive acquire by their holder waits for
/// ever on Windows; the run ends naming the wait.
#[test]
fn an_exclusive_acquire_by_the_holder_is_a_wait_that_never_ends() {
    let v = run(1);
    let halt = &v["halt"];
    assert_eq!((v["exit"].as_u64(), halt["kind"].as_str()), (Some(4), Some("wait_never_ends")), "{v}");
    assert_eq!(halt["routine"], "ExAcquirePushLockExclusiveEx", "{v}");
}
