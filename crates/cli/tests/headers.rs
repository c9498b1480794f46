//! The WDK headers and the demo and sample drivers compile without a warning under
//! every C compiler on the machine: `cc` always, and `gcc` and `clang` when they
//! are installed (issue 5: "clean under gcc and clang with -Wall in C").

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compilers() -> Vec<&'static str> {
    ["cc", "gcc", "clang"].into_iter().filter(|c| Command::new(c).arg("--version").output().is_ok()).collect()
}

#[test]
fn drivers_compile_without_warnings_under_every_compiler() {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root().join("drivers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    for sample in [
        "tset.c",
        "lookaside.c",
        "seh.c",
        "seed_probe.c",
        "clean.c",
        "pool_routines.c",
        "annotated.c",
        "dbgprint_formats.c",
    ] {
        sources.push(root().join("crates/cli/tests/drivers").join(sample));
    }
    let compilers = compilers();
    assert!(compilers.contains(&"cc"), "a C compiler is required");
    for compiler in compilers {
        for source in &sources {
            let out = Command::new(compiler)
                .args(["-c", "-Wall", "-Wextra", "-Werror", "-fshort-wchar", "-o", "/dev/null", "-I"])
                .arg(root().join("include"))
                .arg(source)
                .output()
                .unwrap();
            assert!(out.status.success(), "{compiler} {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
        }
    }
}
