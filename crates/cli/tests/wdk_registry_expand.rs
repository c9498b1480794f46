//! REG_EXPAND_SZ through `ntmem run` (issue 11 item 4): RtlQueryRegistryValues
//! expands `%SystemRoot%` and friends unless RTL_QUERY_REGISTRY_NOEXPAND, from the
//! driver's Environment block when it passes one; ZwQueryValueKey returns the value
//! as stored.

use std::path::Path;
use std::process::{Command, Output};

fn run(machine: &str) -> Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(dir.join("registry_expand.c"))
        .arg("--scenario")
        .arg(dir.join("registry_expand.toml"))
        .args(["--machine", machine])
        .output()
        .expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn expand_sz_values_expand_unless_noexpand() {
    let out = run("ws03sp1-enterprise-x64");
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("expand: 18 checks, 0 failed"), "{text}");
    assert!(text.contains("expand: Path C:\\WINDOWS\\x"), "{text}");
    assert!(text.contains("expand: Mixed %Unknown%;C:;100%"), "an unknown variable stays: {text}");
    assert!(text.contains("expand: with an environment D:\\W\\x"), "{text}");
}

#[test]
fn windows_2000_keeps_its_system_root_in_winnt() {
    let text = text(&run("w2k-professional"));
    assert!(text.contains("expand: Path C:\\WINNT\\x"), "{text}");
}
