//! Driver Verifier's pool tracking (issue 14 item 2): blocks routines allocate for
//! a driver (IoAllocateMdl, IoAllocateWorkItem) charged to it under Verifier's tags,
//! so that leaving them is 0xC4/0x62; pages left locked in a process when it ends
//! (0xCB DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS); and the log of recent allocate and free
//! operations as `!verifier 0x80` shows it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn driver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

fn run(name: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(driver(name)).args(extra).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(name: &str, extra: &[&str]) -> (Value, i32) {
    let out = run(name, &[extra, &["--json"]].concat());
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (v, out.status.code().expect("exit status"))
}

fn parameters(v: &Value) -> Vec<u64> {
    v["bugcheck"]["parameters"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect()
}

#[test]
fn an_mdl_and_a_work_item_left_at_unload_are_the_drivers_leak_under_vmdl_and_vfwi() {
    let (v, status) = json("mdl_workitem_leak.c", &["--verifier", "pool_tracking"]);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xC4);
    let p = parameters(&v);
    assert_eq!((p[0], p[2], p[3]), (0x62, 0, 2), "two allocations not freed: {v}");
    assert_ne!(p[1], 0, "the driver's name");
    let blocks = v["leaked_blocks"].as_array().unwrap();
    let by_tag = |tag: &str| blocks.iter().find(|b| b["tag"] == tag).unwrap_or_else(|| panic!("{tag}: {v}"));
    let (mdl, item) = (by_tag("VMdl"), by_tag("Vfwi"));
    assert_eq!((mdl["routine"].as_str(), mdl["pool"].as_str()), (Some("IoAllocateMdl"), Some("Nonp")));
    assert!(mdl["stack"][0].as_str().unwrap().contains("mdl_workitem_leak.c @ 26]"), "{mdl}");
    assert_eq!(item["routine"], "IoAllocateWorkItem");
    assert!(item["stack"][0].as_str().unwrap().contains("mdl_workitem_leak.c @ 27]"), "{item}");
    let counts = &v["verifier_state"]["pool"]["current"][0];
    assert_eq!(counts["allocations"], 2, "charged to the driver's nonpaged count: {v}");
    let t = text(&run("mdl_workitem_leak.c", &["--verifier", "pool_tracking"]));
    assert!(
        t.contains(&format!("0x{:08x}  VMdl  mdl_workitem_leak!DriverEntry+0x", mdl["bytes"].as_u64().unwrap())),
        "{t}"
    );
    assert!(t.contains("  Vfwi  mdl_workitem_leak!DriverEntry+0x"), "{t}");
}

#[test]
fn pages_left_locked_when_the_process_ends_are_0xcb_under_pool_tracking_else_0x76() {
    let scenario = driver("locked_left.toml");
    let args = ["--scenario", scenario.to_str().unwrap()];
    let (v, status) = json("locked_left.c", &[&args[..], &["--verifier", "pool_tracking"]].concat());
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0xCB, "{v}");
    assert_eq!(v["bugcheck"]["name"], "DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS");
    // The request's output is the MDL's address, little-endian.
    let output = v["steps"][0]["output"].as_str().unwrap();
    let bytes: Vec<u8> = (0..8).map(|i| u8::from_str_radix(&output[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mdl = u64::from_le_bytes(bytes.try_into().unwrap());
    assert_eq!(parameters(&v), [0, 0, mdl, 1], "tracking structure, reserved, the MDL, one page: {v}");
    assert!(v["bugcheck"]["parameter_meanings"][2].as_str().unwrap().contains("MDL"), "{v}");

    let (v, status) = json("locked_left.c", &args);
    assert_eq!(status, 3, "{v}");
    assert_eq!(v["bugcheck"]["code"], 0x76, "without Verifier: PROCESS_HAS_LOCKED_PAGES: {v}");
    let p = parameters(&v);
    assert_eq!((p[0], p[2], p[3]), (0, 1, 0), "{v}");
}

#[test]
fn the_pool_log_shows_the_latest_operations_or_one_blocks_as_verifier_0x80_does() {
    let (v, _) = json("leak.c", &["--verifier", "pool_tracking", "--verifier-log", "4"]);
    let log = &v["verifier_state"]["pool_log"];
    assert_eq!(log["entries_in_log"], 2, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let shape: Vec<(&str, u64, &str)> = entries
        .iter()
        .map(|e| (e["operation"].as_str().unwrap(), e["bytes"].as_u64().unwrap(), e["tag"].as_str().unwrap()))
        .collect();
    assert_eq!(shape, [("allocate", 16, "None"), ("allocate", 48, "Leak")], "most recent first: {log}");
    assert!(entries[1]["stack"][0].as_str().unwrap().contains("leak.c @ 12]"), "{log}");
    assert_ne!(entries[1]["thread"], 0, "the allocating thread");
    let leak = entries[1]["address"].as_u64().unwrap();

    let t = text(&run("leak.c", &["--verifier", "pool_tracking", "--verifier-log", "4"]));
    assert!(
        t.contains(
            "Log of recent kernel pool Allocate and Free operations:\n\nThere are up to 0x10000 entries in the log."
        ),
        "{t}"
    );
    assert!(t.contains(&format!("Pool block {leak:016x}, Size 0000000000000030, Thread ")), "{t}");

    let inside = format!("{:#x}", leak + 0x10);
    let (v, _) = json("leak.c", &["--verifier", "pool_tracking", "--verifier-log-address", &inside]);
    let entries = v["verifier_state"]["pool_log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the block holding the address: {v}");
    assert_eq!(entries[0]["address"].as_u64(), Some(leak));
    let t = text(&run("leak.c", &["--verifier", "pool_tracking", "--verifier-log-address", &inside]));
    assert!(t.contains(&format!("Parsing 0x00000002 log entries, searching for address {inside}.")), "{t}");

    // Frees are logged too: 40 pool blocks and an MDL, each allocated and freed.
    let (v, _) = json("low_resources.c", &["--verifier", "pool_tracking", "--verifier-log", "all"]);
    let entries = v["verifier_state"]["pool_log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 82, "{v}");
    assert_eq!((entries[0]["operation"].as_str(), entries[0]["tag"].as_str()), (Some("free"), Some("VMdl")));
    assert_eq!((entries[0]["thread"].as_u64(), entries[0]["stack"].as_array().map(Vec::len)), (Some(0), Some(0)));
    // Without the flag, no log in the report.
    let (v, _) = json("leak.c", &["--verifier", "pool_tracking"]);
    assert_eq!(v["verifier_state"]["pool_log"], Value::Null);
}
