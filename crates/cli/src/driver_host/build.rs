//! Building a driver: the `.c` files (or a directory of them) are compiled by the
//! host's C compiler (`$CC`, else `cc`) into one shared object, against ntmem's
//! WDK headers: `$NTMEM_INCLUDE` if set, else the source tree's `include/` if it
//! is still where ntmem was built from, else a copy embedded in the binary and
//! written next to the output (so an installed `ntmem` needs no source tree). A
//! `.so` already built against the headers is used as it is.
//!
//! Compiler messages go to standard error exactly as the compiler prints them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Failure;

/// The headers of `include/`, by file name.
const HEADERS: &[(&str, &str)] = &[
    ("wdm.h", include_str!("../../../../include/wdm.h")),
    ("ntddk.h", include_str!("../../../../include/ntddk.h")),
    ("ntifs.h", include_str!("../../../../include/ntifs.h")),
    ("pshpack1.h", include_str!("../../../../include/pshpack1.h")),
    ("pshpack2.h", include_str!("../../../../include/pshpack2.h")),
    ("pshpack4.h", include_str!("../../../../include/pshpack4.h")),
    ("pshpack8.h", include_str!("../../../../include/pshpack8.h")),
    ("pshpack16.h", include_str!("../../../../include/pshpack16.h")),
    ("poppack.h", include_str!("../../../../include/poppack.h")),
    ("sal.h", include_str!("../../../../include/sal.h")),
    ("driverspecs.h", include_str!("../../../../include/driverspecs.h")),
    ("specstrings.h", include_str!("../../../../include/specstrings.h")),
    ("ntmem/memory.h", include_str!("../../../../include/ntmem/memory.h")),
    ("ntmem/io.h", include_str!("../../../../include/ntmem/io.h")),
    ("ntmem/lookaside.h", include_str!("../../../../include/ntmem/lookaside.h")),
    ("ntmem/rtl.h", include_str!("../../../../include/ntmem/rtl.h")),
    ("ntmem/resources.h", include_str!("../../../../include/ntmem/resources.h")),
];

/// What every driver is compiled with. `-fshort-wchar` makes `L"..."` 16-bit as
/// in Windows; an undeclared routine (one ntmem does not implement) is an error.
const CFLAGS: &[&str] =
    &["-shared", "-fPIC", "-O1", "-g", "-Wall", "-fshort-wchar", "-Werror=implicit-function-declaration"];

/// A directory of our own under the system temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Result<TempDir, Failure> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("ntmem-driver-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A driver ready to load.
#[derive(Debug)]
pub struct Built {
    /// The shared object.
    pub object: PathBuf,
    /// The driver's name: the file's name for one file, else the directory's or
    /// the first file's stem with `.so`.
    pub name: String,
    /// Where it was built (removed when this is dropped).
    pub _dir: Option<TempDir>,
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext)
}

/// The `.c` files of `args`, or the one `.so`, and the driver's name.
pub(crate) fn sources(args: &[PathBuf]) -> Result<(Vec<PathBuf>, String), Failure> {
    let mut files = Vec::new();
    for a in args {
        if a.is_dir() {
            let entries = std::fs::read_dir(a).map_err(|e| Failure::usage(format!("{}: {e}", a.display())))?;
            let mut c: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| has_ext(p, "c")).collect();
            if c.is_empty() {
                return Err(Failure::usage(format!("{}: no .c files in the directory", a.display())));
            }
            c.sort();
            files.extend(c);
        } else if !a.exists() {
            return Err(Failure::usage(format!("{}: no such file", a.display())));
        } else if has_ext(a, "c") || has_ext(a, "so") {
            files.push(a.clone());
        } else {
            return Err(Failure::usage(format!(
                "{}: a driver is .c files, a directory of them, or a .so",
                a.display()
            )));
        }
    }
    let name = match (args, files.as_slice()) {
        ([one], _) if one.is_dir() => format!("{}.so", file_name(one)),
        (_, [one]) => file_name(one),
        (_, [first, ..]) => format!("{}.so", first.file_stem().map_or("driver".into(), |s| s.to_string_lossy())),
        (_, []) => return Err(Failure::usage("no driver given")),
    };
    if files.iter().any(|f| has_ext(f, "so")) && files.len() > 1 {
        return Err(Failure::usage("a .so driver is run alone, without other files"));
    }
    Ok((files, name))
}

/// The directory of the WDK headers (see the module docs).
pub(crate) fn include_dir(dir: &TempDir) -> Result<PathBuf, Failure> {
    if let Some(d) = std::env::var_os("NTMEM_INCLUDE") {
        return Ok(PathBuf::from(d));
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    if tree.join("wdm.h").is_file() {
        return Ok(tree.canonicalize().unwrap_or(tree));
    }
    let include = dir.0.join("include");
    std::fs::create_dir_all(&include).map_err(|e| Failure::usage(format!("{}: {e}", include.display())))?;
    for (file, text) in HEADERS {
        let path = include.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Failure::usage(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    }
    Ok(include)
}

/// Builds the driver `args` name.
///
/// # Errors
/// Exit status 2: no such file, no compiler, or the compiler refused (its
/// messages are already on standard error).
pub fn build(args: &[PathBuf]) -> Result<Built, Failure> {
    let (files, name) = sources(args)?;
    if let [so] = files.as_slice() {
        if has_ext(so, "so") {
            return Ok(Built { object: so.clone(), name, _dir: None });
        }
    }
    let dir = TempDir::new()?;
    let include = include_dir(&dir)?;
    let object = dir.0.join("driver.so");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&object)
        .args(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Failure::usage(format!("cannot run the C compiler {}: {e}", cc.to_string_lossy())))?;
    if !status.success() {
        return Err(Failure::usage(format!("{name}: the C compiler failed ({status})")));
    }
    Ok(Built { object, name, _dir: Some(dir) })
}
