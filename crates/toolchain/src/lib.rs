//! The driver toolchain: C sources to a real Windows x64 driver image (`.sys`).
//!
//! A driver is compiled by clang for the Windows x64 target and linked by
//! lld-link into a PE32+ native image, as issue 10 prescribes:
//!
//! * `clang --target=x86_64-pc-windows-msvc -fms-extensions -fms-compatibility
//!   -fasync-exceptions -funwind-tables -ffreestanding -fno-builtin
//!   -fno-stack-protector` ([`CFLAGS`]). clang 19 or newer is required: clang
//!   14–16 leave a `__try` whose body makes no call out of the scope table, so a
//!   fault there goes unhandled even with `-fasync-exceptions` (llvm-project issue
//!   117420). `-funwind-tables` gives leaf functions unwind data too. `-g -gcodeview`
//!   records CodeView debug information (function names, file:line), as the WDK's
//!   compiler does; it does not change the code generated.
//! * `lld-link /driver /subsystem:native /entry:DriverEntry /nodefaultlib
//!   /machine:x64 /section:INIT,erd` ([`LDFLAGS`]; `/section:INIT,d` would replace
//!   the attributes, `erd` keeps INIT executable and readable). `/debug` writes that
//!   information to a PDB beside the image (`driver.pdb` for `driver.sys`) and names it
//!   in the image's CodeView debug directory entry, as a WDK build does; `/opt:ref
//!   /opt:icf` keep the link's defaults, which `/debug` would otherwise turn off, so the
//!   image's code is the same with or without it.
//! * against import libraries that `llvm-dlltool -m i386:x86-64` makes from a
//!   `.def` listing what each DLL (`ntoskrnl.exe`, `hal.dll`) exports — the caller
//!   passes ntmem's export table, never a hand-kept list. A data export (a
//!   variable such as `MmSystemRangeStart`) is written `Name DATA` so the import
//!   binds to the variable's address, not a thunk.
//!
//! [`Toolchain::find`] looks for the tools on `PATH` (`clang-19`, `clang`, …) and
//! under `/usr/lib/llvm-N/bin`; when one is missing or too old it says what to
//! install ([`ToolchainError::Missing`]).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler options every driver is built with (before the caller's own).
/// `-Wno-deprecated-non-prototype`: WDK-era C declares function pointers with `()`
/// (Microsoft's PCI NIC sample, the seed's Figure 1, does), which MSVC accepts
/// silently and clang 19 flags as a C23 deprecation.
pub const CFLAGS: &[&str] = &[
    "--target=x86_64-pc-windows-msvc",
    "-fms-extensions",
    "-fms-compatibility",
    "-fasync-exceptions",
    "-funwind-tables",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-Wno-deprecated-non-prototype",
    "-g",
    "-gcodeview",
];

/// The linker options every driver is linked with.
pub const LDFLAGS: &[&str] = &[
    "/driver",
    "/subsystem:native",
    "/entry:DriverEntry",
    "/nodefaultlib",
    "/machine:x64",
    "/section:INIT,erd",
    "/debug",
    "/opt:ref",
    "/opt:icf",
];

/// What to install when the toolchain is missing (Debian and Ubuntu package names).
pub const INSTALL_HINT: &str = "apt-get install clang-19 lld-19 llvm-19";

/// The oldest clang that compiles `__try` correctly for the Windows x64 target.
pub const MIN_CLANG: u32 = 19;

/// Why a driver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// A tool is missing or too old.
    #[error("{tool} not found (clang {MIN_CLANG} or newer, lld-link and llvm-dlltool are needed): {INSTALL_HINT}")]
    Missing {
        /// The tool.
        tool: &'static str,
    },
    /// A tool ran and failed; `output` is what it printed.
    #[error("{tool} failed:\n{output}")]
    Failed {
        /// The tool.
        tool: &'static str,
        /// Its standard output and error.
        output: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ToolchainError + '_ {
    move |error| ToolchainError::Io { path: path.display().to_string(), error }
}

/// One DLL's exports, for its import library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportLibrary {
    /// The DLL's name, as drivers import it (`ntoskrnl.exe`, `HAL.dll`).
    pub dll: String,
    /// Its routines.
    pub routines: Vec<String>,
    /// Its variables (bound to their address, `DATA` in the `.def`).
    pub data: Vec<String>,
}

impl ImportLibrary {
    /// The `.def` file `llvm-dlltool` reads.
    pub fn def(&self) -> String {
        let mut def = format!("LIBRARY {}\nEXPORTS\n", self.dll);
        for r in &self.routines {
            def.push_str(&format!("    {r}\n"));
        }
        for d in &self.data {
            def.push_str(&format!("    {d} DATA\n"));
        }
        def
    }
}

/// The tools, found.
#[derive(Clone, Debug)]
pub struct Toolchain {
    clang: PathBuf,
    lld_link: PathBuf,
    dlltool: PathBuf,
}

fn candidates(tool: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for version in (MIN_CLANG..=30).rev() {
        paths.push(PathBuf::from(format!("{tool}-{version}")));
    }
    paths.push(PathBuf::from(tool));
    for version in (MIN_CLANG..=30).rev() {
        paths.push(PathBuf::from(format!("/usr/lib/llvm-{version}/bin/{tool}")));
    }
    paths
}

/// The major version a tool reports (`… version 19.1.7 …`).
fn version_of(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("version ").nth(1)?.split('.').next()?.trim().parse().ok()
}

/// Whether `path` can be started (llvm-dlltool answers `--version` with usage and
/// status 1, so only starting is asked).
fn runs(path: &Path) -> bool {
    Command::new(path).arg("--version").output().is_ok()
}

impl Toolchain {
    /// Finds clang ≥ 19, lld-link and llvm-dlltool.
    ///
    /// # Errors
    /// [`ToolchainError::Missing`] naming the first tool not found.
    pub fn find() -> Result<Toolchain, ToolchainError> {
        let clang = candidates("clang")
            .into_iter()
            .find(|p| version_of(p).is_some_and(|v| v >= MIN_CLANG))
            .ok_or(ToolchainError::Missing { tool: "clang" })?;
        let lld_link =
            candidates("lld-link").into_iter().find(|p| runs(p)).ok_or(ToolchainError::Missing { tool: "lld-link" })?;
        let dlltool = candidates("llvm-dlltool")
            .into_iter()
            .find(|p| runs(p))
            .ok_or(ToolchainError::Missing { tool: "llvm-dlltool" })?;
        Ok(Toolchain { clang, lld_link, dlltool })
    }

    /// The compiler found.
    pub fn clang(&self) -> &Path {
        &self.clang
    }

    /// The linker found.
    pub fn lld_link(&self) -> &Path {
        &self.lld_link
    }

    /// The import-library tool found.
    pub fn dlltool(&self) -> &Path {
        &self.dlltool
    }

    /// Compiles `source` into the object `object` with [`CFLAGS`] and then `flags`.
    ///
    /// # Errors
    /// [`ToolchainError::Failed`] with the compiler's messages.
    pub fn compile(&self, source: &Path, object: &Path, flags: &[String]) -> Result<String, ToolchainError> {
        let mut c = Command::new(&self.clang);
        c.args(CFLAGS).args(flags).arg("-c").arg(source).arg("-o").arg(object);
        run("clang", &mut c)
    }

    /// Makes the import library for `library` at `lib` (its `.def` beside it).
    ///
    /// # Errors
    /// [`ToolchainError`] when writing the `.def` or running llvm-dlltool fails.
    pub fn import_library(&self, library: &ImportLibrary, lib: &Path) -> Result<(), ToolchainError> {
        let def = lib.with_extension("def");
        std::fs::write(&def, library.def()).map_err(io(&def))?;
        let mut c = Command::new(&self.dlltool);
        c.args(["-m", "i386:x86-64", "-d"]).arg(&def).arg("-l").arg(lib);
        run("llvm-dlltool", &mut c).map(drop)
    }

    /// Links `objects` and `libraries` into the driver image `out` with [`LDFLAGS`].
    ///
    /// # Errors
    /// [`ToolchainError::Failed`] with the linker's messages.
    pub fn link(&self, objects: &[PathBuf], libraries: &[PathBuf], out: &Path) -> Result<String, ToolchainError> {
        let mut c = Command::new(&self.lld_link);
        c.args(LDFLAGS).args(objects).args(libraries).arg(format!("/out:{}", out.display()));
        run("lld-link", &mut c)
    }

    /// Builds the C files `sources` into the image `out`, linking against import
    /// libraries made in `work` (a directory of the caller's) from `imports`;
    /// `flags` follow [`CFLAGS`]. Returns the tools' messages (warnings).
    ///
    /// # Errors
    /// [`ToolchainError`].
    pub fn build(
        &self,
        sources: &[PathBuf],
        imports: &[ImportLibrary],
        flags: &[String],
        work: &Path,
        out: &Path,
    ) -> Result<String, ToolchainError> {
        std::fs::create_dir_all(work).map_err(io(work))?;
        let mut messages = String::new();
        let mut objects = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let stem = source.file_stem().map_or_else(|| format!("source{i}"), |s| s.to_string_lossy().into_owned());
            let object = work.join(format!("{i}-{stem}.obj"));
            messages.push_str(&self.compile(source, &object, flags)?);
            objects.push(object);
        }
        let mut libraries = Vec::new();
        for library in imports {
            let stem = library.dll.split('.').next().unwrap_or(&library.dll).to_ascii_lowercase();
            let lib = work.join(format!("{stem}.lib"));
            self.import_library(library, &lib)?;
            libraries.push(lib);
        }
        messages.push_str(&self.link(&objects, &libraries, out)?);
        Ok(messages)
    }
}

/// Runs `command`; its output (both streams) on success, [`ToolchainError::Failed`]
/// otherwise.
fn run(tool: &'static str, command: &mut Command) -> Result<String, ToolchainError> {
    let out = command.output().map_err(|_| ToolchainError::Missing { tool })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(ToolchainError::Failed { tool, output: text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_def_file_marks_variables_as_data() {
        let lib = ImportLibrary {
            dll: "ntoskrnl.exe".into(),
            routines: vec!["ExAllocatePoolWithTag".into()],
            data: vec!["MmSystemRangeStart".into()],
        };
        assert_eq!(
            lib.def(),
            "LIBRARY ntoskrnl.exe\nEXPORTS\n    ExAllocatePoolWithTag\n    MmSystemRangeStart DATA\n"
        );
    }

    #[test]
    fn the_toolchain_builds_a_native_x64_image() {
        let tc = Toolchain::find().expect("the driver toolchain");
        let dir = std::env::temp_dir().join(format!("ntmem-toolchain-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("tiny.c");
        std::fs::write(
            &c,
            "void *ExAllocatePoolWithTag(int, unsigned long long, unsigned);\n\
             long DriverEntry(void *d, void *r) { return ExAllocatePoolWithTag(0, 8, 0) ? 0 : 1; }\n",
        )
        .unwrap();
        let imports = [ImportLibrary {
            dll: "ntoskrnl.exe".into(),
            routines: vec!["ExAllocatePoolWithTag".into()],
            data: vec![],
        }];
        let out = dir.join("tiny.sys");
        tc.build(&[c], &imports, &["-O2".into()], &dir.join("work"), &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..2], b"MZ");
        let e_lfanew = u32::from_le_bytes(bytes[0x3C..0x40].try_into().unwrap()) as usize;
        assert_eq!(&bytes[e_lfanew..e_lfanew + 4], b"PE\0\0");
        assert_eq!(u16::from_le_bytes([bytes[e_lfanew + 4], bytes[e_lfanew + 5]]), 0x8664, "AMD64");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
