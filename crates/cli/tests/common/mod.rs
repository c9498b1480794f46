//! What several driver-level test files share: running a test driver through the
//! `ntmem` binary and reading its JSON report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A file of `tests/drivers` (a C driver or a scenario).
pub fn driver_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

/// `ntmem run tests/drivers/<driver> --json <args>`, the driver built with
/// `-DRULE=<rule>`: the report, or everything the run printed (as a JSON string, so
/// an assertion shows it) when stdout is not a report.
pub fn run_json(driver: &str, rule: u32, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver_file(driver))
        .arg("--json")
        .args(args)
        .env("CFLAGS", format!("-DRULE={rule}"))
        .output()
        .expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::String(text))
}
