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

/// The headers declare exactly the routines the export table exports: gcc's
/// `-aux-info` lists every function `<ntddk.h>` declares, with the file it is
/// declared in; the ones from `include/` that are not `static inline` must be the
/// table's routines. The `ntmem_seh_*` helpers behind the setjmp `__try` macros
/// are the one exception while C drivers are built as shared objects; they go
/// with them.
#[test]
fn include_declares_exactly_what_is_exported() {
    let dir = std::env::temp_dir().join(format!("ntmem-aux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("all.c");
    std::fs::write(&source, "#include <ntddk.h>\n").unwrap();
    let aux = dir.join("aux.txt");
    let out = Command::new("gcc")
        .args(["-fsyntax-only", "-fshort-wchar", "-I"])
        .arg(root().join("include"))
        .arg("-aux-info")
        .arg(&aux)
        .arg(&source)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let include = root().join("include").canonicalize().unwrap();
    let text = std::fs::read_to_string(&aux).unwrap();
    let mut declared: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (origin, decl) = l.strip_prefix("/* ")?.split_once(" */ ")?;
            let file = origin.rsplitn(3, ':').nth(2)?;
            let ours = Path::new(file).canonicalize().ok()?.starts_with(&include);
            let decl = decl.strip_prefix("extern ")?;
            let name = decl.split(" (").next()?.rsplit([' ', '*']).next()?;
            (ours && !name.starts_with("DriverEntry") && !name.starts_with("ntmem_seh_")).then(|| name.to_string())
        })
        .collect();
    declared.sort();
    let mut exported: Vec<String> = ntmem_wdk::exports::EXPORTS
        .iter()
        .filter(|e| e.kind == ntmem_wdk::exports::Kind::Routine)
        .map(|e| e.name.to_string())
        .collect();
    exported.sort();
    let _ = std::fs::remove_dir_all(&dir);
    let missing: Vec<_> = exported.iter().filter(|n| !declared.contains(n)).collect();
    let extra: Vec<_> = declared.iter().filter(|n| !exported.contains(n)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "exported but not declared: {missing:?}; declared but not exported: {extra:?}"
    );
}

/// Every driver in the repository also compiles for the Windows x64 target (LLP64,
/// 16-bit `wchar_t`, the compiler's own `__try`) with the flags `ntmem build` uses,
/// so the headers serve the PE-image build as they serve the host build.
#[test]
fn drivers_compile_for_the_windows_x64_target() {
    let toolchain = ntmem_toolchain::Toolchain::find().expect("the driver toolchain (clang >= 19, lld, llvm)");
    let dir = std::env::temp_dir().join(format!("ntmem-win64-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sources: Vec<PathBuf> =
        std::fs::read_dir(root().join("drivers")).unwrap().map(|e| e.unwrap().path()).collect();
    sources.extend(std::fs::read_dir(root().join("crates/cli/tests/drivers")).unwrap().map(|e| e.unwrap().path()));
    let broken = ["syntax_error.c", "unimplemented.c"];
    let include = format!("-I{}", root().join("include").display());
    for source in sources.iter().filter(|p| p.extension().is_some_and(|e| e == "c")) {
        if broken.iter().any(|b| source.ends_with(b)) {
            continue;
        }
        let object = dir.join("driver.obj");
        let result = toolchain.compile(source, &object, &["-O2".into(), include.clone()]);
        assert!(result.is_ok(), "{}: {}", source.display(), result.unwrap_err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
