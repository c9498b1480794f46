//! Structured exceptions for driver code (issue 4 item 2; seed 000 §9): C drivers'
//! `__try` / `__except` / `__finally` (`include/wdm.h`, `c/seh.c`), `ExRaiseStatus`,
//! the raise that routines use ([`raise_status`]), and the same for Rust drivers as a
//! `Result` ([`try_except`]).
//!
//! **Frames.** Each thread has a list of exception frames, innermost first, living in
//! the stack frames of driver functions (`NTMEM_SEH_FRAME`, pushed by `__try` and
//! popped by `__attribute__((cleanup))` however the block is left). Each records the
//! host's guarded call it was pushed in ([`ntmem_host::token`]); an exception lands
//! in the innermost frame only if that frame belongs to the innermost guarded call.
//!
//! **Raising.** A raise (from `ExRaiseStatus`, from a routine through
//! [`raise_status`], or from a filter returning `EXCEPTION_CONTINUE_SEARCH`) pops the
//! innermost frame and `longjmp`s to it. A fault on a user address inside a `__try`
//! below DISPATCH_LEVEL reaches the same frame as STATUS_ACCESS_VIOLATION: the
//! kernel's `Trap` answers with an exception escape and the host hands it to the
//! [`ntmem_host::ExceptionCatcher`] this module registers.
//!
//! **Unhandled.** With no frame, the machine stops as Windows' would. A driver
//! routine that runs in a system thread — `DriverEntry` and `DriverUnload`, which the
//! I/O manager calls from a system worker thread — gets the system thread's
//! top-level filter: SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (0x7E: code, address,
//! exception record, context record). Code running in an arbitrary thread (a dispatch
//! routine in the caller's thread, the default here) finds no frame at all, and the
//! kernel's dispatcher stops with KMODE_EXCEPTION_NOT_HANDLED (0x1E: code, address,
//! exception parameters 0 and 1). Sources: Microsoft's bug check reference pages for
//! 0x1E and 0x7E (learn.microsoft.com, `debugger/bug-check-0x1e…`, `…0x7e…`). ntmem
//! keeps the records in no simulated memory, so 0x7E's record and context addresses
//! are 0. An unhandled *fault* keeps the trap's 0x8E (`ntmem_kernel::trap`).
//!
//! **The escape contract** of `ntmem_host::escape` applies: a raise abandons every
//! frame between it and the landing point without dropping anything. Routines drop
//! what they hold before calling [`raise_status`]; closures given to [`try_except`]
//! must not hold values with destructors across a call that may raise.

use std::any::Any;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};

use ntmem_host::{Escape, ExceptionCatcher};
use ntmem_kernel::trap::raise_bugcheck;
use ntmem_kernel::{BugCheck, BugCheckCode};

use crate::types::NtStatus;

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

extern "C" {
    fn ntmem_seh_has_frame() -> c_int;
    fn ntmem_seh_raise_status(status: NtStatus, address: *mut c_void) -> !;
    fn ntmem_seh_deliver(code: NtStatus, address: usize, access: usize, target: usize);
    fn ntmem_seh_chain() -> *mut c_void;
    fn ntmem_seh_set_chain(chain: *mut c_void);
    fn ntmem_seh_call(entry: extern "C" fn(*mut c_void), arg: *mut c_void, out: *mut ExceptionRecord) -> c_int;
    fn ExRaiseStatus(status: NtStatus) -> !;
    fn ExRaiseAccessViolation() -> !;
    fn ExRaiseDatatypeMisalignment() -> !;
    fn ntmem_seh_enter(frame: *mut c_void);
    fn ntmem_seh_leave(frame: *mut c_void);
    fn ntmem_seh_filter(disposition: i32);
    fn ntmem_seh_caught() -> i32;
    fn ntmem_seh_unwinding();
    fn ntmem_seh_finally_begin() -> Finally;
    fn ntmem_seh_finally_end(finally: *mut c_void);
    fn ntmem_seh_exception_code() -> NtStatus;
    fn ntmem_seh_exception_pointers() -> *mut c_void;
}

/// `NTMEM_SEH_FINALLY` (`wdm.h`): the state of a `__finally` body.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Finally {
    /// Whether the body runs (again).
    pub run: i32,
    /// Whether an exception is unwinding through it.
    pub unwinding: i32,
    /// That exception.
    pub record: ExceptionRecord,
}

/// The C routines of this module that drivers reach (`ExRaise…` and what the
/// `__try` macros expand to), by address, so the executable keeps and exports them
/// (see [`crate::exports`]).
#[derive(Debug)]
pub struct Exports {
    /// `ExRaiseStatus`.
    pub ex_raise_status: unsafe extern "C" fn(NtStatus) -> !,
    /// `ExRaiseAccessViolation`.
    pub ex_raise_access_violation: unsafe extern "C" fn() -> !,
    /// `ExRaiseDatatypeMisalignment`.
    pub ex_raise_datatype_misalignment: unsafe extern "C" fn() -> !,
    /// The macros' helpers.
    pub enter: unsafe extern "C" fn(*mut c_void),
    /// ″
    pub leave: unsafe extern "C" fn(*mut c_void),
    /// ″
    pub filter: unsafe extern "C" fn(i32),
    /// ″
    pub caught: unsafe extern "C" fn() -> i32,
    /// ″
    pub unwinding: unsafe extern "C" fn(),
    /// ″
    pub finally_begin: unsafe extern "C" fn() -> Finally,
    /// ″
    pub finally_end: unsafe extern "C" fn(*mut c_void),
    /// `GetExceptionCode`.
    pub exception_code: unsafe extern "C" fn() -> NtStatus,
    /// `GetExceptionInformation`.
    pub exception_pointers: unsafe extern "C" fn() -> *mut c_void,
}

/// The table for [`crate::Exports`].
pub(crate) const EXPORTS: Exports = Exports {
    ex_raise_status: ExRaiseStatus,
    ex_raise_access_violation: ExRaiseAccessViolation,
    ex_raise_datatype_misalignment: ExRaiseDatatypeMisalignment,
    enter: ntmem_seh_enter,
    leave: ntmem_seh_leave,
    filter: ntmem_seh_filter,
    caught: ntmem_seh_caught,
    unwinding: ntmem_seh_unwinding,
    finally_begin: ntmem_seh_finally_begin,
    finally_end: ntmem_seh_finally_end,
    exception_code: ntmem_seh_exception_code,
    exception_pointers: ntmem_seh_exception_pointers,
};

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

/// Runs `f` — which calls into driver code — as a thread of `kind`. The thread's
/// exception frames are restored afterwards: a bugcheck abandons driver code with
/// its frames still listed.
pub fn run_as<R>(kind: ThreadKind, f: impl FnOnce() -> R) -> R {
    // SAFETY: reads this thread's list head; no preconditions.
    let chain = unsafe { ntmem_seh_chain() };
    let previous = KIND.with(|k| k.replace(kind));
    let r = f();
    KIND.with(|k| k.set(previous));
    // SAFETY: `chain` was this thread's head before `f`; every frame on it is in a
    // stack frame of our caller's callers, which are still live.
    unsafe { ntmem_seh_set_chain(chain) };
    r
}

/// The kind of thread driver code runs in now (set by [`run_as`]).
pub fn thread_kind() -> ThreadKind {
    KIND.with(Cell::get)
}

/// The guarded call a new frame belongs to (called by `c/seh.c`).
#[no_mangle]
pub extern "C" fn ntmem_wdk_guard_token() -> usize {
    ntmem_host::token()
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

/// An exception with no frame to land in (called by `c/seh.c`): stops the machine,
/// or, on a thread with no machine call in progress, ends the process (see
/// [`EXIT_UNHANDLED_OUTSIDE_MACHINE`]).
///
/// # Safety
/// `record` points to a valid `EXCEPTION_RECORD`.
#[no_mangle]
pub unsafe extern "C" fn ntmem_wdk_unhandled(record: *const ExceptionRecord) -> ! {
    // SAFETY: the caller passes a valid record; we copy it.
    let record = unsafe { *record };
    let b = unhandled_bugcheck(KIND.with(Cell::get), &record);
    if ntmem_host::token() == 0 {
        unhandled_outside_machine(&record, &b)
    }
    raise_bugcheck(&b)
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

fn unhandled_outside_machine(record: &ExceptionRecord, b: &BugCheck) -> ! {
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

fn has_frame() -> bool {
    // SAFETY: reads thread-local state; async-signal-safe.
    unsafe { ntmem_seh_has_frame() != 0 }
}

fn deliver(e: &Escape) {
    let [code, address, access, target, ..] = e.words;
    // SAFETY: called by the host's fault path on the faulting thread; returns when no
    // frame takes the exception, else jumps to the frame (the frames skipped are the
    // signal handler's and the interrupted driver code's).
    unsafe { ntmem_seh_deliver(code as u32 as NtStatus, address as usize, access as usize, target as usize) }
}

static CATCHER: ExceptionCatcher = ExceptionCatcher { has_frame, deliver };

/// Registers this module as the host's exception catcher (idempotent).
pub fn install() {
    ntmem_host::set_exception_catcher(&CATCHER);
}

/// Raises `status` as `ExRaiseStatus` does: to the innermost exception frame, or
/// stops the machine. For routines that raise (ProbeForRead, MmProbeAndLockPages,
/// quota pool): drop everything you hold first (see the module docs).
pub fn raise_status(status: NtStatus) -> ! {
    raise_status_at(status, 0)
}

/// [`raise_status`], naming the exception's address (e.g. the driver's call site).
pub fn raise_status_at(status: NtStatus, address: usize) -> ! {
    // SAFETY: raising has no preconditions beyond the escape contract (module docs),
    // which callers keep.
    unsafe { ntmem_seh_raise_status(status, address as *mut c_void) }
}

struct Call<F, T> {
    f: Option<F>,
    out: Option<Result<T, Box<dyn Any + Send>>>,
}

extern "C" fn enter<F: FnOnce() -> T, T>(arg: *mut c_void) {
    // SAFETY: `arg` is the `Call<F, T>` that `catch` passed to ntmem_seh_call,
    // live and unshared until that call returns.
    let call = unsafe { &mut *arg.cast::<Call<F, T>>() };
    if let Some(f) = call.f.take() {
        call.out = Some(panic::catch_unwind(AssertUnwindSafe(f)));
    }
}

/// Runs `f` inside an exception frame: an exception raised in it (by a routine, by
/// `ExRaiseStatus`, or by a fault on a user address below DISPATCH_LEVEL) is
/// returned as `Err`, as `__try { f } __except (EXCEPTION_EXECUTE_HANDLER)` would.
/// A panic in `f` is resumed here.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Exception> {
    install();
    let mut call = Call { f: Some(f), out: None };
    let mut record = ExceptionRecord::empty();
    // SAFETY: `enter::<F, T>` matches the `Call` passed; `record` is writable. The
    // landing point is in ntmem_seh_call's frame, so to Rust this call returns once.
    let landed = unsafe { ntmem_seh_call(enter_of(&call), std::ptr::addr_of_mut!(call).cast(), &mut record) };
    if landed != 0 {
        let n = (record.number_parameters as usize).min(record.information.len());
        return Err(Exception {
            code: record.code,
            address: record.address as usize,
            parameters: record.information[..n].to_vec(),
        });
    }
    match call.out {
        Some(Ok(r)) => Ok(r),
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => unreachable!("ntmem: try_except returned without running"),
    }
}

fn enter_of<F: FnOnce() -> T, T>(_: &Call<F, T>) -> extern "C" fn(*mut c_void) {
    enter::<F, T>
}

/// [`catch`], keeping only the exception code: the Rust form of
/// `__try { f } __except (EXCEPTION_EXECUTE_HANDLER) { return GetExceptionCode(); }`.
pub fn try_except<T>(f: impl FnOnce() -> T) -> Result<T, NtStatus> {
    catch(f).map_err(|e| e.code)
}

#[cfg(test)]
mod tests;
