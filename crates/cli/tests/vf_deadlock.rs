//! Driver Verifier's deadlock detection (`--verifier deadlock`, issue 14 item 7): C
//! drivers break each rule, and the stop is DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4)
//! with the subcode and parameters of Microsoft's "Bug Check 0xC4" table (0x1000 to
//! 0x100B). The drivers print the addresses the parameters name.

mod common;

use common::{printed, stop};
use serde_json::Value;

/// Runs `ntmem run <driver> --json --verifier deadlock [extra]` with `CFLAGS` set to
/// `cflags`.
fn run(name: &str, cflags: &str, extra: &[&str]) -> Value {
    common::run_cflags(name, cflags, &[&["--verifier", "deadlock"], extra].concat())
}

/// The function names of a `!deadlock 1` stack (`driver!Function+0x1a [file @ line]`).
fn functions(stack: &Value) -> Vec<String> {
    let frames = stack.as_array().cloned().unwrap_or_default();
    frames.iter().filter_map(|f| f.as_str()?.split('+').next().map(str::to_string)).collect()
}

#[test]
fn two_threads_taking_fast_mutexes_in_opposite_orders_is_0x1001_with_both_orders_and_stacks() {
    let v = run("deadlock_abba.c", "", &[]);
    let a = printed(&v, "A");
    assert_eq!(stop(&v), (0xC4, vec![0x1001, a, 0, 0]), "{v}");
    let d = &v["verifier_state"]["deadlock"];
    let locks: Vec<(&str, u64, &str)> = d["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["address"].as_u64().unwrap(), l["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(locks, [("A", a, "Fast Mutex"), ("B", printed(&v, "B"), "Fast Mutex")], "{d}");
    let threads = d["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "{d}");
    assert_ne!(threads[0]["thread"], threads[1]["thread"], "two threads: {d}");
    let order = |t: &Value| (t["took"][0]["lock"].clone(), t["took"][1]["lock"].clone());
    assert_eq!(order(&threads[0]), ("A".into(), "B".into()), "the earlier order first: {d}");
    assert_eq!(order(&threads[1]), ("B".into(), "A".into()), "{d}");
    let first = functions(&threads[0]["took"][1]["stack"]);
    assert_eq!(first, ["deadlock_abba!TakeAThenB", "deadlock_abba!First"], "the whole driver stack: {d}");
    assert_eq!(functions(&threads[1]["took"][1]["stack"]), ["deadlock_abba!TakeBThenA"], "{d}");
    // The text report shows it as `!deadlock 1` does.
    let out = common::run_raw("deadlock_abba.c", "", &["--verifier", "deadlock"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Deadlock detected (2 resources in 2 threads):\n\nThread 0: A B\nThread 1: B A\n"), "{text}");
    assert!(text.contains("took locks in the following order:\n\n    Lock A -- "), "{text}");
    assert!(text.contains("    Stack:   deadlock_abba!TakeAThenB+0x"), "{text}");
}

#[test]
fn the_same_order_in_both_threads_and_every_kind_in_one_order_are_clean() {
    let v = run("deadlock_abba.c", "-DSAME_ORDER", &[]);
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
    let v = run("deadlock_clean.c", "", &[]);
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
    assert_eq!(v["debug_output"], "DriverEntry: in order\ntry while owned: 0\nthread: in order\n", "{v}");
    assert_eq!(v["verifier_state"]["deadlock"], Value::Null, "{v}");
}

#[test]
fn an_eresource_cycle_and_a_cycle_across_a_mutex_and_a_spin_lock_are_0x1001() {
    let v = run("deadlock_resource.c", "", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1001, printed(&v, "R1"), 0, 0]), "{v}");
    let kinds = &v["verifier_state"]["deadlock"]["locks"];
    assert_eq!((kinds[0]["kind"].as_str(), kinds[1]["kind"].as_str()), (Some("Resource"), Some("Resource")), "{v}");
    let v = run("deadlock_cross.c", "", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1001, printed(&v, "M"), 0, 0]), "{v}");
    let locks = &v["verifier_state"]["deadlock"]["locks"];
    assert_eq!((locks[0]["kind"].as_str(), locks[1]["kind"].as_str()), (Some("Mutex"), Some("Spinlock")), "{v}");
}

#[test]
fn a_lock_asked_for_again_by_its_holder_is_0x1000_but_not_a_mutex_or_a_shared_resource() {
    for (flag, lock) in [("-DSPIN_LOCK", "S"), ("-DFAST", "F"), ("-DRESOURCE", "R"), ("-DQUEUED", "S")] {
        let v = run("deadlock_recursion.c", flag, &[]);
        assert_eq!(stop(&v), (0xC4, vec![0x1000, printed(&v, lock), 0, 0]), "{flag}: {v}");
    }
    let v = run("deadlock_recursion.c", "", &[]);
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
}

#[test]
fn releases_out_of_order_by_another_thread_unacquired_or_mismatched_are_0x1003_0x1004_0x1007_0x1009() {
    let v = run("deadlock_release.c", "-DOUT_OF_ORDER", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1003, printed(&v, "A"), printed(&v, "B"), 0]), "{v}");
    let v = run("deadlock_release.c", "-DOTHER_THREAD", &[]);
    let (f, entry, releaser) = (printed(&v, "F"), printed(&v, "thread"), printed(&v, "releaser"));
    assert_ne!(entry, releaser);
    assert_eq!(stop(&v), (0xC4, vec![0x1004, f, entry, releaser]), "{v}");
    let v = run("deadlock_release.c", "-DRESOURCE_OTHER_THREAD", &[]);
    let (r, entry, releaser) = (printed(&v, "R"), printed(&v, "thread"), printed(&v, "releaser"));
    assert_eq!(stop(&v), (0xC4, vec![0x1004, r, entry, releaser]), "{v}");
    let v = run("deadlock_release.c", "-DRESOURCE_FOR_THREAD", &[]);
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
    assert!(v["debug_output"].as_str().unwrap_or_default().contains("released for the owner"), "{v}");
    let v = run("deadlock_release.c", "-DUNACQUIRED", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1007, printed(&v, "F"), 0, 0]), "{v}");
    let v = run("deadlock_release.c", "-DMISMATCHED", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1009, printed(&v, "F"), 0, 0]), "{v}");
}

#[test]
fn an_eresource_uninitialized_initialized_twice_or_a_lock_deleted_or_freed_while_held_is_0x1002_0x1005_0x100b() {
    let v = run("deadlock_resource_life.c", "-DUNINITIALIZED", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1002, printed(&v, "R"), 0, 0]), "{v}");
    let v = run("deadlock_resource_life.c", "-DINITIALIZED_TWICE", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x1005, printed(&v, "R"), 0, 0]), "{v}");
    let v = run("deadlock_resource_life.c", "-DDELETED_HELD", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x100B, printed(&v, "R"), printed(&v, "thread"), 0]), "{v}");
    let v = run("deadlock_resource_life.c", "-DFREED_HELD", &[]);
    assert_eq!(stop(&v), (0xC4, vec![0x100B, printed(&v, "pooled"), printed(&v, "thread"), 0]), "{v}");
    let v = run("deadlock_resource_life.c", "", &[]);
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
}

#[test]
fn without_deadlock_detection_the_same_drivers_are_not_stopped_by_it() {
    // The cycle and the releases are no stop of the free kernel's; the recursion is
    // MUTEX_ALREADY_OWNED (0xBF).
    let free = |name: &str, cflags: &str| common::run_cflags(name, cflags, &[]);
    let v = free("deadlock_abba.c", "");
    assert_eq!((v["exit"].as_u64(), &v["bugcheck"]), (Some(0), &Value::Null), "{v}");
    let v = free("deadlock_recursion.c", "-DFAST");
    assert_eq!(stop(&v).0, 0xBF, "{v}");
}
