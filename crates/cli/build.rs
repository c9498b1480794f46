//! Embeds `include/` (ntmem's WDK headers) in the binary, every file under it, so an
//! installed `ntmem` builds drivers without the source tree
//! (`src/driver_host/build.rs`) and no header can be forgotten from a hand-kept list.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn headers(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            headers(&path, out);
        } else if path.extension().is_some_and(|e| e == "h") {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    let root = root.canonicalize().unwrap_or(root);
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    headers(&root, &mut files);
    let mut table = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.strip_prefix(&root).expect("under include/").to_string_lossy().replace('\\', "/");
        let _ = writeln!(table, "    ({name:?}, include_str!({:?})),", path.display().to_string());
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("headers.rs");
    std::fs::write(&out, table).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
