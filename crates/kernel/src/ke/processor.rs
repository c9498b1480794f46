//! Simulated processors: per-processor IRQL, spin locks, kernel stacks
//! (seed 000 §5.1, §6; DESIGN.md "Concurrency and time").
//!
//! A processor is a host thread while it runs driver code: [`crate::Machine::run`]
//! binds the calling thread to a processor and switches to that processor's kernel
//! stack. [`Cpu`] is the handle code running there gets: it answers
//! `KeGetCurrentIrql`, raises and lowers the IRQL and takes spin locks, checking
//! the rules Windows checks.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use ntmem_machine::Va;

use super::irql::Irql;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::vf::{Event, VerifierFlags, Violation};
use crate::Machine;

/// A kernel stack: `size` bytes from `base` (lowest usable byte), with an unmapped
/// guard page just below `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelStack {
    /// Lowest usable address.
    pub base: Va,
    /// Usable bytes.
    pub size: u64,
}

impl KernelStack {
    /// Whether `va` is in the guard page below the stack.
    pub fn guard_contains(&self, va: Va, page: u64) -> bool {
        va.get() < self.base.get() && va.get() >= self.base.get() - page
    }
}

/// One simulated processor.
#[derive(Debug)]
pub struct Processor {
    irql: AtomicU8,
    busy: AtomicBool,
    stack: KernelStack,
}

impl Processor {
    /// A processor at PASSIVE_LEVEL with its kernel stack.
    pub fn new(stack: KernelStack) -> Processor {
        Processor { irql: AtomicU8::new(Irql::PASSIVE.0), busy: AtomicBool::new(false), stack }
    }

    /// The current IRQL.
    #[inline(always)]
    pub fn irql(&self) -> Irql {
        Irql(self.irql.load(Ordering::Acquire))
    }

    fn set_irql(&self, irql: Irql) {
        self.irql.store(irql.0, Ordering::Release);
    }

    /// The kernel stack.
    pub fn stack(&self) -> KernelStack {
        self.stack
    }

    /// Claims the processor for the calling thread; false if another thread runs on it.
    pub(crate) fn claim(&self) -> bool {
        self.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(crate) fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

thread_local! {
    /// The machine, processor and kernel stack this thread is running on:
    /// `(machine id, processor, stack)`.
    static CURRENT: Cell<Option<(u64, u32, KernelStack)>> = const { Cell::new(None) };
}

/// The processor the calling thread is bound to on machine `id`, if any.
/// Async-signal-safe (a const thread-local `Cell`).
pub(crate) fn current_on(id: u64) -> Option<u32> {
    CURRENT.with(|c| c.get()).filter(|&(m, ..)| m == id).map(|(_, p, _)| p)
}

/// The kernel stack the calling thread runs on for machine `id` (a processor's, or a
/// simulated thread's own), if it is bound to one. Async-signal-safe.
pub(crate) fn current_stack_on(id: u64) -> Option<KernelStack> {
    CURRENT.with(|c| c.get()).filter(|&(m, ..)| m == id).map(|(.., s)| s)
}

/// Binds the thread to `(machine, processor, stack)` until the guard drops.
pub(crate) struct Binding(Option<(u64, u32, KernelStack)>);

impl Binding {
    pub(crate) fn new(machine: u64, processor: u32, stack: KernelStack) -> Binding {
        Binding(CURRENT.with(|c| c.replace(Some((machine, processor, stack)))))
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// What code running on a processor holds: the machine and which processor.
#[derive(Debug, Clone, Copy)]
pub struct Cpu<'m> {
    pub(crate) machine: &'m Machine,
    pub(crate) number: u32,
}

/// A spin lock's value while held: the owning processor's number plus one, so a
/// free lock is 0 as `KeInitializeSpinLock` leaves it.
fn owner_value(number: u32) -> usize {
    number as usize + 1
}

impl<'m> Cpu<'m> {
    /// The machine.
    #[inline(always)]
    pub fn machine(&self) -> &'m Machine {
        self.machine
    }

    /// The processor number (`KeGetCurrentProcessorNumber`).
    #[inline(always)]
    pub fn number(&self) -> u32 {
        self.number
    }

    #[inline(always)]
    fn processor(&self) -> &'m Processor {
        self.machine.processor(self.number)
    }

    /// `KeGetCurrentIrql`.
    #[inline(always)]
    pub fn irql(&self) -> Irql {
        self.processor().irql()
    }

    /// `KeRaiseIrql`: raises to `new`, returning the old level. Under Driver
    /// Verifier's force IRQL checking, a raise to DISPATCH_LEVEL or above first
    /// pages out pageable memory (as the verifier trims the working set). Raising to a level
    /// below the current one (or above HIGH_LEVEL) stops the machine with
    /// IRQL_NOT_GREATER_OR_EQUAL (0x09), parameters (current IRQL, requested IRQL, 0,
    /// 0) as the x86 HAL reports it; under Driver Verifier with
    /// DRIVER_VERIFIER_DETECTED_VIOLATION 0x30 (current, requested, 0).
    ///
    /// # Errors
    /// The bugcheck.
    pub fn raise_irql(&self, new: Irql) -> Result<Irql, BugCheck> {
        let old = self.irql();
        if new < old || new > self.machine.irql_levels().high {
            if !self.machine.verifier().is_empty() {
                return Err(Violation::RaiseToLower { current: old, requested: new }.stop(self.machine));
            }
            return Err(self
                .machine
                .bugcheck(BugCheckCode::IRQL_NOT_GREATER_OR_EQUAL, [u64::from(old.0), u64::from(new.0), 0, 0]));
        }
        self.processor().set_irql(new);
        let vf = self.machine.vf();
        vf.count(Event::RaiseIrql);
        vf.irql_changed(self.number, old.0, new.0, self.machine.now_ms());
        if new >= Irql::DISPATCH
            && old < Irql::DISPATCH
            && self.machine.verifier().contains(VerifierFlags::FORCE_IRQL_CHECKING)
        {
            self.machine.vf().count(Event::Trim);
            let _ = self.machine.trim();
        }
        Ok(old)
    }

    /// `KeLowerIrql`: lowers to `new`. Lowering to a level above the current one
    /// stops the machine with IRQL_NOT_LESS_OR_EQUAL (0x0A), parameters
    /// (requested IRQL, current IRQL, 0, 0); under Driver Verifier with
    /// DRIVER_VERIFIER_DETECTED_VIOLATION 0x31 (current, requested, 0).
    ///
    /// # Errors
    /// The bugcheck.
    pub fn lower_irql(&self, new: Irql) -> Result<(), BugCheck> {
        let old = self.irql();
        if new > old {
            if !self.machine.verifier().is_empty() {
                return Err(Violation::LowerToHigher { current: old, requested: new }.stop(self.machine));
            }
            return Err(self
                .machine
                .bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [u64::from(new.0), u64::from(old.0), 0, 0]));
        }
        self.processor().set_irql(new);
        self.machine.vf().irql_changed(self.number, old.0, new.0, self.machine.now_ms());
        Ok(())
    }

    /// `KeAcquireSpinLock`: raises to DISPATCH_LEVEL, then takes `lock` (the
    /// driver's `KSPIN_LOCK`) as [`Cpu::acquire_spin_lock_at_dpc_level`] does. Returns
    /// the previous IRQL for [`Cpu::release_spin_lock`].
    ///
    /// # Errors
    /// The bugcheck.
    pub fn acquire_spin_lock(&self, lock: &AtomicUsize) -> Result<Irql, BugCheck> {
        let old = self.raise_irql(Irql::DISPATCH)?;
        self.acquire_spin_lock_at_dpc_level(lock)?;
        Ok(old)
    }

    /// `KeAcquireSpinLockAtDpcLevel`: takes `lock` at the current IRQL, spinning
    /// while its word is not zero.
    ///
    /// A word that never clears spins as on Windows until the DPC watchdog
    /// ([`crate::ke::watchdog`]) ends the spin with DPC_WATCHDOG_VIOLATION (0x133):
    /// another processor's lock never released, garbage (freed pool, 0xCC fill,
    /// uninitialised memory), or a lock this processor already holds — Windows' free
    /// kernel keeps no owner in the word and deadlocks (SPIN_LOCK_ALREADY_OWNED, 0x0F,
    /// is the checked build's check). Driver Verifier's deadlock detection finds that
    /// recursion (0xC4/0x1000) before the spin, at the driver's call
    /// ([`crate::vf::deadlock`]).
    ///
    /// # Errors
    /// The bugcheck.
    pub fn acquire_spin_lock_at_dpc_level(&self, lock: &AtomicUsize) -> Result<(), BugCheck> {
        let me = owner_value(self.number);
        loop {
            match lock.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    self.machine.vf().count(Event::AcquireSpinLock);
                    return Ok(());
                }
                Err(_) => {
                    if let Some(stop) = self.watchdog_expired() {
                        return Err(stop);
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// The stop the watchdog decided on while kernel code ran (which it does not
    /// abandon), if any: a loop waiting for something that may never come polls it.
    pub fn watchdog_expired(&self) -> Option<BugCheck> {
        ntmem_host::watchdog::take_pending().map(|e| self.machine.bugcheck_of(e))
    }

    /// `KeReleaseSpinLock`: frees `lock` and lowers to `old`. Releasing a lock this
    /// processor does not hold stops with SPIN_LOCK_NOT_OWNED (0x10); under Driver
    /// Verifier, releasing below or above DISPATCH_LEVEL first stops as
    /// [`Cpu::verify_spin_lock_release`] says.
    ///
    /// # Errors
    /// The bugcheck.
    pub fn release_spin_lock(&self, lock: &AtomicUsize, old: Irql) -> Result<(), BugCheck> {
        self.verify_spin_lock_release(lock as *const AtomicUsize as u64)?;
        let me = owner_value(self.number);
        if lock.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed).is_err() {
            let addr = lock as *const AtomicUsize as u64;
            return Err(self.machine.bugcheck(BugCheckCode::SPIN_LOCK_NOT_OWNED, [addr, 0, 0, 0]));
        }
        self.lower_irql(old)
    }

    /// Driver Verifier's check before `KeReleaseSpinLock` touches the lock at `addr`:
    /// the caller must be at DISPATCH_LEVEL, else DRIVER_VERIFIER_DETECTED_VIOLATION
    /// (0xC4: 0x32, the current IRQL, the lock, 0; Microsoft, "Bug Check 0xC4",
    /// research note dma-verifier-views §3.3). Without Verifier nothing is checked.
    ///
    /// # Errors
    /// The bugcheck.
    pub fn verify_spin_lock_release(&self, addr: u64) -> Result<(), BugCheck> {
        let irql = self.irql();
        if irql == Irql::DISPATCH || self.machine.verifier().is_empty() {
            return Ok(());
        }
        Err(Violation::SpinLockReleaseNotAtDispatch { irql, lock: addr }.stop(self.machine))
    }

    /// Moves the machine's simulated time on by `ms` and runs, on this processor,
    /// what falls due: the lookaside depth scans (as the balance-set manager does
    /// once a second).
    pub fn advance_time(&self, ms: u64) {
        let now = self.machine.advance_clock(ms);
        self.machine.lookasides().advance_to(self, now);
    }

    /// A thread switch on this processor: it takes the IRQL the incoming thread had
    /// when it was switched out (PASSIVE_LEVEL for a new thread). Not a raise or a
    /// lower: nothing is checked, counted or logged.
    pub fn switch_irql(&self, irql: Irql) {
        self.processor().set_irql(irql);
    }

    /// `IoGetStackLimits`: the host addresses `(low, high)` of the current kernel stack
    /// (the running thread's).
    pub fn stack_limits(&self) -> (usize, usize) {
        let s = current_stack_on(self.machine.id()).unwrap_or_else(|| self.processor().stack());
        let low = self.machine.space().host_addr(s.base);
        (low, low + crate::mm::space::to_usize(s.size))
    }

    /// `IoGetRemainingStackSize`: bytes left between the stack pointer and the limit.
    pub fn remaining_stack(&self) -> usize {
        let (low, _) = self.stack_limits();
        ntmem_host::stack_pointer().saturating_sub(low)
    }
}
