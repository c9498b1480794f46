//! `ntmem run DRIVER --scenario FILE.toml`: the IOCTL driver (seed 000 §9's three
//! transfer types) driven by a scenario, each step's status, Information and
//! output in the reports; invalid scenario files exit 2 naming line and key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers").join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").args(args).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_ioctl_driver_runs_its_scenario() {
    let (driver, scenario) = (demo("ioctl.c"), demo("ioctl.toml"));
    let out = run(&[driver.to_str().unwrap(), "--scenario", scenario.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("METHOD_BUFFERED in 15 out 32, system buffer in system space"), "{t}");
    assert!(t.contains("METHOD_OUT_DIRECT MDL of 15 bytes at offset 0, locked yes"), "{t}");
    assert!(t.contains("METHOD_NEITHER copied 17 bytes in the caller's context"), "{t}");
    assert!(t.contains("Exception while accessing outBuf 0XC0000005 in METHOD_NEITHER"), "{t}");
    assert!(t.contains("device created, initializing flag set"), "{t}");
    assert!(t.contains(&format!("output {}", hex("HELLO, BUFFERED"))), "{t}");
    assert!(t.contains("Leaks          none"), "{t}");

    let out = run(&[driver.to_str().unwrap(), "--scenario", scenario.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["exit"], 0);
    assert_eq!(v["verifier"], serde_json::json!(["special_pool", "pool_tracking"]));
    assert_eq!(v["machine"]["processors"], 1, "from the file");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    let expect = [("HELLO, BUFFERED", 15), ("OUT DIRECT, MDL", 15), ("NEITHER, RAW PTRS", 17)];
    for (s, (output, info)) in steps.iter().zip(expect) {
        assert_eq!(s["status"], 0, "{s}");
        assert_eq!(s["status_name"], "STATUS_SUCCESS");
        assert_eq!(s["information"], info, "{s}");
        assert_eq!(s["output"], hex(output), "{s}");
        assert_eq!(s["ok"], true);
    }
    assert_eq!(steps[3]["status"], 0xC000_0005_u32, "the freed output buffer: ProbeForWrite raised");
    assert_eq!(steps[3]["ok"], true, "expected");
    assert_eq!(steps[3]["line"], 17);
    assert_eq!(steps[4]["kind"], "advance_ms");
}

#[test]
fn command_line_flags_override_the_file() {
    let (driver, scenario) = (demo("ioctl.c"), demo("ioctl.toml"));
    let out = run(&[
        driver.to_str().unwrap(),
        "--scenario",
        scenario.to_str().unwrap(),
        "--processors",
        "2",
        "--verifier",
        "dma",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(v["machine"]["processors"], 2);
    assert_eq!(v["verifier"], serde_json::json!(["dma"]));
}

#[test]
fn a_step_that_fails_exits_1() {
    let dir = tempdir();
    let path = dir.join("fail.toml");
    std::fs::write(&path, "[[step]]\nioctl = { code = 0x222404, output_len = 4 }\n").unwrap();
    let out = run(&[demo("ioctl.c").to_str().unwrap(), "--scenario", path.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("step 1 (line 1, ioctl) failed: STATUS_INVALID_DEVICE_REQUEST"), "{t}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ntmem-io-scenario-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_scenario_file_exits_2_naming_line_and_key() {
    let dir = tempdir();
    let cases = [
        (
            "unknown.toml",
            "ram = \"1G\"\n\n[[step]]\nioctl = { code = 0x222400, colour = \"red\" }\n",
            "unknown.toml:4: key `colour`:",
        ),
        ("type.toml", "processors = 1\n[[step]]\nadvance_ms = \"soon\"\n", "type.toml:3: key `advance_ms`:"),
        ("top.toml", "machine = 7\n", "top.toml:1: key `machine`:"),
        ("two.toml", "[[step]]\ntrim = true\nunload = true\n", "two.toml:1: a [[step]] holds exactly one of"),
        ("frag.toml", "[[step]]\nfragment = 95\n", "frag.toml:1: key `fragment`: 95 is above 90"),
        ("frag2.toml", "[[step]]\nfragment = 5\ntrim = true\n", "frag2.toml:1: a [[step]] holds exactly one of"),
    ];
    for (name, body, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let out = run(&[demo("ioctl.c").to_str().unwrap(), "--scenario", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn scenario_values_past_the_machine_are_clear_errors_not_crashes_or_hangs() {
    let dir = tempdir();
    let cases = [
        (
            "forever.toml",
            "[[step]]\nadvance_ms = 9223372036854775807\n",
            "forever.toml:1: key `advance_ms`: simulated time",
        ),
        ("euro.toml", "[[step]]\nwrite = { data = \"€1\" }\n", "euro.toml:2: key `data`: \"€1\" is not hex bytes"),
    ];
    for (name, body, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let out = run(&[demo("ioctl.c").to_str().unwrap(), "--scenario", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn a_buffer_the_machine_cannot_provide_is_a_failed_step_in_the_report() {
    let dir = tempdir();
    let path = dir.join("huge.toml");
    let body = "[[step]]\ninternal_ioctl = { code = 0x222400, input = \"00\", output_len = 4000000000 }\n[[step]]\nioctl = { code = 0x222400, input = \"6869\", output_len = 2 }\n";
    std::fs::write(&path, body).unwrap();
    let out = run(&[demo("ioctl.c").to_str().unwrap(), "--scenario", path.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(v["bugcheck"], Value::Null);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["status"], 0xC000_009A_u32);
    assert_eq!(steps[0]["status_name"], "STATUS_INSUFFICIENT_RESOURCES");
    assert_eq!(steps[0]["reached_driver"], false);
    assert_eq!(steps[1]["status"], 0);
}
