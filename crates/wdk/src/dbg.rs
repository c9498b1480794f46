//! `DbgPrint`, `DbgPrintEx`, `vDbgPrintEx`, `vDbgPrintExWithPrefix` and the
//! `KdPrint`/`KdPrintEx` macros (learn.microsoft.com, "DbgPrint function (wdm.h)",
//! "DbgPrintEx function (wdm.h)", "Reading and Filtering Debugging Messages").
//!
//! The C shims (`c/dbgprint.c`) start the variadic list and call
//! `ntmem_wdk_dbg_print`, which formats it with Windows' format language
//! ([`ntmem_kernel::rtl::format`]: `%wZ`, `%ws`, `%S`, `%I64x`, `%p`, …), keeps the
//! first 512 bytes as Windows does ("any single call to DbgPrint will only transmit
//! 512 bytes of information"), filters it, and prints it on standard output as it
//! happens or keeps it for a report ([`DebugOutput::Capture`]).
//!
//! **Filtering.** A message of `ComponentId` at `Level` is shown when its level mask
//! (`1 << Level` for a level up to 31, else `Level` itself) meets the component's
//! mask or the system-wide `WIN2000` mask. Windows' defaults are `WIN2000` = 1
//! (error level only) and every component 0; `DbgPrint` and `KdPrint` are
//! `DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, …)`. Where ntmem differs: the
//! `DEFAULT` component's mask starts as 0xFFFFFFFF — the "Debug Print Filter"
//! setting driver developers make on Vista and later, and Windows XP's behaviour —
//! so plain `DbgPrint` output is seen; [`set_component_mask`] changes any mask.
//!
//! **Bad pointers.** A string argument pointing at unreadable memory is read as
//! the processor would (the machine's fault handler decides: a bugcheck for
//! invalid system space). An address in the first 64 KB or a non-canonical one is
//! refused before it is touched and the routine returns STATUS_ACCESS_VIOLATION, as
//! Windows' `DbgPrint` does when its internal exception handler catches a bad
//! argument.

use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::io::Write;
use std::sync::Mutex;

use ntmem_kernel::rtl::format::{self, ArgSize, Arguments, Fault, Memory, Target};

/// `DPFLTR_DEFAULT_ID` (dpfilter.h of current WDKs): `DbgPrint`'s component.
pub const DPFLTR_DEFAULT_ID: u32 = 101;
/// `DPFLTR_INFO_LEVEL`: `DbgPrint`'s level.
pub const DPFLTR_INFO_LEVEL: u32 = 3;
/// The longest message Windows transmits, in bytes.
pub const MESSAGE_LIMIT: usize = 512;

const STATUS_SUCCESS: u32 = 0;
const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
/// The system-wide mask's default (`Kd_WIN2000_Mask`): error-level messages.
const WIN2000_MASK: u32 = 1;

/// Where `DbgPrint` text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugOutput {
    /// Standard output, flushed after each message (the default).
    Stdout,
    /// Kept in memory until [`take_captured`].
    Capture,
}

#[derive(Debug)]
struct State {
    output: Option<DebugOutput>,
    captured: Vec<u8>,
    masks: Option<HashMap<u32, u32>>,
}

static STATE: Mutex<State> = Mutex::new(State { output: None, captured: Vec::new(), masks: None });

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets where `DbgPrint` text goes from now on.
pub fn set_output(output: DebugOutput) {
    state().output = Some(output);
}

/// The text captured so far (and forgets it).
pub fn take_captured() -> String {
    let bytes = std::mem::take(&mut state().captured);
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Sets the filter mask of `component` (a `DPFLTR_*_ID`), as the "Debug Print
/// Filter" registry key or `ed nt!Kd_<component>_Mask` would.
pub fn set_component_mask(component: u32, mask: u32) {
    state().masks.get_or_insert_with(HashMap::new).insert(component, mask);
}

/// Whether a message of `component` at `level` passes the filter.
pub fn shown(component: u32, level: u32) -> bool {
    let level_mask = if level <= 31 { 1u32 << level } else { level };
    let default = if component == DPFLTR_DEFAULT_ID { u32::MAX } else { 0 };
    let mask = state().masks.as_ref().and_then(|m| m.get(&component).copied()).unwrap_or(default);
    level_mask & (mask | WIN2000_MASK) != 0
}

/// Shows or keeps one message. Locks are held: the watchdog must not abandon
/// this code midway, so it runs shielded and a pending stop is taken after.
fn emit(bytes: &[u8]) {
    ntmem_host::watchdog::shielded(|| emit_shielded(bytes));
    crate::context::watchdog_checkpoint();
}

fn emit_shielded(bytes: &[u8]) {
    let mut s = state();
    match s.output.unwrap_or(DebugOutput::Stdout) {
        DebugOutput::Stdout => {
            drop(s);
            // The ANSI text as the Latin-1 characters it holds.
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            let mut stdout = std::io::stdout().lock();
            // A closed pipe or a full device must not unwind into C: ignore errors.
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        DebugOutput::Capture => s.captured.extend_from_slice(bytes),
    }
}

/// A Microsoft x64 `va_list`: a pointer to the next 8-byte argument slot.
pub(crate) struct VaList(pub(crate) *const u64);

impl Arguments for VaList {
    fn next(&mut self, size: ArgSize) -> u64 {
        // SAFETY: `self.0` walks the caller's argument slots (its home slots, then its
        // stack arguments); the format asks for one argument per conversion, as the
        // caller's format promised (reading past the caller's arguments reads its
        // stack, as Windows' DbgPrint would).
        let v = unsafe { self.0.read_unaligned() };
        self.0 = self.0.wrapping_add(1);
        if size == ArgSize::Bits32 {
            v & 0xFFFF_FFFF
        } else {
            v
        }
    }
}

/// The driver's memory, read as the processor would.
pub(crate) struct DriverMemory;

impl Memory for DriverMemory {
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Fault> {
        for (i, byte) in out.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u64);
            if !(0x1_0000..1 << 47).contains(&a) {
                return Err(Fault { addr: a });
            }
            // SAFETY: a canonical, non-null-page address the driver passed as a
            // string argument. Reading it is what the driver asked for; a fault is
            // taken by the machine's fault handler as the driver's own access
            // would be (ntmem_host::fault), never silently.
            *byte = unsafe { std::ptr::read_volatile(a as *const u8) };
        }
        Ok(())
    }
}

extern "win64" {
    /// `ULONG DbgPrint(PCSTR Format, ...)`: `DbgPrintEx(DPFLTR_DEFAULT_ID,
    /// DPFLTR_INFO_LEVEL, Format, ...)` (`c/dbgprint.c`).
    #[link_name = "ntmem_DbgPrint"]
    pub fn DbgPrint(format: *const c_char, ...) -> u32;
    /// `ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)`
    /// (`c/dbgprint.c`).
    #[link_name = "ntmem_DbgPrintEx"]
    pub fn DbgPrintEx(component: u32, level: u32, format: *const c_char, ...) -> u32;
}

/// `DbgPrint`'s body, called by the shim with its argument list.
///
/// # Safety
/// `format` is NUL-terminated (or null); `args` points at the caller's argument slots.
#[no_mangle]
unsafe extern "C" fn ntmem_wdk_dbg_print(format: *const c_char, args: *const u64) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { print(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, std::ptr::null(), format, args) }
}

/// `DbgPrintEx`'s body, called by the shim with its argument list.
///
/// # Safety
/// As [`ntmem_wdk_dbg_print`].
#[no_mangle]
unsafe extern "C" fn ntmem_wdk_dbg_print_ex(
    component: u32,
    level: u32,
    format: *const c_char,
    args: *const u64,
) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { print(component, level, std::ptr::null(), format, args) }
}

/// `ULONG vDbgPrintEx(ULONG ComponentId, ULONG Level, PCCH Format, va_list arglist)`.
///
/// # Safety
/// Driver code calls it with a NUL-terminated format and its `va_list`.
pub unsafe extern "win64" fn vDbgPrintEx(component: u32, level: u32, format: *const c_char, args: *const u64) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { print(component, level, std::ptr::null(), format, args) }
}

/// `ULONG vDbgPrintExWithPrefix(PCCH Prefix, ULONG ComponentId, ULONG Level, PCCH Format,
/// va_list arglist)`: the message after `Prefix`.
///
/// # Safety
/// As [`vDbgPrintEx`]; `prefix` is NUL-terminated or null.
pub unsafe extern "win64" fn vDbgPrintExWithPrefix(
    prefix: *const c_char,
    component: u32,
    level: u32,
    format: *const c_char,
    args: *const u64,
) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { print(component, level, prefix, format, args) }
}

/// Formats and prints one message; returns its NTSTATUS.
///
/// # Safety
/// `format` is NUL-terminated (or null); `prefix` is null or NUL-terminated;
/// `args` points at the caller's argument slots.
unsafe fn print(component: u32, level: u32, prefix: *const c_char, format: *const c_char, args: *const u64) -> u32 {
    if !shown(component, level) || format.is_null() {
        return STATUS_SUCCESS;
    }
    // SAFETY: NUL-terminated, by the contract above.
    let fmt = unsafe { CStr::from_ptr(format) }.to_bytes();
    let mut message = if prefix.is_null() {
        Vec::new()
    } else {
        // SAFETY: NUL-terminated, by the contract above.
        unsafe { CStr::from_ptr(prefix) }.to_bytes().to_vec()
    };
    let room = MESSAGE_LIMIT.saturating_sub(message.len());
    match format::format::<u8>(fmt, Target::X64, &mut VaList(args), &mut DriverMemory, room) {
        Ok(text) => {
            message.extend_from_slice(&text.text);
            emit(&message);
            STATUS_SUCCESS
        }
        Err(_) => STATUS_ACCESS_VIOLATION,
    }
}

/// `STATUS_BREAKPOINT`.
const STATUS_BREAKPOINT: i32 = 0x8000_0003_u32 as i32;

/// Raises the breakpoint exception a kernel-mode `int 3` raises, from the caller's
/// frame: with no kernel debugger attached, it reaches the driver's `__except` (a
/// filter sees EXCEPTION_BREAKPOINT), else stops the machine as unhandled — in
/// DriverEntry (a system thread) SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (0x7E), in a
/// dispatch routine KMODE_EXCEPTION_NOT_HANDLED (0x1E), with code 0x80000003.
///
/// With a kernel debugger attached (`/DEBUG`, [`debugger_attached`]) the debugger takes
/// the exception first and continues: the call returns.
fn breakpoint() {
    if debugger_attached() {
        let at = crate::except::driver_context().map_or(0, |c| c.rip);
        debugger_continues(at);
        return;
    }
    let mut record = ntmem_host::context::ExceptionRecord::empty();
    record.code = STATUS_BREAKPOINT;
    record.number_parameters = 1;
    crate::seh::raise(&record)
}

/// `DbgBreakPoint` (learn.microsoft.com "DbgBreakPoint function"): a breakpoint
/// exception (see [`breakpoint`]), which the debugger of a `/DEBUG` machine takes.
pub extern "win64" fn DbgBreakPoint() {
    breakpoint()
}

/// `DbgBreakPointWithStatus`: as `DbgBreakPoint` (the status is for the debugger).
pub extern "win64" fn DbgBreakPointWithStatus(_status: u32) {
    breakpoint()
}

/// `RtlAssert`, what `ASSERT`/`ASSERTMSG` call in a checked build (`-DDBG=1`): prints
/// the assertion as Windows' checked kernel does, then breaks as `DbgBreakPoint`.
///
/// # Safety
/// The strings are the driver's NUL-terminated literals (NULL message allowed).
pub unsafe extern "win64" fn RtlAssert(
    assertion: *const c_char,
    file: *const c_char,
    line: u32,
    message: *const c_char,
) {
    // The caller's strings (`# Safety`); a NULL one reads as empty.
    let text = |p: *const c_char| {
        if p.is_null() {
            Vec::new()
        } else {
            // SAFETY: a NUL-terminated string of the driver's (`# Safety`).
            unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
        }
    };
    let mut out = b"*** Assertion failed: ".to_vec();
    out.extend(text(message));
    out.extend(text(assertion));
    out.extend(b"\n***   Source File: ");
    out.extend(text(file));
    out.extend(format!(", line {line}\n\n").bytes());
    if debugger_attached() {
        // The checked kernel asks the debugger's user; ntmem's debugger answers Ignore.
        out.extend(b"Break repeatedly, break Once, Ignore, terminate Process, or terminate Thread (boipt)? i\n");
        emit(&out);
        return;
    }
    emit(&out);
    breakpoint()
}

/// Whether the running machine was booted with `/DEBUG`: a kernel debugger is
/// attached, and ntmem plays it, continuing from every breakpoint
/// ([`ntmem_machine::BootOptions::debug`]).
pub(crate) fn debugger_attached() -> bool {
    crate::context::in_driver() && crate::context::kernel(|cpu| Ok(cpu.machine().profile().boot.debug))
}

/// What the attached debugger shows for a breakpoint at host address `at` before it
/// continues, as WinDbg prints a first-chance break (the image-relative address, as
/// without symbols), then ntmem's `g`.
pub(crate) fn debugger_continues(at: u64) {
    let place = match crate::except::images::module_offset(at) {
        Some((module, offset)) => format!("{}+{offset:#x}", module.trim_end_matches(".sys")),
        None => crate::symbols::address_text(at),
    };
    emit(
        format!(
            "Break instruction exception - code 80000003 (first chance)\n{place}:\n\
             kd> g    (ntmem, as the /DEBUG machine's debugger, continues)\n"
        )
        .as_bytes(),
    );
}

/// `KdRefreshDebuggerNotPresent` (learn.microsoft.com "KdRefreshDebuggerNotPresent
/// function"): whether no kernel debugger is attached — FALSE on a `/DEBUG` machine.
pub extern "win64" fn KdRefreshDebuggerNotPresent() -> u8 {
    u8::from(!debugger_attached())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtering_follows_the_component_and_system_masks() {
        assert!(shown(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL), "DbgPrint is shown");
        assert!(shown(77, 0), "error level passes the WIN2000 mask");
        assert!(!shown(77, DPFLTR_INFO_LEVEL), "IHVDRIVER info is filtered by default");
        set_component_mask(80, 0b1000);
        assert!(shown(80, 3) && !shown(80, 2));
        assert!(shown(81, 0x8000_0001) && !shown(81, 0x8000_0008), "a level above 31 is a mask");
    }
}
