//! A user process's events as drivers get them (issue 12): a scenario creates an
//! event (`event`), hands its handle to the driver inside a request's input
//! (`{name}`), waits for it (`wait`) and resets it (`reset`); the driver references
//! the handle in the caller's context and signals the event from a timer's DPC, as
//! Microsoft's general/event sample does in its event-based mode.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn driver(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name).display().to_string()
}

fn run(cflags: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .args(["run", &driver("user_event.c"), "--scenario", &driver("user_event.toml"), "--json"])
        .env("CFLAGS", cflags)
        .output()
        .expect("ntmem runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn a_driver_signals_the_users_event_from_a_dpc_through_a_referenced_handle() {
    let v = run("");
    assert_eq!(v["exit"], 0, "{v}");
    assert_eq!(
        v["debug_output"],
        "reference 0000000000000004: 00000000, state 0\ndpc: signalling, previous state 0\n\
         reference 0000000000000100: c0000008, state -1\nas a thread: c0000024\n",
        "the first handle of a process is 4; a handle naming nothing is STATUS_INVALID_HANDLE, \
         an event asked for as a thread STATUS_OBJECT_TYPE_MISMATCH: {v}"
    );
    let steps = v["steps"].as_array().unwrap();
    let status: Vec<u64> = steps.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert_eq!(status, [0, 0, 0x102, 0, 0xC000_0008, 0xC000_0024, 0, 0x102, 0], "{v}");
    assert_eq!(steps[2]["note"], "not signalled by 10 ms (the timeout)");
    assert_eq!(steps[3]["note"], "signalled at 30 ms", "the DPC ran when its timer came due");
    assert!(steps[7]["note"].as_str().unwrap().contains("no timer is set that could signal it"), "{v}");
    assert!(v["leaks"].as_array().unwrap().is_empty(), "the last reference freed the event: {v}");
}

#[test]
fn a_reference_the_driver_never_drops_keeps_the_event_alive_after_its_handle_closes() {
    let v = run("-DLEAK");
    assert_eq!(v["exit"], 1, "{v}");
    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{v}");
    let leak = &leaks[0];
    assert_eq!((leak["tag"].as_str(), leak["diff"].as_u64()), (Some("Even"), Some(1)), "{v}");
    assert_eq!(leak["allocated_by"], "system", "an object the driver kept alive: {v}");
}
