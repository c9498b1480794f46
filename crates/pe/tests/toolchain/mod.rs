//! Builds real driver images with clang ≥ 19 and lld-link, as issue 10 prescribes, and runs
//! LLVM's own tools (llvm-objdump, llvm-readobj) to have an independent reading of them.
//!
//! The tools are looked up as `clang-19`/`clang` (version ≥ 19), `lld-link`/`lld-link-19`,
//! `llvm-dlltool`, `llvm-objdump`, `llvm-readobj` on PATH or under `/usr/lib/llvm-N/bin`. When
//! one is missing the test fails saying what to install; CI (`.ci/run`) installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler options of issue 10 ("What to build", item 1).
pub const CFLAGS: &[&str] = &[
    "--target=x86_64-pc-windows-msvc",
    "-fms-extensions",
    "-fms-compatibility",
    "-fasync-exceptions",
    "-funwind-tables",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-O2",
];

/// The linker options of issue 10.
pub const LDFLAGS: &[&str] =
    &["/driver", "/subsystem:native", "/entry:DriverEntry", "/nodefaultlib", "/machine:x64", "/section:INIT,erd"];

const INSTALL: &str = "the PE tests need clang >= 19, lld and llvm tools: apt-get install clang-19 lld-19 llvm-19";

fn candidates(tool: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(format!("{tool}-19")), PathBuf::from(tool)];
    for version in [19, 20, 21, 22] {
        paths.push(PathBuf::from(format!("/usr/lib/llvm-{version}/bin/{tool}")));
    }
    paths
}

fn version_of(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let after = text.split("version ").nth(1)?;
    after.split('.').next()?.trim().parse().ok()
}

/// The first candidate for `tool` that runs (clang also needs version ≥ 19).
pub fn find(tool: &str) -> PathBuf {
    candidates(tool)
        .into_iter()
        .find(|p| match tool {
            "clang" => version_of(p).is_some_and(|v| v >= 19),
            _ => Command::new(p).arg("--version").output().is_ok(),
        })
        .unwrap_or_else(|| panic!("{tool} not found: {INSTALL}"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}: {INSTALL}"));
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

/// Compiles `source` (C) and links it with import libraries made by llvm-dlltool, in a
/// directory of its own under the test target's temporary directory.
pub fn build_driver(name: &str, source: &str, imports: &[ImportLib<'_>]) -> Built {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pe-images").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let obj = dir.join(format!("{name}.obj"));
    run(Command::new(find("clang")).args(CFLAGS).arg("-c").arg(&c).arg("-o").arg(&obj));
    let mut link = Command::new(find("lld-link"));
    link.args(LDFLAGS).arg(&obj);
    for lib in imports {
        let stem = lib.dll.split('.').next().unwrap_or(lib.dll);
        let def = dir.join(format!("{stem}.def"));
        std::fs::write(&def, format!("LIBRARY {}\nEXPORTS\n{}\n", lib.dll, lib.exports.join("\n"))).unwrap();
        let out = dir.join(format!("{stem}.lib"));
        run(Command::new(find("llvm-dlltool")).args(["-m", "i386:x86-64", "-d"]).arg(&def).arg("-l").arg(&out));
        link.arg(out);
    }
    let path = dir.join(format!("{name}.sys"));
    run(link.arg(format!("/out:{}", path.display())));
    let bytes = std::fs::read(&path).unwrap();
    Built { path, bytes }
}

/// Runs an LLVM tool (`llvm-objdump`, `llvm-readobj`) on `path` and returns its output.
pub fn llvm(tool: &str, args: &[&str], path: &Path) -> String {
    run(Command::new(find(tool)).args(args).arg(path))
}
