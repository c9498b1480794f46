//! Driver Verifier's pool tracking around an unload (issue 14 item 2): a thread of the
//! driver other than the one running DriverUnload — a system thread, a DPC —
//! allocating pool while the driver unloads is DRIVER_VERIFIER_DETECTED_VIOLATION
//! (0xC4) 0x61 with the driver's paged bytes, nonpaged bytes and allocations
//! outstanding; a leak at unload is 0xC4/0x60 (paged bytes, nonpaged bytes, count) on
//! Windows 2000 and 0xC4/0x62 (the driver's name, 0, count) from Windows XP on
//! (`ntmem_kernel::vf::Verifier::unload_violation` says why), each with the leak list
//! and its allocation stacks in the report.

mod common;

use common::stop;
use serde_json::Value;

/// `ntmem run tests/drivers/<name> [args]` with `CFLAGS` set to `cflags`: the report
/// (JSON with `--json`, else the text as a string) and the exit status.
fn run(name: &str, cflags: &str, args: &[&str]) -> (Value, i32) {
    let out = common::run_raw(name, cflags, args);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let status = out.status.code().expect("exit status");
    if args.contains(&"--json") {
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
        (v, status)
    } else {
        (Value::String(all), status)
    }
}

fn json(name: &str, cflags: &str, args: &[&str]) -> (Value, i32) {
    run(name, cflags, &[args, &["--json"]].concat())
}

fn text(name: &str, cflags: &str, args: &[&str]) -> String {
    run(name, cflags, args).0.as_str().unwrap_or_default().to_string()
}

/// The 1-based line of the test driver `name` that contains `text`.
fn line_of(name: &str, text: &str) -> usize {
    let source = std::fs::read_to_string(common::driver_file(name)).expect("the driver's source");
    source.lines().position(|l| l.contains(text)).map(|i| i + 1).expect("the line")
}

/// The function the stop's analysis blames.
fn frame(v: &Value) -> &str {
    v["bugcheck"]["symbols"]["analysis"]["faulting_frame"]["function"].as_str().unwrap_or_default()
}

/// The leaked blocks as (tag, pool, bytes, first frame), by tag.
fn blocks(v: &Value) -> Vec<(String, String, u64, String)> {
    let mut b: Vec<_> = v["leaked_blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no leak list: {v}"))
        .iter()
        .map(|b| {
            (
                b["tag"].as_str().unwrap_or_default().to_string(),
                b["pool"].as_str().unwrap_or_default().to_string(),
                b["bytes"].as_u64().unwrap_or(0),
                b["stack"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    b.sort();
    b
}

const TRACKING: [&str; 2] = ["--verifier", "pool_tracking"];

#[test]
fn a_system_thread_allocating_while_its_driver_unloads_is_0xc4_0x61() {
    let (v, status) = json("unload_thread.c", "", &TRACKING);
    assert_eq!(status, 3, "{v}");
    // The two blocks DriverEntry kept: 0x30 bytes paged, 0x50 nonpaged; the thread's
    // own block is not allocated yet.
    assert_eq!(stop(&v), (0xC4, vec![0x61, 0x30, 0x50, 2]), "{v}");
    assert_eq!(v["bugcheck"]["driver"], "unload_thread.sys", "{v}");
    assert!(v["bugcheck"]["parameter_meanings"][0].as_str().unwrap().contains("while the driver was unloading"), "{v}");
    assert_eq!(frame(&v), "Loop", "stopped in the thread: {v}");
    assert!(!v["debug_output"].as_str().unwrap_or_default().contains("unload: done"), "DriverUnload never ends: {v}");
    // The allocations the fourth parameter counts, with their stacks.
    let b = blocks(&v);
    assert_eq!(b.len(), 2, "{v}");
    assert_eq!((b[0].0.as_str(), b[0].1.as_str(), b[0].2), ("Kept", "Nonp", 0x50));
    assert_eq!((b[1].0.as_str(), b[1].1.as_str(), b[1].2), ("Kept", "Paged", 0x30));
    let at = format!("unload_thread.c @ {}]", line_of("unload_thread.c", "KeptPaged = ExAllocatePoolWithTag"));
    assert!(b[1].3.contains("unload_thread!DriverEntry+0x") && b[1].3.contains(&at), "{b:?}");
    let t = text("unload_thread.c", "", &TRACKING);
    assert!(t.contains("*** STOP: 0x000000c4 (0x61, 0x30, 0x50, 0x2) DRIVER_VERIFIER_DETECTED_VIOLATION"), "{t}");
    assert!(t.contains("  Kept  unload_thread!DriverEntry+0x"), "the !verifier 3 list: {t}");

    // Without pool tracking Windows does not look: the thread's allocation is fine.
    let (v, status) = json("unload_thread.c", "", &[]);
    assert_eq!((status, &v["bugcheck"]), (0, &Value::Null), "{v}");
}

#[test]
fn a_dpc_allocating_while_its_driver_unloads_is_0x61_too() {
    // The DPC runs in the thread running DriverUnload (it waits in a sleep), yet it is
    // not that thread's allocation.
    let (v, status) = json("unload_thread.c", "-DBY_DPC", &TRACKING);
    assert_eq!(status, 3, "{v}");
    assert_eq!(stop(&v), (0xC4, vec![0x61, 0x30, 0x50, 2]), "{v}");
    assert_eq!(frame(&v), "Tick", "stopped in the DPC routine: {v}");
}

#[test]
fn a_work_item_allocating_while_its_driver_unloads_is_0x61_too() {
    let (v, status) = json("unload_thread.c", "-DBY_WORK_ITEM", &TRACKING);
    assert_eq!(status, 3, "{v}");
    assert_eq!(stop(&v), (0xC4, vec![0x61, 0x30, 0x50, 2]), "{v}");
    assert_eq!(frame(&v), "Deferred", "stopped in the worker thread: {v}");
}

#[test]
fn an_unload_that_stops_its_thread_first_passes_and_may_allocate_itself() {
    for cflags in ["-DSTOPS_FIRST", "-DUNLOAD_ALLOCATES"] {
        let (v, status) = json("unload_thread.c", cflags, &TRACKING);
        assert_eq!((status, &v["bugcheck"]), (0, &Value::Null), "{cflags}: {v}");
        let out = v["debug_output"].as_str().unwrap_or_default();
        assert!(out.contains("thread: stopped") && out.contains("unload: done"), "{cflags}: {v}");
        assert_eq!(v["leaks"].as_array().map(Vec::len), Some(0), "{cflags}: {v}");
    }
    // Without pool tracking the DPC's allocation during the unload is not looked at.
    let (v, status) = json("unload_thread.c", "-DBY_DPC", &[]);
    assert_eq!((status, &v["bugcheck"]), (0, &Value::Null), "{v}");
}

#[test]
fn a_leak_at_unload_is_0x60_with_the_bytes_on_windows_2000() {
    let args = [&TRACKING[..], &["--machine", "w2k-professional"]].concat();
    let (v, status) = json("unload_leak.c", "", &args);
    assert_eq!(status, 3, "{v}");
    assert_eq!(stop(&v), (0xC4, vec![0x60, 0x30, 0x70, 3]), "paged bytes, nonpaged bytes, count: {v}");
    assert_eq!(v["bugcheck"]["driver"], "unload_leak.sys", "{v}");
    let meanings = &v["bugcheck"]["parameter_meanings"];
    assert!(meanings[1].as_str().unwrap().contains("paged pool"), "{v}");
    assert!(meanings[2].as_str().unwrap().contains("nonpaged pool"), "{v}");
    // The leak list with each block's allocation stack, as for 0x62.
    assert_eq!(v["leaks_checked"], true, "{v}");
    let b = blocks(&v);
    let shape: Vec<(&str, &str, u64)> = b.iter().map(|b| (b.0.as_str(), b.1.as_str(), b.2)).collect();
    assert_eq!(shape, [("1LNp", "Nonp", 0x50), ("2LNp", "Nonp", 0x20), ("LPag", "Paged", 0x30)], "{v}");
    for (line, block) in [(18, &b[0]), (21, &b[1]), (15, &b[2])] {
        let at = format!("unload_leak.c @ {line}]");
        assert!(block.3.starts_with("unload_leak!DriverEntry+0x") && block.3.contains(&at), "{block:?}");
    }
    let t = text("unload_leak.c", "", &args);
    assert!(t.contains("*** STOP: 0x000000c4 (0x60, 0x30, 0x70, 0x3) DRIVER_VERIFIER_DETECTED_VIOLATION"), "{t}");
    assert!(t.contains("LEAK           tag 'LPag' (Paged): 1 block(s)"), "{t}");
    assert!(t.contains("48 bytes by ExAllocatePoolWithTag, allocated at unload_leak!DriverEntry+0x"), "{t}");
}

#[test]
fn from_windows_xp_on_the_same_leak_is_0x62_with_the_drivers_name() {
    for machine in ["xp-professional", "ws03sp1-enterprise-x64"] {
        let args = [&TRACKING[..], &["--machine", machine]].concat();
        let (v, status) = json("unload_leak.c", "", &args);
        assert_eq!(status, 3, "{machine}: {v}");
        let (code, p) = stop(&v);
        assert_eq!((code, p[0], p[2], p[3]), (0xC4, 0x62, 0, 3), "{machine}: {v}");
        assert_ne!(p[1], 0, "the address of the driver's name: {v}");
        assert_eq!(blocks(&v).len(), 3, "{machine}: {v}");
    }
}
