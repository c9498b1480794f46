//! Builds real driver images with `ntmem-toolchain` (clang ≥ 19 and lld-link with the flags
//! issue 10 prescribes), and runs LLVM's own tools (llvm-objdump, llvm-readobj) to have an
//! independent reading of them. The LLVM tools are looked up as `TOOL-19`/`TOOL` on PATH or
//! under `/usr/lib/llvm-N/bin`; when one is missing the test fails saying what to install
//! (CI installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use ntmem_toolchain::{ImportLibrary, Toolchain, INSTALL_HINT};

fn candidates(tool: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(format!("{tool}-19")), PathBuf::from(tool)];
    for version in [19, 20, 21, 22] {
        paths.push(PathBuf::from(format!("/usr/lib/llvm-{version}/bin/{tool}")));
    }
    paths
}

/// The first candidate for the LLVM tool `tool` that runs.
pub fn find(tool: &str) -> PathBuf {
    candidates(tool)
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .unwrap_or_else(|| panic!("{tool} not found: {INSTALL_HINT}"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}: {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An import library to link against: a DLL name and its `.def` EXPORTS lines.
pub struct ImportLib<'a> {
    pub dll: &'a str,
    pub exports: &'a [&'a str],
}

/// A linked image and where it lives.
pub struct Built {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Compiles `source` (C) at -O2 and links it against `imports`, in a directory of its own
/// under the test target's temporary directory.
pub fn build_driver(name: &str, source: &str, imports: &[ImportLib<'_>]) -> Built {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pe-images").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let imports: Vec<ImportLibrary> = imports
        .iter()
        .map(|l| ImportLibrary {
            dll: l.dll.to_string(),
            routines: l.exports.iter().map(|e| e.to_string()).collect(),
            data: Vec::new(),
        })
        .collect();
    let path = dir.join(format!("{name}.sys"));
    let toolchain = Toolchain::find().unwrap_or_else(|e| panic!("{e}"));
    toolchain.build(&[c], &imports, &["-O2".to_string()], &dir.join("work"), &path).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&path).unwrap();
    Built { path, bytes }
}

/// Runs an LLVM tool (`llvm-objdump`, `llvm-readobj`) on `path` and returns its output.
pub fn llvm(tool: &str, args: &[&str], path: &Path) -> String {
    run(Command::new(find(tool)).args(args).arg(path))
}
