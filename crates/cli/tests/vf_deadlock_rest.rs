//! Driver Verifier's deadlock detection, the rest of it (`--verifier deadlock`, issue
//! 14 item 7): a lock acquired with another type's routine (0xC4/0x1008), a system
//! thread that ends holding a lock (0x100A), the kernel's cancel spin lock followed as
//! a spin lock (a cycle through it is 0x1001), and reports that name the same threads
//! in every run. Each stop is asserted with all four parameters of Microsoft's "Bug
//! Check 0xC4" table; the drivers print the addresses the parameters name.

mod common;

use common::{printed, stop};
use serde_json::Value;

/// Runs `ntmem run <driver> --verifier deadlock [extra]` (`--json` when `json`) with
/// `CFLAGS` set to `cflags`: what it printed on stdout.
fn run_raw(name: &str, cflags: &str, json: bool, extra: &[&str]) -> Vec<u8> {
    let json: &[&str] = if json { &["--json"] } else { &[] };
    common::run_raw(name, cflags, &[&["--verifier", "deadlock"], json, extra].concat()).stdout
}

/// As [`run_raw`], the JSON report.
fn run(name: &str, cflags: &str, extra: &[&str]) -> Value {
    common::run_cflags(name, cflags, &[&["--verifier", "deadlock"], extra].concat())
}

fn clean(v: &Value) -> bool {
    v["exit"].as_u64() == Some(0) && v["bugcheck"].is_null()
}

#[test]
fn a_lock_acquired_with_another_types_routine_is_0x1008_but_one_fast_mutex_type_and_reused_memory_are_not() {
    for case in ["-DSPIN_AS_FAST", "-DFAST_AS_SPIN", "-DMUTEX_AS_FAST"] {
        let v = run("deadlock_mismatch.c", case, &[]);
        assert_eq!(stop(&v), (0xC4, vec![0x1008, printed(&v, "L"), 0, 0]), "{case}: {v}");
    }
    // Safe, unsafe and guarded acquisitions of one FAST_MUTEX; a spin lock's pool
    // block freed and reused as a fast mutex; a spin lock's memory initialized as a
    // KMUTEX.
    let v = run("deadlock_mismatch.c", "", &[]);
    assert!(clean(&v), "{v}");
    assert_eq!(v["debug_output"].as_str().map(|o| o.ends_with("pool reused: 1\nclean\n")), Some(true), "{v}");
    // Without deadlock detection nobody checks the type.
    let v = common::run_cflags("deadlock_mismatch.c", "-DMUTEX_AS_FAST", &[]);
    assert!(v.is_object(), "{v}");
    assert_ne!(stop(&v).0, 0xC4, "{v}");
}

#[test]
fn a_system_thread_ending_with_a_lock_held_is_0x100a_with_the_thread() {
    for case in ["-DRETURN", "-DTERMINATE"] {
        let v = run("deadlock_thread_end.c", case, &[]);
        assert_eq!(stop(&v), (0xC4, vec![0x100A, printed(&v, "thread"), 0, 0]), "{case}: {v}");
    }
    let v = run("deadlock_thread_end.c", "", &[]);
    assert!(clean(&v), "{v}");
    assert!(v["debug_output"].as_str().unwrap_or_default().ends_with("released\nthread ended\n"), "{v}");
    // Without Verifier a thread that ends owning a KMUTEX is the kernel's own stop,
    // THREAD_TERMINATE_HELD_MUTEX (0x4000008A: the thread, the mutex).
    let v = common::run_cflags("deadlock_thread_end.c", "-DTERMINATE", &[]);
    assert_eq!(stop(&v), (0x4000_008A, vec![printed(&v, "thread"), printed(&v, "M"), 0, 0]), "{v}");
}

#[test]
fn the_cancel_spin_lock_is_a_spin_lock_to_deadlock_detection() {
    // Q then the cancel spin lock, then the cancel spin lock then Q, in DriverEntry.
    let v = run("deadlock_cancel.c", "", &[]);
    let q = printed(&v, "Q");
    assert_eq!(stop(&v), (0xC4, vec![0x1001, q, 0, 0]), "{v}");
    let locks = &v["verifier_state"]["deadlock"]["locks"];
    let named: Vec<(Option<&str>, Option<&str>)> = locks
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str(), l["symbol"].as_str().filter(|s| s.starts_with("nt!"))))
        .collect();
    assert_eq!(named, [(Some("Spinlock"), None), (Some("Spinlock"), Some("nt!IopCancelSpinLock"))], "{v}");
    // The dispatch routine takes Q then the cancel spin lock; IoCancelIrp calls the
    // cancel routine with the cancel spin lock held, and it takes Q.
    let scenario = common::driver_file("deadlock_cancel.toml").display().to_string();
    let v = run("deadlock_cancel.c", "-DCANCEL_ROUTINE", &["--scenario", &scenario]);
    assert_eq!(stop(&v), (0xC4, vec![0x1001, printed(&v, "Q"), 0, 0]), "{v}");
    let threads = &v["verifier_state"]["deadlock"]["threads"];
    let first = threads[0]["took"][1]["stack"][0].as_str().unwrap_or_default();
    assert!(first.starts_with("deadlock_cancel!Control+"), "the dispatch routine's IoAcquireCancelSpinLock: {v}");
    let closing = threads[1]["took"][1]["stack"][0].as_str().unwrap_or_default();
    assert!(closing.starts_with("deadlock_cancel!Cancel+"), "the cancel routine's KeAcquireSpinLock: {v}");
    // Released before Q is taken, as Microsoft's guidelines ask: clean, and the cancel
    // routine's release of the lock IoCancelIrp took is no 0x1007.
    let v = run("deadlock_cancel.c", "-DCANCEL_ROUTINE -DRELEASE_FIRST", &["--scenario", &scenario]);
    assert!(clean(&v), "{v}");
    assert!(v["debug_output"].as_str().unwrap_or_default().ends_with("cancelled\n"), "{v}");
}

/// Two runs of `name` give the same report, byte for byte, as JSON and as text.
fn same_twice(name: &str, cflags: &str) {
    for json in [true, false] {
        let (first, second) = (run_raw(name, cflags, json, &[]), run_raw(name, cflags, json, &[]));
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(first == second, "{name} json {json}:\n{}\n---\n{}", show(&first), show(&second));
    }
}

#[test]
fn two_runs_give_the_same_report_bytes_with_the_threads_at_fixed_addresses() {
    // 0x1004 names DriverEntry's thread, which has no object in pool: its address is
    // fixed in the kernel-image region, where the layout puts ntoskrnl.
    same_twice("deadlock_release.c", "-DOTHER_THREAD");
    let v = run("deadlock_release.c", "-DOTHER_THREAD", &[]);
    let entry = printed(&v, "thread");
    assert_eq!(entry, 0x980_0000_1100, "the requesting thread, 0x1100 into 'kernel, HAL and boot drivers': {v}");
    assert_eq!(stop(&v), (0xC4, vec![0x1004, printed(&v, "F"), entry, printed(&v, "releaser")]), "{v}");
    // The cycle report (`!deadlock`), with its threads and stacks, twice.
    same_twice("deadlock_abba.c", "");
}
