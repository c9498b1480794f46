//! `PoRequestPowerIrp` (issue 12 item 4): a power policy owner asks for device
//! power IRPs while it handles system ones (`drivers/power_request.c`).

mod common;

use serde_json::Value;

fn run(rule: u32) -> Value {
    let scenario = common::driver_file("power_request.toml");
    common::run_json("power_request.c", rule, &["--scenario", scenario.to_str().unwrap()])
}

fn steps_succeeded(v: &Value) {
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{v}");
    for s in steps {
        assert_eq!((s["status"].as_u64(), s["completed"].as_bool()), (Some(0), Some(true)), "{v}");
    }
    assert_eq!(v["leaks"], serde_json::json!([]), "{v}");
}

/// At PASSIVE_LEVEL the device IRP goes to the top of the stack at once, in the
/// caller's thread: its dispatch routine sees the device state with a location for
/// each device of the stack, the PDO succeeds it, the requester's callback gets its
/// status and completes the system IRP. A wait/wake IRP reaches the driver and the
/// PDO (no wake support: STATUS_NOT_SUPPORTED); a minor function that cannot be
/// requested is STATUS_INVALID_PARAMETER_2 and sends nothing.
#[test]
fn a_device_power_irp_requested_for_a_system_one_completes_it() {
    let v = run(0);
    assert_eq!(v["exit"], 0, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let expected = "wait/wake for S3\n\
                    D-IRP done: minor 0 D3 status 0xc00000bb at IRQL 0\n\
                    wait/wake asked: 0x103, IRP returned\n\
                    minor 7 asked: 0xc00000f0\n\
                    D-IRP: D0 -> D3 at IRQL 0, 2 locations\n\
                    D-IRP done: minor 2 D3 status 0x0 at IRQL 0\n\
                    S-IRP S3: asked for D3 at IRQL 0: 0x103\n\
                    D-IRP: D3 -> D0 at IRQL 0, 2 locations\n\
                    D-IRP done: minor 2 D0 status 0x0 at IRQL 0\n\
                    S-IRP S0: asked for D0 at IRQL 0: 0x103\n";
    assert!(out.contains(expected), "{out}");
    steps_succeeded(&v);
}

/// Asked for at DISPATCH_LEVEL, the device IRP is sent from a system worker thread
/// at PASSIVE_LEVEL, after the requester has returned; the system IRP the step sent
/// completes then.
#[test]
fn a_device_power_irp_requested_at_dispatch_level_is_sent_at_passive_level_later() {
    let v = run(1);
    assert_eq!(v["exit"], 0, "{v}");
    let out = v["debug_output"].as_str().unwrap();
    let expected = "S-IRP S3: asked for D3 at IRQL 2: 0x103\n\
                    D-IRP: D0 -> D3 at IRQL 0, 2 locations\n\
                    D-IRP done: minor 2 D3 status 0x0 at IRQL 0\n\
                    S-IRP S0: asked for D0 at IRQL 2: 0x103\n";
    assert!(out.contains(expected), "{out}");
    steps_succeeded(&v);
}
