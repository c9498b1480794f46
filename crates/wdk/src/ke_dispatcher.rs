//! Dispatcher objects, timers and DPCs at the C boundary, on one processor and
//! simulated time (learn.microsoft.com "KeInitializeEvent", "KeSetEvent",
//! "KeWaitForSingleObject", "KeInitializeSemaphore", "KeReleaseSemaphore",
//! "KeSetTimerEx", "KeCancelTimer", "KeInitializeDpc", "KeInsertQueueDpc",
//! "KeDelayExecutionThread", "DISPATCHER_HEADER", "KTIMER", "KDPC").
//!
//! The objects are the driver's, in the x64 layouts: a `DISPATCHER_HEADER` (0x18
//! bytes: `Type` 0x00, `Size` 0x02 in LONGs, `SignalState` 0x04, `WaitListHead`
//! 0x08) begins `KEVENT` (0x18), `KSEMAPHORE` (0x20, `Limit` 0x18) and `KTIMER` (0x40:
//! `DueTime` 0x18, `Dpc` 0x30, `Period` 0x3C); `KDPC` (0x40) holds `Type` 0x00 (19),
//! `DeferredRoutine` 0x18, `DeferredContext` 0x20 and the system arguments 0x28/0x30.
//!
//! **What ntmem models, and how it differs.** There is one thread of driver code at a
//! time, on one processor, scheduled cooperatively ([`crate::ps`] has the thread
//! model, [`crate::sched`] the switches). Waits are [`crate::ke_wait`]'s: satisfied at
//! once when the objects are signalled, otherwise the thread blocks until they are,
//! or the timeout passes. Timers fire only when simulated time moves (a scenario's
//! `advance_ms`, or every thread waiting); a queued DPC runs at DISPATCH_LEVEL when
//! the driver routine that queued it has returned, when a thread blocks, or at
//! `KeFlushQueuedDpcs`. [`settle`] is what the machine owes a driver between scenario
//! steps: due timers and queued DPCs, then every thread that can run (new threads and
//! work items, threads whose waits were satisfied) runs until it blocks or ends.

use std::ffi::c_void;

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::ke::timers::{DpcPlace, QueuedDpc, SetTimer};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql, Machine};

use crate::context::{self, checked, kernel};
use crate::seh::ThreadKind;
use crate::types::NtStatus;

/// `STATUS_TIMEOUT`.
pub(crate) const STATUS_TIMEOUT: NtStatus = 0x102;
/// `STATUS_SEMAPHORE_LIMIT_EXCEEDED`.
const STATUS_SEMAPHORE_LIMIT_EXCEEDED: i32 = 0xC000_0047_u32 as i32;

pub(crate) const NOTIFICATION_EVENT: u8 = 0;
pub(crate) const SYNCHRONIZATION_EVENT: u8 = 1;
pub(crate) const SEMAPHORE_OBJECT: u8 = 5;
const TIMER_NOTIFICATION_OBJECT: u8 = 8;
pub(crate) const TIMER_SYNCHRONIZATION_OBJECT: u8 = 9;
/// `KDPC.Type`: DpcObject.
const DPC_OBJECT: u8 = 19;

pub(crate) const HEADER_SIZE: u64 = 0x18;
const KTIMER_SIZE: u64 = 0x40;
const KDPC_SIZE: u64 = 0x40;
/// `KDPC.Importance`, and MediumImportance, what `KeInitializeDpc` writes there.
const KDPC_IMPORTANCE: usize = 1;
const MEDIUM_IMPORTANCE: u8 = 1;

/// 100-ns units per millisecond.
pub(crate) const UNITS_PER_MS: u64 = 10_000;

/// A dispatcher object the driver passed, checked mapped for `len` bytes. Its fields
/// are read and written unaligned: a driver's misaligned object works as it does on
/// x64, never trips Rust's alignment checks.
pub(crate) struct Object(pub(crate) *mut u8);

impl Object {
    pub(crate) fn of(cpu: &Cpu<'_>, p: *mut c_void, len: u64) -> Result<Object, BugCheck> {
        checked(cpu, p, len).map(Object)
    }

    pub(crate) fn kind(&self) -> u8 {
        // SAFETY: a mapped object of at least a header (checked in `of`).
        unsafe { self.0.read_unaligned() }
    }

    pub(crate) fn signal_state(&self) -> i32 {
        // SAFETY: as `kind`.
        unsafe { self.0.add(4).cast::<i32>().read_unaligned() }
    }

    pub(crate) fn set_signal_state(&self, v: i32) {
        // SAFETY: as `kind`.
        unsafe { self.0.add(4).cast::<i32>().write_unaligned(v) }
    }

    /// Writes a header: type, size in LONGs, signal state, an empty wait list.
    pub(crate) fn initialize(&self, kind: u8, size: u64, state: i32) {
        // SAFETY: as `kind`; the wait list head points at itself (empty).
        unsafe {
            self.0.write_unaligned(kind);
            self.0.add(1).write_unaligned(0);
            self.0.add(2).write_unaligned((size / 4) as u8);
            self.0.add(3).write_unaligned(0);
            self.set_signal_state(state);
            let head = self.0.add(8).cast::<*mut u8>();
            head.write_unaligned(self.0.add(8));
            head.add(1).write_unaligned(self.0.add(8));
        }
    }

    pub(crate) fn u64_at(&self, offset: usize) -> u64 {
        // SAFETY: inside the object (callers pass offsets of its fields).
        unsafe { self.0.add(offset).cast::<u64>().read_unaligned() }
    }

    pub(crate) fn set_u64(&self, offset: usize, v: u64) {
        // SAFETY: as `u64_at`.
        unsafe { self.0.add(offset).cast::<u64>().write_unaligned(v) }
    }

    pub(crate) fn i32_at(&self, offset: usize) -> i32 {
        // SAFETY: as `u64_at`.
        unsafe { self.0.add(offset).cast::<i32>().read_unaligned() }
    }

    pub(crate) fn set_i32(&self, offset: usize, v: i32) {
        // SAFETY: as `u64_at`.
        unsafe { self.0.add(offset).cast::<i32>().write_unaligned(v) }
    }

    pub(crate) fn u8_at(&self, offset: usize) -> u8 {
        // SAFETY: as `u64_at`.
        unsafe { self.0.add(offset).read_unaligned() }
    }

    pub(crate) fn set_u8(&self, offset: usize, v: u8) {
        // SAFETY: as `u64_at`.
        unsafe { self.0.add(offset).write_unaligned(v) }
    }
}

/// `KeInitializeEvent(Event, Type, State)`.
///
/// # Safety
/// `event` is the driver's `KEVENT` (a bad pointer stops as a touch of it would).
pub unsafe extern "win64" fn KeInitializeEvent(event: *mut c_void, kind: u32, state: u8) {
    kernel(|cpu| {
        let kind = if kind == 1 { SYNCHRONIZATION_EVENT } else { NOTIFICATION_EVENT };
        Object::of(cpu, event, HEADER_SIZE)?.initialize(kind, HEADER_SIZE, i32::from(state != 0));
        crate::vf::check_sync_object(cpu, event)?;
        Ok(())
    });
}

/// `KeSetEvent`: signals the event; the previous state.
///
/// # Safety
/// As `KeInitializeEvent`.
pub unsafe extern "win64" fn KeSetEvent(event: *mut c_void, _increment: i32, _wait: u8) -> i32 {
    kernel(|cpu| {
        let e = Object::of(cpu, event, HEADER_SIZE)?;
        let previous = e.signal_state();
        e.set_signal_state(1);
        Ok(previous)
    })
}

/// `KeResetEvent`: clears it; the previous state.
///
/// # Safety
/// As `KeInitializeEvent`.
pub unsafe extern "win64" fn KeResetEvent(event: *mut c_void) -> i32 {
    kernel(|cpu| {
        let e = Object::of(cpu, event, HEADER_SIZE)?;
        let previous = e.signal_state();
        e.set_signal_state(0);
        Ok(previous)
    })
}

/// `KeClearEvent`.
///
/// # Safety
/// As `KeInitializeEvent`.
pub unsafe extern "win64" fn KeClearEvent(event: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { KeResetEvent(event) };
}

/// `KeReadStateEvent`: the signal state.
///
/// # Safety
/// As `KeInitializeEvent`.
pub unsafe extern "win64" fn KeReadStateEvent(event: *mut c_void) -> i32 {
    kernel(|cpu| Ok(Object::of(cpu, event, HEADER_SIZE)?.signal_state()))
}

/// `KeInitializeSemaphore(Semaphore, Count, Limit)`.
///
/// # Safety
/// `semaphore` is the driver's `KSEMAPHORE`.
pub unsafe extern "win64" fn KeInitializeSemaphore(semaphore: *mut c_void, count: i32, limit: i32) {
    kernel(|cpu| {
        let s = Object::of(cpu, semaphore, 0x20)?;
        s.initialize(SEMAPHORE_OBJECT, 0x20, count);
        crate::vf::check_sync_object(cpu, semaphore)?;
        // SAFETY: `Limit` lies inside the checked 0x20 bytes.
        unsafe { s.0.add(0x18).cast::<i32>().write_unaligned(limit) };
        Ok(())
    });
}

/// `KeReleaseSemaphore`: adds `adjustment` to the count; the previous count. Past the
/// limit (or an overflow) it raises STATUS_SEMAPHORE_LIMIT_EXCEEDED, as Windows does.
///
/// # Safety
/// As `KeInitializeSemaphore`.
pub unsafe extern "win64" fn KeReleaseSemaphore(
    semaphore: *mut c_void,
    _increment: i32,
    adjustment: i32,
    _wait: u8,
) -> i32 {
    let released = kernel(|cpu| {
        let s = Object::of(cpu, semaphore, 0x20)?;
        let previous = s.signal_state();
        // SAFETY: as in KeInitializeSemaphore.
        let limit = unsafe { s.0.add(0x18).cast::<i32>().read_unaligned() };
        let next = previous.checked_add(adjustment).filter(|&n| n <= limit && adjustment >= 0);
        Ok(next.map(|n| {
            s.set_signal_state(n);
            previous
        }))
    });
    released.unwrap_or_else(|| crate::seh::raise_status(STATUS_SEMAPHORE_LIMIT_EXCEEDED))
}

/// `KeReadStateSemaphore`: the count.
///
/// # Safety
/// As `KeInitializeSemaphore`.
pub unsafe extern "win64" fn KeReadStateSemaphore(semaphore: *mut c_void) -> i32 {
    kernel(|cpu| Ok(Object::of(cpu, semaphore, 0x20)?.signal_state()))
}

/// `KeInitializeTimer`: a notification timer.
///
/// # Safety
/// `timer` is the driver's `KTIMER`.
pub unsafe extern "win64" fn KeInitializeTimer(timer: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { KeInitializeTimerEx(timer, 0) }
}

/// `KeInitializeTimerEx(Timer, Type)`: NotificationTimer (0) or SynchronizationTimer (1).
///
/// # Safety
/// As `KeInitializeTimer`.
pub unsafe extern "win64" fn KeInitializeTimerEx(timer: *mut c_void, kind: u32) {
    kernel(|cpu| {
        let t = Object::of(cpu, timer, KTIMER_SIZE)?;
        crate::vf::check_sync_object(cpu, timer)?;
        let kind = if kind == 1 { TIMER_SYNCHRONIZATION_OBJECT } else { TIMER_NOTIFICATION_OBJECT };
        t.initialize(kind, KTIMER_SIZE, 0);
        t.set_u64(0x18, 0);
        t.set_u64(0x30, 0);
        t.set_u64(0x38, 0);
        let key = t.0 as u64;
        cpu.machine().timers().cancel(key);
        Ok(())
    });
}

/// Interrupt time now, 100-ns units.
pub(crate) fn now(cpu: &Cpu<'_>) -> u64 {
    cpu.machine().now_ms().saturating_mul(UNITS_PER_MS)
}

/// The interrupt time a `LARGE_INTEGER` due time names: negative relative to now,
/// positive an absolute system time.
pub(crate) fn due_time(cpu: &Cpu<'_>, due: i64) -> u64 {
    if due < 0 {
        now(cpu).saturating_add(due.unsigned_abs())
    } else {
        (due.saturating_sub(crate::ke::BOOT_SYSTEM_TIME)).max(0) as u64
    }
}

/// `KeSetTimer`: as `KeSetTimerEx` with no period.
///
/// # Safety
/// As `KeSetTimerEx`.
pub unsafe extern "win64" fn KeSetTimer(timer: *mut c_void, due: i64, dpc: *mut c_void) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { KeSetTimerEx(timer, due, 0, dpc) }
}

/// `KeSetTimerEx(Timer, DueTime, Period, Dpc)`: sets the timer (non-signalled until it
/// expires) and returns whether it was set already.
///
/// # Safety
/// `timer` is an initialized `KTIMER`; `dpc` is NULL or an initialized `KDPC`.
pub unsafe extern "win64" fn KeSetTimerEx(timer: *mut c_void, due: i64, period_ms: i32, dpc: *mut c_void) -> u8 {
    kernel(|cpu| {
        let t = Object::of(cpu, timer, KTIMER_SIZE)?;
        if !dpc.is_null() {
            Object::of(cpu, dpc, KDPC_SIZE)?;
        }
        let due = due_time(cpu, due);
        t.set_signal_state(0);
        t.set_u64(0x18, due);
        t.set_u64(0x30, dpc as u64);
        // SAFETY: `Period` lies inside the checked KTIMER.
        unsafe { t.0.add(0x3C).cast::<i32>().write_unaligned(period_ms) };
        let set = SetTimer { due, period_ms: period_ms.max(0) as u32, dpc: dpc as u64 };
        Ok(u8::from(cpu.machine().timers().set(t.0 as u64, set)))
    })
}

/// `KeCancelTimer`: whether the timer was set.
///
/// # Safety
/// As `KeSetTimerEx`.
pub unsafe extern "win64" fn KeCancelTimer(timer: *mut c_void) -> u8 {
    kernel(|cpu| {
        let t = Object::of(cpu, timer, KTIMER_SIZE)?;
        Ok(u8::from(cpu.machine().timers().cancel(t.0 as u64)))
    })
}

/// `KeReadStateTimer`: whether it has expired (is signalled).
///
/// # Safety
/// As `KeSetTimerEx`.
pub unsafe extern "win64" fn KeReadStateTimer(timer: *mut c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(Object::of(cpu, timer, KTIMER_SIZE)?.signal_state() != 0)))
}

/// `KeInitializeDpc(Dpc, DeferredRoutine, DeferredContext)`.
///
/// # Safety
/// `dpc` is the driver's `KDPC`.
pub unsafe extern "win64" fn KeInitializeDpc(dpc: *mut c_void, routine: *mut c_void, deferred_context: *mut c_void) {
    kernel(|cpu| {
        let d = Object::of(cpu, dpc, KDPC_SIZE)?;
        // SAFETY: inside the checked KDPC.
        unsafe { std::ptr::write_bytes(d.0, 0, KDPC_SIZE as usize) };
        // SAFETY: as above.
        unsafe { d.0.write_unaligned(DPC_OBJECT) };
        d.set_u8(KDPC_IMPORTANCE, MEDIUM_IMPORTANCE);
        d.set_u64(0x18, routine as u64);
        d.set_u64(0x20, deferred_context as u64);
        cpu.machine().timers().dequeue(d.0 as u64);
        Ok(())
    });
}

/// `KeSetImportanceDpc(Dpc, Importance)`: records the `KDPC_IMPORTANCE` in the KDPC's
/// `Importance` byte; a HighImportance DPC is queued at the head of the queue, the
/// others at its tail ([`DpcPlace`]).
///
/// # Safety
/// `dpc` is an initialized `KDPC`.
pub unsafe extern "win64" fn KeSetImportanceDpc(dpc: *mut c_void, importance: u32) {
    kernel(|cpu| {
        Object::of(cpu, dpc, KDPC_SIZE)?.set_u8(KDPC_IMPORTANCE, importance as u8);
        Ok(())
    });
}

/// Queues the KDPC `d` with its system arguments where its importance says; false
/// when it is queued already.
fn queue_dpc(cpu: &Cpu<'_>, d: &Object, argument1: u64, argument2: u64) -> bool {
    let place = DpcPlace::of_importance(d.u8_at(KDPC_IMPORTANCE));
    cpu.machine().timers().queue(QueuedDpc { dpc: d.0 as u64, argument1, argument2 }, place)
}

/// `KeInsertQueueDpc`: queues the DPC with its system arguments; FALSE when it is
/// queued already.
///
/// # Safety
/// `dpc` is an initialized `KDPC`.
pub unsafe extern "win64" fn KeInsertQueueDpc(dpc: *mut c_void, argument1: *mut c_void, argument2: *mut c_void) -> u8 {
    kernel(|cpu| {
        let d = Object::of(cpu, dpc, KDPC_SIZE)?;
        Ok(u8::from(queue_dpc(cpu, &d, argument1 as u64, argument2 as u64)))
    })
}

/// `KeRemoveQueueDpc`: whether it was queued.
///
/// # Safety
/// As `KeInsertQueueDpc`.
pub unsafe extern "win64" fn KeRemoveQueueDpc(dpc: *mut c_void) -> u8 {
    kernel(|cpu| Ok(u8::from(cpu.machine().timers().dequeue(Object::of(cpu, dpc, KDPC_SIZE)?.0 as u64))))
}

/// `KeFlushQueuedDpcs`: runs the queued DPCs now (PASSIVE_LEVEL).
pub extern "win64" fn KeFlushQueuedDpcs() {
    run_queued_dpcs();
}

thread_local! {
    /// How many DPC routines this host thread is inside (a DPC runs on whichever
    /// thread chose the next one, in that thread's context).
    static IN_DPC: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether the code running now is a DPC routine's (or a routine it called): pool
/// tracking tells a DPC from the thread it interrupted ([`crate::vf`]'s check of
/// allocations during an unload).
pub(crate) fn in_dpc() -> bool {
    IN_DPC.with(|d| d.get() > 0)
}

/// Forgets DPCs this host thread was inside when a stop left them through the escape
/// hatch (their count never came down): for a routine called at the top of the
/// requesting thread, which no DPC can be running under.
pub(crate) fn outside_dpcs() {
    IN_DPC.with(|d| d.set(0));
}

/// Runs queued DPCs, oldest first, each at DISPATCH_LEVEL, until none is queued.
pub(crate) fn run_queued_dpcs() {
    while let Some(q) = kernel(|cpu| Ok(cpu.machine().timers().next_dpc())) {
        let (routine, context_arg, old) = kernel(|cpu| {
            let d = Object::of(cpu, q.dpc as *mut c_void, KDPC_SIZE)?;
            let old = cpu.raise_irql(Irql::DISPATCH)?;
            Ok((d.u64_at(0x18), d.u64_at(0x20), old))
        });
        if routine != 0 && !ntmem_host::exception::is_image_code(routine as usize) {
            // A DPC whose routine is no loaded image's code (freed or overwritten):
            // TIMER_OR_DPC_INVALID (0xC7: 2 the DPC routine, its address, 0, 0) rather
            // than a jump to wherever it points.
            kernel(|cpu| -> Result<(), BugCheck> {
                Err(cpu.machine().bugcheck(BugCheckCode(0xC7), [2, routine, q.dpc, 0]))
            });
        }
        if routine != 0 {
            type Deferred = unsafe extern "win64" fn(*mut c_void, *mut c_void, *mut c_void, *mut c_void);
            // SAFETY: the driver's PKDEFERRED_ROUTINE, as KeInitializeDpc recorded it,
            // called as Windows calls it: (Dpc, DeferredContext, SystemArgument1, 2).
            let f: Deferred = unsafe { std::mem::transmute::<usize, Deferred>(routine as usize) };
            let args = (
                q.dpc as *mut c_void,
                context_arg as *mut c_void,
                q.argument1 as *mut c_void,
                q.argument2 as *mut c_void,
            );
            IN_DPC.with(|d| d.set(d.get() + 1));
            // SAFETY: as above.
            preserving_capture(|| unsafe { f(args.0, args.1, args.2, args.3) });
            IN_DPC.with(|d| d.set(d.get().saturating_sub(1)));
        }
        kernel(|cpu| {
            if cpu.irql() != Irql::DISPATCH {
                // A DPC routine must return at DISPATCH_LEVEL (IRQL_UNEXPECTED_VALUE, 0xC8).
                let p = [u64::from(cpu.irql().0) << 16 | u64::from(Irql::DISPATCH.0) << 8, routine, q.dpc, 0];
                return Err(cpu.machine().bugcheck(BugCheckCode(0xC8), p));
            }
            cpu.lower_irql(old)
        });
    }
}

/// Moves simulated time to `until` (interrupt time), firing each timer as it comes
/// due (signalling it and queueing its DPC) and running the DPCs.
pub(crate) fn advance_to(until: u64) {
    loop {
        let next = kernel(|cpu| Ok(cpu.machine().timers().next_due().filter(|&d| d <= until)));
        let step_to = next.unwrap_or(until);
        kernel(|cpu| {
            let target_ms = step_to.div_ceil(UNITS_PER_MS);
            let now_ms = cpu.machine().now_ms();
            if target_ms > now_ms {
                cpu.advance_time(target_ms - now_ms);
            }
            let now = now(cpu);
            for (address, t) in cpu.machine().timers().expire(now) {
                Object::of(cpu, address as *mut c_void, KTIMER_SIZE)?.set_signal_state(1);
                if t.dpc != 0 {
                    // As Windows: SystemArgument1 and 2 are the expiry's interrupt time, low
                    // and high 32 bits.
                    let d = Object::of(cpu, t.dpc as *mut c_void, KDPC_SIZE)?;
                    queue_dpc(cpu, &d, now & 0xFFFF_FFFF, now >> 32);
                }
            }
            Ok(())
        });
        run_queued_dpcs();
        if next.is_none() {
            return;
        }
    }
}

/// After a driver routine returned, or a scenario moved time: what time, the DPC queue
/// and the other threads owe it — timers due by now fire, queued DPCs run, ready
/// threads run until they block or end; `advance_ms` moves time on, stopping at each
/// timer and wait timeout on the way ([`crate::sched::run_until_idle`]).
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn settle(machine: &Machine, cpu: u32, advance_ms: u64) -> Result<(), BugCheck> {
    context::call_driver(machine, cpu, ThreadKind::Arbitrary, |c| {
        let until = now(c).saturating_add(advance_ms.saturating_mul(UNITS_PER_MS));
        context::enter(c, "DPC", || crate::sched::run_until_idle(until));
        Ok(())
    })
}
