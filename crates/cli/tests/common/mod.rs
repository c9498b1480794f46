//! What several driver-level test files share: running a test driver through the
//! `ntmem` binary and reading its JSON report. Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A file of `tests/drivers` (a C driver or a scenario).
pub fn driver_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

/// `ntmem run tests/drivers/<driver> <args>` with `CFLAGS` set to `cflags`.
pub fn run_raw(driver: &str, cflags: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(driver_file(driver))
        .args(args)
        .env("CFLAGS", cflags)
        .output()
        .expect("ntmem runs")
}

/// `ntmem run tests/drivers/<driver> --json <args>` with `CFLAGS` set to `cflags`:
/// the report, or everything the run printed (as a JSON string, so an assertion
/// shows it) when stdout is not a report.
pub fn run_cflags(driver: &str, cflags: &str, args: &[&str]) -> Value {
    let out = run_raw(driver, cflags, &[&["--json"], args].concat());
    let text = || format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| Value::String(text()))
}

/// As [`run_cflags`], the driver built with `-DRULE=<rule>`.
pub fn run_json(driver: &str, rule: u32, args: &[&str]) -> Value {
    run_cflags(driver, &format!("-DRULE={rule}"), args)
}

/// The stop's code and parameters; (0, []) when the run did not stop.
pub fn stop(v: &Value) -> (u64, Vec<u64>) {
    let b = &v["bugcheck"];
    let parameters = b["parameters"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect());
    (b["code"].as_u64().unwrap_or(0), parameters.unwrap_or_default())
}

/// The address the driver printed after the word `name` (`DbgPrint("A %p", …)`).
pub fn printed(v: &Value, name: &str) -> u64 {
    let out = v["debug_output"].as_str().unwrap_or_default();
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == name).unwrap_or_else(|| panic!("{name} not printed: {v}"));
    u64::from_str_radix(words[at + 1], 16).unwrap_or_else(|e| panic!("{name}: {e}: {v}"))
}
