//! The I/O manager's rules, each broken by a C driver (`tests/drivers/io_rules.c`,
//! the rule chosen with `-DRULE=n`) and judged by the bugcheck and parameters
//! Windows gives — with Driver Verifier's I/O verification where Windows needs it
//! (Microsoft, "Bug Check 0xC9: DRIVER_VERIFIER_IOMANAGER_VIOLATION"; research note
//! `dma-verifier-views.md` §3.7) — or by the non-fatal WDM DRIVER ERROR the report
//! lists as a warning.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `driver` built with `-DRULE=rule` under one METHOD_BUFFERED IOCTL (output 4
/// bytes) and `extra` flags; returns the JSON report.
fn run_rule(driver: &str, rule: u32, extra: &[&str]) -> Value {
    let dir =
        std::env::temp_dir().join(format!("ntmem-io-rules-{}-{driver}-{rule}-{}", std::process::id(), extra.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, "[[step]]\nioctl = { code = 0x222000, input = \"00\", output_len = 4 }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(driver))
        .args(["--scenario", scenario.to_str().unwrap(), "--json"])
        .args(extra)
        .env("CFLAGS", format!("-DRULE={rule}"))
        .output()
        .expect("ntmem runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// The bugcheck's code and parameters (None: no stop).
fn stop(v: &Value) -> Option<(u64, Vec<u64>)> {
    let b = &v["bugcheck"];
    let code = b["code"].as_u64()?;
    Some((code, b["parameters"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect()))
}

/// The WDM DRIVER ERROR codes the report lists as warnings.
fn warnings(v: &Value) -> Vec<u64> {
    let list = v["verifier_state"]["wdm_errors"].as_array().cloned().unwrap_or_default();
    list.iter().map(|w| w["code"].as_u64().unwrap()).collect()
}

const IO: &[&str] = &["--verifier", "io"];

#[test]
fn a_driver_that_pends_marks_and_completes_properly_breaks_no_rule() {
    let v = run_rule("io_rules.c", 0, IO);
    assert_eq!(stop(&v), None, "{v}");
    assert_eq!(warnings(&v), Vec::<u64>::new(), "{v}");
    assert_eq!(v["steps"][0]["status"], 0, "{v}");
    assert_eq!(v["exit"], 0, "{v}");
}

/// Enhanced I/O verification: STATUS_PENDING if and only if IoMarkIrpPending —
/// either way round a non-fatal WDM DRIVER ERROR (0x23D, 0x23E), a warning; without
/// the option nothing is said.
#[test]
fn pending_returned_without_the_mark_and_the_mark_without_pending_are_warnings() {
    let v = run_rule("io_rules.c", 1, IO);
    assert_eq!(stop(&v), None, "non-fatal: {v}");
    assert_eq!(warnings(&v), [0x23D], "{v}");
    let w = &v["verifier_state"]["wdm_errors"][0];
    assert_ne!(w["irp"], 0, "{v}");
    assert_ne!(w["device"], 0, "{v}");
    let v = run_rule("io_rules.c", 2, IO);
    assert_eq!(stop(&v), None, "{v}");
    assert_eq!(warnings(&v), [0x23E], "{v}");
    let v = run_rule("io_rules.c", 1, &[]);
    assert_eq!(v["verifier_state"], Value::Null, "{v}");
    assert_eq!(stop(&v), None, "{v}");
}

#[test]
fn information_beyond_the_output_buffer_is_warning_0x312() {
    let v = run_rule("io_rules.c", 3, IO);
    assert_eq!(stop(&v), None, "{v}");
    assert_eq!(warnings(&v), [0x312], "{v}");
    // The caller gets at most the system buffer (max(input, output) = 4 bytes).
    assert_eq!(v["steps"][0]["output"].as_str().map(str::len), Some(8), "{v}");
}

#[test]
fn completing_with_the_cancel_routine_still_set_is_0xc9_0x07() {
    let (code, p) = stop(&run_rule("io_rules.c", 4, IO)).expect("a stop");
    assert_eq!((code, p[0], p[3]), (0xC9, 0x07, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the cancel routine");
    assert_ne!(p[2], 0, "the IRP");
    assert_ne!(p[1], p[2]);
    // Windows' free kernel does not look.
    assert_eq!(stop(&run_rule("io_rules.c", 4, &[])), None);
}

#[test]
fn io_call_driver_above_dispatch_level_is_0xc9_0x10_with_the_irql() {
    let (code, p) = stop(&run_rule("io_rules.c", 5, IO)).expect("a stop");
    assert_eq!((code, p.as_slice()), (0xC9, [0x10, 3, 0, 0].as_slice()), "{p:x?}");
}

#[test]
fn io_complete_request_above_dispatch_level_is_0xc9_0x0e_with_the_irql_and_irp() {
    let (code, p) = stop(&run_rule("io_rules.c", 6, IO)).expect("a stop");
    assert_eq!((code, p[0], p[1], p[3]), (0xC9, 0x0E, 3, 0), "{p:x?}");
    assert_ne!(p[2], 0, "the IRP");
}

/// IoFreeIrp of an IRP a driver below still holds (pending) is the fatal WDM DRIVER
/// ERROR 0x20B: the driver's address, the IRP, the device holding it.
#[test]
fn freeing_an_irp_still_in_flight_is_wdm_driver_error_0x20b() {
    let v = run_rule("io_rules.c", 7, IO);
    let (code, p) = stop(&v).expect("a stop");
    assert_eq!((code, p[0]), (0xC9, 0x20B), "{p:x?}");
    assert!(p[1] != 0 && p[2] != 0 && p[3] != 0, "{p:x?}");
    assert!(v["debug_output"].as_str().unwrap().contains("the IRP is pending below"), "{v}");
    let analysis = v["bugcheck"]["analysis"].as_str().unwrap();
    assert!(analysis.contains("io_rules!DriverEntry"), "the caller is named: {analysis}");
    assert_eq!(stop(&run_rule("io_rules.c", 7, &[])), None, "the free kernel frees it");
}

#[test]
fn freeing_an_irp_the_io_manager_threaded_is_0xc9_0x02() {
    let (code, p) = stop(&run_rule("io_rules.c", 8, IO)).expect("a stop");
    assert_eq!((code, p[0], p[2], p[3]), (0xC9, 0x02, 0, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the IRP");
}

#[test]
fn a_bad_buffer_for_the_irp_builders_is_0xc9_0x09_and_0x08_under_io_verification_else_null() {
    let (code, p) = stop(&run_rule("io_rules.c", 9, IO)).expect("a stop");
    assert_eq!((code, p[0], p[2], p[3]), (0xC9, 0x09, 0x22_2000, 0xC000_0005), "{p:x?}");
    assert_ne!(p[1], 0, "the device");
    let v = run_rule("io_rules.c", 9, &[]);
    assert_eq!(stop(&v), None, "{v}");
    assert!(v["debug_output"].as_str().unwrap().contains("IoBuildDeviceIoControlRequest returned NULL"), "{v}");

    let (code, p) = stop(&run_rule("io_rules.c", 10, IO)).expect("a stop");
    assert_eq!((code, p[0], p[2], p[3]), (0xC9, 0x08, 0x04, 0xC000_0005), "{p:x?}");
    assert_ne!(p[1], 0, "the device");
    let v = run_rule("io_rules.c", 10, &[]);
    assert!(v["debug_output"].as_str().unwrap().contains("IoBuildAsynchronousFsdRequest returned NULL"), "{v}");
}

/// Under I/O verification IoAllocateIrp's IRPs come from special pool: a read after
/// IoFreeIrp is DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL (0xD5: address, 0 read, IP).
#[test]
fn an_irp_read_after_io_free_irp_is_0xd5_under_io_verification() {
    let v = run_rule("io_rules.c", 11, IO);
    let (code, p) = stop(&v).expect("a stop");
    assert_eq!((code, p[1], p[3]), (0xD5, 0, 0), "{p:x?}");
    assert_ne!(p[0], 0, "the IRP's address");
    assert_ne!(p[2], 0, "the driver's instruction");
    assert_eq!(v["bugcheck"]["driver"], "io_rules.sys", "{v}");
    let v = run_rule("io_rules.c", 11, &[]);
    assert_eq!(stop(&v), None, "normal pool: the read goes unnoticed: {v}");
}

/// A status block or event that was a local of a routine that returned before the
/// IRP completed: 0xC9/0x0C (the status block), 0xC9/0x0D (the event).
#[test]
fn an_iosb_or_event_on_an_unwound_stack_is_0xc9_0x0c_or_0x0d() {
    let (code, p) = stop(&run_rule("io_rules.c", 12, IO)).expect("a stop");
    assert_eq!((code, p[0], p[2], p[3]), (0xC9, 0x0C, 0, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the status block");
    let (code, p) = stop(&run_rule("io_rules.c", 13, IO)).expect("a stop");
    assert_eq!((code, p[0], p[2], p[3]), (0xC9, 0x0D, 0, 0), "{p:x?}");
    assert_ne!(p[1], 0, "the event");
    assert_eq!(stop(&run_rule("io_rules.c", 12, &[])), None, "Windows writes it wherever it points");
}

/// A device object is reference-counted: IoGetAttachedDeviceReference takes a
/// reference, IoDeleteDevice unlinks the device at once but its memory stays until
/// the last ObDereferenceObject; a reference kept is the device's pool left behind;
/// one dereference too many is REFERENCE_BY_POINTER (0x18: type, object, 0, 0).
#[test]
fn a_deleted_device_lives_until_its_last_reference_goes() {
    let v = run_rule("device_refs.c", 0, &[]);
    assert_eq!(stop(&v), None, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.contains("top of the stack is the device: 1"), "{out}");
    assert!(out.contains("deleted; Type still reads 3, DriverObject->DeviceObject 0000000000000000"), "{out}");
    let devi = v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == "Devi").cloned().unwrap();
    assert_eq!((devi["allocs"].clone(), devi["frees"].clone()), (1.into(), 1.into()), "{v}");

    let v = run_rule("device_refs.c", 1, &[]);
    assert_eq!(stop(&v), None, "{v}");
    let devi = v["pool"].as_array().unwrap().iter().find(|r| r["tag"] == "Devi").cloned().unwrap();
    assert_eq!((devi["allocs"].clone(), devi["frees"].clone()), (1.into(), 0.into()), "kept alive: {v}");

    let (code, p) = stop(&run_rule("device_refs.c", 2, &[])).expect("a stop");
    assert_eq!((code, p[2], p[3]), (0x18, 0, 0), "{p:x?}");
    assert!(p[0] != 0 && p[1] != 0, "{p:x?}");
}

/// IO_REMOVE_LOCK as the free build keeps it: IoReleaseRemoveLockAndWait returns
/// once every other acquisition is released, later acquisitions get
/// STATUS_DELETE_PENDING; one still held that nothing can release is a wait that
/// never ends.
#[test]
fn a_remove_lock_drains_before_release_and_wait_returns_and_refuses_later_acquires() {
    let v = run_rule("remove_lock.c", 0, &[]);
    assert_eq!(stop(&v), None, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.contains("acquired 0x0 0x0, count 3"), "{out}");
    assert!(out.contains("removed 1, count 0, acquire after the wait 0xc0000056"), "{out}");

    let v = run_rule("remove_lock.c", 1, &[]);
    assert_eq!(v["halt"]["kind"], "wait_never_ends", "{v}");
    assert_eq!(v["exit"], 4, "{v}");
    assert!(!v["debug_output"].as_str().unwrap().contains("acquire after the wait"), "{v}");
}

/// Runs `driver` built with `-DRULE=rule` under scenario `toml`; the JSON report and
/// the process's exit status.
fn run_scenario(driver: &str, rule: u32, tag: &str, toml: &str) -> (Value, Option<i32>) {
    let dir = std::env::temp_dir().join(format!("ntmem-io-rules-{}-{tag}-{rule}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(driver))
        .args(["--scenario", scenario.to_str().unwrap(), "--json"])
        .env("CFLAGS", format!("-DRULE={rule}"))
        .output()
        .expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap_or(Value::String(text)), out.status.code())
}

/// Power IRPs reach the function driver's IRP_MJ_POWER routine with
/// Parameters.Power filled; it passes them to the PDO with PoCallDriver and records
/// the device state with PoSetPowerState. The removal is the query, then the remove.
#[test]
fn power_irps_pass_through_and_a_removal_is_queried_first() {
    let toml = "[[step]]\npower = { minor = \"query_power\", system_state = \"S3\" }\n\
                [[step]]\npower = { minor = \"set_power\", device_state = \"D3\" }\n\
                [[step]]\npower = { minor = \"set_power\", device_state = \"D0\" }\n";
    let (v, code) = run_scenario("power_pnp.c", 0, "power", toml);
    assert_eq!(code, Some(0), "{v}");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.contains("power: minor 3 type 0 state 4 action 2\npower: D0 -> D3\npower: D3 -> D0\n"), "{out}");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "power");
    assert!(steps.iter().all(|s| s["status"] == 0 && s["completed"] == true), "the PDO succeeds them: {v}");
    assert_eq!(steps[1]["note"], "IRP_MN_SET_POWER, device state D3", "{v}");
    assert!(out.contains("pnp: minor 0x1\npnp: minor 0x2\n"), "query-remove, then remove: {out}");
    let pnp: Vec<_> = v["pnp"].as_array().unwrap().iter().map(|e| e["step"].as_str().unwrap().to_string()).collect();
    assert_eq!(pnp, ["AddDevice", "IRP_MN_START_DEVICE", "IRP_MN_QUERY_REMOVE_DEVICE", "IRP_MN_REMOVE_DEVICE"]);
}

/// A vetoed query-remove is cancelled; the run then pulls the device: surprise
/// removal, then remove.
#[test]
fn a_vetoed_removal_is_cancelled_then_the_device_is_pulled() {
    let (v, _) = run_scenario("power_pnp.c", 1, "veto", "");
    let out = v["debug_output"].as_str().unwrap();
    assert!(out.contains("pnp: minor 0x1\npnp: minor 0x3\npnp: minor 0x17\npnp: minor 0x2\n"), "{out}");
    let pnp: Vec<_> = v["pnp"].as_array().unwrap().iter().map(|e| (e["step"].clone(), e["status"].clone())).collect();
    assert_eq!(pnp[2], ("IRP_MN_QUERY_REMOVE_DEVICE".into(), 0xC000_0001_u32.into()), "{v}");
    assert_eq!(pnp.len(), 6, "{v}");
}

#[test]
fn a_bad_power_step_is_a_clear_error() {
    for (toml, says) in [
        ("[[step]]\npower = { minor = \"wait_wake\", system_state = \"S3\" }\n", "use set_power or query_power"),
        ("[[step]]\npower = { minor = \"set_power\", system_state = \"S6\" }\n", "use S0 to S5"),
        ("[[step]]\npower = { minor = \"set_power\", device_state = \"D4\" }\n", "use D0 to D3"),
        ("[[step]]\npower = { minor = \"set_power\" }\n", "exactly one of system_state and device_state"),
    ] {
        let (v, code) = run_scenario("power_pnp.c", 0, &format!("bad{}", says.len()), toml);
        assert_eq!(code, Some(2), "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
}

/// A request left pending is cancelled when its process ends (IoCancelThreadIo): the
/// driver's cancel routine completes it. Unloaded first, the driver left its cancel
/// routine behind: IoCancelIrp calls it at DISPATCH_LEVEL in the unloaded image —
/// SYSTEM_SCAN_AT_RAISED_IRQL_CAUGHT_IMPROPER_DRIVER_UNLOAD (0xD4: address, IRQL,
/// 8 execute, the instruction), the raised-IRQL form of 0xCE, naming the driver.
#[test]
fn a_request_pending_at_unload_is_cancelled_into_the_unloaded_image() {
    let one = "[[step]]\nioctl = { code = 0x222000, input = \"00\", output_len = 4 }\n";
    let (v, code) = run_scenario("io_rules.c", 14, "pending-end", one);
    assert_eq!(stop(&v), None, "{v}");
    assert_eq!(v["steps"][0]["status"], 0xC000_0120_u32, "cancelled as the process ended: {v}");
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
    assert_eq!(code, Some(1), "the step ended in an error status: {v}");

    let (v, _) = run_scenario("io_rules.c", 14, "pending-unload", &format!("{one}[[step]]\nunload = true\n"));
    let (code, p) = stop(&v).expect("a stop");
    assert_eq!((code, p[1], p[2]), (0xD4, 2, 8), "{p:x?}");
    assert_eq!(p[0], p[3], "the cancel routine's address is the instruction: {p:x?}");
    assert_eq!(v["bugcheck"]["driver"], "io_rules.sys", "{v}");
}

/// A timer left queued in the image at unload: when it comes due the kernel touches
/// the KTIMER in the unloaded image — DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS
/// (0xCE: the address, 1 write, 0, 0); time goes on after an unload step.
#[test]
fn a_timer_left_queued_at_unload_is_0xce_when_it_comes_due() {
    let (v, code) = run_scenario("unload_timer.c", 0, "timer", "[[step]]\nunload = true\n[[step]]\nadvance_ms = 100\n");
    assert_eq!(code, Some(3), "{v}");
    let (c, p) = stop(&v).expect("a stop");
    assert_eq!((c, p[1], p[2], p[3]), (0xCE, 1, 0, 0), "{p:x?}");
    assert_ne!(p[0], 0, "{p:x?}");
    assert!(!v["debug_output"].as_str().unwrap().contains("tick"), "{v}");
}
