//! The rest of the memory routines at the C boundary (issue 11 item 5), from C
//! drivers through `ntmem run`: MmQuerySystemSize and MmIsThisAnNtAsSystem per
//! edition, MmAllocateContiguousNodeMemory, MmGetVirtualForPhysical, ExAllocatePool3,
//! MmProtectMdlSystemAddress (and the stops a touch of the protected mapping gives),
//! MmSecureVirtualMemory on a caller's buffer and at DISPATCH_LEVEL.

use std::path::Path;
use std::process::{Command, Output};

fn run(driver: &str, flags: &[&str]) -> Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers");
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(dir.join(driver)).args(flags).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn scenario() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/mm_rest.toml").display().to_string()
}

#[test]
fn the_routines_behave_as_documented() {
    let out = run("mm_rest.c", &["--scenario", &scenario()]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("mm_rest: 35 checks, 0 failed"), "{text}");
    assert!(text.contains("mm_rest: secure 4 checks, 0 failed"), "{text}");
    // The driver wrote through the secured buffer; the caller sees it.
    assert!(text.contains("output 5e000000000000000000000000000000"), "{text}");
    assert!(text.contains("Leaks          none"), "{text}");
}

#[test]
fn system_size_and_server_follow_the_edition() {
    let server = text(&run("mm_rest.c", &["--machine", "ws03sp1-enterprise-x64"]));
    assert!(server.contains("mm_rest: size 2 as 1"), "MmLargeSystem, a server: {server}");
    // 48 MB left after /BURNMEMORY: a server needs 64 MB to be large, a workstation 32.
    let burned = ["--ram", "64M", "--boot", "/BURNMEMORY=16"];
    let server = text(&run("mm_rest.c", &[&["--machine", "ws03sp1-enterprise-x64"][..], &burned].concat()));
    assert!(server.contains("mm_rest: size 1 as 1"), "MmMediumSystem: {server}");
    let workstation = text(&run("mm_rest.c", &[&["--machine", "xp-professional"][..], &burned].concat()));
    assert!(workstation.contains("mm_rest: size 2 as 0"), "MmLargeSystem, a workstation: {workstation}");
}

#[test]
fn a_write_through_a_read_only_mdl_mapping_is_0xbe() {
    let out = run("mm_rest_readonly.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("wrote a read-only mapping"), "{text}");
    let at = text.split("writing at ").nth(1).and_then(|s| s.split_whitespace().next()).expect("address printed");
    let at = u64::from_str_radix(at, 16).expect("hex");
    assert!(text.contains(&format!("STOP: 0x000000be ({at:#x}, ")), "{text}");
    assert!(text.contains(", 0x0, 0xa) ATTEMPTED_WRITE_TO_READONLY_MEMORY"), "{text}");
}

#[test]
fn a_read_through_a_no_access_mdl_mapping_is_0x50() {
    let out = run("mm_rest_noaccess.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("from a no-access mapping"), "{text}");
    let at = text.split("reading at ").nth(1).and_then(|s| s.split_whitespace().next()).expect("address printed");
    let at = u64::from_str_radix(at, 16).expect("hex");
    assert!(text.contains(&format!("STOP: 0x00000050 ({at:#x}, 0x0, ")), "{text}");
}

#[test]
fn securing_at_dispatch_level_is_irql_not_less_or_equal() {
    let out = run("mm_rest_secure_dispatch.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("secured at dispatch"), "{text}");
    assert!(text.contains("STOP: 0x0000000a (") && text.contains(", 0x2, 0x8, "), "{text}");
}
