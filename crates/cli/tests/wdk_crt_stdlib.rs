//! The C run time's stdlib.h routines (issue 11 item 1) from a C driver through
//! `ntmem run`: qsort and bsearch with a comparator, qsort with a lying comparator
//! returning with every element kept, abs and labs.

use std::path::Path;
use std::process::Command;

#[test]
fn qsort_bsearch_and_abs_behave_as_documented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/crt_stdlib.c");
    let out = Command::new(env!("CARGO_BIN_EXE_ntmem")).arg("run").arg(path).output().expect("ntmem runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("crt: 69 checks, 0 failed"), "{text}");
}
