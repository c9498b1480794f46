//! Structured exceptions raised by ntmem on a driver's behalf, and their Rust form
//! (issue 4 item 2, issue 10 item 3; seed 000 §9).
//!
//! C drivers are Windows images: their `__try`/`__except`/`__finally` are clang's
//! table-based SEH, dispatched over the image's own unwind data by [`crate::except`].
//! This module is what routines use to raise on the driver's behalf and what Rust
//! drivers use to catch:
//!
//! - **Raising.** [`raise_status`] (ProbeForRead, MmProbeAndLockPages, quota pool)
//!   raises a noncontinuable exception as `ExRaiseStatus` does. When the routine was
//!   called by a driver image through its import thunk, the exception is dispatched
//!   from the driver's frame at the call ([`crate::except::dispatch::dispatch_from`]);
//!   the frames of the routine in between are abandoned. `ExRaiseStatus` itself is
//!   `RtlRaiseStatus` (as on x64 Windows), which captures its caller's context.
//! - **Catching in Rust.** [`catch`] and [`try_except`] run a closure as
//!   `__try { f } __except (EXCEPTION_EXECUTE_HANDLER)` would: an exception raised in it
//!   (by a routine, or by a fault on a user address below DISPATCH_LEVEL) that no
//!   driver image frame handles comes back as `Err`. Each catch is a guarded call of the
//!   host ([`ntmem_host::call_guarded`]); the exception reaches it as an
//!   [`ntmem_host::ESCAPE_EXCEPTION`] escape.
//! - **Unhandled.** With no handler anywhere, the machine stops as Windows' would. A
//!   driver routine that runs in a system thread — `DriverEntry` and `DriverUnload`,
//!   which the I/O manager calls from a system worker thread — gets the system thread's
//!   top-level filter: SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (0x7E: code, address,
//!   exception record, context record). Code running in an arbitrary thread (a dispatch
//!   routine in the caller's thread) finds no frame at all, and the kernel's dispatcher
//!   stops with KMODE_EXCEPTION_NOT_HANDLED (0x1E: code, address, exception parameters 0
//!   and 1). Sources: Microsoft's bug check reference pages for 0x1E and 0x7E
//!   (learn.microsoft.com, `debugger/bug-check-0x1e…`, `…0x7e…`). An unhandled *fault*
//!   is 0x8E (`ntmem_kernel::trap`, [`crate::except::dispatch`]).
//!
//! **The escape contract** of `ntmem_host::escape` applies: a raise abandons every
//! frame between it and the landing point without dropping anything. Routines drop
//! what they hold before calling [`raise_status`]; closures given to [`try_except`]
//! must not hold values with destructors across a call that may raise.

use std::cell::Cell;

use ntmem_host::{Escape, ExceptionCatcher, ESCAPE_EXCEPTION};
use ntmem_kernel::trap::raise_bugcheck;
use ntmem_kernel::{BugCheck, BugCheckCode};

use crate::except::EXCEPTION_NONCONTINUABLE;
use crate::types::NtStatus;

pub use crate::except::dispatch::{
    ExRaiseAccessViolation, ExRaiseDatatypeMisalignment, RtlRaiseStatus as ExRaiseStatus,
};

/// STATUS_ACCESS_VIOLATION.
pub const STATUS_ACCESS_VIOLATION: NtStatus = 0xC000_0005_u32 as NtStatus;
/// STATUS_DATATYPE_MISALIGNMENT.
pub const STATUS_DATATYPE_MISALIGNMENT: NtStatus = 0x8000_0002_u32 as NtStatus;
/// STATUS_NONCONTINUABLE_EXCEPTION.
pub const STATUS_NONCONTINUABLE_EXCEPTION: NtStatus = 0xC000_0025_u32 as NtStatus;
/// STATUS_INSUFFICIENT_RESOURCES.
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as NtStatus;
/// STATUS_QUOTA_EXCEEDED.
pub const STATUS_QUOTA_EXCEEDED: NtStatus = 0xC000_0044_u32 as NtStatus;

/// `EXCEPTION_RECORD`, AMD64 layout (`wdm.h`): one definition, in the host layer.
pub use ntmem_host::context::ExceptionRecord;

/// An exception caught by [`catch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The exception code (an NTSTATUS).
    pub code: NtStatus,
    /// Where it was raised (host address; 0 when the raiser did not say).
    pub address: usize,
    /// The exception's parameters (for STATUS_ACCESS_VIOLATION: 0 read / 1 write /
    /// 8 execute, then the address).
    pub parameters: Vec<usize>,
}

/// The kind of thread driver code runs in, which decides the bugcheck of an
/// unhandled exception (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A system thread (DriverEntry, DriverUnload, work items): 0x7E.
    System,
    /// Any other thread (a dispatch routine in the requester's thread): 0x1E.
    Arbitrary,
}

thread_local! {
    static KIND: Cell<ThreadKind> = const { Cell::new(ThreadKind::Arbitrary) };
}

/// Runs `f` — which calls into driver code — as a thread of `kind`.
pub fn run_as<R>(kind: ThreadKind, f: impl FnOnce() -> R) -> R {
    let previous = KIND.with(|k| k.replace(kind));
    let r = f();
    KIND.with(|k| k.set(previous));
    r
}

/// The kind of thread driver code runs in now (set by [`run_as`]).
pub fn thread_kind() -> ThreadKind {
    KIND.with(Cell::get)
}

/// The bugcheck for an exception no frame took (see the module docs).
pub fn unhandled_bugcheck(kind: ThreadKind, record: &ExceptionRecord) -> BugCheck {
    let code = u64::from(record.code as u32);
    let address = record.address as u64;
    let parameter = |i: usize| {
        if (record.number_parameters as usize) > i {
            record.information[i] as u64
        } else {
            0
        }
    };
    let mut b = match kind {
        ThreadKind::System => BugCheck::new(BugCheckCode::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED, [code, address, 0, 0]),
        ThreadKind::Arbitrary => {
            BugCheck::new(BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED, [code, address, parameter(0), parameter(1)])
        }
    };
    b.faulting_ip = (address != 0).then_some(address);
    b
}

/// Exit status of a process in which an exception no frame took was raised on a
/// thread running no machine call: `EX_SOFTWARE` of BSD's `sysexits.h`.
///
/// That is a host program (a Rust harness or test, a thread a driver started
/// itself) calling `ExRaiseStatus` or a raising routine directly, outside
/// `Machine::run` and outside [`catch`]: there is no simulated processor to stop
/// and nothing to unwind to (a panic cannot cross the C frames of the raise). The
/// process ends with a message naming the exception and the bugcheck Windows would
/// give — never an abort or a panic. Wrap such calls in [`catch`] to get the
/// exception as a value instead.
pub const EXIT_UNHANDLED_OUTSIDE_MACHINE: i32 = 70;

pub(crate) fn unhandled_outside_machine(record: &ExceptionRecord, b: &BugCheck) -> ! {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "ntmem: exception {:#010x} raised at {:#x} on a thread with no driver call in progress and no \
         exception frame: no machine to stop (in a driver call: {}); exiting with status {}",
        record.code as u32,
        record.address as usize,
        b,
        EXIT_UNHANDLED_OUTSIDE_MACHINE
    );
    std::process::exit(EXIT_UNHANDLED_OUTSIDE_MACHINE)
}

thread_local! {
    /// The token of the guarded call of the innermost [`catch`] on this thread (0: none).
    static CATCH: Cell<usize> = const { Cell::new(0) };
}

/// Whether the innermost guarded call of this thread is a [`catch`]. Async-signal-safe.
pub(crate) fn catch_innermost() -> bool {
    let token = ntmem_host::token();
    token != 0 && CATCH.with(Cell::get) == token
}

/// The exception reaches the catch as the escape the fault path jumps with.
fn deliver(_: &Escape) {}

static CATCHER: ExceptionCatcher = ExceptionCatcher { has_frame: catch_innermost, deliver };

/// Registers this module as the host's exception catcher and the dispatcher's entries
/// (idempotent).
pub fn install() {
    ntmem_host::set_exception_catcher(&CATCHER);
    crate::except::install();
}

/// Raises `status` as `ExRaiseStatus` does (see the module docs). For routines that
/// raise (ProbeForRead, MmProbeAndLockPages, quota pool): drop everything you hold
/// first.
pub fn raise_status(status: NtStatus) -> ! {
    let mut record = ExceptionRecord::empty();
    record.code = status;
    record.flags = EXCEPTION_NONCONTINUABLE;
    raise(&record)
}

/// Raises `record`: from the frame of the driver image that called the running routine
/// if there is one, else to the innermost [`catch`], else the machine stops (or, with
/// no machine, the process exits: [`EXIT_UNHANDLED_OUTSIDE_MACHINE`]).
pub fn raise(record: &ExceptionRecord) -> ! {
    if let Some(context) = crate::except::driver_context() {
        crate::except::dispatch::dispatch_from(record, &context)
    }
    unhandled(record)
}

/// An exception no driver frame took: to the innermost [`catch`], or it stops the
/// machine as unhandled.
pub(crate) fn unhandled(record: &ExceptionRecord) -> ! {
    if catch_innermost() {
        let n = record.number_parameters.min(2) as usize;
        let mut words = [record.code as u32 as u64, record.address as u64, 0, 0, n as u64, 0, 0];
        for (w, p) in words[2..2 + n].iter_mut().zip(record.information) {
            *w = p as u64;
        }
        ntmem_host::escape(Escape { kind: ESCAPE_EXCEPTION, words })
    }
    let b = unhandled_bugcheck(thread_kind(), record);
    if ntmem_host::token() == 0 {
        unhandled_outside_machine(record, &b)
    }
    raise_bugcheck(&b)
}

/// Runs `f` inside an exception frame: an exception raised in it (by a routine, by
/// `ExRaiseStatus`, or by a fault on a user address below DISPATCH_LEVEL) that no
/// driver image frame handles is returned as `Err`, as
/// `__try { f } __except (EXCEPTION_EXECUTE_HANDLER)` would. A panic in `f` is resumed
/// here; a bugcheck or a watchdog stop goes on to the machine.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Exception> {
    install();
    let outer = CATCH.with(Cell::get);
    let r = ntmem_host::call_guarded(None, None, || {
        CATCH.with(|c| c.set(ntmem_host::token()));
        f()
    });
    CATCH.with(|c| c.set(outer));
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.kind == ESCAPE_EXCEPTION => {
            let [code, address, p0, p1, count, ..] = e.words;
            let parameters = [p0 as usize, p1 as usize];
            Err(Exception {
                code: code as u32 as NtStatus,
                address: address as usize,
                parameters: parameters[..(count as usize).min(2)].to_vec(),
            })
        }
        Err(e) => ntmem_host::escape(e),
    }
}

/// [`catch`], keeping only the exception code: the Rust form of
/// `__try { f } __except (EXCEPTION_EXECUTE_HANDLER) { return GetExceptionCode(); }`.
pub fn try_except<T>(f: impl FnOnce() -> T) -> Result<T, NtStatus> {
    catch(f).map_err(|e| e.code)
}

#[cfg(test)]
mod tests;
