//! The processor the calling thread runs driver code on.
//!
//! The loader enters driver code inside `Machine::run`, whose closure receives the
//! [`Cpu`]; it records a pointer to that `Cpu` in a thread-local for as long as the
//! driver runs ([`enter`]). A routine the driver calls finds it with [`kernel`],
//! which also turns the routine's `Err(BugCheck)` into a jump back to
//! `Machine::run` — the only way out of driver code on a bugcheck (DESIGN.md,
//! "Leaving driver code on a bugcheck").

use std::any::Any;
use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;

use ntmem_kernel::trap::raise_bugcheck;
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Halt, Machine};

use crate::seh::ThreadKind;
use ntmem_machine::Va;

thread_local! {
    /// The `Cpu` of the driver call in progress on this thread, or null.
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
    /// The driver routine running on this thread (innermost), for timeout reports.
    static ROUTINE: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `f` on processor `cpu` of `machine` under its watchdog — `f` calls into
/// driver code through [`enter`] — as a thread of `kind` (which decides the bugcheck
/// of an unhandled exception), with this thread's GS block current (driver images
/// read the processor block through `gs:`, and their import thunks record their
/// context there) and an empty import capture. Everything is put back afterwards,
/// however `f` ended; the outcome passes through [`leave`].
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn call_driver<R>(
    machine: &Machine,
    cpu: u32,
    kind: ThreadKind,
    f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>,
) -> Result<R, BugCheck> {
    // Without a GS block (the host refused the base) drivers that read `gs:` fault and
    // are reported; everything else works.
    let gs = ntmem_host::thunk::GsBlock::enter().ok();
    let r = crate::seh::run_as(kind, || machine.run_driver(cpu, |c| in_process_of(kind, c, f)));
    drop(gs);
    leave(r)
}

/// Runs `f` in the process a thread of `kind` runs in: a system thread (a worker
/// routine, a work item, a system thread's start) in the System process; any other in
/// whatever process is current (a request's caller switches to its own).
fn in_process_of<R>(
    kind: ThreadKind,
    c: &Cpu<'_>,
    f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>,
) -> Result<R, BugCheck> {
    if kind == ThreadKind::System {
        ntmem_kernel::mm::process::ke_switch_process(c, None)?;
    }
    f(c)
}

/// As [`call_driver`], for a simulated thread on its own kernel `stack`
/// ([`ntmem_kernel::Machine::run_thread`]): the host thread of a system or worker
/// thread ([`crate::sched`]), which holds the scheduler's baton.
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn call_thread<R>(
    machine: &Machine,
    cpu: u32,
    stack: ntmem_kernel::ke::processor::KernelStack,
    kind: ThreadKind,
    f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>,
) -> Result<R, BugCheck> {
    let gs = ntmem_host::thunk::GsBlock::enter().ok();
    let r = crate::seh::run_as(kind, || machine.run_thread(cpu, stack, |c| in_process_of(kind, c, f)));
    drop(gs);
    leave(r)
}

/// Runs `f` — a call into driver code, the driver's `routine` (`DriverEntry`,
/// `IRP_MJ_READ dispatch routine`, …) — with `cpu` as the current processor. The
/// driver's code is exposed to the machine's watchdog (`Machine::run_driver`): it
/// owns nothing ntmem must drop, so a timeout may abandon it at any instruction.
///
/// If `f` does not return (a bugcheck jumps past it), the record is left behind;
/// the loader clears it with [`leave`] once `Machine::run` has returned.
pub fn enter<R>(cpu: &Cpu<'_>, routine: &'static str, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(std::ptr::from_ref(cpu).cast()));
    let previous_routine = ROUTINE.with(|r| r.replace(Some(routine)));
    let r = ntmem_host::watchdog::exposed(f);
    ROUTINE.with(|r| r.set(previous_routine));
    CURRENT.with(|c| c.set(previous));
    r
}

/// Forgets the current processor (no driver call is in progress on this thread) and
/// passes on `r`, the outcome of the `Machine::run` that called into the driver, with
/// the routine that did not return named in a timeout.
///
/// # Errors
/// `r`'s bugcheck.
pub fn leave<R>(r: Result<R, BugCheck>) -> Result<R, BugCheck> {
    let routine = ROUTINE.with(|r| r.replace(None));
    CURRENT.with(|c| c.set(std::ptr::null()));
    // A stop or an exception may have skipped a routine's `QuietPanics` drop.
    QUIET.with(|q| q.set(false));
    r.map_err(|mut b| {
        if let Some(Halt::Timeout { routine: name @ None, .. }) = b.halt.as_deref_mut() {
            *name = routine.map(str::to_string);
        }
        b
    })
}

/// `f` of the machine of the driver call in progress on this thread, outside a
/// routine's fence (for a value read without a stop to report, such as the current
/// thread's identity); `None` when no driver call is in progress.
pub(crate) fn with_machine<R>(f: impl FnOnce(&ntmem_kernel::Machine) -> R) -> Option<R> {
    let p = CURRENT.with(Cell::get);
    // SAFETY: as in `kernel`: a non-null record is the `Cpu` of the driver call in
    // progress on this thread, which outlives this call.
    (!p.is_null()).then(|| f(unsafe { &*p.cast::<Cpu<'_>>() }.machine()))
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
/// `f` runs shielded from the watchdog (it may hold locks and heap memory); a stop
/// the watchdog decided on meanwhile is taken when `f` has returned.
///
/// **The panic fence.** A panic in `f` is a bug in ntmem, not the driver's: it is
/// caught here and stops the machine with an internal-error halt naming the routine
/// and the panic's message (never an abort, never a second report).
///
/// A routine called with no driver call in progress (not from a driver the loader
/// runs) cannot report anything to anyone: the process aborts with a message naming
/// the routine.
pub fn kernel<R>(f: impl FnOnce(&Cpu<'_>) -> Result<R, BugCheck>) -> R {
    let routine = routine_name(&f);
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        eprintln!("ntmem: {routine} was called outside a driver call (no simulated processor); aborting");
        std::process::abort();
    }
    // SAFETY: `p` was set by `enter` from a `&Cpu` that lives on the frame of the
    // `Machine::run` closure which called into the driver, and that driver call is
    // still in progress (this routine was called from it, on this thread): the
    // `Cpu` outlives this call. `leave` clears stale records before `Machine::run`'s
    // caller goes on, so a non-null pointer is never stale.
    let cpu: &Cpu<'_> = unsafe { &*p.cast::<Cpu<'_>>() };
    let outcome = ntmem_host::watchdog::shielded(|| {
        let _quiet = QuietPanics::new();
        panic::catch_unwind(AssertUnwindSafe(|| f(cpu)))
    });
    let stop = match outcome {
        Ok(Ok(r)) => match ntmem_host::watchdog::take_pending() {
            None => return r,
            Some(e) => {
                drop(r);
                ntmem_host::escape(e)
            }
        },
        Ok(Err(b)) => {
            let mut stop = BugCheck::new(b.code, b.parameters);
            stop.faulting_ip = b.faulting_ip;
            drop(b);
            stop
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            drop(payload);
            // The halt's text is heap memory: the machine keeps it, and the escape
            // below only says "stopped" (`Machine::run` returns the first stop).
            let b = cpu.machine().halt(Halt::Internal { routine: routine.to_string(), message });
            drop(b);
            BugCheck::new(BugCheckCode(0), [0; 4])
        }
    };
    if let Some(context) = crate::except::driver_context() {
        crate::except::note_stop_stack(&context);
    }
    raise_bugcheck(&stop)
}

/// Where a routine the driver called has finished and owns nothing: a stop the
/// watchdog decided on while the routine ran (shielded) leaves driver code now.
pub(crate) fn watchdog_checkpoint() {
    if let Some(e) = ntmem_host::watchdog::take_pending() {
        ntmem_host::escape(e)
    }
}

/// The routine a `kernel` closure belongs to, from its type's name
/// (`ntmem_wdk::ke::KeInitializeSpinLock::{{closure}}` → `KeInitializeSpinLock`).
fn routine_name<F>(_: &F) -> &'static str {
    let mut name = std::any::type_name::<F>();
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    name.rsplit("::").next().unwrap_or(name)
}

/// A panic payload's message (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

thread_local! {
    /// Whether panics on this thread are caught by the fence (and reported there).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// While alive, the process's panic hook stays silent on this thread: the fence
/// reports the panic, and the default hook's printing on a small kernel stack could
/// overflow it (a false 0x7F after the real failure).
struct QuietPanics(bool);

impl QuietPanics {
    fn new() -> QuietPanics {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
        QuietPanics(QUIET.with(|q| q.replace(true)))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(self.0));
    }
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

/// `len` bytes of system memory at `p` checked mapped (both ends), else the stop a
/// touch of them gives (as `ntmem_kernel::trap::wild_touch` decides).
pub(crate) fn checked(cpu: &Cpu<'_>, p: *mut c_void, len: u64) -> Result<*mut u8, BugCheck> {
    let m = cpu.machine();
    let va = va_of(cpu, p);
    let mapped = |v: Va| m.space().layout().is_system(v) && m.space().walk(m.phys(), v).phys.is_some();
    if p.is_null() || !mapped(va) || !mapped(Va::new(va.get().saturating_add(len - 1))) {
        return Err(ntmem_kernel::trap::wild_touch(cpu, va, true));
    }
    Ok(p.cast())
}

/// The pointer-sized word at `p` that an interlocked routine works on (a push lock,
/// a run-down reference): checked mapped as [`checked`] does, and 8-byte aligned —
/// else the general-protection fault of the interlocked instruction
/// ([`ntmem_kernel::trap::misaligned_interlocked`]).
pub(crate) fn interlocked_word<'a>(cpu: &Cpu<'_>, p: *mut c_void) -> Result<&'a AtomicU64, BugCheck> {
    let host = checked(cpu, p, 8)?;
    if !host.cast::<u64>().is_aligned() {
        return Err(ntmem_kernel::trap::misaligned_interlocked(cpu));
    }
    // SAFETY: mapped and aligned (checked above): the caller's word, which lives as
    // long as the routine that was passed it runs.
    Ok(unsafe { AtomicU64::from_ptr(host.cast()) })
}

/// As [`checked`], with every page of the range checked mapped, not only its ends:
/// the stop is the one a touch of the first unmapped page gives, as a routine that
/// walks the range from its start meets it. For the routines that copy a driver's
/// range to the host before working on it.
pub(crate) fn checked_all(cpu: &Cpu<'_>, p: *mut c_void, len: u64) -> Result<*mut u8, BugCheck> {
    let at = checked(cpu, p, len)?;
    let m = cpu.machine();
    let start = va_of(cpu, p).get();
    let end = start.saturating_add(len - 1);
    let mut page = (start & !0xFFF).saturating_add(0x1000);
    while page < end {
        let va = Va::new(page);
        if m.space().walk(m.phys(), va).phys.is_none() {
            return Err(ntmem_kernel::trap::wild_touch(cpu, va, true));
        }
        page = page.saturating_add(0x1000);
    }
    Ok(at)
}

/// How many bytes from `p`, at most `len`, lie in mapped system pages without a
/// gap: how far a routine that stores from `p` onwards gets before it faults.
pub(crate) fn mapped_prefix(cpu: &Cpu<'_>, p: *mut c_void, len: u64) -> u64 {
    let m = cpu.machine();
    let start = va_of(cpu, p);
    if p.is_null() || !m.space().layout().is_system(start) {
        return 0;
    }
    let mut page = start.get() & !0xFFF;
    let end = start.get().saturating_add(len);
    while page < end && m.space().walk(m.phys(), Va::new(page)).phys.is_some() {
        page = page.saturating_add(0x1000);
    }
    page.max(start.get()).min(end) - start.get()
}
