//! KUSER_SHARED_DATA through `ntmem run` (issue 11 item 5): the page at its place in
//! the layout (x64: ntmem's high half, 0x900_0000_0000; x86: 0xFFDF0000), read
//! through the WDK's SharedUserData, agreeing with the time routines and moving
//! with simulated time, the same page at 0x7FFE0000 in the caller's process; a
//! driver's write is 0xBE (an access violation through the user view).

use std::path::Path;
use std::process::{Command, Output};

fn drivers() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

fn run(driver: &str, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(drivers().join(driver)).args(flags).output().expect("runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn scenario() -> String {
    drivers().join("shared_data.toml").display().to_string()
}

#[test]
fn the_page_answers_the_edition_and_follows_simulated_time() {
    let out = run("shared_data.c", &["--scenario", &scenario(), "--machine", "ws03sp1-enterprise-x64"]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("shared: entry 13 checks, 0 failed"), "{text}");
    assert!(
        text.contains("shared: at 0000090000000000, C:\\WINDOWS, version 5.2, image 8664, NX 1, product 3"),
        "{text}"
    );
    // 1,000 ms is 64 clock ticks of 15.625 ms.
    assert!(text.contains("shared: 64 ticks later, 7 checks, 0 failed"), "{text}");
}

#[test]
fn an_x86_machine_has_it_at_0xffdf0000() {
    let out = run("shared_data.c", &["--scenario", &scenario(), "--machine", "xp-professional"]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("shared: at 00000000FFDF0000, C:\\WINDOWS, version 5.1, image 014c, NX 0, product 1"),
        "{text}"
    );
    assert!(text.contains("shared: 64 ticks later, 7 checks, 0 failed"), "{text}");
}

#[test]
fn a_write_to_the_page_is_0xbe() {
    let out = run("shared_data_write.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("wrote the shared page"), "{text}");
    assert!(text.contains("STOP: 0x000000be (0x90000000004, "), "{text}");
}
