//! Guarded calls: running code (driver code, in the end) on a stack we provide, with an
//! escape hatch back to the call boundary.
//!
//! [`call_guarded`] sets a landing point (`sigsetjmp` in `c/guard.c`, saving the signal
//! mask), optionally switches to a caller-provided [`Stack`] (a simulated kernel stack
//! with a `PROT_NONE` guard page below it), and runs the closure. It returns `Ok` with the
//! closure's result, or `Err(escape)` when [`escape`] was called, or a fault handler
//! answered [`FaultAction::Escape`], inside it. A panic in the
//! closure is caught on the guarded stack, carried back across the switch and resumed
//! there: unwinding never crosses C frames.
//!
//! Guarded calls nest; the frames form a per-thread list and the innermost one receives
//! escapes. Each frame may carry a fault handler, asked about faults on addresses no
//! registered range claims ([`crate::fault`]).
//!
//! **The escape contract.** An escape is a `siglongjmp`: every frame between the escape
//! and the landing point is abandoned without running destructors. Callers guarantee that
//! none of those frames has a pending destructor (no live `Vec`, `String`, lock guard,
//! `Arc`, …). In ntmem, layers return `Err` up to the driver boundary and only there
//! escape, so only driver frames (C, or Rust that holds nothing) are skipped.
//!
//! **Exceptions.** A fault in a registered driver image (or in a routine one called) is
//! dispatched as a Windows exception over the image's own unwind tables
//! ([`crate::exception`], `FaultAction::Raise`). An exception no driver frame takes may
//! still have a landing point *inside* a guarded call: a Rust caller's `seh::catch`
//! (kept by `ntmem-wdk`, itself a guarded call). The host does not own those; it only
//! lets their keeper register an [`ExceptionCatcher`]. A fault handler that answers
//! `Escape` with an [`ESCAPE_EXCEPTION`] payload has that payload delivered to the
//! catcher (which `siglongjmp`s to its innermost landing point) instead of the
//! innermost guarded call; [`exception_frame_active`] tells a fault handler, beforehand,
//! whether there is such a frame. [`token`] names the innermost guarded call, so a keeper
//! can tell which guarded call each of its frames belongs to.
//!
//! Each thread entering a guarded call gets an alternate signal stack of at least
//! [`SIGNAL_STACK_SIZE`] bytes (a larger existing one is kept), so a fault in a kernel
//! stack's guard page can still be handled and reported.

use crate::fault::{self, Fault, FaultAction, FaultHandler};
use crate::sys::{hex, page_size, write_stderr};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::Arc;

/// Why a guarded call was abandoned: an opaque payload chosen by the upper layer (a
/// bugcheck code and its parameters, an exception code and its arguments, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escape {
    pub kind: u32,
    pub words: [u64; 7],
}

/// `Escape::kind` of a structured exception raised by a fault: delivered to the
/// [`ExceptionCatcher`] when it has a frame for it. The words are the upper layer's
/// (ntmem: exception code, address, the exception's first two parameters, and how many
/// of those are set, in words 0–4).
pub const ESCAPE_EXCEPTION: u32 = 0xE0;

/// `Escape::kind` of `__fastfail(code)` (`int 0x29`) in driver code: no handler may
/// see it (Windows' kernel stops with KERNEL_SECURITY_CHECK_FAILURE). Words: the
/// fast-fail code (RCX), the instruction's address.
pub const ESCAPE_FAST_FAIL: u32 = 0xE1;

/// The keeper of exception frames that live inside guarded calls (see the module docs).
/// Both functions run in signal context: async-signal-safe, no allocation, no lock.
#[derive(Debug)]
pub struct ExceptionCatcher {
    /// Whether this thread has an exception frame newer than its innermost guarded call.
    pub has_frame: fn() -> bool,
    /// Jumps to that frame with the exception; returns only when there is none.
    pub deliver: fn(&Escape),
}

static CATCHER: std::sync::OnceLock<&'static ExceptionCatcher> = std::sync::OnceLock::new();

/// Registers the process's exception catcher. The first registration wins; later ones
/// are ignored (there is one keeper of exception frames per process).
pub fn set_exception_catcher(catcher: &'static ExceptionCatcher) {
    let _ = CATCHER.set(catcher);
}

/// Whether an exception raised now on this thread would be caught by an exception frame
/// (newer than the innermost guarded call). Async-signal-safe.
pub fn exception_frame_active() -> bool {
    CATCHER.get().is_some_and(|c| (c.has_frame)())
}

/// The innermost guarded call of this thread, as an opaque nonzero number (0: none),
/// stable while that call runs and never given to another call of this thread.
/// Async-signal-safe.
pub fn token() -> usize {
    let frame = innermost();
    if frame.is_null() {
        return 0;
    }
    // SAFETY: linked frames belong to guarded calls still running on this thread.
    unsafe { (*frame).serial }
}

/// A stack for a guarded call: `size` bytes from `base` (the lowest usable byte), already
/// mapped read/write by the caller, with a `PROT_NONE` guard page just below `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    pub base: usize,
    pub size: usize,
}

/// The smallest alternate signal stack a thread running guarded calls gets.
pub const SIGNAL_STACK_SIZE: usize = 64 * 1024;

/// The smallest [`Stack`] accepted (the trampoline and the panic catcher need room).
const MIN_STACK: usize = 8 * 1024;

/// Must match NTMEM_JMPBUF_BYTES in `c/guard.c` (which checks `sigjmp_buf` fits).
const JMPBUF_BYTES: usize = 512;

#[repr(C, align(16))]
struct JmpBuf(UnsafeCell<[u8; JMPBUF_BYTES]>);

extern "C" {
    fn ntmem_guard_run(
        env: *mut c_void,
        stack_base: *mut c_void,
        stack_size: usize,
        entry: extern "C" fn(*mut c_void),
        arg: *mut c_void,
    ) -> c_int;
    fn ntmem_guard_escape(env: *mut c_void) -> !;
    #[cfg(test)]
    fn ntmem_jmpbuf_size() -> usize;
}

/// One guarded call in progress. Lives in `call_guarded`'s frame; linked from `CURRENT`
/// only while its closure runs.
struct Frame {
    jmp: JmpBuf,
    prev: *const Frame,
    stack: Option<Stack>,
    fault_handler: Option<Arc<dyn FaultHandler>>,
    escape: Cell<Option<Escape>>,
    /// This thread's count of guarded calls when this one began: never reused, so a
    /// [`token`] kept by abandoned driver code never names a later call.
    serial: usize,
}

thread_local! {
    /// The innermost guarded call of this thread. Const-initialized without a destructor,
    /// so reading it is a plain TLS load: safe in the signal handler.
    static CURRENT: Cell<*const Frame> = const { Cell::new(ptr::null()) };
    /// Guarded calls this thread has begun.
    static SERIAL: Cell<usize> = const { Cell::new(0) };
}

fn innermost() -> *const Frame {
    CURRENT.with(Cell::get)
}

/// The state `enter` needs, passed through C as a pointer.
struct Call<F, R> {
    frame: *const Frame,
    f: Option<F>,
    out: Option<std::thread::Result<R>>,
}

extern "C" fn enter<F: FnOnce() -> R, R>(arg: *mut c_void) {
    // SAFETY: `arg` is the `Call<F, R>` that `call_guarded` handed to ntmem_guard_run;
    // it outlives this call and nothing else touches it until ntmem_guard_run returns.
    let call = unsafe { &mut *arg.cast::<Call<F, R>>() };
    let Some(f) = call.f.take() else { return };
    compiler_fence(Ordering::SeqCst);
    CURRENT.with(|c| c.set(call.frame));
    compiler_fence(Ordering::SeqCst);
    call.out = Some(panic::catch_unwind(AssertUnwindSafe(f)));
}

/// Runs `f` as a guarded call: on `stack` if given (else on the current stack), with
/// `fault_handler` asked about faults no registered range claims. Returns `Err` with the
/// payload if `f` escaped (see the module's escape contract); resumes `f`'s panic, if any,
/// on the caller's stack.
///
/// # Panics
/// If `stack` is smaller than 8 KB or wraps around, or the context switch fails.
pub fn call_guarded<R>(
    stack: Option<Stack>,
    fault_handler: Option<Arc<dyn FaultHandler>>,
    f: impl FnOnce() -> R,
) -> Result<R, Escape> {
    run(stack, fault_handler, f)
}

fn run<F: FnOnce() -> R, R>(
    stack: Option<Stack>,
    fault_handler: Option<Arc<dyn FaultHandler>>,
    f: F,
) -> Result<R, Escape> {
    if let Some(s) = stack {
        assert!(
            s.size >= MIN_STACK && s.base != 0 && s.base.checked_add(s.size).is_some(),
            "ntmem: unusable guarded stack {s:?}"
        );
    }
    fault::install_handler();
    ensure_signal_stack();
    let frame = Frame {
        jmp: JmpBuf(UnsafeCell::new([0; JMPBUF_BYTES])),
        prev: innermost(),
        stack,
        fault_handler,
        escape: Cell::new(None),
        serial: SERIAL.with(|s| {
            s.set(s.get() + 1);
            s.get()
        }),
    };
    let mut call = Call::<F, R> { frame: &frame, f: Some(f), out: None };
    let (base, size) = stack.map_or((ptr::null_mut(), 0), |s| (s.base as *mut c_void, s.size));
    // SAFETY: the jump buffer is 16-aligned and JMPBUF_BYTES long (checked against
    // sigjmp_buf in C); `enter::<F, R>` matches the `Call<F, R>` passed as its argument;
    // the stack, if any, is caller-provided mapped memory of `size` bytes. The landing
    // point lives in ntmem_guard_run's own frame, so to us this call returns once.
    let rc =
        unsafe { ntmem_guard_run(frame.jmp.0.get().cast(), base, size, enter::<F, R>, ptr::addr_of_mut!(call).cast()) };
    compiler_fence(Ordering::SeqCst);
    CURRENT.with(|c| c.set(frame.prev));
    compiler_fence(Ordering::SeqCst);
    match rc {
        0 => match call.out.take() {
            Some(Ok(r)) => Ok(r),
            Some(Err(payload)) => panic::resume_unwind(payload),
            None => unreachable!("ntmem: guarded call returned without running"),
        },
        1 => Err(frame.escape.get().expect("ntmem: guarded call escaped without a payload")),
        _ => panic!("ntmem: cannot switch to the guarded stack {stack:?}"),
    }
}

/// Abandons the innermost guarded call, which returns `Err(e)`.
///
/// **Contract:** no frame between here and that call may have a pending destructor; they
/// are skipped, not unwound (see the module docs). Upper layers return `Err` to the driver
/// boundary and escape only there.
///
/// # Panics
/// If the thread is in no guarded call.
pub fn escape(e: Escape) -> ! {
    let frame = innermost();
    if frame.is_null() {
        panic!("ntmem: escape({e:?}) outside any guarded call");
    }
    // SAFETY: `frame` is the innermost live frame of this thread.
    unsafe { jump(frame, e) }
}

/// Stores `e` in `frame` and jumps to its landing point.
///
/// # Safety
/// `frame` must be the innermost live guarded frame of the calling thread, and the
/// frames to be skipped must have no pending destructors.
unsafe fn jump(frame: *const Frame, e: Escape) -> ! {
    // SAFETY: the caller guarantees `frame` is live; `escape` is a Cell on this thread.
    let frame = unsafe { &*frame };
    frame.escape.set(Some(e));
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the buffer was set by sigsetjmp in ntmem_guard_run, which is still running
    // (its guarded call has not returned).
    unsafe { ntmem_guard_escape(frame.jmp.0.get().cast()) }
}

/// A fault handler's `Escape`: an exception goes to the catcher's frame if it has one;
/// otherwise jump to the innermost guarded call, or report and abort.
pub(crate) fn escape_from_fault(e: Escape, fault: &Fault) -> ! {
    if e.kind == ESCAPE_EXCEPTION {
        if let Some(catcher) = CATCHER.get() {
            (catcher.deliver)(&e);
        }
    }
    let frame = innermost();
    if frame.is_null() {
        write_stderr(&[
            b"ntmem: fault at ",
            &hex(fault.addr),
            b" (ip ",
            &hex(fault.ip),
            b") outside any guarded call; aborting\n",
        ]);
        std::process::abort();
    }
    // SAFETY: `frame` is this thread's innermost live frame; the frames skipped are the
    // interrupted code's and the signal handler's, which own nothing to drop.
    unsafe { jump(frame, e) }
}

/// A watchdog tick's escape ([`crate::watchdog`]): jump to the innermost guarded call.
/// The caller (the tick handler) has checked there is one and that the interrupted code
/// is exposed (owns nothing).
pub(crate) fn escape_from_signal(e: Escape) -> ! {
    let frame = innermost();
    if frame.is_null() {
        std::process::abort();
    }
    // SAFETY: `frame` is this thread's innermost live frame; the frames skipped are the
    // exposed code's (which owns nothing) and the signal handler's.
    unsafe { jump(frame, e) }
}

/// Asks the fault handlers of this thread's guarded calls, innermost first.
pub(crate) fn ask_frames(fault: &Fault) -> FaultAction {
    let mut frame = innermost();
    while !frame.is_null() {
        // SAFETY: linked frames belong to guarded calls still running on this thread.
        let f = unsafe { &*frame };
        if let Some(handler) = &f.fault_handler {
            match fault::ask(handler.as_ref(), fault) {
                FaultAction::NotMine => {}
                action => return action,
            }
        }
        frame = f.prev;
    }
    FaultAction::NotMine
}

/// The stack of the innermost guarded call that switched stacks (a call on the current
/// stack runs on its caller's), for `IoGetStackLimits`.
pub fn current_stack() -> Option<Stack> {
    let mut frame = innermost();
    while !frame.is_null() {
        // SAFETY: linked frames belong to guarded calls still running on this thread.
        let f = unsafe { &*frame };
        if f.stack.is_some() {
            return f.stack;
        }
        frame = f.prev;
    }
    None
}

/// The approximate current stack pointer (the address of a local).
#[inline(never)]
pub fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(ptr::addr_of!(marker)) as usize
}

/// Whether this thread is inside a guarded call.
pub fn in_guarded_call() -> bool {
    !innermost().is_null()
}

/// An alternate signal stack this thread installed; disabled (if still current) and
/// unmapped when the thread exits.
struct SignalStack {
    map: usize,
    map_len: usize,
    sp: usize,
}

impl Drop for SignalStack {
    fn drop(&mut self) {
        // SAFETY: all-zero is a valid stack_t; querying into a valid out-pointer.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaltstack(ptr::null(), &mut cur) };
        if cur.ss_sp as usize == self.sp && cur.ss_flags & libc::SS_DISABLE == 0 {
            let off = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: disabling the alternate stack has no preconditions.
            unsafe { libc::sigaltstack(&off, ptr::null_mut()) };
        }
        // SAFETY: the mapping is ours and no longer the thread's signal stack.
        unsafe { libc::munmap(self.map as *mut c_void, self.map_len) };
    }
}

thread_local! {
    static SIGNAL_STACK: RefCell<Option<SignalStack>> = const { RefCell::new(None) };
}

/// Gives the thread an alternate signal stack of at least [`SIGNAL_STACK_SIZE`] bytes
/// (with a guard page below), unless it has one that large.
fn ensure_signal_stack() {
    // SAFETY: all-zero is a valid stack_t.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying into a valid out-pointer.
    unsafe { libc::sigaltstack(ptr::null(), &mut cur) };
    let enabled = cur.ss_flags & libc::SS_DISABLE == 0;
    if (enabled && cur.ss_size >= SIGNAL_STACK_SIZE) || cur.ss_flags & libc::SS_ONSTACK != 0 {
        return;
    }
    let page = page_size();
    let map_len = SIGNAL_STACK_SIZE + page;
    // SAFETY: a new private mapping chosen by the kernel clobbers nothing.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert!(map != libc::MAP_FAILED, "ntmem: cannot map a signal stack");
    // SAFETY: the lowest page of our fresh mapping becomes its guard page.
    unsafe { libc::mprotect(map, page, libc::PROT_NONE) };
    let sp = map as usize + page;
    let stack = SignalStack { map: map as usize, map_len, sp };
    let installed = SIGNAL_STACK.try_with(|slot| {
        let new = libc::stack_t { ss_sp: sp as *mut c_void, ss_flags: 0, ss_size: SIGNAL_STACK_SIZE };
        // SAFETY: `new` describes our mapping, which lives until the slot's destructor
        // has disabled it.
        let rc = unsafe { libc::sigaltstack(&new, ptr::null_mut()) };
        assert_eq!(rc, 0, "ntmem: cannot install a signal stack");
        // Replacing a previous stack of ours drops it; it is no longer current.
        *slot.borrow_mut() = Some(stack);
    });
    // During thread teardown the slot is gone: `stack` was dropped, unmapped, never used.
    let _ = installed;
}

#[cfg(test)]
mod tests;
