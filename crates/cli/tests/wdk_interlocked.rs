//! Lists under a spin lock, SLists, in-stack queued spin locks and the processor
//! queries from a C driver (`drivers/interlocked.c`; issue 11 items 2-3).

mod common;

use serde_json::Value;

fn run(rule: u32, extra: &[&str]) -> Value {
    common::run_json("interlocked.c", rule, &[&["--processors", "4"], extra].concat())
}

fn stop(v: &Value) -> Option<(u64, Vec<u64>)> {
    let b = v.get("bugcheck")?.as_object()?;
    let p = b["parameters"].as_array()?.iter().map(|p| p.as_u64().unwrap()).collect();
    Some((b["code"].as_u64()?, p))
}

#[test]
fn lists_slists_and_queued_locks_behave_as_the_wdk_documents() {
    let v = run(0, &[]);
    assert_eq!(stop(&v), None, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let expected = "tail into empty: NULL\n\
                    tail: previous last 1\n\
                    head: previous first 1\n\
                    order: 3 1 2; empty 1, lock free 1, IRQL 0\n\
                    single pop 3\n\
                    push 1: previous NULL, depth 1\n\
                    push 2: previous entry, depth 2\n\
                    push 3: previous entry, depth 3\n\
                    pop 3, depth 2\n\
                    flushed 2, depth 0, popped after flush NULL\n\
                    queued: IRQL 2, old 0, lock held 1\n\
                    released: IRQL 0, lock free 1\n\
                    processors 4 mask 0xf ex 4/4 other group 0; current 0 (group 0 number 0)\n";
    assert_eq!(out, expected);
}

/// A corrupt link met by ExInterlockedInsertTailList is the inline routines'
/// fast-fail: KERNEL_SECURITY_CHECK_FAILURE with FAST_FAIL_CORRUPT_LIST_ENTRY.
#[test]
fn a_corrupt_list_is_0x139_3() {
    let v = run(1, &[]);
    assert_eq!(stop(&v), Some((0x139, vec![3, 0, 0, 0])), "{v}");
}

/// InitializeSListHead on a header that is not 16-byte aligned raises
/// STATUS_DATATYPE_MISALIGNMENT, which the driver's __except catches.
#[test]
fn a_misaligned_slist_header_raises_datatype_misalignment() {
    let v = run(2, &[]);
    assert_eq!(stop(&v), None, "{v}");
    assert!(v["debug_output"].as_str().unwrap().contains("misaligned header: 0x80000002\n"), "{v}");
}

/// A queued acquire of a lock the thread holds deadlocks on Windows; under Driver
/// Verifier's deadlock detection it is 0xC4/0x1000 naming the lock.
#[test]
fn a_recursive_queued_acquire_is_0xc4_0x1000_under_deadlock_detection() {
    let v = run(3, &["--verifier", "deadlock"]);
    let (code, p) = stop(&v).expect("a stop");
    assert_eq!((code, p[0]), (0xC4, 0x1000), "{v}");
    assert_ne!(p[1], 0, "the lock's address: {v}");
}
