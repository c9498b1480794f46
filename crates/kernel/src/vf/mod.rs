//! `vf`: Driver Verifier (seed 000 §12.1; research/peers.md §7.1–§7.2; research
//! note `dma-verifier-views.md` §3).
//!
//! A machine has one [`Verifier`] ([`crate::Machine::vf`]): the options in force
//! (Windows' `verifier /flags` bits), the drivers verified (`verifier /driver`, all by
//! default), and the state of the options that keep some — low resources simulation
//! ([`faults`]) and pool tracking ([`tracking`]). The driver boundary calls its hooks
//! where Windows' Verifier thunks a verified driver's imports: before a resource
//! allocation ([`Verifier::inject_failure`]), after one ([`Verifier::allocated`]),
//! at every pool free ([`Verifier::freed`]), at a driver's page locks and unlocks
//! ([`Verifier::pages_locked`], [`Verifier::pages_unlocked`]), as a process ends
//! with pages locked ([`Verifier::locked_pages_left`]), at unload
//! ([`Verifier::unload_violation`]) and around every lock acquisition and release
//! ([`Verifier::lock_acquiring`], deadlock detection: [`deadlock`]); so an option is
//! added here without touching the allocators. Options that check a single operation
//! live with the code they check:
//! special pool ([`crate::ex::pool::special`]); force IRQL checking, which trims
//! pageable memory on every raise to DISPATCH_LEVEL or above
//! ([`crate::Cpu::raise_irql`]); I/O verification's checks in [`crate::io`], its
//! stops and non-fatal WDM DRIVER ERRORs (kept here: [`Verifier::wdm_errors`]) in
//! [`io`]. Options ntmem
//! does not act on yet (security, DDI compliance) are accepted and recorded.

pub mod deadlock;
pub mod faults;
pub mod io;
pub mod tracking;
pub mod violation;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::ex::pool::PoolTag;
pub use deadlock::{Access, Acquisition, Attempt, Cycle, LockKind, LockRequest, Order};
pub use faults::{FaultSettings, Injection, Plan};
pub use io::{IoViolation, WdmError};
pub use tracking::{Count, DriverPool, LockedMdl, LogEntry, TrackedBlock};
pub use violation::Violation;

bitflags::bitflags! {
    /// `verifier /flags` values (Microsoft, "Driver Verifier options and rule classes").
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct VerifierFlags: u32 {
        /// Special pool (0x1): [`crate::ex::pool::special`].
        const SPECIAL_POOL = 0x1;
        /// Force IRQL checking (0x2): pageable memory is trimmed on every IRQL raise.
        const FORCE_IRQL_CHECKING = 0x2;
        /// Low resources simulation (0x4).
        const LOW_RESOURCES_SIMULATION = 0x4;
        /// Pool tracking (0x8).
        const POOL_TRACKING = 0x8;
        /// I/O verification (0x10).
        const IO_VERIFICATION = 0x10;
        /// Deadlock detection (0x20).
        const DEADLOCK_DETECTION = 0x20;
        /// DMA checking (0x80).
        const DMA_CHECKING = 0x80;
        /// Security checks (0x100).
        const SECURITY_CHECKS = 0x100;
        /// Miscellaneous checks (0x800).
        const MISCELLANEOUS_CHECKS = 0x800;
        /// DDI compliance checking (0x20000): recorded, not modelled.
        const DDI_COMPLIANCE_CHECKING = 0x20000;
        /// Systematic low resources simulation (0x40000): [`faults`].
        const SYSTEMATIC_LOW_RESOURCES_SIMULATION = 0x40000;
    }
}

impl VerifierFlags {
    /// `verifier /standard`: 0x209BB (Microsoft, "Driver Verifier options and rule
    /// classes"; research note §3.1).
    pub const STANDARD: VerifierFlags = VerifierFlags::from_bits_truncate(0x209BB);
}

/// Each option's name as `parse_one` reads it, with its flag.
const NAMES: [(&str, VerifierFlags); 11] = [
    ("special_pool", VerifierFlags::SPECIAL_POOL),
    ("irql", VerifierFlags::FORCE_IRQL_CHECKING),
    ("low_resources", VerifierFlags::LOW_RESOURCES_SIMULATION),
    ("pool_tracking", VerifierFlags::POOL_TRACKING),
    ("io", VerifierFlags::IO_VERIFICATION),
    ("deadlock", VerifierFlags::DEADLOCK_DETECTION),
    ("dma", VerifierFlags::DMA_CHECKING),
    ("security", VerifierFlags::SECURITY_CHECKS),
    ("misc", VerifierFlags::MISCELLANEOUS_CHECKS),
    ("ddi", VerifierFlags::DDI_COMPLIANCE_CHECKING),
    ("systematic_low_resources", VerifierFlags::SYSTEMATIC_LOW_RESOURCES_SIMULATION),
];

impl VerifierFlags {
    /// The names of the options set, in flag order (`0x9` → `special_pool`,
    /// `pool_tracking`).
    pub fn names(self) -> Vec<&'static str> {
        NAMES.iter().filter(|(_, f)| self.contains(*f)).map(|(n, _)| *n).collect()
    }

    /// Parses a verifier option by name, as `ntmem run --verifier` and scenario
    /// files spell them (`special_pool`, `irql`, `low_resources`, `pool_tracking`,
    /// `io`, `deadlock`, `dma`, `security`, `misc`, `ddi`, `systematic_low_resources`,
    /// and `standard` for `/standard`), or as a number (`0x2b`).
    ///
    /// # Errors
    /// A message listing the valid names.
    pub fn parse_one(text: &str) -> Result<VerifierFlags, String> {
        let t = text.trim().to_ascii_lowercase().replace('-', "_");
        let t = if t == "force_irql_checking" { "irql".to_string() } else { t };
        if t == "standard" {
            return Ok(VerifierFlags::STANDARD);
        }
        let named = NAMES.iter().find(|(n, _)| *n == t).map(|(_, f)| *f);
        if let Some(f) = named {
            return Ok(f);
        }
        let number = t.strip_prefix("0x").map_or_else(|| t.parse::<u32>().ok(), |h| u32::from_str_radix(h, 16).ok());
        number.and_then(VerifierFlags::from_bits).ok_or_else(|| {
            format!(
                "unknown verifier option `{text}`: use special_pool, irql, low_resources, pool_tracking, io, deadlock, dma, security, misc, ddi, systematic_low_resources, standard, or a /flags number"
            )
        })
    }
}

/// Where a verified driver called a routine: the driver, and its frames (host
/// address, offset in the image), innermost first — the return address of its call
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The driver's image name (`lm`'s).
    pub driver: String,
    /// (address, offset from the image base) of each frame in the driver.
    pub frames: Vec<(u64, u64)>,
}

impl CallSite {
    /// The identity of the driver's part of the stack, independent of where the image
    /// was loaded: a hash of the driver's name and the frames' offsets.
    pub fn stack_hash(&self) -> u64 {
        // FNV-1a: stable across runs (std's hasher is randomly keyed).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        };
        eat(self.driver.to_ascii_lowercase().as_bytes());
        for (_, offset) in &self.frames {
            eat(&offset.to_le_bytes());
        }
        h
    }
}

/// Driver Verifier's global counters (`!verifier`'s "Summary of All Verifier
/// Statistics"; Microsoft, "Monitoring Global Counters").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Pool allocations verified drivers asked for (`ExAllocatePool*`), including
    /// those failed on purpose.
    pub pool_allocations_attempted: u64,
    /// Of which succeeded.
    pub pool_allocations_succeeded: u64,
    /// Of which failed for want of memory (not injected).
    pub pool_allocations_failed: u64,
    /// "Resource Allocations Failed Deliberately": low resources simulation's.
    pub faults_injected: u64,
    /// "Pool Allocations Succeeded SpecialPool".
    pub pool_allocations_special: u64,
    /// "RaiseIrqls": raises of the IRQL while Verifier is on.
    pub raise_irqls: u64,
    /// "AcquireSpinLocks".
    pub acquire_spin_locks: u64,
    /// "Trims": force IRQL checking's trimming passes.
    pub trims: u64,
}

/// The state behind the lock.
#[derive(Debug, Default)]
struct State {
    /// Lower-case image names verified; `None`: every driver.
    drivers: Option<Vec<String>>,
    faults: faults::Faults,
    injections: Vec<Injection>,
    /// Systematic simulation's first call from each stack, in order, as the
    /// injection it is or would be (`systematic`: whether it failed).
    reached: Vec<Injection>,
    tracking: tracking::Tracking,
    counters: Counters,
    locks: deadlock::Locks,
    irql_log: std::collections::VecDeque<IrqlTransition>,
    /// I/O verification's non-fatal errors, in order.
    wdm_errors: Vec<WdmError>,
}

/// How many injections the history keeps (`!verifier 4` shows the latest).
const INJECTIONS_KEPT: usize = 1024;

/// A machine's Driver Verifier: the options, the drivers verified, and the state of
/// the options that keep some.
#[derive(Debug, Default)]
pub struct Verifier {
    flags: AtomicU32,
    /// Blocks tracked: lets a free skip the lock when there are none.
    tracked: AtomicUsize,
    /// The counters the processor bumps without taking the lock: raises, spin lock
    /// acquisitions, trims.
    raise_irqls: AtomicU64,
    acquire_spin_locks: AtomicU64,
    trims: AtomicU64,
    state: Mutex<State>,
}

/// Entries in the IRQL transition log: Windows keeps 0x100 (`!verifier 8`).
pub const IRQL_LOG_ENTRIES: usize = 0x100;

/// An IRQL change under force IRQL checking (`!verifier 8`'s "Track irql trace log").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IrqlTransition {
    /// The IRQL before.
    pub old: u8,
    /// The IRQL after.
    pub new: u8,
    /// The processor.
    pub processor: u32,
    /// Simulated milliseconds since boot.
    pub at_ms: u64,
    /// The driver's return address at the call that changed it (0: not a driver's).
    pub caller: u64,
}

/// A resource allocation a verified driver asks for ([`Verifier::inject_failure`]).
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The routine called.
    pub routine: &'static str,
    /// The pool tag asked for, if any.
    pub tag: Option<PoolTag>,
    /// Whether the routine is a pool allocator (counted as a pool allocation attempted).
    pub pool: bool,
    /// The image name of the process the call is made in (`System` for the System
    /// process).
    pub process: &'a str,
    /// Simulated milliseconds since boot.
    pub now_ms: u64,
}

/// A processor event Verifier counts ([`Verifier::count`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An IRQL raise.
    RaiseIrql,
    /// A spin lock acquired.
    AcquireSpinLock,
    /// A trimming pass of force IRQL checking.
    Trim,
}

impl Verifier {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The options in force.
    pub fn flags(&self) -> VerifierFlags {
        VerifierFlags::from_bits_truncate(self.flags.load(Ordering::Acquire))
    }

    /// Sets the options (`verifier /flags`).
    pub fn set_flags(&self, flags: VerifierFlags) {
        self.flags.store(flags.bits(), Ordering::Release);
    }

    /// Verifies only the drivers named (`verifier /driver a.sys b.sys`; a name
    /// without `.sys` means the image of that name); `None` verifies every driver.
    pub fn set_drivers(&self, names: Option<Vec<String>>) {
        let names = names.map(|v| {
            v.into_iter()
                .map(|n| {
                    let n = n.to_ascii_lowercase();
                    if n.contains('.') {
                        n
                    } else {
                        format!("{n}.sys")
                    }
                })
                .collect()
        });
        self.state().drivers = names;
    }

    /// Whether `driver` (an image name) is verified.
    pub fn verifies(&self, driver: &str) -> bool {
        let d = driver.to_ascii_lowercase();
        self.state().drivers.as_ref().is_none_or(|names| names.contains(&d))
    }

    /// Sets randomized low resources simulation's knobs (`verifier /faults`).
    pub fn set_faults(&self, settings: FaultSettings) {
        self.state().faults = faults::Faults::new(settings);
    }

    /// What systematic low resources simulation does with new stacks from now on
    /// ([`Plan`]); the stacks seen so far are forgotten.
    pub fn plan_systematic(&self, plan: Plan) {
        let mut s = self.state();
        s.faults.plan(plan);
        s.reached.clear();
    }

    /// Stacks systematic low resources simulation never fails (ids from
    /// [`CallSite::stack_hash`]; `/faultssystematic excludestack`).
    pub fn exclude_stacks(&self, ids: &[u64]) {
        self.state().faults.exclude(ids);
    }

    /// Whether the stack `id` is on the exclusion list.
    pub fn is_excluded(&self, id: u64) -> bool {
        self.state().faults.is_excluded(id)
    }

    /// Systematic simulation's first call from each stack, in order (failed or not:
    /// [`Injection::systematic`]).
    pub fn reached(&self) -> Vec<Injection> {
        self.state().reached.clone()
    }

    /// The knobs of randomized low resources simulation.
    pub fn fault_settings(&self) -> FaultSettings {
        self.state().faults.settings.clone()
    }

    /// The hook before a verified driver's resource allocation: whether low resources
    /// simulation fails this call of `routine` (for pool, `tag` is the tag asked
    /// for; `pool`: the routine is a pool allocator, counted as a pool allocation
    /// attempted) from `site`, in the context of the process named `process`, at
    /// simulated time `now_ms`. A failure is counted and logged; the caller then fails
    /// the call "according to the semantics of that call".
    pub fn inject_failure(&self, site: &CallSite, call: Call<'_>) -> bool {
        let flags = self.flags();
        let random = flags.contains(VerifierFlags::LOW_RESOURCES_SIMULATION);
        let systematic = flags.contains(VerifierFlags::SYSTEMATIC_LOW_RESOURCES_SIMULATION);
        if !(random || systematic) || !self.verifies(&site.driver) {
            return false;
        }
        let mut s = self.state();
        let (new, by_systematic) = if systematic { s.faults.systematic(site) } else { (false, false) };
        let fail = by_systematic || (random && s.faults.random(call.now_ms, call.tag, call.process));
        let injection = || Injection {
            routine: call.routine,
            tag: call.tag,
            driver: site.driver.clone(),
            stack: site.frames.iter().map(|f| f.0).collect(),
            at_ms: call.now_ms,
            systematic: by_systematic,
            stack_id: site.stack_hash(),
        };
        if new {
            s.reached.push(injection());
        }
        if fail {
            s.counters.faults_injected += 1;
            s.counters.pool_allocations_attempted += u64::from(call.pool);
            if s.injections.len() == INJECTIONS_KEPT {
                s.injections.remove(0);
            }
            s.injections.push(injection());
        }
        fail
    }

    /// The hook after a driver's allocation: `block` (or a failure for want of
    /// memory, `None`) from a pool routine (`pool`) or another resource routine.
    pub fn allocated(&self, block: Option<TrackedBlock>, pool: bool) {
        let mut s = self.state();
        if pool {
            s.counters.pool_allocations_attempted += 1;
            if block.is_some() {
                s.counters.pool_allocations_succeeded += 1;
            } else {
                s.counters.pool_allocations_failed += 1;
            }
        }
        if let Some(b) = block {
            s.tracking.allocated(b);
            self.tracked.store(s.tracking.len(), Ordering::Release);
        }
    }

    /// The hook at every pool free, whoever frees: forgets the block at `va`.
    pub fn freed(&self, va: u64) {
        if self.tracked.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut s = self.state();
        s.tracking.freed(va);
        self.tracked.store(s.tracking.len(), Ordering::Release);
    }

    /// Pool tracking's hook after a verified driver's `MmProbeAndLockPages` locked
    /// pages of a process ([`LockedMdl`]); nothing without the option.
    pub fn pages_locked(&self, lock: LockedMdl) {
        if self.flags().contains(VerifierFlags::POOL_TRACKING) && self.verifies(&lock.driver) {
            self.state().tracking.locked(lock);
        }
    }

    /// The hook at a driver's `MmUnlockPages` of the MDL at `mdl`.
    pub fn pages_unlocked(&self, mdl: u64) {
        if self.flags().contains(VerifierFlags::POOL_TRACKING) {
            self.state().tracking.unlocked(mdl);
        }
    }

    /// The hook as the process whose object is at `process` ends with pages locked:
    /// pages a verified driver locked there and left locked are
    /// DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS (0xCB), with the
    /// parameters of Microsoft's "Bug Check 0xCB" page: the lock tracking structure
    /// (0: ntmem has none a debugger could read), 0, the MDL, the pages it holds
    /// locked. Without such a lock the caller's PROCESS_HAS_LOCKED_PAGES (0x76) stands.
    /// Windows issues 0xCB under pool tracking from Vista on (or with the registry's
    /// TrackLockedPages); ntmem's Verifier does on every edition.
    pub fn locked_pages_left(&self, machine: &crate::Machine, process: u64) -> Option<crate::BugCheck> {
        let lock = self.state().tracking.held_in(process)?;
        let code = crate::BugCheckCode::DRIVER_LEFT_LOCKED_PAGES_IN_PROCESS;
        Some(machine.bugcheck(code, [0, 0, lock.mdl, lock.pages]))
    }

    /// `driver`'s pool blocks not freed, by address.
    pub fn outstanding(&self, driver: &str) -> Vec<TrackedBlock> {
        self.state().tracking.outstanding(driver)
    }

    /// `driver`'s pool counts, current and peak.
    pub fn driver_pool(&self, driver: &str) -> DriverPool {
        self.state().tracking.counts(driver)
    }

    /// The log of recent allocate and free operations, oldest first.
    pub fn log(&self) -> Vec<LogEntry> {
        self.state().tracking.log()
    }

    /// Records a non-fatal WDM DRIVER ERROR of I/O verification ([`io`]).
    pub fn wdm_error(&self, error: WdmError) {
        self.state().wdm_errors.push(error);
    }

    /// I/O verification's non-fatal errors so far, in order.
    pub fn wdm_errors(&self) -> Vec<WdmError> {
        self.state().wdm_errors.clone()
    }

    /// The calls low resources simulation failed, oldest first.
    pub fn injections(&self) -> Vec<Injection> {
        self.state().injections.clone()
    }

    /// Counts `event` while any option is on.
    #[inline]
    pub fn count(&self, event: Event) {
        if self.flags.load(Ordering::Relaxed) == 0 {
            return;
        }
        let c = match event {
            Event::RaiseIrql => &self.raise_irqls,
            Event::AcquireSpinLock => &self.acquire_spin_locks,
            Event::Trim => &self.trims,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The global counters.
    pub fn counters(&self) -> Counters {
        Counters {
            raise_irqls: self.raise_irqls.load(Ordering::Relaxed),
            acquire_spin_locks: self.acquire_spin_locks.load(Ordering::Relaxed),
            trims: self.trims.load(Ordering::Relaxed),
            ..self.state().counters
        }
    }

    /// Force IRQL checking's log of an IRQL change on processor `cpu` at `at_ms`.
    pub fn irql_changed(&self, cpu: u32, old: u8, new: u8, at_ms: u64) {
        if !self.flags().contains(VerifierFlags::FORCE_IRQL_CHECKING) {
            return;
        }
        let caller = ntmem_host::thunk::driver_frame().and_then(|f| f.return_address()).unwrap_or(0);
        let mut s = self.state();
        if s.irql_log.len() == IRQL_LOG_ENTRIES {
            s.irql_log.pop_front();
        }
        s.irql_log.push_back(IrqlTransition { old, new, processor: cpu, at_ms, caller });
    }

    /// The IRQL transition log, oldest first.
    pub fn irql_log(&self) -> Vec<IrqlTransition> {
        self.state().irql_log.iter().copied().collect()
    }

    /// Deadlock detection's locks, when the option is on ([`deadlock`]).
    fn deadlock(&self) -> Option<MutexGuard<'_, State>> {
        self.flags().contains(VerifierFlags::DEADLOCK_DETECTION).then(|| self.state())
    }

    /// Deadlock detection's hook when `thread` asks for the lock `r` names (before it may block),
    /// from a driver whose stack is `stack` (return addresses, innermost first).
    ///
    /// # Errors
    /// The violation: self-deadlock (0x1000), a cycle in the lock hierarchy (0x1001,
    /// kept for [`Verifier::deadlock_cycle`]), an uninitialized resource (0x1002).
    pub fn lock_acquiring(
        &self,
        thread: u64,
        r: LockRequest,
        attempt: Attempt,
        stack: &[u64],
    ) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.acquiring(thread, r.lock, r.kind, r.access, attempt, stack))
    }

    /// Deadlock detection's hook when `thread` got the lock `r` names.
    pub fn lock_acquired(&self, thread: u64, r: LockRequest, stack: &[u64]) {
        if let Some(mut s) = self.deadlock() {
            s.locks.acquired(thread, r.lock, r.kind, r.access, stack);
        }
    }

    /// Deadlock detection's hook before `thread` releases `lock` with a `kind` routine.
    ///
    /// # Errors
    /// The violation: out of order (0x1003), by another thread (0x1004), not held
    /// (0x1007), with another kind's routine (0x1009).
    pub fn lock_released(&self, thread: u64, lock: u64, kind: LockKind) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.released(thread, lock, kind))
    }

    /// Deadlock detection's hook when an ERESOURCE is initialized.
    ///
    /// # Errors
    /// 0x1005: it was initialized already and not deleted.
    pub fn lock_initialized(&self, lock: u64) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.initialized(lock))
    }

    /// Deadlock detection's hook when an ERESOURCE is deleted.
    ///
    /// # Errors
    /// 0x100B: a thread holds it.
    pub fn lock_deleted(&self, lock: u64) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.deleted(lock))
    }

    /// Deadlock detection's hook before pool `[va, va + bytes)` is freed.
    ///
    /// # Errors
    /// 0x100B: a thread holds a lock in it.
    pub fn memory_freed(&self, va: u64, bytes: u64) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.memory_freed(va, va.saturating_add(bytes)))
    }

    /// Deadlock detection's hook when an initialization routine makes the memory at
    /// `lock` a lock of `kind`: its type for 0x1008 from now on.
    pub fn lock_created(&self, lock: u64, kind: LockKind) {
        if let Some(mut s) = self.deadlock() {
            s.locks.created(lock, kind);
        }
    }

    /// Deadlock detection's hook when `thread` gives up `lock` without the release
    /// checks (the cancel spin lock released by a driver not verified, which the kernel
    /// may have taken for it).
    pub fn lock_dropped(&self, thread: u64, lock: u64) {
        if let Some(mut s) = self.deadlock() {
            s.locks.dropped(thread, lock);
        }
    }

    /// Deadlock detection's hook as system thread `thread` ends.
    ///
    /// # Errors
    /// 0x100A: it holds a lock.
    pub fn thread_ended(&self, thread: u64) -> Result<(), Violation> {
        self.deadlock().map_or(Ok(()), |mut s| s.locks.thread_ended(thread))
    }

    /// Deadlock detection's hook as the image at `[va, va + bytes)` is unloaded: the
    /// locks in it leave the hierarchy and lose their type.
    pub fn image_unloaded(&self, va: u64, bytes: u64) {
        if let Some(mut s) = self.deadlock() {
            s.locks.forget(va, va.saturating_add(bytes));
        }
    }

    /// The lock-hierarchy cycle of the last 0x1001, both orders with their stacks.
    pub fn deadlock_cycle(&self) -> Option<Cycle> {
        self.state().locks.cycle()
    }

    /// Counts a pool block a verified driver got from special pool.
    pub fn special_pool_allocation(&self) {
        self.state().counters.pool_allocations_special += 1;
    }

    /// The hook at unload (after `DriverUnload`, as `MmUnloadSystemImage` checks):
    /// with pool tracking on for `driver`, blocks it left allocated are
    /// DRIVER_VERIFIER_DETECTED_VIOLATION, in the form of the edition's `release`.
    ///
    /// Microsoft's bug check 0xC4 table gives two rows for this one leak and does not
    /// say when each applies: 0x60 (paged bytes, nonpaged bytes, allocations not
    /// freed) and 0x62 (the address of the driver's name, a UNICODE_STRING; a Verifier
    /// structure — 0 here, ntmem has none a debugger could read; allocations not
    /// freed). The DDK's "Memory Pool Tracking" page of the Windows 2000 era (kept at
    /// osronline.com/ddkx/ddtools/dv_2ayb.htm) says a leak at unload is 0xC4 with
    /// parameter 1 equal to 0x60; today's "Pool Tracking" page says 0x62, and so do
    /// stop reports from Windows Server 2003 x64 on (`!analyze` naming the driver
    /// through the second parameter). ntmem reads the two rows as the old and the new
    /// form of the same check: Windows 2000 ([`ntmem_machine::Release::Windows2000`]) stops with
    /// 0x60, whose parameters leave the driver to the debugger (`ViBadDriver`); Windows
    /// XP and later with 0x62. The release that switched is not documented; ntmem puts
    /// it at XP, the first release after the page that names 0x60. Both forms count
    /// the same allocations, and the report lists each with its allocation stack.
    pub fn unload_violation(
        &self,
        driver: &str,
        name_address: u64,
        release: ntmem_machine::Release,
    ) -> Option<Violation> {
        if !self.flags().contains(VerifierFlags::POOL_TRACKING) || !self.verifies(driver) {
            return None;
        }
        let (paged_bytes, nonpaged_bytes, count) = self.outstanding_counts(driver);
        if count == 0 {
            return None;
        }
        Some(match release {
            ntmem_machine::Release::Windows2000 => {
                Violation::PoolLeftAtUnloadBytes { paged_bytes, nonpaged_bytes, count }
            }
            _ => Violation::PoolLeftAtUnload { name: name_address, count },
        })
    }

    /// `driver`'s outstanding pool: (paged bytes, nonpaged bytes, allocations), the
    /// parameters of 0x60 and 0x61.
    fn outstanding_counts(&self, driver: &str) -> (u64, u64, u64) {
        let blocks = self.outstanding(driver);
        let bytes =
            |kind: crate::ex::pool::PoolKind| blocks.iter().filter(|b| b.kind == kind).map(|b| b.bytes).sum::<u64>();
        (bytes(crate::ex::pool::PoolKind::Paged), bytes(crate::ex::pool::PoolKind::Nonpaged), blocks.len() as u64)
    }

    /// The hook as `driver`'s `DriverUnload` starts, run by `thread` (its `KTHREAD`
    /// address or identity token): until [`Verifier::unload_finished`], another
    /// thread of the driver allocating pool is 0x61 ([`Verifier::allocating_while_unloading`]).
    pub fn unload_started(&self, driver: &str, thread: u64) {
        let mut s = self.state();
        s.tracking.unloading.retain(|u| u.driver != driver);
        s.tracking.unloading.push(tracking::Unloading { driver: driver.to_string(), thread });
    }

    /// The hook as `driver`'s image is unloaded: its unload is over.
    pub fn unload_finished(&self, driver: &str) {
        self.state().tracking.unloading.retain(|u| u.driver != driver);
    }

    /// The hook before a pool allocation charged to `driver` (its code on the stack,
    /// as pool tracking attributes blocks) by `thread` (`None`: a DPC or timer
    /// routine, which runs in whatever thread was current). With pool tracking on for
    /// the driver, while its unload is in progress, an allocation by any thread but
    /// the one running `DriverUnload` is DRIVER_VERIFIER_DETECTED_VIOLATION 0x61 — "a
    /// driver thread is attempting to allocate pool memory while the driver is
    /// unloading" (Microsoft, bug check 0xC4 table) — with the driver's paged bytes,
    /// nonpaged bytes and allocations outstanding at that moment, before this one.
    /// The thread running `DriverUnload` may allocate: tearing down can take a buffer.
    pub fn allocating_while_unloading(&self, driver: &str, thread: Option<u64>) -> Option<Violation> {
        if !self.flags().contains(VerifierFlags::POOL_TRACKING) || !self.verifies(driver) {
            return None;
        }
        let unloading = self.state().tracking.unloading.iter().find(|u| u.driver == driver).map(|u| u.thread)?;
        if thread == Some(unloading) {
            return None;
        }
        let (paged_bytes, nonpaged_bytes, count) = self.outstanding_counts(driver);
        Some(Violation::AllocationWhileUnloading { paged_bytes, nonpaged_bytes, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_by_name_and_number() {
        assert_eq!(VerifierFlags::parse_one("irql"), Ok(VerifierFlags::FORCE_IRQL_CHECKING));
        assert_eq!(VerifierFlags::parse_one("0x9"), Ok(VerifierFlags::SPECIAL_POOL | VerifierFlags::POOL_TRACKING));
        assert!(VerifierFlags::parse_one("turbo").unwrap_err().contains("special_pool"));
        assert_eq!(
            (VerifierFlags::SPECIAL_POOL | VerifierFlags::POOL_TRACKING).names(),
            ["special_pool", "pool_tracking"]
        );
        for (name, flag) in NAMES {
            assert_eq!(VerifierFlags::parse_one(name), Ok(flag), "{name} reads back");
        }
        assert_eq!(VerifierFlags::parse_one("standard").map(|f| f.bits()), Ok(0x209BB));
    }

    fn site() -> CallSite {
        CallSite { driver: "leaky.sys".into(), frames: vec![(0x1_4000_1010, 0x1010)] }
    }

    #[test]
    fn only_the_verified_drivers_are_failed() {
        let v = Verifier::default();
        v.set_faults(FaultSettings { probability: 10_000, ..FaultSettings::default() });
        let call = Call { routine: "ExAllocatePoolWithTag", tag: None, pool: true, process: "System", now_ms: 0 };
        assert!(!v.inject_failure(&site(), call), "option off");
        v.set_flags(VerifierFlags::LOW_RESOURCES_SIMULATION);
        assert!(v.inject_failure(&site(), call));
        v.set_drivers(Some(vec!["other".into()]));
        assert!(!v.verifies("leaky.sys") && v.verifies("OTHER.SYS"));
        assert!(!v.inject_failure(&site(), call));
        assert_eq!(v.counters().faults_injected, 1);
        assert_eq!(v.injections()[0].stack, [0x1_4000_1010]);
    }

    #[test]
    fn a_leak_at_unload_is_0x62_with_pool_tracking_only() {
        let v = Verifier::default();
        let b =
            site().block("ExAllocatePoolWithTag", 0x8000, 64, PoolTag(0x6b61_654c), crate::ex::pool::PoolKind::Paged);
        v.allocated(Some(b), true);
        v.allocated(None, true);
        assert_eq!(v.counters().pool_allocations_failed, 1);
        assert_eq!(v.outstanding("leaky.sys").len(), 1, "tracked whatever the options");
        assert_eq!(v.unload_violation("leaky.sys", 0x1234, ntmem_machine::Release::WindowsXp), None);
        v.set_flags(VerifierFlags::POOL_TRACKING);
        let left =
            v.unload_violation("leaky.sys", 0x1234, ntmem_machine::Release::WindowsXp).map(Violation::parameters);
        assert_eq!(left, Some([0x62, 0x1234, 0, 1]));
        v.freed(0x8000);
        assert_eq!(v.unload_violation("leaky.sys", 0x1234, ntmem_machine::Release::WindowsXp), None);
        assert_eq!(v.driver_pool("leaky.sys").peak[1], Count { allocations: 1, bytes: 64 });
    }
}
