//! The process-wide SIGSEGV/SIGBUS handler, shared by every simulated machine in the
//! process (tests boot many machines on parallel threads).
//!
//! A machine claims the host addresses it owns with [`register_fault_range`]; the returned
//! [`FaultRange`] unregisters on drop. On a fault the handler asks, in order:
//!
//! 1. the [`FaultHandler`] of the registered range holding the address;
//! 2. the `fault_handler`s of the thread's guarded calls, innermost first
//!    ([`call_guarded`](crate::call_guarded)): a driver touching a wild pointer is the
//!    business of the machine it runs on;
//! 3. the handler that was installed before ours (Rust's stack-overflow reporter, or the
//!    default action, which kills the process as if ntmem were not there).
//!
//! [`FaultAction::Retry`] re-runs the faulting instruction (the handler made the page
//! accessible, e.g. paged it in). [`FaultAction::Escape`] abandons the innermost guarded
//! call, which returns `Err(escape)`; with no guarded call on the thread the process
//! reports the fault on stderr and aborts. [`FaultAction::Raise`] dispatches an exception
//! over a driver image's frames ([`crate::exception`]); a general-protection fault in a
//! driver image is handed to that module before anyone is asked. The handler never
//! returns into a fault that nobody can fix.
//!
//! Rules: lookup is async-signal-safe, a fixed table of [`FAULT_RANGE_SLOTS`] slots of
//! atomics with no allocation and no lock. Registration and removal take a lock and may
//! allocate; removal waits until no handler of that range is running. A [`FaultHandler`]
//! runs in signal context on the thread's alternate signal stack: it must not allocate or
//! take a lock the faulting code might hold, and must return (not escape or unwind);
//! `mmap`/`mprotect`, atomics and [`Reservation`](crate::Reservation) calls are fine. The
//! handler is installed once, lazily, with `SA_SIGINFO | SA_ONSTACK`; the signal stays
//! blocked while it runs and an escape restores the mask saved at the guarded call.

use crate::sys::{hex, write_stderr};
use crate::{guard, Escape, HostError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

/// What the faulting instruction tried to do, from the page-fault error code the x86_64
/// kernel reports (bit 1: write, bit 4: instruction fetch). `Unknown` when the fault was
/// not a page fault (SIGBUS, a general-protection fault on a non-canonical address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
    Unknown,
}

/// A memory fault as the handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The faulting address (`si_addr`).
    pub addr: usize,
    pub access: Access,
    /// The faulting instruction's address.
    pub ip: usize,
}

/// A [`FaultHandler`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The handler made the page accessible: re-run the instruction.
    Retry,
    /// Abandon the innermost guarded call with this payload.
    Escape(Escape),
    /// Not this handler's fault: ask the next one.
    NotMine,
    /// The fault is an exception in a registered driver image: dispatch it on the faulting
    /// stack ([`crate::exception`]); if it cannot be dispatched there, escape with
    /// `otherwise`.
    Raise {
        /// The exception.
        raise: crate::exception::Raise,
        /// The escape when it cannot be dispatched.
        otherwise: Escape,
    },
}

/// Decides what a fault means. Runs in signal context: see the module rules.
pub trait FaultHandler: Send + Sync {
    fn on_fault(&self, fault: &Fault) -> FaultAction;
}

/// How many ranges can be registered at once in the process.
pub const FAULT_RANGE_SLOTS: usize = 256;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const RETIRING: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    /// A leaked `Box<Arc<dyn FaultHandler>>` while the slot is live.
    handler: AtomicPtr<Arc<dyn FaultHandler>>,
    /// Signal handlers currently using `handler`.
    readers: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            handler: AtomicPtr::new(std::ptr::null_mut()),
            readers: AtomicUsize::new(0),
        }
    }

    fn covers(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.start.load(Ordering::Acquire)) < self.len.load(Ordering::Acquire)
    }
}

static TABLE: [Slot; FAULT_RANGE_SLOTS] = [const { Slot::new() }; FAULT_RANGE_SLOTS];
/// Serializes registration and removal (never taken in the signal handler).
static WRITERS: Mutex<()> = Mutex::new(());

/// A registered range; unregisters on drop (waiting for running handlers of it).
#[derive(Debug)]
pub struct FaultRange {
    slot: usize,
    start: usize,
    len: usize,
}

impl FaultRange {
    pub fn start(&self) -> usize {
        self.start
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Sends faults in `start..start + len` to `handler` until the returned value is dropped.
///
/// # Panics
/// If the range is empty, overlaps a registered one, or all [`FAULT_RANGE_SLOTS`] are
/// taken; [`try_register_fault_range`] returns those as errors.
pub fn register_fault_range(start: usize, len: usize, handler: Arc<dyn FaultHandler>) -> FaultRange {
    match try_register_fault_range(start, len, handler) {
        Ok(range) => range,
        Err(e) => panic!("ntmem: cannot register fault range: {e}"),
    }
}

/// [`register_fault_range`], reporting failures as errors.
pub fn try_register_fault_range(
    start: usize,
    len: usize,
    handler: Arc<dyn FaultHandler>,
) -> Result<FaultRange, HostError> {
    if len == 0 || start.checked_add(len).is_none() {
        return Err(HostError::OutOfRange { offset: start as u64, len: len as u64, limit: usize::MAX as u64 });
    }
    install_handler();
    let _writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let overlaps = TABLE.iter().any(|s| {
        s.state.load(Ordering::Acquire) == LIVE && {
            let (s_start, s_len) = (s.start.load(Ordering::Acquire), s.len.load(Ordering::Acquire));
            start < s_start + s_len && s_start < start + len
        }
    });
    if overlaps {
        return Err(HostError::FaultRangeOverlap { start, len });
    }
    let slot = TABLE
        .iter()
        .position(|s| s.state.load(Ordering::Acquire) == FREE)
        .ok_or(HostError::TooManyFaultRanges { capacity: FAULT_RANGE_SLOTS })?;
    let s = &TABLE[slot];
    s.start.store(start, Ordering::Release);
    s.len.store(len, Ordering::Release);
    s.handler.store(Box::into_raw(Box::new(handler)), Ordering::Release);
    s.state.store(LIVE, Ordering::SeqCst);
    Ok(FaultRange { slot, start, len })
}

impl Drop for FaultRange {
    fn drop(&mut self) {
        let _writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        let s = &TABLE[self.slot];
        s.state.store(RETIRING, Ordering::SeqCst);
        while s.readers.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        let handler = s.handler.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !handler.is_null() {
            // SAFETY: `handler` came from `Box::into_raw` at registration; the slot is
            // retiring and has no readers, so no signal handler can still use it.
            drop(unsafe { Box::from_raw(handler) });
        }
        s.state.store(FREE, Ordering::Release);
    }
}

/// The registered range holding `addr`, as `(start, len)`, if any.
pub fn registered_range(addr: usize) -> Option<(usize, usize)> {
    TABLE
        .iter()
        .filter(|s| s.state.load(Ordering::Acquire) == LIVE && s.covers(addr))
        .map(|s| (s.start.load(Ordering::Acquire), s.len.load(Ordering::Acquire)))
        .next()
}

/// Asks the handler of the registered range holding the fault, if any. Async-signal-safe.
fn ask_ranges(fault: &Fault) -> FaultAction {
    for s in &TABLE {
        if s.state.load(Ordering::Acquire) != LIVE || !s.covers(fault.addr) {
            continue;
        }
        // Announce ourselves, then confirm the slot is still live: a remover either sees
        // our count and waits, or retired the slot before and we see that.
        s.readers.fetch_add(1, Ordering::SeqCst);
        let action = if s.state.load(Ordering::SeqCst) == LIVE && s.covers(fault.addr) {
            let handler = s.handler.load(Ordering::Acquire);
            // SAFETY: the slot is live and we are a counted reader, so the box is not freed
            // until we leave; it was published before `state` became LIVE.
            Some(ask(unsafe { &**handler }, fault))
        } else {
            None
        };
        s.readers.fetch_sub(1, Ordering::SeqCst);
        if let Some(action) = action {
            return action;
        }
    }
    FaultAction::NotMine
}

/// Calls a handler, aborting (with a message) if it panics: unwinding out of a signal
/// handler is not possible.
pub(crate) fn ask(handler: &dyn FaultHandler, fault: &Fault) -> FaultAction {
    match catch_unwind(AssertUnwindSafe(|| handler.on_fault(fault))) {
        Ok(action) => action,
        Err(_) => {
            write_stderr(&[b"ntmem: fault handler panicked at ", &hex(fault.addr), b"\n"]);
            std::process::abort();
        }
    }
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];
static INSTALL: Once = Once::new();
static PREVIOUS: [OnceLock<libc::sigaction>; 2] = [const { OnceLock::new() }; 2];

/// Installs the handler for SIGSEGV and SIGBUS, once per process, remembering the
/// previous actions for chaining.
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask).
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: querying the current action into a valid out-pointer.
            unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            let _ = PREVIOUS[i].set(old);
            // SAFETY: as above.
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = on_signal as extern "C" fn(_, _, _) as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `new.sa_mask` is a valid sigset; `on_signal` has the SA_SIGINFO
            // signature and is async-signal-safe. A watchdog tick waits while a fault is
            // handled (it must not escape from a page-in holding locks).
            let rc = unsafe {
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaddset(&mut new.sa_mask, crate::watchdog::signal());
                libc::sigaction(sig, &new, std::ptr::null_mut())
            };
            assert_eq!(rc, 0, "ntmem: cannot install the fault handler");
        }
    });
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers of SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (access, ip) = decode(sig, ctx);
    // SAFETY: `ctx` is this handler's live ucontext; SIGSEGV/SIGBUS are synchronous.
    if unsafe { crate::exception::general_protection(sig, ctx) } {
        return;
    }
    let fault = Fault { addr, access, ip };
    let action = match ask_ranges(&fault) {
        FaultAction::NotMine => guard::ask_frames(&fault),
        action => action,
    };
    match action {
        FaultAction::Retry => {}
        FaultAction::Escape(e) => guard::escape_from_fault(e, &fault),
        FaultAction::Raise { raise, otherwise } => {
            // SAFETY: `ctx` is this handler's live ucontext; SIGSEGV/SIGBUS are synchronous.
            if !unsafe { crate::exception::redirect(ctx, &raise) } {
                guard::escape_from_fault(otherwise, &fault)
            }
        }
        FaultAction::NotMine => chain(sig, info, ctx),
    }
}

/// The interrupted instruction's address from a signal's machine context (0 if unknown).
pub(crate) fn interrupted_ip(ctx: *mut libc::c_void) -> usize {
    decode(0, ctx).1
}

/// The access kind and instruction pointer from the signal's machine context.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn decode(sig: libc::c_int, ctx: *mut libc::c_void) -> (Access, usize) {
    if ctx.is_null() {
        return (Access::Unknown, 0);
    }
    // SAFETY: for SA_SIGINFO handlers the third argument is the interrupted context, a
    // valid `ucontext_t` on the signal stack for the duration of the handler.
    let gregs = unsafe { &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let ip = gregs[libc::REG_RIP as usize] as usize;
    const PAGE_FAULT: i64 = 14;
    if sig != libc::SIGSEGV || gregs[libc::REG_TRAPNO as usize] != PAGE_FAULT {
        return (Access::Unknown, ip);
    }
    let err = gregs[libc::REG_ERR as usize];
    let access = if err & 0x10 != 0 {
        Access::Execute
    } else if err & 0x2 != 0 {
        Access::Write
    } else {
        Access::Read
    };
    (access, ip)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn decode(_sig: libc::c_int, _ctx: *mut libc::c_void) -> (Access, usize) {
    (Access::Unknown, 0)
}

/// Hands a fault nobody claimed to the previous handler, or restores the default action
/// and returns, so the instruction faults again and the process dies normally.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = SIGNALS.iter().position(|&s| s == sig).and_then(|i| PREVIOUS[i].get());
    match previous {
        Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO action's handler has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain action's handler takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: all-zero is SIG_DFL with an empty mask; setting it is signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests;
