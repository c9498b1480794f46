//! The memory routines at the C boundary (issue 11 item 5) from C drivers through
//! `ntmem run`: MDLs that own their pages (fewer pages than asked, NULL when all are
//! required), partial MDLs, MmAdvanceMdl, MmSizeOfMdl, MmInitializeMdl,
//! MmMapLockedPages, the kernel stack's limits and the small queries, each checked by
//! the driver; MmAllocatePagesForMdl(Ex) failed by Driver Verifier's low resources
//! simulation, and called at DISPATCH_LEVEL.

use std::path::Path;
use std::process::{Command, Output};

fn run(driver: &str, flags: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(driver);
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(path).args(flags).output().expect("ntmem runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_memory_routines_behave_as_documented() {
    let out = run("mm_routines.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("mm: 35 checks, 0 failed"), "{text}");
    assert!(text.contains("Leaks          none"), "{text}");
    // The MDLs: three from MmAllocatePagesForMdl(Ex), two from IoAllocateMdl, all freed.
    assert!(text.contains(" Mdl   Nonp         5         5         0"), "{text}");
}

#[test]
fn low_resources_simulation_fails_the_page_allocators() {
    let out = run("mm_pages_low.c", &[]);
    assert!(text(&out).contains("mm: pages allocated, ex allocated"), "{}", text(&out));
    let out = run("mm_pages_low.c", &["--verifier", "low_resources", "--fault-probability", "10000"]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("mm: pages NULL, ex NULL"), "{text}");
    assert!(text.contains("Entry (index 0): MmAllocatePagesForMdl at 0 ms"), "{text}");
    assert!(text.contains("Entry (index 1): MmAllocatePagesForMdlEx at 0 ms"), "{text}");
}

#[test]
fn the_page_allocator_at_dispatch_level_is_irql_not_less_or_equal() {
    let out = run("mm_pages_dispatch.c", &[]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("mm: allocated at dispatch"), "{text}");
    assert!(text.contains("STOP: 0x0000000a (") && text.contains(", 0x2, 0x8, "), "{text}");
}
