//! What the commands print: standard output written in one piece, whose failure
//! (a full device, a closed pipe) is a clear error with its own exit status
//! instead of a panic, and the `--report FILE` copy of a JSON report, written
//! after the driver has run so that nothing the driver did to standard output
//! (writing to it, closing it, filling it) reaches the file.

use std::io::Write;
use std::path::Path;

use crate::Failure;

/// Exit status when standard output cannot be written: `EX_IOERR` of BSD's
/// `sysexits.h`, distinct from the statuses a run earns (0–3).
pub const EXIT_OUTPUT_ERROR: u8 = 74;

/// Writes `text` to standard output and flushes it.
///
/// # Errors
/// [`EXIT_OUTPUT_ERROR`] when the write or the flush fails.
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::with_status(EXIT_OUTPUT_ERROR, format!("cannot write to standard output: {e}")))
}

/// `value` (an object: every command prints one) as pretty JSON, newline-terminated,
/// with the [`crate::SCHEMA_VERSION`] as `schema_version` and, when it has none,
/// `exit` 0 (a command that prints a result succeeded; a run's report has its own).
pub fn json(value: &impl serde::Serialize) -> String {
    // Reports are plain data (strings, numbers, maps with string keys): serde_json
    // cannot fail on them; an empty object stands in if it ever did.
    let mut value = serde_json::to_value(value).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("schema_version".to_string(), crate::SCHEMA_VERSION.into());
        object.entry("exit").or_insert(0.into());
    }
    serde_json::to_string_pretty(&value).map_or_else(|_| "{}\n".to_string(), |s| s + "\n")
}

/// Writes `value` as pretty JSON to standard output.
///
/// # Errors
/// As [`emit`].
pub fn emit_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    emit(&json(value))
}

/// Writes `value` as pretty JSON to `path` (`--report`).
///
/// # Errors
/// Exit status 2 when the file cannot be written.
pub fn write_report(path: &Path, value: &impl serde::Serialize) -> Result<(), Failure> {
    std::fs::write(path, json(value))
        .map_err(|e| Failure::usage(format!("--report: cannot write {}: {e}", path.display())))
}
