//! The driver `ntmem run` runs: a Windows x64 image (`.sys`) as it is, or `.c`
//! files (or a directory of them) built into one by [`super::image`] — clang for
//! the Windows target and lld-link, against ntmem's WDK headers:
//! `$NTMEM_INCLUDE` if set, else the source tree's `include/` if it is still
//! where ntmem was built from, else a copy embedded in the binary and written to a
//! temporary directory (so an installed `ntmem` needs no source tree).
//!
//! Compiler messages go to standard error exactly as the compiler prints them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ntmem_machine::Edition;
use ntmem_wdk::symbols::{ImageSymbols, SymbolError};

use crate::Failure;

/// The headers of `include/`, by path under it (every `.h`, listed by `build.rs`).
const HEADERS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/headers.rs"));

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
    /// The image's bytes.
    pub image: Vec<u8>,
    /// The driver's name: the `.sys` file's name, else the `.c` file's (or the
    /// directory's) stem with `.sys`.
    pub name: String,
    /// Where a `.sys` was read from (its PDB is looked for beside it).
    pub sys: Option<PathBuf>,
    /// The PDB a build wrote, and the name it goes by (`driver.pdb`).
    pub pdb: Option<(Vec<u8>, PathBuf)>,
}

impl Built {
    /// The image's symbols at `base` (its PDB when one matches, else its own tables:
    /// `ntmem_wdk::symbols`).
    ///
    /// # Errors
    /// The image cannot be read for symbols (it loaded, so this is not expected).
    pub fn symbols(&self, base: u64) -> Result<ImageSymbols, SymbolError> {
        let (symbols, _) = ImageSymbols::load(&self.name, base, &self.image, self.sys.as_deref())?;
        Ok(match &self.pdb {
            Some((bytes, path)) => symbols.clone().with_pdb(bytes.clone(), path).unwrap_or(symbols),
            None => symbols,
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext)
}

/// The `.c` files of `args`, or the one `.sys`, and the driver's name.
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
        } else if has_ext(a, "c") || has_ext(a, "sys") {
            files.push(a.clone());
        } else {
            return Err(Failure::usage(format!(
                "{}: a driver is .c files, a directory of them, or a Windows x64 image (.sys)",
                a.display()
            )));
        }
    }
    let name = match (args, files.as_slice()) {
        ([one], _) if one.is_dir() => format!("{}.sys", file_name(one)),
        (_, [one]) if has_ext(one, "sys") => file_name(one),
        (_, [first, ..]) => format!("{}.sys", first.file_stem().map_or("driver".into(), |s| s.to_string_lossy())),
        (_, []) => return Err(Failure::usage("no driver given")),
    };
    if files.iter().any(|f| has_ext(f, "sys")) && files.len() > 1 {
        return Err(Failure::usage("a .sys driver is run alone, without other files"));
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

/// The driver `args` names, built for `edition` if it is source.
///
/// # Errors
/// Exit status 2: no such file, the toolchain missing (the message says what to
/// install), or the compiler refused (its messages are already on standard error).
pub fn build(args: &[PathBuf], edition: &Edition) -> Result<Built, Failure> {
    let (files, name) = sources(args)?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| Failure::usage(format!("{}: {e}", p.display())));
    if let [sys] = files.as_slice() {
        if has_ext(sys, "sys") {
            return Ok(Built { image: read(sys)?, name, sys: Some(sys.clone()), pdb: None });
        }
    }
    let dir = TempDir::new()?;
    let out = dir.0.join(&name);
    let defines = super::image::target_defines(edition);
    let request = super::image::ImageRequest { sources: files, out, includes: Vec::new(), defines };
    let built = super::image::build_image(&request)?;
    let pdb_path = built.image.with_extension("pdb");
    let pdb = std::fs::read(&pdb_path).ok().map(|bytes| (bytes, PathBuf::from(file_name(&pdb_path))));
    Ok(Built { image: read(&built.image)?, name, sys: None, pdb })
}

#[cfg(test)]
mod tests {
    use super::HEADERS;

    #[test]
    fn every_header_a_header_includes_is_embedded() {
        let names: Vec<&str> = HEADERS.iter().map(|(name, _)| *name).collect();
        for wanted in ["wdm.h", "ntddk.h", "ntmem/rtl.h"] {
            assert!(names.contains(&wanted), "{wanted} is not embedded: {names:?}");
        }
        for (name, text) in HEADERS {
            for line in text.lines().filter_map(|l| l.trim().strip_prefix("#include")) {
                let Some(included) = line.trim().strip_prefix('"').and_then(|l| l.split('"').next()) else { continue };
                assert!(names.contains(&included), "{name} includes {included}, which is not embedded");
            }
        }
    }
}
