//! IoCreateUnprotectedSymbolicLink, IoIsWdmVersionAvailable, PsGetCurrentProcessId,
//! IoGetCurrentProcess (PsGetCurrentProcess), PsGetProcessId and PsInitialSystemProcess
//! (issue 12 item 1, issue 11 item 3) from a C driver, `drivers/io_names.c`.

use std::path::Path;
use std::process::Command;

fn run(machine: &str) -> (serde_json::Value, Option<i32>) {
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(drivers.join("io_names.c"))
        .args(["--scenario", drivers.join("io_names.toml").to_str().unwrap(), "--machine", machine, "--json"])
        .output()
        .expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::String(text)), out.status.code())
}

/// The unprotected link opens the device (a second one with the same name collides);
/// the WDM versions are the release's; DriverEntry runs in the System process (4) and
/// each request in its caller's process.
#[test]
fn an_unprotected_link_opens_the_device_and_requests_run_in_the_callers_process() {
    let (v, code) = run("ws03sp1-enterprise-x64");
    assert_eq!(code, Some(0), "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let expected = "WDM 1.10 1, 1.30 1, 6.00 0, 6.02 0; DriverEntry in process 4\n\
                    link: 0x0, again: 0xc0000035\n\
                    DriverEntry's process is the System process: 1, id 4\n\
                    major 0 in process of the caller (object another, id matches)\n\
                    major 14 in process of the caller (object another, id matches)\n\
                    major 2 in process of the caller (object another, id matches)\n";
    assert!(out.starts_with(expected), "{out}");
    let (v, _) = run("win8-x64");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.starts_with("WDM 1.10 1, 1.30 1, 6.00 1, 6.02 1;"), "{out}");
}
