//! Driver Verifier at the driver boundary: where Windows' Verifier thunks a
//! verified driver's imports (`nt!VerifierExAllocatePoolWithTag` and its kin), the
//! routines here ask the machine's [`Verifier`](ntmem_kernel::vf::Verifier) whether
//! low resources simulation fails the call, and hand it the block the driver got, with
//! the driver's stack, for pool tracking (research note `dma-verifier-views.md` §3.2,
//! §3.4, §3.5).
//!
//! The routines that consult it: the pool allocators (`ExAllocatePool*`),
//! `IoAllocateMdl`, `IoAllocateIrp`, `IoAllocateWorkItem`,
//! `MmAllocateContiguousMemory[SpecifyCache]`, `MmAllocateNonCachedMemory`,
//! `MmAllocatePagesForMdl[Ex]`, `MmMapIoSpace`, `MmMapLockedPagesSpecifyCache` (and so
//! `MmGetSystemAddressForMdlSafe`, the WDK's macro over it), `MmProbeAndLockPages`
//! (which fails by raising), `AllocateCommonBuffer` and the Rtl string routines that
//! allocate the result's buffer — Microsoft's list for low resources simulation less
//! the routines ntmem does not export (`IoAllocateErrorLogEntry`, the GDI `Eng*`
//! allocators, `MmAllocateNodePagesForMdlEx`). With any
//! Verifier option on, pool blocks, MDLs, IRPs, work items and string buffers are
//! tracked (with the driver's stack under pool tracking and low resources
//! simulation, its call site otherwise); Windows tracks only under pool tracking.
//! Verifier's records carry its substitute tags ("VMdl", "Vfwi":
//! [`tracking::substitute_tag`]). While a driver unloads, a pool allocation of its
//! code by another thread than the one running `DriverUnload` is 0xC4/0x61
//! ([`ntmem_kernel::vf::Verifier::allocating_while_unloading`]).
//!
//! Deadlock detection's hooks ([`lock_acquiring`], [`lock_acquired`],
//! [`lock_released`]) are called by the lock routines — spin locks ([`crate::ke`]),
//! kernel, fast and guarded mutexes ([`crate::ke_mutex`], [`crate::ke_wait`]) and
//! executive resources ([`crate::ex_resource`]) — with the calling thread and the
//! driver's whole stack ([`ntmem_kernel::vf::deadlock`]); by the routines that
//! initialize a lock ([`lock_created`], its type for 0x1008); by the cancel spin lock's
//! routines ([`crate::io_cancel`], [`kernel_lock_acquired`]); and as a system thread
//! ends ([`thread_ending`], 0x100A).

use ntmem_kernel::ex::pool::{self, PoolKind, PoolTag};
use ntmem_kernel::vf::{
    tracking, Attempt, Call, CallSite, LockKind, LockRequest, TrackedBlock, VerifierFlags, Violation,
};
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

use crate::except::{self, images};

/// The driver's call into the routine running now: the driver's image and its
/// frames, innermost first — the whole driver stack when `whole`, else only the
/// return address. `None` when no driver image made the call (ntmem's own code: the
/// I/O manager, a scenario step).
fn call_site(cpu: &Cpu<'_>, whole: bool) -> Option<CallSite> {
    // The return address alone needs no CONTEXT: routines run on the driver's kernel
    // stack (12 KB on x86), where every frame counts.
    let ip = ntmem_host::thunk::driver_frame()?.return_address()?;
    let driver = cpu.machine().images().name_at(ip as usize)?;
    let frames = if whole { driver_frames()? } else { vec![(ip, ip - images::lookup(ip)?.base)] };
    Some(CallSite { driver, frames })
}

/// The image name of the driver whose call is running now (`None`: not a driver's).
pub(crate) fn caller_driver(cpu: &Cpu<'_>) -> Option<String> {
    call_site(cpu, false).map(|s| s.driver)
}

/// The address in the driver's code the routine running now returns to (0: no
/// driver made the call) — what Verifier's WDM DRIVER ERRORs name as where the
/// error was seen.
pub(crate) fn caller_address() -> u64 {
    ntmem_host::thunk::driver_frame().and_then(|f| f.return_address()).unwrap_or(0)
}

/// The driver's frames at its import call, walked over the registered images.
#[inline(never)]
fn driver_frames() -> Option<Vec<(u64, u64)>> {
    let context = except::driver_context()?;
    let walked = crate::symbols::walk(except::registers(&context), &images::Memory, |pc| {
        images::lookup(pc).map(|found| (found.base, found.function.map(|(entry, _)| entry)))
    });
    Some(walked.iter().filter_map(|f| images::lookup(f.ip).map(|found| (f.ip, f.ip - found.base))).collect())
}

/// Driver Verifier's check of a synchronisation object the driver initialises at
/// `object` (KEVENT, KSEMAPHORE, KTIMER, KSPIN_LOCK, KMUTEX, ERESOURCE, a fast or
/// guarded mutex): with force IRQL checking, one in paged pool or in a pageable part
/// of a driver image (a `PAGE*` section — a global the driver put there with
/// `#pragma data_seg("PAGEDATA")` — or any after MmPageEntireDriver) is
/// DRIVER_VERIFIER_DETECTED_VIOLATION 0xE1 (the object's address) — seed 000 §12:
/// "Call Usage Verifier … checks … that the structures that must be nonpaged are";
/// research note §3.3; Microsoft's 0xE1 row: "an address that was either invalid or
/// pageable".
///
/// # Errors
/// The bugcheck.
pub(crate) fn check_sync_object(cpu: &Cpu<'_>, object: *const std::ffi::c_void) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if !m.verifier().contains(VerifierFlags::FORCE_IRQL_CHECKING) {
        return Ok(());
    }
    let paged_pool = m.pool().kind_at(crate::context::va_of(cpu, object)) == Some(PoolKind::Paged);
    if paged_pool || m.in_pageable_image(object as u64) {
        return Err(Violation::PageableSyncObject { object: object as u64 }.stop(m));
    }
    Ok(())
}

/// What a driver asks for: the routine, and for pool its tag and pool.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ask {
    /// The routine called.
    pub routine: &'static str,
    /// The pool tag asked for (pool routines).
    pub tag: Option<PoolTag>,
    /// Pool the result is a block of (tracked), if any.
    pub pool: Option<PoolKind>,
    /// Whether the routine is a pool allocator (counted as "Pool Allocations").
    pub pool_routine: bool,
}

impl Ask {
    /// A pool allocation of `tag` from `kind` pool by `routine`.
    pub fn pool(routine: &'static str, tag: PoolTag, kind: Option<PoolKind>) -> Ask {
        Ask { routine, tag: Some(tag), pool: kind, pool_routine: true }
    }

    /// Another resource: a mapping, contiguous memory (not tracked).
    pub fn resource(routine: &'static str) -> Ask {
        Ask { routine, tag: None, pool: None, pool_routine: false }
    }

    /// A block a routine allocates from `pool` for the driver, tagged `tag` (an MDL,
    /// a string's buffer), tracked but not counted as the driver's pool allocation.
    pub fn object(routine: &'static str, tag: PoolTag, pool: PoolKind) -> Ask {
        Ask { routine, tag: Some(tag), pool: Some(pool), pool_routine: false }
    }
}

/// Whether low resources simulation fails the call `ask` describes from `site`, made
/// in the current process (the System process for system threads, `System` to the
/// `/faults` application filter).
fn injects(cpu: &Cpu<'_>, site: &CallSite, ask: Ask) -> bool {
    let m = cpu.machine();
    let process = m.processes().current();
    let call = Call {
        routine: ask.routine,
        tag: ask.tag,
        pool: ask.pool_routine,
        process: process.as_ref().map_or("System", |p| p.name()),
        now_ms: m.now_ms(),
    };
    m.vf().inject_failure(site, call)
}

/// Runs `allocate`, the allocation `ask` describes, for the calling driver under
/// Driver Verifier: low resources simulation may fail it first — the result is then
/// `injected()`, the routine's own way of failing — and a block it returns (`block`)
/// is tracked with the driver's stack.
///
/// # Errors
/// `allocate`'s bugcheck.
pub(crate) fn allocation<T>(
    cpu: &Cpu<'_>,
    ask: Ask,
    injected: impl FnOnce() -> T,
    allocate: impl FnOnce() -> Result<T, BugCheck>,
    block: impl Fn(&T) -> Option<Va>,
) -> Result<T, BugCheck> {
    let vf = cpu.machine().vf();
    let flags = vf.flags();
    // Without Verifier, nothing is looked at: the pool pair stays as cheap as a
    // direct call (BENCHMARKS.md, c_vs_rust).
    if flags.is_empty() {
        return allocate();
    }
    // The whole driver stack for the options that show it (pool tracking's log,
    // the fault injection history) or identify calls by it (systematic).
    let whole = flags.intersects(
        VerifierFlags::POOL_TRACKING
            | VerifierFlags::LOW_RESOURCES_SIMULATION
            | VerifierFlags::SYSTEMATIC_LOW_RESOURCES_SIMULATION,
    );
    let Some(site) = call_site(cpu, whole) else { return allocate() };
    if ask.pool.is_some() {
        // Pool tracking's check during the driver's unload (0xC4/0x61): a DPC runs in
        // whatever thread it interrupted, so it counts as none.
        let thread = (!crate::ke_dispatcher::in_dpc()).then(crate::ps::current_thread);
        if let Some(v) = vf.allocating_while_unloading(&site.driver, thread) {
            let mut b = v.stop(cpu.machine());
            b.driver = Some(site.driver);
            return Err(b);
        }
    }
    if injects(cpu, &site, ask) {
        return Ok(injected());
    }
    let r = allocate()?;
    if let Some(kind) = ask.pool {
        let va = block(&r);
        if va.is_some_and(|va| cpu.machine().pool().special().contains(va.get())) && ask.pool_routine {
            vf.special_pool_allocation();
        }
        let tracked = va.map(|va| {
            let bytes = pool::query_block_size(cpu, va).map_or(0, |b| b.bytes);
            let tag = tracking::substitute_tag(ask.routine).or(ask.tag).unwrap_or(PoolTag(0));
            let block = site.block(ask.routine, va.get(), bytes, tag, kind);
            TrackedBlock { thread: crate::ps::current_thread(), ..block }
        });
        vf.allocated(tracked, ask.pool_routine);
    }
    Ok(r)
}

/// The calling thread and the driver's return addresses at its import call, for
/// deadlock detection: `None` when the option is off or the caller is a driver not
/// verified (Windows' Verifier thunks only a verified driver's imports). A call the
/// driver made as a tail call returns to ntmem's code, not the driver's: it is
/// followed, with no stack. `whole`: the whole driver stack (an acquisition, which
/// the report may show), else only the return address (a release).
fn lock_caller(cpu: &Cpu<'_>, whole: bool) -> Option<(u64, Vec<u64>)> {
    let vf = cpu.machine().vf();
    if !vf.flags().contains(VerifierFlags::DEADLOCK_DETECTION) {
        return None;
    }
    let stack = match call_site(cpu, whole) {
        Some(site) if !vf.verifies(&site.driver) => return None,
        Some(site) => site.frames.iter().map(|f| f.0).collect(),
        None => Vec::new(),
    };
    Some((crate::ps::current_thread(), stack))
}

/// Deadlock detection's check as the driver asks for a lock (before the routine may
/// block): [`ntmem_kernel::vf::Verifier::lock_acquiring`].
///
/// # Errors
/// The violation's stop.
pub(crate) fn lock_acquiring(cpu: &Cpu<'_>, r: LockRequest, attempt: Attempt) -> Result<(), BugCheck> {
    let Some((thread, stack)) = lock_caller(cpu, true) else { return Ok(()) };
    let m = cpu.machine();
    m.vf().lock_acquiring(thread, r, attempt, &stack).map_err(|v| v.stop(m))
}

/// Deadlock detection's record that the driver got the lock.
pub(crate) fn lock_acquired(cpu: &Cpu<'_>, r: LockRequest) {
    if let Some((thread, stack)) = lock_caller(cpu, true) {
        cpu.machine().vf().lock_acquired(thread, r, &stack);
    }
}

/// Deadlock detection's check before `thread` releases the `kind` lock at `lock`
/// (`thread`: the caller, or the thread `ExReleaseResourceForThreadLite` names).
///
/// # Errors
/// The violation's stop.
pub(crate) fn lock_released(cpu: &Cpu<'_>, thread: u64, lock: u64, kind: LockKind) -> Result<(), BugCheck> {
    if lock_caller(cpu, false).is_none() {
        return Ok(());
    }
    let m = cpu.machine();
    m.vf().lock_released(thread, lock, kind).map_err(|v| v.stop(m))
}

/// Deadlock detection's record that the kernel took the lock `r` names for the calling
/// thread — the cancel spin lock `IoCancelIrp` takes, whose holder's cancel routine
/// releases it — whoever the caller (a driver not verified, ntmem's own I/O manager):
/// the release and the locks taken while it is held are then checked against it.
pub(crate) fn kernel_lock_acquired(cpu: &Cpu<'_>, r: LockRequest) {
    let vf = cpu.machine().vf();
    if !vf.flags().contains(VerifierFlags::DEADLOCK_DETECTION) {
        return;
    }
    let stack: Vec<u64> =
        call_site(cpu, true).map(|site| site.frames.iter().map(|f| f.0).collect()).unwrap_or_default();
    vf.lock_acquired(crate::ps::current_thread(), r, &stack);
}

/// Deadlock detection's check before the caller releases the kernel's `kind` lock at
/// `lock` (the cancel spin lock): a verified caller's release is checked as its own
/// locks' are ([`lock_released`]); another's only ends the record, since the kernel may
/// have taken the lock for it ([`kernel_lock_acquired`]).
///
/// # Errors
/// The violation's stop.
pub(crate) fn kernel_lock_released(cpu: &Cpu<'_>, lock: u64, kind: LockKind) -> Result<(), BugCheck> {
    let vf = cpu.machine().vf();
    if !vf.flags().contains(VerifierFlags::DEADLOCK_DETECTION) {
        return Ok(());
    }
    let thread = crate::ps::current_thread();
    if lock_caller(cpu, false).is_some() {
        return lock_released(cpu, thread, lock, kind);
    }
    vf.lock_dropped(thread, lock);
    Ok(())
}

/// Deadlock detection's record that the driver initialized a lock of `kind` at `lock`
/// (its type, for 0x1008).
pub(crate) fn lock_created(cpu: &Cpu<'_>, lock: u64, kind: LockKind) {
    if lock_caller(cpu, false).is_some() {
        cpu.machine().vf().lock_created(lock, kind);
    }
}

/// Deadlock detection's check as the system thread `thread` ends (0x100A: it holds a
/// lock a verified driver took).
///
/// # Errors
/// The violation's stop.
pub(crate) fn thread_ending(cpu: &Cpu<'_>, thread: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    m.vf().thread_ended(thread).map_err(|v| v.stop(m))
}

/// Deadlock detection's check of an ERESOURCE the driver initializes (0x1005: again,
/// without a delete).
///
/// # Errors
/// The violation's stop.
pub(crate) fn resource_initialized(cpu: &Cpu<'_>, lock: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    match lock_caller(cpu, false) {
        Some(_) => m.vf().lock_initialized(lock).map_err(|v| v.stop(m)),
        None => Ok(()),
    }
}

/// Deadlock detection's check of an ERESOURCE the driver deletes (0x100B: held).
///
/// # Errors
/// The violation's stop.
pub(crate) fn resource_deleted(cpu: &Cpu<'_>, lock: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    match lock_caller(cpu, false) {
        Some(_) => m.vf().lock_deleted(lock).map_err(|v| v.stop(m)),
        None => Ok(()),
    }
}
