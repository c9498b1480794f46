//! Hardware exceptions in Windows driver images become exceptions the driver's own frames
//! can handle, as Windows' `KiDispatchException` makes them (research note §6.5;
//! DESIGN.md "SEH as Windows does it").
//!
//! The dispatcher (`RtlDispatchException`, in `ntmem-wdk`) walks the driver's frames with
//! the image's unwind tables; it is ordinary code that must run on the faulting thread's
//! own (kernel) stack. So a signal handler that decides "exception" does not escape: it
//! writes an [`ExceptionRecord`] and the faulting [`Context`] on the faulting stack, below
//! the faulting RSP with a [`GAP`], and rewrites the interrupted context so that the
//! return from the signal calls the registered dispatcher entry with both (sysv:
//! `entry(record, context)`, its return address 0). The signal mask is the one the faulting
//! code ran with, so a fault inside a filter or `__finally` is delivered as usual.
//!
//! What is asked and where:
//! - SIGSEGV/SIGBUS go through the machine's fault policy ([`crate::fault`]), which answers
//!   [`FaultAction::Raise`](crate::FaultAction::Raise) when the fault is an exception and
//!   the faulting instruction is in a registered image ([`is_image_code`]).
//! - SIGFPE, SIGILL and SIGTRAP (handlers installed when the first image is registered)
//!   are exceptions whenever the instruction is in a registered image: integer divide by
//!   zero STATUS_INTEGER_DIVIDE_BY_ZERO (0xC0000094), integer overflow
//!   STATUS_INTEGER_OVERFLOW (0xC0000095), invalid opcode STATUS_ILLEGAL_INSTRUCTION
//!   (0xC000001D), `int3` STATUS_BREAKPOINT (0x80000003, at the `int3` itself, as Windows
//!   reports it, with one parameter BREAKPOINT_BREAK = 0). Anywhere else they go to the
//!   handler installed before ours, or kill the process as they would without ntmem.
//!
//! - A general-protection SIGSEGV in a registered image (`general_protection`, asked
//!   before the fault policy) is STATUS_PRIVILEGED_INSTRUCTION (0xC0000096) for a
//!   privileged instruction, else an access violation through a non-canonical address
//!   (STATUS_ACCESS_VIOLATION, parameters 0 and 0xFFFFFFFFFFFFFFFF). A `mov` to or from
//!   `cr8` is emulated instead, as Windows' IRQL: the thread calls the entry set by
//!   [`set_cr8_entry`] on its own stack, which reads or changes the processor's IRQL and
//!   resumes after the instruction.
//!
//! Where ntmem differs: Linux reports the `idiv` overflow INT_MIN / −1 as a divide error
//! (`FPE_INTDIV`), so it is 0xC0000094 here (the overflow code is reachable only through
//! `into`, invalid in 64-bit code).
//!
//! Registries are fixed tables of atomics: lookups are async-signal-safe.

use crate::context::{Context, ExceptionRecord, RSP};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

/// The dispatcher entry: called on the faulting stack with the record and context the
/// signal handler wrote there. It must not return.
pub type DispatchEntry = extern "C" fn(*mut ExceptionRecord, *mut Context) -> !;

/// Bytes left untouched below the faulting RSP (Windows x64 code keeps nothing there, but
/// the dispatcher's resume writes [`RESTORE_SCRATCH`](crate::context::RESTORE_SCRATCH)
/// bytes below it, which must not overlap the context it reads).
pub const GAP: usize = 128;

/// The stack a dispatch reserves below the record; with less, the exception is not
/// dispatched and escapes as unhandled. ntmem's dispatcher uses about 6.5 KB for a
/// search, an unwind and the handlers of a shallow driver (measured by a test in
/// `ntmem-wdk`); the rest is for the driver's filters and termination handlers. An x86
/// machine's 12 KB kernel stack leaves just enough for it.
pub const DISPATCH_STACK: usize = 8 * 1024;

/// How many images can be registered at once in the process.
pub const IMAGE_SLOTS: usize = 128;

static STARTS: [AtomicUsize; IMAGE_SLOTS] = [const { AtomicUsize::new(0) }; IMAGE_SLOTS];
static LENS: [AtomicUsize; IMAGE_SLOTS] = [const { AtomicUsize::new(0) }; IMAGE_SLOTS];
static WRITERS: Mutex<()> = Mutex::new(());
static ENTRY: AtomicUsize = AtomicUsize::new(0);

/// A registered image range; unregistered on drop.
#[derive(Debug)]
pub struct ImageCode {
    slot: usize,
}

/// Registers `start..start + len` as driver image code whose exceptions are dispatched.
/// `None` when all [`IMAGE_SLOTS`] are taken.
pub fn register_image_code(start: usize, len: usize) -> Option<ImageCode> {
    install_handlers();
    let _w = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = LENS.iter().position(|l| l.load(Ordering::Acquire) == 0)?;
    STARTS[slot].store(start, Ordering::Release);
    LENS[slot].store(len, Ordering::Release);
    Some(ImageCode { slot })
}

impl Drop for ImageCode {
    fn drop(&mut self) {
        let _w = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        LENS[self.slot].store(0, Ordering::Release);
    }
}

/// Whether `ip` is in a registered image. Async-signal-safe.
pub fn is_image_code(ip: usize) -> bool {
    (0..IMAGE_SLOTS).any(|i| {
        let len = LENS[i].load(Ordering::Acquire);
        len != 0 && ip.wrapping_sub(STARTS[i].load(Ordering::Acquire)) < len
    })
}

/// Whether a fault at `ip` is an exception to dispatch over driver frames: `ip` is in a
/// registered image, or in a routine a driver image called through its import thunk
/// ([`crate::thunk::driver_frame`]; the dispatch then starts at the driver's call).
/// Async-signal-safe.
pub fn raisable(ip: usize) -> bool {
    is_image_code(ip) || crate::thunk::driver_frame().is_some()
}

/// Sets the dispatcher entry (the first setting wins).
pub fn set_dispatch_entry(entry: DispatchEntry) {
    let _ = ENTRY.compare_exchange(0, entry as usize, Ordering::AcqRel, Ordering::Acquire);
}

/// An exception a fault raises: code, address, parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raise {
    /// ExceptionCode.
    pub code: u32,
    /// ExceptionAddress, which is also the context's RIP.
    pub address: usize,
    /// NumberParameters (at most 2 here).
    pub count: u32,
    /// ExceptionInformation[0..2].
    pub parameters: [usize; 2],
}

/// Rewrites the interrupted context `uc` so that the thread, on return from the signal,
/// calls the dispatcher entry with `raise` and the interrupted context (see the module
/// docs). Returns false, changing nothing, when there is no entry, the faulting RSP is not
/// on the innermost guarded call's stack, or that stack has less than [`DISPATCH_STACK`]
/// bytes left. Async-signal-safe.
///
/// # Safety
/// `uc` must be the live `ucontext_t` of an `SA_SIGINFO` handler for a signal raised
/// synchronously by the interrupted instruction.
pub(crate) unsafe fn redirect(uc: *mut c_void, raise: &Raise) -> bool {
    let mut record = ExceptionRecord::empty();
    record.code = raise.code as i32;
    record.address = raise.address as *mut c_void;
    record.number_parameters = raise.count.min(2);
    record.information[..2].copy_from_slice(&raise.parameters);
    // SAFETY: the caller's contract.
    unsafe { switch(uc, Call::Dispatch(record)) }
}

/// What the thread calls on return from the signal.
#[derive(Clone, Copy)]
enum Call {
    /// The dispatcher entry, with this record and the context at its address.
    Dispatch(ExceptionRecord),
    /// The `cr8` emulation entry.
    EmulateCr8(Cr8Access),
}

/// Writes the interrupted context (and the record) below the faulting RSP and makes the
/// thread call the entry for `call` there (see [`redirect`]).
///
/// # Safety
/// As [`redirect`].
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
unsafe fn switch(uc: *mut c_void, call: Call) -> bool {
    let entry = match call {
        Call::Dispatch(_) => ENTRY.load(Ordering::Acquire),
        Call::EmulateCr8(_) => EMULATE_CR8.load(Ordering::Acquire),
    };
    if entry == 0 || uc.is_null() {
        return false;
    }
    // SAFETY: the caller passes the live ucontext.
    let mut context = unsafe { Context::from_ucontext(uc) };
    let rsp = context.gpr[RSP] as usize;
    let Some(stack) = crate::guard::current_stack() else { return false };
    let top = rsp.wrapping_sub(GAP);
    let context_at = top.wrapping_sub(std::mem::size_of::<Context>()) & !15;
    let record_at = context_at.wrapping_sub(std::mem::size_of::<ExceptionRecord>()) & !15;
    let new_rsp = record_at.wrapping_sub(8);
    let on_stack = rsp <= stack.base + stack.size && top > stack.base;
    if !on_stack || new_rsp < stack.base + DISPATCH_STACK || new_rsp > rsp {
        return false;
    }
    let (rdi, rsi) = match call {
        Call::Dispatch(record) => {
            context.rip = record.address as u64;
            // SAFETY: below the faulting RSP − GAP and above the stack's base +
            // DISPATCH_STACK: memory of the guarded call's stack the interrupted code does
            // not use; aligned for the type.
            unsafe { std::ptr::write(record_at as *mut ExceptionRecord, record) };
            (record_at as u64, context_at as u64)
        }
        Call::EmulateCr8(access) => (context_at as u64, access.to_word()),
    };
    // SAFETY: as above.
    unsafe {
        std::ptr::write(context_at as *mut Context, context);
        std::ptr::write(new_rsp as *mut u64, 0);
    }
    // SAFETY: as above; the kernel restores these registers on return from the signal.
    let g = unsafe { &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    g[libc::REG_RSP as usize] = new_rsp as i64;
    g[libc::REG_RIP as usize] = entry as i64;
    g[libc::REG_RDI as usize] = rdi as i64;
    g[libc::REG_RSI as usize] = rsi as i64;
    // The entry is ordinary code: direction flag clear, no single-stepping.
    g[libc::REG_EFL as usize] &= !(0x400 | 0x100);
    true
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
unsafe fn switch(_uc: *mut c_void, _call: Call) -> bool {
    false
}

/// A `mov` to or from `cr8` (the task-priority register, which Windows uses as the IRQL:
/// inline `KeGetCurrentIrql`, `KeRaiseIrql` and `KeLowerIrql` in MSVC-built drivers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cr8Access {
    /// `mov cr8, reg` (true) or `mov reg, cr8`.
    pub write: bool,
    /// The general register, numbered as in CONTEXT (0 RAX … 15 R15).
    pub register: u8,
    /// The instruction's length in bytes.
    pub length: u8,
}

impl Cr8Access {
    /// Decodes `[prefixes] REX.R 0F 20/22 modrm(mod 3, reg 0)` at the start of `code`.
    pub fn decode(code: &[u8]) -> Option<Cr8Access> {
        let rex_at = code.iter().position(|&b| !matches!(b, 0x66 | 0x67 | 0xF2 | 0xF3))?;
        match code.get(rex_at..rex_at + 4)? {
            &[rex @ 0x40..=0x4F, 0x0F, op @ (0x20 | 0x22), modrm]
                if rex & 0x4 != 0 && modrm >> 6 == 3 && (modrm >> 3) & 7 == 0 =>
            {
                Some(Cr8Access {
                    write: op == 0x22,
                    register: (modrm & 7) | ((rex & 1) << 3),
                    length: u8::try_from(rex_at + 4).ok()?,
                })
            }
            _ => None,
        }
    }

    /// The access as one word (for the entry's second argument).
    pub fn to_word(self) -> u64 {
        u64::from(self.write) | u64::from(self.register) << 8 | u64::from(self.length) << 16
    }

    /// The access [`to_word`](Self::to_word) encoded.
    pub fn from_word(word: u64) -> Cr8Access {
        Cr8Access { write: word & 1 != 0, register: (word >> 8) as u8 & 0xF, length: (word >> 16) as u8 }
    }
}

/// The `cr8` emulation entry: called on the faulting stack with the interrupted context
/// (RIP at the instruction) and the [`Cr8Access`] as a word; it must not return.
pub type EmulateEntry = extern "C" fn(*mut Context, u64) -> !;

static EMULATE_CR8: AtomicUsize = AtomicUsize::new(0);

/// Sets the `cr8` emulation entry (the first setting wins). Without one, `cr8` accesses
/// are privileged instructions.
pub fn set_cr8_entry(entry: EmulateEntry) {
    let _ = EMULATE_CR8.compare_exchange(0, entry as usize, Ordering::AcqRel, Ordering::Acquire);
}

/// STATUS_PRIVILEGED_INSTRUCTION.
pub const STATUS_PRIVILEGED_INSTRUCTION: u32 = 0xC000_0096;
/// STATUS_ACCESS_VIOLATION.
pub const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;

/// A general-protection fault (#GP, which Linux delivers as SIGSEGV with trap number 13
/// and no address) in a registered image, dispatched as Windows' `KiGeneralProtectionFault`
/// raises it: `int 0x29` (`__fastfail`) ends the guarded call with an
/// [`ESCAPE_FAST_FAIL`](crate::ESCAPE_FAST_FAIL) escape; a privileged instruction ([`is_privileged`]) is STATUS_PRIVILEGED_INSTRUCTION;
/// anything else (an access through a non-canonical address) is STATUS_ACCESS_VIOLATION
/// with parameters (0, 0xFFFFFFFFFFFFFFFF). Returns whether the fault was redirected to the
/// dispatcher. Async-signal-safe.
///
/// # Safety
/// `uc` is the live ucontext of an `SA_SIGINFO` SIGSEGV/SIGBUS handler.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) unsafe fn general_protection(sig: libc::c_int, uc: *mut c_void) -> bool {
    const GENERAL_PROTECTION: i64 = 13;
    if sig != libc::SIGSEGV || uc.is_null() {
        return false;
    }
    // SAFETY: the caller passes the live ucontext.
    let g = unsafe { &(*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let ip = g[libc::REG_RIP as usize] as usize;
    if g[libc::REG_TRAPNO as usize] != GENERAL_PROTECTION || !is_image_code(ip) {
        return false;
    }
    // The instruction's bytes on its own page (the page the fault fetched from; the next
    // one may be unmapped, e.g. a discarded INIT section).
    let mut code = [0u8; 16];
    let len = code.len().min(crate::sys::page_size() - ip % crate::sys::page_size());
    for (i, b) in code[..len].iter_mut().enumerate() {
        // SAFETY: the byte is on the page the faulting instruction was fetched from.
        *b = unsafe { std::ptr::read_volatile((ip + i) as *const u8) };
    }
    if code[..len].starts_with(&[0xCD, 0x29]) && crate::guard::in_guarded_call() {
        // `__fastfail(code)`: int 0x29 has no user-mode gate, so it arrives as #GP.
        // Nothing is dispatched: the call ends with the fast-fail code (RCX).
        let e = crate::Escape {
            kind: crate::ESCAPE_FAST_FAIL,
            words: [g[libc::REG_RCX as usize] as u64, ip as u64, 0, 0, 0, 0, 0],
        };
        let fault = crate::Fault { addr: ip, access: crate::Access::Unknown, ip };
        crate::guard::escape_from_fault(e, &fault)
    }
    if let Some(access) = Cr8Access::decode(&code[..len]) {
        // SAFETY: as above.
        if unsafe { switch(uc, Call::EmulateCr8(access)) } {
            return true;
        }
    }
    let raise = if is_privileged(&code[..len]) {
        Raise { code: STATUS_PRIVILEGED_INSTRUCTION, address: ip, count: 0, parameters: [0; 2] }
    } else {
        Raise { code: STATUS_ACCESS_VIOLATION, address: ip, count: 2, parameters: [0, usize::MAX] }
    };
    // SAFETY: as above.
    unsafe { raise_or_escape(uc, &raise) }
}

/// Redirects to the dispatcher ([`redirect`]); when that is impossible (no room left on
/// the kernel stack) inside a guarded call, abandons the call with an
/// [`ESCAPE_EXCEPTION`](crate::ESCAPE_EXCEPTION) escape (exception code, address, the two
/// parameters), which the machine reports as an unhandled exception. Returns false only
/// outside any guarded call.
///
/// # Safety
/// As [`redirect`].
unsafe fn raise_or_escape(uc: *mut c_void, raise: &Raise) -> bool {
    // SAFETY: the caller's contract.
    if unsafe { redirect(uc, raise) } {
        return true;
    }
    if !crate::guard::in_guarded_call() {
        return false;
    }
    let [p0, p1] = raise.parameters;
    let e = crate::Escape {
        kind: crate::ESCAPE_EXCEPTION,
        words: [u64::from(raise.code), raise.address as u64, p0 as u64, p1 as u64, 0, 0, 0],
    };
    let fault = crate::Fault { addr: raise.address, access: crate::Access::Unknown, ip: raise.address };
    crate::guard::escape_from_fault(e, &fault)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub(crate) unsafe fn general_protection(_sig: libc::c_int, _uc: *mut c_void) -> bool {
    false
}

/// Whether the instruction starting at `code[0]` is one only ring 0 may execute (or, for
/// I/O, only with IOPL): HLT, CLI, STI, IN/OUT/INS/OUTS, MOV to/from control and debug
/// registers, CLTS, INVD, WBINVD, WRMSR, RDMSR, LLDT/LTR, LGDT/LIDT/LMSW/INVLPG, SWAPGS,
/// SYSRET. Prefixes (operand/address size, segment, REP, REX) are skipped.
pub fn is_privileged(code: &[u8]) -> bool {
    let start = code
        .iter()
        .position(|&b| !matches!(b, 0x66 | 0x67 | 0xF2 | 0xF3 | 0x2E | 0x36 | 0x3E | 0x26 | 0x64 | 0x65 | 0x40..=0x4F));
    let Some(op) = start.and_then(|i| code.get(i..)) else { return false };
    match op {
        [0xF4 | 0xFA | 0xFB | 0xE4..=0xE7 | 0xEC..=0xEF | 0x6C..=0x6F, ..] => true,
        [0x0F, 0x20..=0x23 | 0x06 | 0x08 | 0x09 | 0x30 | 0x32 | 0x07, ..] => true,
        [0x0F, 0x00, modrm, ..] => matches!((modrm >> 3) & 7, 2 | 3),
        [0x0F, 0x01, 0xF8, ..] => true,
        [0x0F, 0x01, modrm, ..] => modrm >> 6 != 3 && matches!((modrm >> 3) & 7, 2 | 3 | 6 | 7),
        _ => false,
    }
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGFPE, libc::SIGILL, libc::SIGTRAP];
static INSTALL: Once = Once::new();
static PREVIOUS: [OnceLock<libc::sigaction>; 3] = [const { OnceLock::new() }; 3];

/// STATUS_INTEGER_DIVIDE_BY_ZERO.
pub const STATUS_INTEGER_DIVIDE_BY_ZERO: u32 = 0xC000_0094;
/// STATUS_INTEGER_OVERFLOW.
pub const STATUS_INTEGER_OVERFLOW: u32 = 0xC000_0095;
/// STATUS_ILLEGAL_INSTRUCTION.
pub const STATUS_ILLEGAL_INSTRUCTION: u32 = 0xC000_001D;
/// STATUS_BREAKPOINT.
pub const STATUS_BREAKPOINT: u32 = 0x8000_0003;

fn install_handlers() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: all-zero is a valid `sigaction`; querying into a valid out-pointer.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            let _ = PREVIOUS[i].set(old);
            // SAFETY: as above.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_signal as extern "C" fn(_, _, _) as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: a valid sigset and an SA_SIGINFO handler that is async-signal-safe.
            let rc = unsafe {
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, std::ptr::null_mut())
            };
            assert_eq!(rc, 0, "ntmem: cannot install the exception handlers");
        }
    });
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to SA_SIGINFO handlers.
    let (code, ip) = unsafe {
        ((*info).si_code, (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize] as usize)
    };
    const SI_KERNEL: libc::c_int = 0x80;
    const FPE_INTDIV: libc::c_int = 1;
    const FPE_INTOVF: libc::c_int = 2;
    let raise = match sig {
        libc::SIGFPE if code == FPE_INTDIV => {
            Some(Raise { code: STATUS_INTEGER_DIVIDE_BY_ZERO, address: ip, count: 0, parameters: [0; 2] })
        }
        libc::SIGFPE if code == FPE_INTOVF => {
            Some(Raise { code: STATUS_INTEGER_OVERFLOW, address: ip, count: 0, parameters: [0; 2] })
        }
        libc::SIGILL => Some(Raise { code: STATUS_ILLEGAL_INSTRUCTION, address: ip, count: 0, parameters: [0; 2] }),
        // int3 traps after the instruction; Windows reports the int3 itself.
        libc::SIGTRAP if code == SI_KERNEL => {
            Some(Raise { code: STATUS_BREAKPOINT, address: ip.wrapping_sub(1), count: 1, parameters: [0; 2] })
        }
        _ => None,
    };
    if let Some(raise) = raise.filter(|r| is_image_code(r.address)) {
        // SAFETY: `uc` is this handler's live ucontext; the signal is synchronous.
        if unsafe { raise_or_escape(uc, &raise) } {
            return;
        }
    }
    chain(sig, info, uc);
}

/// Hands the signal to the handler installed before ours, or takes the default action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    let previous = SIGNALS.iter().position(|&s| s == sig).and_then(|i| PREVIOUS[i].get());
    match previous {
        Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO action's handler has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig, info, uc);
            } else {
                // SAFETY: a plain action's handler takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: restoring the default action and re-raising are async-signal-safe;
            // the re-raised signal is delivered (default: terminate) once we return.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
                libc::raise(sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_code_is_registered_until_dropped() {
        let code = [0u8; 64];
        let start = code.as_ptr() as usize;
        assert!(!is_image_code(start + 10));
        let range = register_image_code(start, code.len()).unwrap();
        assert!(is_image_code(start) && is_image_code(start + 63));
        assert!(!is_image_code(start + 64) && !is_image_code(start.wrapping_sub(1)));
        drop(range);
        assert!(!is_image_code(start + 10));
    }

    #[test]
    fn privileged_instructions_are_told_from_ordinary_ones() {
        for code in [
            &[0xF4][..],               // hlt
            &[0xFA],                   // cli
            &[0xEC],                   // in al, dx
            &[0x44, 0x0F, 0x20, 0xC0], // mov rax, cr8
            &[0x44, 0x0F, 0x22, 0xC0], // mov cr8, rax
            &[0x0F, 0x30],             // wrmsr
            &[0x0F, 0x01, 0x38],       // invlpg [rax]
            &[0x0F, 0x01, 0xF8],       // swapgs
            &[0x66, 0xE5, 0x10],       // in ax, 0x10
        ] {
            assert!(is_privileged(code), "{code:x?}");
        }
        assert_eq!(
            Cr8Access::decode(&[0x44, 0x0F, 0x20, 0xC0]),
            Some(Cr8Access { write: false, register: 0, length: 4 })
        );
        assert_eq!(
            Cr8Access::decode(&[0x4D, 0x0F, 0x22, 0xC1]),
            Some(Cr8Access { write: true, register: 9, length: 4 })
        );
        assert_eq!(Cr8Access::decode(&[0x0F, 0x20, 0xD8]), None, "mov rax, cr3");
        let a = Cr8Access { write: true, register: 15, length: 4 };
        assert_eq!(Cr8Access::from_word(a.to_word()), a);
        for code in [
            &[0x8B, 0x00][..],   // mov eax, [rax]
            &[0x48, 0x8B, 0x01], // mov rax, [rcx]
            &[0x0F, 0x01, 0xD0], // xgetbv
            &[0x0F, 0x0B],       // ud2
            &[0x66],             // a lone prefix
            &[],
        ] {
            assert!(!is_privileged(code), "{code:x?}");
        }
    }
}
