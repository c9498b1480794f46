//! C drivers calling the run-time library (issue 11 item 1) through `ntmem run`:
//! bitmaps, counted strings and their conversions, `ntstrsafe.h`, memory and
//! version routines, each checked by the driver itself; and a bad pointer given to
//! them stopping the machine as Windows does.

use std::path::Path;
use std::process::{Command, Output};

fn run(driver: &str) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(driver);
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(path).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_run_time_library_behaves_as_documented() {
    let out = run("rtl_routines.c");
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("rtl: bitmaps done"), "{text}");
    assert!(text.contains("rtl: strings done"), "{text}");
    assert!(text.contains("rtl: memory and version done"), "{text}");
    assert!(text.contains("rtl: strsafe done"), "{text}");
    assert!(
        text.contains(" Ustr  Paged        4         4         0"),
        "the conversions free what they allocate: {text}"
    );
    assert!(text.contains(" checks, 0 failed"), "{text}");
}

#[test]
fn a_null_bitmap_header_is_the_drivers_access_violation() {
    let out = run("rtl_bitmap_null.c");
    let text = text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("rtl: set bits"), "{text}");
    assert!(text.contains("STOP: 0x0000008e (0xc0000005"), "{text}");
}

#[test]
fn a_conversion_at_dispatch_level_is_irql_not_less_or_equal() {
    let out = run("rtl_convert_dispatch.c");
    let text = text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("rtl: converted"), "{text}");
    assert!(text.contains("STOP: 0x0000000a"), "{text}");
}

#[test]
fn a_string_the_run_time_library_allocated_and_the_driver_forgot_is_a_ustr_leak() {
    let out = run("rtl_string_leak.c");
    let text = text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(" Ustr  Paged        2         1         1"), "{text}");
    assert!(text.contains("LEAK           tag 'Ustr' (Paged): 1 block(s)"), "{text}");
    // Under pool tracking the buffer is charged to the routine that allocated it, at
    // the driver's call (Verifier tracks the Rtl string routines' allocations).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/rtl_string_leak.c");
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
        .arg("run")
        .arg(path)
        .args(["--verifier", "pool_tracking"])
        .output()
        .expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "0xC4/0x62: {text}");
    assert!(text.contains("by RtlCreateUnicodeString, allocated at rtl_string_leak!DriverEntry"), "{text}");
}

#[test]
fn freeing_a_string_that_is_not_pool_is_bad_pool_caller() {
    let out = run("rtl_free_not_pool.c");
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("rtl: freed"), "{text}");
    assert!(text.contains("STOP: 0x000000c2 (0x42,"), "{text}");
}

#[test]
fn a_printf_string_argument_in_unmapped_system_space_is_page_fault_in_nonpaged_area() {
    let out = run("rtl_printf_bad_string.c");
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("rtl: printed"), "{text}");
    assert!(text.contains("STOP: 0x00000050"), "{text}");
}

#[test]
fn rtl_get_version_answers_the_machines_edition() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/rtl_version.c");
    for (machine, expected) in [
        ("ws03sp1-enterprise-x64", "rtl: version 5.2.3790 sp 1 'Service Pack 1' product 3 suite 0x2 vista 0"),
        ("vista-x64", "rtl: version 6.0.6000 sp 0 '' product 1 suite 0 vista 1"),
        ("xp-professional", "rtl: version 5.1.2600 sp 0 '' product 1 suite 0 vista 0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ntmem"))
            .args(["run", "--machine", machine])
            .arg(&path)
            .output()
            .expect("ntmem runs");
        let text = text(&out);
        assert_eq!(out.status.code(), Some(0), "{machine}: {text}");
        assert!(text.contains(expected), "{machine}: {text}");
        // PsGetVersion: the same numbers, a free build, the service pack cut to the
        // 8-byte buffer and whole in the 64-byte one.
        let ps = match machine {
            "ws03sp1-enterprise-x64" => "ps: version 5.2.3790 checked 0 csd 'Serv' (8 bytes) 'Service Pack 1'",
            "vista-x64" => "ps: version 6.0.6000 checked 0 csd '' (0 bytes) ''",
            _ => "ps: version 5.1.2600 checked 0 csd '' (0 bytes) ''",
        };
        assert!(text.contains(ps), "{machine}: {text}");
    }
}
