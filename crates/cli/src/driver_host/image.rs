//! Building a driver as a Windows x64 PE image (`ntmem build`): the `.c` files
//! (or a directory of them) are compiled by clang ≥ 19 for the Windows x64 target
//! and linked by lld-link into a native `.sys` ([`ntmem_toolchain`]), against
//! import libraries for `ntoskrnl.exe` and `HAL.dll` made from ntmem's export
//! table ([`ntmem_wdk::exports`]) and against ntmem's WDK headers (found as for
//! the host build, see [`super::build`]).
//!
//! `-I` and `-D` options and the `CFLAGS` environment variable (split on
//! whitespace) reach the compiler after ntmem's own flags; the compiler's and
//! linker's messages, warnings included, go to standard error as they print
//! them.
//!
//! **Cache.** A build whose inputs are unchanged is not redone: the image is kept
//! under `$NTMEM_CACHE` (else `$XDG_CACHE_HOME/ntmem/images`, else
//! `~/.cache/ntmem/images`), named by a 128-bit hash of everything that makes it
//! — each source's name and bytes, the `.h` files beside the sources and in every
//! `-I` directory, ntmem's headers, the flags, the compiler found and the import
//! libraries' definitions. A header a source reaches some other way (an absolute
//! `#include` path) is not in the key.

use std::path::{Path, PathBuf};

use ntmem_machine::{Arch, Edition};
use ntmem_toolchain::Toolchain;

use super::build::{include_dir, sources, TempDir};
use crate::Failure;

/// What to build.
#[derive(Debug)]
pub struct ImageRequest {
    /// `.c` files or a directory of them.
    pub sources: Vec<PathBuf>,
    /// Where the image goes.
    pub out: PathBuf,
    /// `-I` directories.
    pub includes: Vec<PathBuf>,
    /// `-D` definitions (`NAME` or `NAME=VALUE`).
    pub defines: Vec<String>,
}

/// The definitions that compile a driver for `edition`, as the WDK's build
/// environment for that target sets them: `NTDDI_VERSION` and `_WIN32_WINNT` of its
/// release, and `_IA64_` on an IA-64 machine (the headers then give IA-64's
/// PAGE_SIZE 8 KB and PAGE_SHIFT 13, though the code is still x64's), else `_AMD64_`.
pub fn target_defines(edition: &Edition) -> Vec<String> {
    let ntddi = edition.release.ntddi_version();
    let cpu = if edition.arch == Arch::Ia64 { "_IA64_" } else { "_AMD64_" };
    vec![format!("NTDDI_VERSION={ntddi:#010x}"), format!("_WIN32_WINNT={:#06x}", ntddi >> 16), cpu.to_string()]
}

/// A built image.
#[derive(Debug, serde::Serialize)]
pub struct ImageBuilt {
    /// Where it is.
    pub image: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
    /// The cache key, as 32 hex digits.
    pub key: String,
}

/// FNV-1a over `bytes`, from two offset bases: a 128-bit key.
#[derive(Debug)]
struct Key([u64; 2]);

impl Key {
    fn new() -> Key {
        Key([0xCBF2_9CE4_8422_2325, 0x6C62_272E_07BB_0142])
    }

    fn add(&mut self, bytes: &[u8]) {
        for h in &mut self.0 {
            for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
                *h ^= u64::from(b);
                *h = h.wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
    }

    fn add_file(&mut self, path: &Path) -> Result<(), Failure> {
        self.add(path.to_string_lossy().as_bytes());
        let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        self.add(&bytes);
        Ok(())
    }

    /// Every file under `dir` whose name ends in `.h` (recursively), in name order.
    fn add_headers(&mut self, dir: &Path) -> Result<(), Failure> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                self.add_headers(&p)?;
            } else if p.extension().is_some_and(|e| e == "h") {
                self.add_file(&p)?;
            }
        }
        Ok(())
    }

    fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.0[0], self.0[1])
    }
}

fn cache_dir() -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("NTMEM_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("ntmem/images")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/ntmem/images")))
}

/// Builds `req`.
///
/// # Errors
/// Exit status 2: no such file, the toolchain missing or too old (the message
/// says what to install), or the compiler or linker refused (its messages are on
/// standard error).
pub fn build_image(req: &ImageRequest) -> Result<ImageBuilt, Failure> {
    let (files, _) = sources(&req.sources)?;
    if let Some(so) = files.iter().find(|f| f.extension().is_some_and(|e| e != "c")) {
        return Err(Failure::usage(format!("{}: ntmem build compiles .c files", so.display())));
    }
    let toolchain = Toolchain::find().map_err(Failure::usage)?;
    let dir = TempDir::new()?;
    let include = include_dir(&dir)?;
    let mut flags = vec!["-O2".to_string(), format!("-I{}", include.display())];
    flags.extend(req.includes.iter().map(|d| format!("-I{}", d.display())));
    flags.extend(req.defines.iter().map(|d| format!("-D{d}")));
    if let Some(env) = std::env::var_os("CFLAGS") {
        flags.extend(env.to_string_lossy().split_whitespace().map(str::to_string));
    }
    let imports = ntmem_wdk::exports::import_libraries();

    let mut key = Key::new();
    for f in &files {
        key.add_file(f)?;
        if let Some(parent) = f.parent() {
            key.add_headers(parent)?;
        }
    }
    for d in req.includes.iter().chain([&include]) {
        key.add_headers(d)?;
    }
    flags.iter().for_each(|f| key.add(f.as_bytes()));
    ntmem_toolchain::CFLAGS.iter().chain(ntmem_toolchain::LDFLAGS).for_each(|f| key.add(f.as_bytes()));
    key.add(toolchain.clang().to_string_lossy().as_bytes());
    imports.iter().for_each(|l| key.add(l.def().as_bytes()));
    let key = key.hex();

    let cached = cache_dir().map(|d| d.join(format!("{key}.sys")));
    if let Some(hit) = cached.as_ref().filter(|p| p.is_file()) {
        copy(hit, &req.out)?;
        // The PDB lld-link wrote beside the image, kept beside it in the cache.
        let pdb = hit.with_extension("pdb");
        if pdb.is_file() {
            copy(&pdb, &req.out.with_extension("pdb"))?;
        }
        return Ok(ImageBuilt { image: req.out.clone(), cached: true, key });
    }
    let messages = toolchain
        .build(&files, &imports, &flags, &dir.0.join("work"), &req.out)
        .map_err(|e| Failure::usage(with_api_hint(e.to_string())))?;
    if !messages.trim().is_empty() {
        eprint!("{messages}");
    }
    if let Some(path) = cached {
        // A cache that cannot be written only costs the next build its time. The PDB
        // goes in first: an image in the cache has its PDB beside it.
        if path.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok()) {
            for (from, to) in [(req.out.with_extension("pdb"), path.with_extension("pdb")), (req.out.clone(), path)] {
                let partial = to.with_extension(format!("{}.partial", std::process::id()));
                if from.is_file() && std::fs::copy(&from, &partial).is_ok() {
                    let _ = std::fs::rename(&partial, &to);
                }
            }
        }
    }
    Ok(ImageBuilt { image: req.out.clone(), cached: false, key })
}

/// `message` with [`ntmem_wdk::loader::API_HINT`] appended when the compiler or
/// linker refused a name ntmem may not declare or export: clang's "undeclared
/// identifier" / "undeclared function", lld-link's "undefined symbol".
fn with_api_hint(message: String) -> String {
    const UNKNOWN_NAME: [&str; 3] = ["undeclared identifier", "undeclared function", "undefined symbol"];
    if UNKNOWN_NAME.iter().any(|m| message.contains(m)) {
        message + ntmem_wdk::loader::API_HINT
    } else {
        message
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), Failure> {
    std::fs::copy(from, to).map(drop).map_err(|e| Failure::usage(format!("{}: {e}", to.display())))
}
