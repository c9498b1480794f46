//! The processor the calling thread runs driver code on.
//!
//! The loader enters driver code inside `Machine::run`, whose closure receives the
//! [`Cpu`]; it records a pointer to that `Cpu` in a thread-local for as long as the
//! driver runs ([`enter`]). A routine the driver calls finds it with [`kernel`],
//! which also turns the routine's `Err(BugCheck)` into a jump back to
//! `Machine::run` — the only way out of driver code on a bugcheck (DESIGN.md,
//! "Leaving driver code on a bugcheck").

use std::cell::Cell;
use std::ffi::c_void;

use ntmem_kernel::trap::raise_bugcheck;
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

thread_local! {
    /// The `Cpu` of the driver call in progress on this thread, or null.
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` — a call into driver code — with `cpu` as the current processor.
///
/// If `f` does not return (a bugcheck jumps past it), the record is left behind;
/// the loader clears it with [`leave`] once `Machine::run` has returned.
pub fn enter<R>(cpu: &Cpu<'_>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(std::ptr::from_ref(cpu).cast()));
    let r = f();
    CURRENT.with(|c| c.set(previous));
    r
}

/// Forgets the current processor: no driver call is in progress on this thread.
pub fn leave() {
    CURRENT.with(|c| c.set(std::ptr::null()));
}

/// Whether driver code is running on this thread.
pub fn in_driver() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// Runs kernel code `f` for a routine a driver called, on the current processor.
/// `f`'s bugcheck leaves driver code: everything `f` held has been dropped, the
/// bugcheck is copied without its heap parts (the blamed driver's name, which the
/// loader sets afterwards) and dropped, and the thread jumps back to
/// `Machine::run` with the copy, which owns nothing.
///
/// A routine called with no driver call in progress (not from a driver the loader
/// runs) cannot report anything to anyone: the process aborts with a message.
pub fn kernel<R>(f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>) -> R {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        eprintln!("ntmem: a WDK routine was called outside a driver call (no simulated processor)");
        std::process::abort();
    }
    // SAFETY: `p` was set by `enter` from a `&Cpu` that lives on the frame of the
    // `Machine::run` closure which called into the driver, and that driver call is
    // still in progress (this routine was called from it, on this thread): the
    // `Cpu` outlives this call. `leave` clears stale records before `Machine::run`'s
    // caller goes on, so a non-null pointer is never stale.
    let cpu: &Cpu<'_> = unsafe { &*p.cast::<Cpu<'_>>() };
    let stop = match f(cpu) {
        Ok(r) => return r,
        Err(b) => {
            let mut stop = BugCheck::new(b.code, b.parameters);
            stop.faulting_ip = b.faulting_ip;
            drop(b);
            stop
        }
    };
    raise_bugcheck(&stop)
}

/// The driver-visible (host) pointer of a simulated address; NULL for `None`.
pub(crate) fn host_ptr(cpu: &Cpu<'_>, va: Option<Va>) -> *mut c_void {
    va.map_or(std::ptr::null_mut(), |va| cpu.machine().space().host_addr(va) as *mut c_void)
}

/// The simulated address of a pointer a driver passed. A pointer outside the
/// machine's address space is passed on as the same number, so the routine
/// reports it as Windows would (not pool memory, not a mapping: a bugcheck).
pub(crate) fn va_of(cpu: &Cpu<'_>, p: *const c_void) -> Va {
    let addr = p as usize;
    cpu.machine().space().va_of_host(addr).unwrap_or(Va::new(addr as u64))
}
