//! The WDK headers and the demo and sample drivers compile without a warning for
//! the Windows x64 target (`-Wall -Wextra -Werror` with ntmem's compiler flags), and
//! the headers declare exactly what the export table exports.

use std::path::{Path, PathBuf};
use std::process::Command;

use ntmem_toolchain::{Toolchain, CFLAGS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ntmem-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn drivers_compile_without_warnings_for_the_windows_target() {
    let toolchain = Toolchain::find().expect("clang 19 and lld-link (see README)");
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
        "rtl_routines.c",
        "dma_sg32.c",
        "dma_1g.c",
        "dma_device.c",
        "dma_leak.c",
        "irp_misuse.c",
        "mutexes.c",
        "threads.c",
    ] {
        sources.push(root().join("crates/cli/tests/drivers").join(sample));
    }
    let dir = scratch("warnings");
    let flags: Vec<String> = ["-Wall", "-Wextra", "-Werror", "-O2", "-I"]
        .iter()
        .map(|s| s.to_string())
        .chain([root().join("include").display().to_string()])
        .collect();
    for source in &sources {
        let r = toolchain.compile(source, &dir.join("out.obj"), &flags);
        assert!(r.is_ok(), "{}: {}", source.display(), r.unwrap_err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes every balanced `word(...)` group (`__declspec(dllimport)`,
/// `__attribute__((noreturn))`) from `text`.
fn strip_groups(text: &str, word: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        out.push_str(&rest[..at]);
        let after = &rest[at + word.len()..];
        let Some(open) = after.find('(') else { return out + after };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices().skip(open) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out + rest
}

/// The last identifier of `text`.
fn last_identifier(text: &str) -> Option<String> {
    let name: String = text.trim_end().chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then(|| name.chars().rev().collect())
}

/// The functions and variables that `include/`'s headers declare for drivers to import:
/// the top-level declarations of the preprocessed `<ntddk.h>` that come from
/// `include/`, leaving out typedefs, `static` (inline) definitions and `DriverEntry`.
fn declared(toolchain: &Toolchain) -> Vec<String> {
    let dir = scratch("declared");
    let source = dir.join("all.c");
    // Every header a driver includes by name (the packing headers aside).
    let all =
        "#include <ntddk.h>\n#include <string.h>\n#include <stdlib.h>\n#include <stdio.h>\n#include <ntstrsafe.h>\n#include <devioctl.h>\n#include <wdmsec.h>\n#include <initguid.h>\n";
    std::fs::write(&source, all).unwrap();
    let out = Command::new(toolchain.clang())
        .args(CFLAGS)
        .args(["-E", "-I"])
        .arg(root().join("include"))
        .arg(&source)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let include = root().join("include").canonicalize().unwrap();
    // Our lines only, joined; line markers name the file the lines after them come from.
    let mut ours = String::new();
    let mut in_ours = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(marker) = line.strip_prefix("# ") {
            let file = marker.split('"').nth(1).unwrap_or("");
            in_ours = Path::new(file).canonicalize().is_ok_and(|f| f.starts_with(&include));
        } else if in_ours && !line.starts_with("#pragma") {
            ours.push_str(line);
            ours.push('\n');
        }
    }
    let ours = strip_groups(&strip_groups(&ours, "__declspec"), "__attribute__");
    // Top-level statements: split at `;` and at the `}` that closes a body.
    let mut statements = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in ours.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        current.push(c);
        if depth == 0 && (c == ';' || c == '}') {
            statements.push(std::mem::take(&mut current));
        }
    }
    let mut names: Vec<String> = statements
        .iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.contains("typedef") && !s.contains("static") && !s.contains('{') && s.ends_with(';'))
        .filter(|s| !s.starts_with("_Static_assert"))
        .filter_map(|s| match s.find('(') {
            Some(open) => last_identifier(&s[..open]),
            None if s.starts_with("extern ") => last_identifier(s.trim_end_matches(';')),
            None => None,
        })
        .filter(|n| n != "DriverEntry")
        // The compiler's intrinsics (`_InterlockedIncrement`, `_ReadWriteBarrier`): a
        // leading underscore and a capital are the implementation's names; they are
        // expanded inline, never imported.
        .filter(|n| !(n.starts_with('_') && n[1..].starts_with(|c: char| c.is_ascii_uppercase())))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The headers declare exactly the routines and variables the export table exports.
#[test]
fn include_declares_exactly_what_is_exported() {
    let toolchain = Toolchain::find().expect("clang 19 and lld-link (see README)");
    let declared = declared(&toolchain);
    let mut exported: Vec<String> = ntmem_wdk::exports::EXPORTS
        .iter()
        // The compiler's helpers (`__chkstk`, `__C_specific_handler`) are imported by
        // the code clang generates, not declared.
        .filter(|e| !e.name.starts_with("__"))
        .map(|e| e.name.to_string())
        .collect();
    exported.sort();
    let missing: Vec<_> = exported.iter().filter(|n| !declared.contains(n)).collect();
    let extra: Vec<_> = declared.iter().filter(|n| !exported.contains(n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "exported but not declared: {missing:?}; declared but not exported: {extra:?}"
    );
}
