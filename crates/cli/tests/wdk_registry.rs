//! C drivers using the registry (issue 11 item 4) through `ntmem run`: the service
//! key and the scenario's `[registry]` Parameters values, the Zw key routines with
//! each information class and their short-buffer statuses, RtlQueryRegistryValues,
//! RtlWriteRegistryValue and IoOpenDeviceRegistryKey, each checked by the driver;
//! a call at DISPATCH_LEVEL and a key handle closed twice stopping the machine as
//! Windows does; and hostile `[registry]` values refused with a clear error.

use std::path::Path;
use std::process::{Command, Output};

fn drivers() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

fn run(driver: &str, scenario: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ntmem"));
    c.arg("run").arg(drivers().join(driver));
    if let Some(s) = scenario {
        c.arg("--scenario").arg(s);
    }
    c.output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_registry_routines_behave_as_documented() {
    let out = run("registry.c", Some(&drivers().join("registry.toml")));
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("reg: entry done"), "{text}");
    assert!(text.contains("reg: 81 checks, 0 failed"), "AddDevice ran its checks too: {text}");
    // The direct string RtlQueryRegistryValues allocated was freed by the driver; the
    // query routine's copies of the value by the routine.
    assert!(text.contains(" Ustr  Paged        1         1         0"), "{text}");
    assert!(text.contains(" Rqrv  Paged        2         2         0"), "{text}");
}

#[test]
fn a_registry_routine_at_dispatch_level_is_irql_not_less_or_equal() {
    let out = run("registry_dispatch.c", None);
    let text = text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("reg: opened at dispatch"), "{text}");
    assert!(text.contains("STOP: 0x0000000a"), "{text}");
}

#[test]
fn a_key_handle_closed_twice_is_invalid_kernel_handle() {
    let out = run("registry_close_twice.c", None);
    let text = text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("reg: closed twice"), "{text}");
    assert!(text.contains("STOP: 0x00000093 (0xffffffff80000004, 0x1, 0x0, 0x0) INVALID_KERNEL_HANDLE"), "{text}");
}

#[test]
fn hostile_registry_values_are_refused_naming_the_line_and_the_value() {
    let dir = std::env::temp_dir().join(format!("ntmem-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (body, says) in [
        ("Big = { dword = 4294967296 }", "registry value `Big`: dword 4294967296 is not in 0..=0xFFFFFFFF"),
        ("Two = { dword = 1, qword = 2 }", "registry value `Two`: holds exactly one of"),
        ("Nul = { sz = \"a\\u0000\" }", "registry value `Nul`"),
        ("Gap = { multi_sz = [\"a\", \"\"] }", "empty string"),
    ] {
        let scenario = dir.join("s.toml");
        std::fs::write(&scenario, format!("# hostile\n[registry]\n{body}\n")).unwrap();
        let out = run("registry_close_twice.c", Some(&scenario));
        let text = text(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains("s.toml:3: ") && text.contains(says), "{body}: {text}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
