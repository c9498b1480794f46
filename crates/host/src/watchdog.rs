//! A watchdog over code that may never return: a periodic POSIX timer that interrupts
//! the watched thread, asks a [`Watch`] whether time is up, and if so leaves the code
//! through the innermost guarded call's escape hatch ([`crate::guard`]).
//!
//! [`Watchdog::start`] arms a `CLOCK_MONOTONIC` timer whose signal ([`signal()`](signal)) goes to
//! the calling thread only (`SIGEV_THREAD_ID`). Each thread keeps one disarmed timer for
//! its next watchdog (created on first use, deleted when the thread ends), so a watched
//! call costs two `timer_settime`s, not a `timer_create` and a `timer_delete` too (a
//! third of an IOCTL round trip's host time, `cargo bench -p ntmem-wdk --bench
//! irp_stack`). A tick queued just before a disarm may still arrive; the next watch
//! only looks at its own clock then. On every tick the handler asks the
//! thread's current [`Watch`] with the interrupted instruction's address; an answer of
//! `Some(escape)` abandons the innermost guarded call with that payload.
//!
//! **When an escape may be taken.** An escape skips frames without running their
//! destructors (the escape contract of [`crate::guard`]). A tick may land anywhere, so the
//! watched code says where skipping is sound: [`exposed`] marks code that owns nothing
//! (driver code), [`shielded`] marks code that may (the kernel routines a driver calls,
//! the host allocator, a lock held); the [`Watch`] may instead know code that owns
//! nothing by its address ([`Watch::may_escape`]: a driver's image), which also holds
//! when an exception left the marks stale. A tick whose escape falls in shielded code only
//! records it: [`pending`] lets a loop in shielded code that waits for something
//! (a spin lock) give up, and the shielded code takes it with [`take_pending`] once it
//! owns nothing again. Code outside both runs as shielded.
//!
//! Rules: the handler is async-signal-safe (thread-local `Cell`s, atomics, no
//! allocation, no lock); the fault handler blocks [`signal()`](signal) while it runs, so a tick
//! never escapes from inside a page-in. One watchdog per thread at a time; starting a
//! second one while the first runs replaces it until the second is dropped.

use crate::error::HostError;
use crate::guard::{self, Escape};
use crate::sys::os_error;
use std::cell::Cell;
use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// Decides, on each tick, whether the watched code has run too long. Runs in signal
/// context on the watched thread: async-signal-safe, no allocation, no lock.
pub trait Watch: Send + Sync {
    /// `ip` is the interrupted instruction's address (0 if unknown). `Some(escape)`
    /// abandons the innermost guarded call with that payload.
    fn on_tick(&self, ip: usize) -> Option<Escape>;

    /// Whether an escape may skip the code at `ip` now; `exposed` says whether the
    /// running code is marked [`exposed`]. A watch that knows where the watched code
    /// lives (a driver's image) may answer by address instead: code elsewhere (a
    /// library the driver called, which may hold its locks) then waits.
    fn may_escape(&self, _ip: usize, exposed: bool) -> bool {
        exposed
    }

    /// The watched thread was [`parked`] for `for_how_long` and runs again: time it
    /// spent asleep is not time the watched code ran.
    fn resumed(&self, _for_how_long: Duration) {}
}

/// The real-time signal ticks arrive as (`SIGRTMIN + 5`: clear of glibc's reserved
/// signals and of those most libraries pick first).
pub fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

thread_local! {
    /// The watch of this thread's running watchdog. Const-initialized, no destructor:
    /// a plain TLS load in the handler.
    static WATCH: Cell<Option<*const dyn Watch>> = const { Cell::new(None) };
    /// Whether the code running now owns nothing, so an escape may skip it.
    static EXPOSED: Cell<bool> = const { Cell::new(false) };
    /// An escape a tick decided on while the code was shielded.
    static PENDING: Cell<Option<Escape>> = const { Cell::new(None) };
    /// Whether the thread is asleep in [`parked`]: ticks are ignored.
    static PARKED: Cell<bool> = const { Cell::new(false) };
    /// This thread's disarmed timer, ready for its next watchdog (not touched by the
    /// handler).
    static SPARE: SpareTimer = const { SpareTimer(Cell::new(None)) };
}

/// A thread's disarmed timer, deleted with the thread.
struct SpareTimer(Cell<Option<libc::timer_t>>);

impl Drop for SpareTimer {
    fn drop(&mut self) {
        if let Some(timer) = self.0.take() {
            // SAFETY: the timer is this thread's, disarmed, and deleted once.
            unsafe { libc::timer_delete(timer) };
        }
    }
}

/// A timer whose signal goes to the calling thread: its spare one, or a new one.
fn thread_timer() -> Result<libc::timer_t, HostError> {
    if let Some(timer) = SPARE.with(|s| s.0.take()) {
        return Ok(timer);
    }
    // SAFETY: all-zero is a valid sigevent; the fields Linux reads are set below.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = signal();
    // SAFETY: gettid has no preconditions.
    event.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: valid pointers to a filled sigevent and an out-parameter.
    if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) } != 0 {
        return Err(os_error("timer_create"));
    }
    Ok(timer)
}

/// Disarms `timer` and keeps it as the thread's spare (deletes it if there is one).
fn retire(timer: libc::timer_t) {
    let stop = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: 0, tv_nsec: 0 },
    };
    // SAFETY: the timer is this thread's; a zero value disarms it.
    let disarmed = unsafe { libc::timer_settime(timer, 0, &stop, std::ptr::null_mut()) } == 0;
    let keep = |spare: &SpareTimer| {
        let empty = spare.0.get().is_none();
        if empty {
            spare.0.set(Some(timer));
        }
        empty
    };
    // While the thread ends its thread-locals may be gone: then the timer goes too.
    let kept = disarmed && SPARE.try_with(keep).unwrap_or(false);
    if !kept {
        // SAFETY: the timer is ours and not kept anywhere: deleted once.
        unsafe { libc::timer_delete(timer) };
    }
}

/// A running watchdog on the calling thread; stops (and forgets any pending escape)
/// when dropped.
pub struct Watchdog {
    timer: libc::timer_t,
    previous: Option<*const dyn Watch>,
    watch: Arc<dyn Watch>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("timer", &self.timer).finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Starts ticking the calling thread every `period` (at least 1 ms), asking `watch`.
    ///
    /// # Errors
    /// `timer_create` or `timer_settime` failed.
    pub fn start(period: Duration, watch: Arc<dyn Watch>) -> Result<Watchdog, HostError> {
        install_handler();
        let timer = thread_timer()?;
        let period = period.max(Duration::from_millis(1));
        let spec = libc::timespec { tv_sec: period.as_secs() as libc::time_t, tv_nsec: period.subsec_nanos().into() };
        let value = libc::itimerspec { it_interval: spec, it_value: spec };
        let previous = WATCH.with(|w| w.replace(Some(Arc::as_ptr(&watch))));
        PENDING.with(|p| p.set(None));
        let dog = Watchdog { timer, previous, watch };
        // SAFETY: `timer` was just created; `value` is a valid itimerspec.
        if unsafe { libc::timer_settime(timer, 0, &value, std::ptr::null_mut()) } != 0 {
            return Err(os_error("timer_settime"));
        }
        Ok(dog)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        retire(self.timer);
        compiler_fence(Ordering::SeqCst);
        WATCH.with(|w| w.set(self.previous));
        EXPOSED.with(|e| e.set(false));
        PENDING.with(|p| p.set(None));
        let _ = &self.watch;
    }
}

/// Runs `f`, code that owns nothing (driver code): a tick's escape is taken at once.
pub fn exposed<R>(f: impl FnOnce() -> R) -> R {
    with_exposure(true, f)
}

/// Runs `f`, code that may own something: a tick's escape waits for [`take_pending`].
pub fn shielded<R>(f: impl FnOnce() -> R) -> R {
    with_exposure(false, f)
}

fn with_exposure<R>(exposed: bool, f: impl FnOnce() -> R) -> R {
    let before = EXPOSED.with(|e| e.replace(exposed));
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    EXPOSED.with(|e| e.set(before));
    r
}

/// Runs `f`, in which the thread sleeps until another thread wakes it (a simulated
/// thread waiting for its turn to run): ticks are ignored meanwhile, and the watch is
/// told afterwards how long the thread slept ([`Watch::resumed`]), so a thread that
/// waits while others run is not taken for code that runs too long. `f` must not
/// run watched code.
pub fn parked<R>(f: impl FnOnce() -> R) -> R {
    let before = PARKED.with(|p| p.replace(true));
    compiler_fence(Ordering::SeqCst);
    let start = std::time::Instant::now();
    let r = f();
    let slept = start.elapsed();
    compiler_fence(Ordering::SeqCst);
    PARKED.with(|p| p.set(before));
    if !before {
        if let Some(watch) = WATCH.with(Cell::get) {
            // SAFETY: the pointer is the `Arc` of this thread's running watchdog, which
            // clears it before the `Arc` is dropped, on this thread (not while we run).
            unsafe { (*watch).resumed(slept) };
        }
    }
    r
}

/// Whether a tick decided to escape while the code was shielded (for loops that wait).
pub fn pending() -> bool {
    compiler_fence(Ordering::SeqCst);
    PENDING.with(|p| p.get().is_some())
}

/// The escape a tick decided on while the code was shielded, if any; forgets it.
pub fn take_pending() -> Option<Escape> {
    compiler_fence(Ordering::SeqCst);
    PENDING.with(|p| p.take())
}

static INSTALL: Once = Once::new();

/// Installs the tick handler, once per process.
fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: all-zero is a valid sigaction; the handler has the SA_SIGINFO
        // signature and is async-signal-safe.
        let rc = unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_tick as extern "C" fn(_, _, _) as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            libc::sigaction(signal(), &new, std::ptr::null_mut())
        };
        assert_eq!(rc, 0, "ntmem: cannot install the watchdog handler");
    });
}

extern "C" fn on_tick(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(watch) = WATCH.with(Cell::get) else { return };
    if PARKED.with(Cell::get) || !guard::in_guarded_call() {
        return;
    }
    let ip = crate::fault::interrupted_ip(ctx);
    // SAFETY: the pointer is the `Arc` of this thread's running watchdog, which clears
    // it before the `Arc` is dropped (on this thread, so not while we run).
    let watch = unsafe { &*watch };
    // An escape decided while the code was shielded is taken by the first tick that
    // finds the code exposed again (if the shielded code did not take it itself).
    let escape = match PENDING.with(Cell::get) {
        Some(escape) => escape,
        None => match watch.on_tick(ip) {
            Some(escape) => escape,
            None => return,
        },
    };
    if watch.may_escape(ip, EXPOSED.with(Cell::get)) {
        PENDING.with(|p| p.set(None));
        EXPOSED.with(|e| e.set(false));
        guard::escape_from_signal(escape);
    }
    PENDING.with(|p| p.set(Some(escape)));
}

#[cfg(test)]
mod tests;
