//! `DbgPrint` / `KdPrint`: the C shim (`c/dbgprint.c`) formats the message and
//! hands it to [`ntmem_wdk_debug_sink`], which prints it on standard output as it
//! happens, or keeps it for a report ([`DebugOutput::Capture`]).

use std::ffi::c_char;
use std::io::Write;
use std::sync::Mutex;

/// Where `DbgPrint` text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugOutput {
    /// Standard output, flushed after each message (the default).
    Stdout,
    /// Kept in memory until [`take_captured`].
    Capture,
}

static OUTPUT: Mutex<(Option<DebugOutput>, Vec<u8>)> = Mutex::new((None, Vec::new()));

/// Sets where `DbgPrint` text goes from now on.
pub fn set_output(output: DebugOutput) {
    OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(output);
}

/// The text captured so far (and forgets it).
pub fn take_captured() -> String {
    let bytes = std::mem::take(&mut OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).1);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Called by `DbgPrint` with the formatted message.
///
/// # Safety
/// `text` points to `length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ntmem_wdk_debug_sink(text: *const c_char, length: usize) {
    // SAFETY: the caller (c/dbgprint.c) passes its own buffer and the length it
    // formatted into it.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), length) };
    // Locks are held below: the watchdog must not abandon this code midway.
    ntmem_host::watchdog::shielded(|| {
        let mut out = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
        match out.0.unwrap_or(DebugOutput::Stdout) {
            DebugOutput::Stdout => {
                drop(out);
                let mut stdout = std::io::stdout().lock();
                // A closed pipe must not unwind into C: ignore write errors.
                let _ = stdout.write_all(bytes);
                let _ = stdout.flush();
            }
            DebugOutput::Capture => out.1.extend_from_slice(bytes),
        }
    });
    crate::context::watchdog_checkpoint();
}
