//! C drivers using the memory routines at the WDK boundary: the seed's lookaside
//! list and contiguous-memory samples, run through `ntmem run`.

use std::path::Path;
use std::process::{Command, Output};

fn run(driver: &str) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(driver);
    Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(path).output().expect("ntmem runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_seeds_lookaside_list_counts_hits_and_misses_as_windows() {
    let out = run("tests/drivers/lookaside.c");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Depth 4 MaximumDepth 256 TotalAllocates 9 AllocateMisses 8 TotalFrees 9 FreeMisses 4 cached 4"),
        "{text}"
    );
    assert!(text.contains(" NicL  Nonp         8         8         0"), "{text}");
}

#[test]
fn the_contiguous_demo_lands_below_4_gb() {
    let out = run("../../drivers/contig.c");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("all 16 pages physically contiguous and below 4 GB: yes"), "{text}");
    assert!(text.contains("contig: freed the buffer"), "{text}");
}

#[test]
fn probing_a_system_address_raises_access_violation_into_the_drivers_except() {
    let out = run("tests/drivers/probe_system.c");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("probe: except block ran with 0xC0000005"), "{text}");
    assert!(text.contains("probe: misaligned 0x80000002"), "{text}");
    assert!(text.contains("probe: length 0 checks nothing"), "{text}");
    assert!(!text.contains("not raised"), "{text}");
}
