//! Randomized low resources simulation's process filter (verifier /faults' App list)
//! and its failure of MmProbeAndLockPages, which fails by raising (issue 14 item 4).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

fn run(extra: &[&str]) -> (Value, Output) {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver("lowres_process.c"))
        .arg("--scenario")
        .arg(driver("lowres_process.toml"))
        .arg("--json")
        .args(extra)
        .output()
        .expect("ntmem runs");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (v, out)
}

/// Each request's output: (its pool allocation succeeded, the status its
/// MmProbeAndLockPages raised, DriverEntry's allocation succeeded).
fn outputs(v: &Value) -> Vec<String> {
    v["steps"].as_array().unwrap().iter().map(|s| s["output"].as_str().unwrap().to_string()).collect()
}

#[test]
fn only_calls_in_the_named_processes_fail_and_mmprobeandlockpages_raises() {
    let (v, out) = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    // app.exe: the allocation failed (0), the lock raised STATUS_INSUFFICIENT_RESOURCES
    // (0xC000009A); DriverEntry, in the System process, got its block (1). tool.exe:
    // nothing failed.
    assert_eq!(outputs(&v), ["000000009a0000c001000000", "010000000000000001000000"], "{v}");
    let injected = v["verifier_state"]["injected"].as_array().unwrap();
    let routines: Vec<&str> = injected.iter().map(|i| i["routine"].as_str().unwrap()).collect();
    assert_eq!(routines, ["ExAllocatePoolWithTag", "MmProbeAndLockPages"], "{v}");
    assert!(injected[1]["site"].as_str().unwrap().contains("lowres_process.c @ 45]"), "{v}");
    assert_eq!(v["verifier_state"]["faults"]["processes"], serde_json::json!(["APP.exe"]));

    // The flag overrides the scenario's list.
    let (v, _) = run(&["--fault-processes", "tool.exe"]);
    assert_eq!(outputs(&v), ["010000000000000001000000", "000000009a0000c001000000"], "{v}");
    // System names the System process: DriverEntry's allocation fails, and the
    // driver, which checks it, refuses the requests.
    let (v, _) = run(&["--fault-processes", "system"]);
    let statuses: Vec<u64> = v["steps"].as_array().unwrap().iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [0xC000_000D, 0xC000_000D], "STATUS_INVALID_PARAMETER: {v}");
}
