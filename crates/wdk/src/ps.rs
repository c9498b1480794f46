//! System threads and the thread model (learn.microsoft.com "PsCreateSystemThread",
//! "PsTerminateSystemThread", "KeGetCurrentThread", "PsGetCurrentThread",
//! "KeSetPriorityThread", "PsGetCurrentThreadId", "System Worker Threads").
//!
//! **The thread model.** ntmem runs one thread of driver code at a time, on processor
//! 0, and schedules its threads cooperatively and deterministically
//! ([`crate::sched`], [`ntmem_kernel::ke::sched`]): a thread runs until it waits for
//! something not signalled, ends, or (the requesting thread) reaches a settle point;
//! a blocked thread keeps its kernel stack, IRQL and state and resumes when what it
//! waits for is signalled — by another thread, a DPC, a timer, or a later scenario
//! step. Each thread has its identity (the `PKTHREAD` `KeGetCurrentThread` returns, a
//! mutex's owner), its APC-disable count (critical and guarded regions, kernel mutexes
//! held) and how many mutexes it holds (`ThreadContext`, kept per thread). Three
//! kinds of thread run driver code:
//!
//! * **The requesting thread** — DriverEntry, DriverUnload, dispatch routines and the
//!   DPCs and timers a scenario step brings about run in one thread, whose identity is
//!   a fixed address in the kernel-image region where nothing is mapped (so it cannot
//!   be waited on; [`KernelObject`]: the same in every run). When
//!   DriverEntry, DriverUnload or AddDevice returns (a worker routine on Windows) its
//!   state is checked — APCs still disabled is APC_INDEX_MISMATCH (0x01) — and
//!   forgotten, so the next routine starts afresh.
//! * **System worker threads** — a queued work item (`IoQueueWorkItem`,
//!   `ExQueueWorkItem`) runs at PASSIVE_LEVEL in a worker thread, started at the next
//!   switch point. Up to [`ntmem_kernel::ke::sched::MAX_WORKERS`] exist at once, each
//!   with its own identity token and id (12, 16, …); a work item beyond them waits in
//!   the queue for one to be free. Their identities are fixed addresses too.
//! * **System threads** — `PsCreateSystemThread` allocates a thread object (nonpaged
//!   pool, tag `Thre`, a `DISPATCHER_HEADER` of type 6 at its start) and a kernel stack,
//!   and queues the start: the thread starts at the next switch point, in queue order
//!   with work items.
//!
//! A work item must return at PASSIVE_LEVEL (0xE1), owning no mutex (0x39), with APCs
//! enabled (0x01). A system thread ends when its start routine returns or it calls
//! `PsTerminateSystemThread`; its object is then signalled, its own reference dropped
//! and its kernel stack freed. One that ends owning a kernel mutex is
//! THREAD_TERMINATE_HELD_MUTEX (0x4000008A: the thread, the first mutex it still owns;
//! Microsoft, "Bug Check 0x4000008A"); under Driver Verifier's deadlock detection a
//! lock of any kind still held is 0xC4/0x100A first. A fast or guarded mutex still
//! held at the end is no stop of ntmem's without Verifier.
//!
//! **Where it differs from Windows.** Priorities are recorded, never used: ready
//! threads run in the order they became ready, and a thread readied by another does
//! not preempt it (Windows would switch at once to a higher-priority thread, the
//! cancel sample's real-time polling thread for example). A woken waiter takes its
//! objects when it next runs, not at the signal, so a thread that signals an object
//! and waits on it again before switching can take it first. Between scenario steps
//! the requesting thread is not waiting, so simulated time moves only as far as a step
//! says ([`crate::sched`]). A thread still blocked when its driver unloads is reported
//! ([`crate::sched::threads_at_unload`]); one that would run again by itself is 0xCE.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;

use ntmem_host::Escape;
use ntmem_kernel::ex::pool::{self, PoolTag, PoolType};
use ntmem_kernel::ke::kernel_objects::KernelObject;
use ntmem_kernel::ke::workers::{Work, WorkKind};
use ntmem_kernel::ob::ObjectType;
use ntmem_kernel::{BugCheck, BugCheckCode, Irql};

use crate::context::{checked, host_ptr, kernel, va_of};
use crate::ke_dispatcher::Object;
use crate::ke_wait::THREAD_OBJECT;
use crate::seh::ThreadKind;
use crate::types::NtStatus;

/// The pool tag of thread objects (`Thre`, as Windows tags them).
pub const THREAD_TAG: PoolTag = PoolTag::new(*b"Thre");
/// The size ntmem gives a thread object: a dispatcher header and room; drivers treat
/// `PETHREAD` as opaque.
const THREAD_OBJECT_SIZE: u64 = 0x80;
/// `THREAD_ALL_ACCESS`.
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
/// `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as NtStatus;
/// `STATUS_INSUFFICIENT_RESOURCES`.
const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as NtStatus;
/// `Escape::kind` of `PsTerminateSystemThread`: words 0 the exit status.
const ESCAPE_THREAD_EXIT: u32 = 0xD0;

/// The simulated thread running driver code on this host thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThreadContext {
    /// Its thread object (a system thread's), or 0 for the requesting thread.
    pub thread: u64,
    /// The slot of the system worker thread it is, running a work item.
    pub worker: Option<u8>,
    /// Its `KernelApcDisable` count: critical and guarded regions, kernel mutexes.
    pub apc_disable: u32,
    /// The kernel, fast and guarded mutexes it owns.
    pub mutexes_held: u32,
}

thread_local! {
    static CURRENT: Cell<ThreadContext> = const {
        Cell::new(ThreadContext { thread: 0, worker: None, apc_disable: 0, mutexes_held: 0 })
    };
}

/// The running simulated thread's state.
pub(crate) fn current() -> ThreadContext {
    CURRENT.with(Cell::get)
}

/// Sets the state a new thread starts with (on its own host thread).
pub(crate) fn set_current(t: ThreadContext) {
    CURRENT.with(|c| c.set(t));
    OWNED_MUTEXES.with(|m| m.borrow_mut().clear());
}

thread_local! {
    /// The kernel mutexes the running thread owns, in the order it took them.
    static OWNED_MUTEXES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The running thread became the owner of the KMUTEX at `mutex`.
pub(crate) fn mutex_owned(mutex: u64) {
    OWNED_MUTEXES.with(|m| m.borrow_mut().push(mutex));
}

/// The running thread gave up its ownership of the KMUTEX at `mutex`.
pub(crate) fn mutex_given_up(mutex: u64) {
    OWNED_MUTEXES.with(|m| {
        let mut owned = m.borrow_mut();
        if let Some(at) = owned.iter().rposition(|&o| o == mutex) {
            owned.remove(at);
        }
    });
}

/// The identity of the requesting thread (`None`) or worker slot `slot`: a fixed
/// address of the machine's ([`KernelObject`]).
fn token(worker: Option<u8>) -> u64 {
    let object = worker.map_or(KernelObject::RequestingThread, KernelObject::WorkerThread);
    crate::context::with_machine(|m| m.kernel_object(object)).unwrap_or(0)
}

/// Changes the running thread's state.
pub(crate) fn update(f: impl FnOnce(&mut ThreadContext)) {
    CURRENT.with(|c| {
        let mut t = c.get();
        f(&mut t);
        c.set(t);
    });
}

/// The running thread as `KeGetCurrentThread` answers (a `PKTHREAD`).
pub(crate) fn current_thread() -> u64 {
    let t = current();
    match (t.thread, t.worker) {
        (0, worker) => token(worker),
        (thread, _) => thread,
    }
}

/// `CombinedApcDisable` as Windows keeps it for `count` disables: KernelApcDisable
/// counts down from 0 (a 16-bit field; special APCs are not modelled).
fn combined_apc_disable(count: u32) -> u64 {
    u64::from((count as u16).wrapping_neg())
}

/// Whether normal kernel APCs are disabled for the running thread at `irql`: at
/// APC_LEVEL or above, or inside a critical or guarded region or holding a kernel
/// mutex (`KeAreApcsDisabled`).
pub(crate) fn apcs_disabled(irql: ntmem_kernel::Irql) -> bool {
    irql >= ntmem_kernel::Irql::APC || current().apc_disable > 0
}

/// The running thread's `CombinedApcDisable`, as a Driver Verifier stop reports it.
pub(crate) fn apc_disable_count() -> u64 {
    combined_apc_disable(current().apc_disable)
}

/// Where a worker routine (`DriverEntry`, `DriverUnload`, `AddDevice`, a work item)
/// returns: APCs still disabled is APC_INDEX_MISMATCH (0x01: routine, 0,
/// CombinedApcDisable, 1 worker routine). The requesting thread's state is then
/// forgotten: the next routine runs in a fresh one.
///
/// # Errors
/// The stop.
pub fn check_worker_return(cpu: &ntmem_kernel::Cpu<'_>, routine: u64) -> Result<(), BugCheck> {
    let t = CURRENT.with(|c| c.replace(ThreadContext::default()));
    OWNED_MUTEXES.with(|m| m.borrow_mut().clear());
    if t.thread == 0 && t.apc_disable > 0 {
        let p = [routine, 0, combined_apc_disable(t.apc_disable), 1];
        return Err(cpu.machine().bugcheck(BugCheckCode::APC_INDEX_MISMATCH, p));
    }
    Ok(())
}

/// Calls the driver's routine of `work`.
///
/// # Safety
/// `work.routine` is the driver routine its queuing routine recorded.
unsafe fn call(work: Work) {
    let (a1, a2) = (work.argument1 as *mut c_void, work.argument2 as *mut c_void);
    if work.kind == WorkKind::PowerIrp {
        crate::io_stack::deliver(a1, a2);
    } else if work.kind == WorkKind::IoWorkItem {
        type IoWorker = unsafe extern "win64" fn(*mut c_void, *mut c_void);
        // SAFETY: the driver's PIO_WORKITEM_ROUTINE (DeviceObject, Context).
        let f = unsafe { std::mem::transmute::<usize, IoWorker>(work.routine as usize) };
        // SAFETY: called as Windows calls it.
        unsafe { f(a1, a2) }
    } else {
        type Start = unsafe extern "win64" fn(*mut c_void);
        // SAFETY: the driver's PKSTART_ROUTINE / PWORKER_THREAD_ROUTINE (one argument).
        let f = unsafe { std::mem::transmute::<usize, Start>(work.routine as usize) };
        // SAFETY: called as Windows calls it.
        unsafe { f(a1) }
    }
}

/// Runs `work` in the thread this host thread runs (at PASSIVE_LEVEL, in its own
/// thread state) and checks how it returned; `None` when the thread was ended by the
/// machine meanwhile ([`crate::sched::end_threads`]).
pub(crate) fn run_body(work: Work) -> Option<()> {
    let is_thread = work.kind == WorkKind::ThreadStart;
    kernel(|cpu| {
        if work.kind != WorkKind::PowerIrp && !ntmem_host::exception::is_image_code(work.routine as usize) {
            // A routine that is no loaded image's code (its driver unloaded with the work
            // queued): the instruction fetch Windows' worker faults on (0xCE: address,
            // 8 execute, the same address, 0). ntmem stops before the jump.
            let p = [work.routine, 8, work.routine, 0];
            return Err(cpu.machine().bugcheck(BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, p));
        }
        Ok(())
    });
    let outcome = crate::seh::run_as(ThreadKind::System, || {
        ntmem_host::thunk::preserving_capture(|| {
            // SAFETY: the routine its queuing routine recorded (checked image code above).
            ntmem_host::call_guarded(None, None, || unsafe { call(work) })
        })
    });
    let status = match outcome {
        Ok(()) => 0,
        Err(Escape { kind: ESCAPE_THREAD_EXIT, words }) => words[0] as u32 as NtStatus,
        Err(Escape { kind: crate::sched::ESCAPE_THREAD_KILLED, .. }) => return None,
        Err(other) => ntmem_host::escape(other),
    };
    let ended = current();
    kernel(|cpu| {
        let irql = cpu.irql();
        if irql != Irql::PASSIVE && !is_thread {
            let p = [work.routine, u64::from(irql.0), work.argument1, work.item];
            return Err(cpu.machine().bugcheck(BugCheckCode::WORKER_THREAD_RETURNED_AT_BAD_IRQL, p));
        }
        if ended.mutexes_held > 0 && !is_thread {
            let p = [work.routine, work.argument1, work.item, 0];
            return Err(cpu.machine().bugcheck(BugCheckCode::SYSTEM_EXIT_OWNED_MUTEX, p));
        }
        if ended.apc_disable > 0 && !is_thread {
            let p = [work.routine, 0, combined_apc_disable(ended.apc_disable), 1];
            return Err(cpu.machine().bugcheck(BugCheckCode::APC_INDEX_MISMATCH, p));
        }
        if is_thread {
            crate::vf::thread_ending(cpu, work.item)?;
            if let Some(mutex) = OWNED_MUTEXES.with(|m| m.borrow().first().copied()) {
                let p = [work.item, mutex, 0, 0];
                return Err(cpu.machine().bugcheck(BugCheckCode::THREAD_TERMINATE_HELD_MUTEX, p));
            }
            end_thread(cpu, work.item, status)?;
        }
        Ok(())
    });
    Some(())
}

/// A thread's end: its object signalled, its own reference dropped (its kernel stack
/// is freed once it has left it, [`crate::sched`]).
fn end_thread(cpu: &ntmem_kernel::Cpu<'_>, thread: u64, status: NtStatus) -> Result<(), BugCheck> {
    cpu.machine().workers().end_thread(thread, status);
    Object::of(cpu, thread as *mut c_void, THREAD_OBJECT_SIZE)?.set_signal_state(1);
    crate::ob::dereference(cpu, thread)
}

/// Frees a thread object whose last reference went (`crate::ob`).
pub(crate) fn delete_thread(cpu: &ntmem_kernel::Cpu<'_>, thread: u64) -> Result<(), BugCheck> {
    cpu.machine().workers().delete_thread(thread);
    pool::free(cpu, va_of(cpu, thread as *const c_void), Some(THREAD_TAG))
}

/// `PsCreateSystemThread(ThreadHandle, DesiredAccess, ObjectAttributes, ProcessHandle,
/// ClientId, StartRoutine, StartContext)`: a thread object and a kernel handle to it;
/// the thread is ready and first runs at the next switch point (see the module docs).
/// STATUS_INSUFFICIENT_RESOURCES when the pool, or the system PTEs and pages of its
/// kernel stack, are out. PASSIVE_LEVEL only (pageable code: 0x0A above).
///
/// # Safety
/// `handle` is writable; `client_id` NULL or a writable CLIENT_ID; `start` the
/// driver's PKSTART_ROUTINE.
pub unsafe extern "win64" fn PsCreateSystemThread(
    handle: *mut u64,
    access: u32,
    _attributes: *mut c_void,
    _process: *mut c_void,
    client_id: *mut u64,
    start: *mut c_void,
    context: *mut c_void,
) -> NtStatus {
    kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, PsCreateSystemThread as *const () as u64)?;
        let out = checked(cpu, handle.cast(), 8)?;
        if !client_id.is_null() {
            checked(cpu, client_id.cast(), 16)?;
        }
        let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, THREAD_OBJECT_SIZE, THREAD_TAG)? else {
            return Ok(STATUS_INSUFFICIENT_RESOURCES);
        };
        let Some(stack) = crate::sched::kernel_stack(cpu) else {
            pool::free(cpu, block, Some(THREAD_TAG))?;
            return Ok(STATUS_INSUFFICIENT_RESOURCES);
        };
        let p = host_ptr(cpu, Some(block));
        // SAFETY: the block just allocated, THREAD_OBJECT_SIZE bytes.
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0, THREAD_OBJECT_SIZE as usize) };
        let t = Object::of(cpu, p, THREAD_OBJECT_SIZE)?;
        t.initialize(THREAD_OBJECT, THREAD_OBJECT_SIZE, 0);
        let thread = p as u64;
        let m = cpu.machine();
        m.objects().insert(thread, ObjectType::Thread, 1);
        let h = m.objects().open(thread, ObjectType::Thread, if access == 0 { THREAD_ALL_ACCESS } else { access });
        m.workers().create_thread(thread);
        let work = Work {
            kind: WorkKind::ThreadStart,
            routine: start as u64,
            argument1: context as u64,
            argument2: 0,
            item: thread,
        };
        m.scheduler().keep_stack(thread, stack);
        m.workers().queue(work);
        // SAFETY: checked writable above.
        unsafe { out.cast::<u64>().write_unaligned(h) };
        if !client_id.is_null() {
            // SAFETY: checked writable above: UniqueProcess (System, 4), UniqueThread.
            unsafe {
                client_id.write_unaligned(SYSTEM_PROCESS_ID);
                client_id.add(1).write_unaligned(thread_id(thread));
            }
        }
        Ok(0)
    })
}

/// The System process's id, which system threads belong to.
const SYSTEM_PROCESS_ID: u64 = 4;

/// A thread's id: derived from its object's address, a multiple of 4 as Windows' are.
fn thread_id(thread: u64) -> u64 {
    (thread >> 4) & 0xFFFF_FFFC
}

/// `PsTerminateSystemThread(ExitStatus)`: ends the calling system thread; does not
/// return. Called from a thread that is not a system thread (the requesting thread, a
/// work item): STATUS_INVALID_PARAMETER, as Windows returns.
pub extern "win64" fn PsTerminateSystemThread(status: NtStatus) -> NtStatus {
    let t = current();
    if t.thread == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    kernel(|cpu| ntmem_kernel::trap::pageable_code(cpu, PsTerminateSystemThread as *const () as u64));
    ntmem_host::escape(Escape { kind: ESCAPE_THREAD_EXIT, words: [status as u32 as u64, t.thread, 0, 0, 0, 0, 0] })
}

/// `KeGetCurrentThread`: the running thread (see the module docs).
pub extern "win64" fn KeGetCurrentThread() -> *mut c_void {
    current_thread() as *mut c_void
}

/// `PsGetCurrentThread`: as `KeGetCurrentThread` (the `PETHREAD` begins with the `KTHREAD`).
pub extern "win64" fn PsGetCurrentThread() -> *mut c_void {
    current_thread() as *mut c_void
}

/// `PsGetCurrentThreadId`: a system thread's id; 8 for the requesting thread, 12, 16,
/// … for the worker threads.
pub extern "win64" fn PsGetCurrentThreadId() -> u64 {
    let t = current();
    match (t.thread, t.worker) {
        (0, None) => 8,
        (0, Some(slot)) => 12 + 4 * u64::from(slot),
        (thread, _) => thread_id(thread),
    }
}

/// `PsGetCurrentProcessId`: the id of the process the thread runs in — the caller's
/// while a driver handles a user request in its context, else the System process (4):
/// DriverEntry, work items and system threads run there.
pub extern "win64" fn PsGetCurrentProcessId() -> u64 {
    kernel(|cpu| Ok(cpu.machine().processes().current().map_or(SYSTEM_PROCESS_ID, |p| p.id())))
}

/// The System process's object: what `PsInitialSystemProcess` holds and
/// `IoGetCurrentProcess` returns in the System process. Opaque to drivers, as every
/// `EPROCESS`; ntmem's user processes have theirs in nonpaged pool
/// ([`ntmem_kernel::mm::process::Process::object`]).
#[derive(Debug)]
#[repr(C, align(16))]
pub struct ProcessBlock([u8; 0x80]);

/// The System process's `EPROCESS`.
pub static SYSTEM_PROCESS: ProcessBlock = ProcessBlock([0; 0x80]);

/// `IoGetCurrentProcess` (`PsGetCurrentProcess` in the WDK's headers): the process the
/// thread runs in — the caller's while a driver serves its request, else the System
/// process ([`SYSTEM_PROCESS`]).
pub extern "win64" fn IoGetCurrentProcess() -> *mut c_void {
    kernel(|cpu| {
        let current = cpu.machine().processes().current();
        Ok(current.map_or(std::ptr::addr_of!(SYSTEM_PROCESS) as *mut c_void, |p| host_ptr(cpu, Some(p.object()))))
    })
}

/// `PsGetProcessId(Process)`: the id of the process whose object `process` is: 4 for
/// the System process. A pointer that is no process's object gives 0 (Windows reads
/// whatever lies at `UniqueProcessId`'s offset).
pub extern "win64" fn PsGetProcessId(process: *mut c_void) -> u64 {
    if process.cast_const() == std::ptr::addr_of!(SYSTEM_PROCESS).cast() {
        return SYSTEM_PROCESS_ID;
    }
    kernel(|cpu| {
        let found = cpu.machine().processes().by_object(va_of(cpu, process));
        Ok(found.map_or(0, |p| p.id()))
    })
}

/// `PsGetVersion(MajorVersion, MinorVersion, BuildNumber, CSDVersion)` (wdm.h;
/// obsolete from Windows XP on in favour of `RtlGetVersion`, which answers the same):
/// the simulated edition's version numbers into each ULONG given, and its service
/// pack ("Service Pack 2", or empty) into the caller's `CSDVersion` buffer as
/// `RtlCopyUnicodeString` copies, truncated to its `MaximumLength`. Every argument is
/// optional. FALSE: a free build, not a checked one. PASSIVE_LEVEL (pageable, as
/// `RtlGetVersion`).
///
/// # Safety
/// Each pointer is NULL or the caller's (a bad one stops as a touch of it would).
pub unsafe extern "win64" fn PsGetVersion(
    major: *mut u32,
    minor: *mut u32,
    build: *mut u32,
    csd_version: *mut crate::types::UnicodeString,
) -> u8 {
    let v = kernel(|cpu| {
        ntmem_kernel::trap::pageable_code(cpu, PsGetVersion as *const () as u64)?;
        for p in [major, minor, build].into_iter().filter(|p| !p.is_null()) {
            checked(cpu, p.cast(), 4)?;
        }
        if !csd_version.is_null() {
            // The UNICODE_STRING and the whole of its buffer, as a touch would find them.
            let header = checked(cpu, csd_version.cast(), 16)?;
            // SAFETY: 16 mapped bytes (checked): MaximumLength at 2, Buffer at 8.
            let (maximum, buffer) = unsafe {
                (header.add(2).cast::<u16>().read_unaligned(), header.add(8).cast::<*mut c_void>().read_unaligned())
            };
            if maximum > 0 {
                checked(cpu, buffer, u64::from(maximum))?;
            }
        }
        Ok(ntmem_kernel::rtl::version::OsVersion::of(cpu.machine().profile().edition))
    });
    for (p, value) in [(major, v.major), (minor, v.minor), (build, v.build)] {
        if !p.is_null() {
            // SAFETY: four mapped bytes (checked above), written unaligned.
            unsafe { p.write_unaligned(value) };
        }
    }
    if !csd_version.is_null() {
        let mut csd = crate::types::OwnedUnicode::new(&v.csd);
        let source = csd.as_unicode_string();
        // SAFETY: the caller's UNICODE_STRING (checked by the copy); `source` lives
        // for the call.
        unsafe { crate::rtl::RtlCopyUnicodeString(csd_version, &source) };
    }
    0
}

/// `PsIsSystemThread(Thread)`: TRUE for a thread `PsCreateSystemThread` made, and the
/// worker threads.
///
/// # Safety
/// `thread` is a `PETHREAD`.
pub unsafe extern "win64" fn PsIsSystemThread(thread: *mut c_void) -> u8 {
    let t = thread as u64;
    kernel(|cpu| {
        let m = cpu.machine();
        let worker = matches!(m.kernel_object_at(t), Some(KernelObject::WorkerThread(_)));
        Ok(u8::from(worker || m.workers().thread(t).is_some()))
    })
}

/// `KeSetPriorityThread(Thread, Priority)`: records the priority; the previous one
/// (8 for a thread ntmem does not track). Priorities do not change the order threads
/// run in.
///
/// # Safety
/// `thread` is a `PKTHREAD`.
pub unsafe extern "win64" fn KeSetPriorityThread(thread: *mut c_void, priority: i32) -> i32 {
    kernel(|cpu| Ok(cpu.machine().workers().set_priority(thread as u64, priority).unwrap_or(8)))
}
