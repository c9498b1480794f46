//! IoCreateUnprotectedSymbolicLink, IoIsWdmVersionAvailable, PsGetCurrentProcessId,
//! IoGetCurrentProcess (PsGetCurrentProcess), PsGetProcessId and PsInitialSystemProcess
//! (issue 12 item 1, issue 11 item 3) from a C driver, `drivers/io_names.c`.

mod common;

fn run(machine: &str) -> serde_json::Value {
    let scenario = common::driver_file("io_names.toml");
    common::run_json("io_names.c", 0, &["--scenario", scenario.to_str().unwrap(), "--machine", machine])
}

/// The unprotected link opens the device (a second one with the same name collides);
/// the WDM versions are the release's; DriverEntry runs in the System process (4) and
/// each request in its caller's process.
#[test]
fn an_unprotected_link_opens_the_device_and_requests_run_in_the_callers_process() {
    let v = run("ws03sp1-enterprise-x64");
    assert_eq!(v["exit"], 0, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let expected = "WDM 1.10 1, 1.30 1, 6.00 0, 6.02 0; DriverEntry in process 4\n\
                    link: 0x0, again: 0xc0000035\n\
                    DriverEntry's process is the System process: 1, id 4\n\
                    major 0 in process of the caller (object another, id matches)\n\
                    major 14 in process of the caller (object another, id matches)\n\
                    major 2 in process of the caller (object another, id matches)\n";
    assert!(out.starts_with(expected), "{out}");
    let v = run("win8-x64");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.starts_with("WDM 1.10 1, 1.30 1, 6.00 1, 6.02 1;"), "{out}");
}
