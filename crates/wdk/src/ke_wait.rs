//! Waits on dispatcher objects (learn.microsoft.com "KeWaitForSingleObject",
//! "KeWaitForMultipleObjects", "KeDelayExecutionThread", "KWAIT_BLOCK", bug check
//! 0xC "MAXIMUM_WAIT_OBJECTS_EXCEEDED").
//!
//! A wait is satisfied at once when its objects are signalled, and satisfying it
//! changes them as Windows does: a synchronization event or timer resets, a
//! semaphore's count drops by one, a mutex (`KMUTEX`) becomes the waiter's — a
//! thread may wait on a mutex it owns, which counts one more recursion. A thread
//! object is signalled once the thread has ended and stays so. Otherwise queued DPCs
//! run and the thread blocks ([`crate::sched`]): other threads run — work items and
//! new system threads start, blocked threads whose objects were signalled resume —
//! and when every thread waits, simulated time moves to the next timer or wait
//! timeout (STATUS_TIMEOUT). A blocked thread looks at its objects again each time
//! it gets to run; a later scenario step may be what signals them. A wait with no
//! timeout that nothing can ever satisfy — every thread waits, the requesting thread
//! too, and no timer is set — stops the run ([`ntmem_kernel::Halt::WaitNeverEnds`],
//! naming each waiting thread and the first object not signalled) — Windows would
//! wait forever.
//!
//! **IRQL.** Waiting with a nonzero timeout at DISPATCH_LEVEL or above is
//! DRIVER_VERIFIER_DETECTED_VIOLATION (0xC4: 0x3B, IRQL, object, timeout) under Driver
//! Verifier's IRQL checking, else IRQL_NOT_LESS_OR_EQUAL (0x0A: object, IRQL, 0, 0);
//! a zero timeout is a poll, allowed at DISPATCH_LEVEL.
//!
//! **KeWaitForMultipleObjects.** More than MAXIMUM_WAIT_OBJECTS (64) objects, or more
//! than THREAD_WAIT_OBJECTS (3) with no `WaitBlockArray`, is bug check 0xC. The
//! `WaitBlockArray` (`Count` `KWAIT_BLOCK`s of 0x30 bytes) must be mapped; ntmem does
//! not write it. WaitAny returns STATUS_WAIT_0 + the index of the first signalled
//! object (in array order, as Windows tests them); WaitAll returns STATUS_SUCCESS once
//! all are signalled together and satisfies them all.
//!
//! **Where it differs.** No alertable waits and no APCs (`Alertable` is ignored);
//! abandoned mutexes do not occur (no thread ends while owning one). Under Driver
//! Verifier's deadlock detection a wait on a mutex (a wait on all of several
//! objects, or on one, with a timeout other than zero) is checked against the lock
//! hierarchy before it may block, and the mutexes a wait takes are recorded
//! ([`crate::vf::lock_acquiring`]).

use std::ffi::c_void;

use ntmem_kernel::ke::sched::{WaitOn, Waiting};
use ntmem_kernel::vf::{Attempt, LockKind, LockRequest, VerifierFlags, Violation};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql};

use crate::context::{checked, kernel, mapped_prefix};
use crate::ke_dispatcher::{
    due_time, now, run_queued_dpcs, Object, HEADER_SIZE, SEMAPHORE_OBJECT, STATUS_TIMEOUT, SYNCHRONIZATION_EVENT,
    TIMER_SYNCHRONIZATION_OBJECT,
};
use crate::types::NtStatus;

/// `DISPATCHER_HEADER.Type` of a mutex (`MutantObject`).
pub(crate) const MUTANT_OBJECT: u8 = 2;
/// `DISPATCHER_HEADER.Type` of a thread (`ThreadObject`).
pub(crate) const THREAD_OBJECT: u8 = 6;
/// `sizeof(KMUTANT)` on x64.
pub(crate) const KMUTANT_SIZE: u64 = 0x38;
/// `KMUTANT.OwnerThread`.
pub(crate) const MUTANT_OWNER: usize = 0x28;
/// `KMUTANT.Abandoned`.
pub(crate) const MUTANT_ABANDONED: usize = 0x30;
/// `KMUTANT.ApcDisable`: 1 for a kernel mutex (KeInitializeMutex).
pub(crate) const MUTANT_APC_DISABLE: usize = 0x31;

/// `STATUS_MUTANT_LIMIT_EXCEEDED`: a mutex acquired recursively MINLONG times.
const STATUS_MUTANT_LIMIT_EXCEEDED: NtStatus = 0xC000_0191_u32 as NtStatus;
/// `MAXIMUM_WAIT_OBJECTS`.
pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;
/// `THREAD_WAIT_OBJECTS`: the wait blocks a thread has built in.
pub const THREAD_WAIT_OBJECTS: u32 = 3;
/// `sizeof(KWAIT_BLOCK)` on x64.
const KWAIT_BLOCK_SIZE: u64 = 0x30;

/// The dispatcher object at `p`, checked mapped for its type's whole size.
fn object_of(cpu: &Cpu<'_>, p: *mut c_void) -> Result<Object, BugCheck> {
    let o = Object::of(cpu, p, HEADER_SIZE)?;
    match o.kind() {
        MUTANT_OBJECT => Object::of(cpu, p, KMUTANT_SIZE),
        SEMAPHORE_OBJECT => Object::of(cpu, p, 0x20),
        _ => Ok(o),
    }
}

/// Whether a wait by `thread` on `o` would be satisfied now.
pub(crate) fn signalled(o: &Object, thread: u64) -> bool {
    match o.kind() {
        MUTANT_OBJECT => o.signal_state() > 0 || o.u64_at(MUTANT_OWNER) == thread,
        _ => o.signal_state() > 0,
    }
}

/// Satisfies `thread`'s wait on the signalled `o`: the change the wait makes to it.
/// `Err` is the status to raise (a mutex's recursion count at its limit).
pub(crate) fn take(o: &Object, thread: u64) -> Result<(), NtStatus> {
    let state = o.signal_state();
    match o.kind() {
        SYNCHRONIZATION_EVENT | TIMER_SYNCHRONIZATION_OBJECT => o.set_signal_state(0),
        SEMAPHORE_OBJECT => o.set_signal_state(state - 1),
        MUTANT_OBJECT => {
            if state == i32::MIN {
                return Err(STATUS_MUTANT_LIMIT_EXCEEDED);
            }
            o.set_signal_state(state - 1);
            if state == 1 {
                o.set_u64(MUTANT_OWNER, thread);
                o.set_u8(MUTANT_ABANDONED, 0);
                let apc = u32::from(o.u8_at(MUTANT_APC_DISABLE) != 0);
                crate::ps::update(|t| {
                    t.apc_disable = t.apc_disable.saturating_add(apc);
                    t.mutexes_held = t.mutexes_held.saturating_add(1);
                });
                crate::ps::mutex_owned(o.0 as u64);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `WAIT_TYPE`: how a wait on several objects is satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitType {
    /// `WaitAll` (0): when every object is signalled, all of them taken.
    All,
    /// `WaitAny` (1): when one is, the first signalled in array order taken.
    Any,
}

/// One look at a wait by `thread` on `objects`: `None` while it cannot be satisfied;
/// else the objects taken and the status (STATUS_WAIT_0 + index for WaitAny,
/// STATUS_SUCCESS for WaitAll), or the status to raise.
pub(crate) fn satisfy(objects: &[Object], thread: u64, wait: WaitType) -> Option<Result<NtStatus, NtStatus>> {
    match wait {
        WaitType::All => objects
            .iter()
            .all(|o| signalled(o, thread))
            .then(|| objects.iter().try_for_each(|o| take(o, thread)).map(|()| 0)),
        WaitType::Any => {
            let i = objects.iter().position(|o| signalled(o, thread))?;
            Some(take(&objects[i], thread).map(|()| i as NtStatus))
        }
    }
}

/// Whether a wait by `thread` on `objects` would be satisfied now, changing nothing:
/// what the scheduler asks of a blocked thread's wait ([`could_run`]), which must agree
/// with [`satisfy`].
pub(crate) fn would_satisfy(objects: &[Object], thread: u64, wait: WaitType) -> bool {
    match wait {
        WaitType::All => objects.iter().all(|o| signalled(o, thread)),
        WaitType::Any => objects.iter().any(|o| signalled(o, thread)),
    }
}

/// What one look at a wait's objects found.
pub(crate) enum Poll<T> {
    /// Satisfied, with this outcome.
    Done(T),
    /// Not yet: the first object not signalled, and its type (for the report).
    Blocked(u64, u8),
}

enum Step<T> {
    Done(T),
    TimedOut,
    Blocked(u64, u8),
}

/// The size of dispatcher object `p` a look at its state reads.
fn object_size(p: *mut u8) -> u64 {
    // SAFETY: called only after the header was found mapped.
    match unsafe { p.read_unaligned() } {
        MUTANT_OBJECT => KMUTANT_SIZE,
        SEMAPHORE_OBJECT => 0x20,
        _ => HEADER_SIZE,
    }
}

/// Whether `len` bytes at `p` are mapped system memory (looked at without the stop a
/// touch of unmapped memory is).
fn mapped(cpu: &Cpu<'_>, p: u64, len: u64) -> bool {
    mapped_prefix(cpu, p as *mut c_void, len) == len
}

/// Whether the wait `w` of a blocked thread could be satisfied now (or has timed out):
/// its objects looked at from any thread, changing nothing. An object no longer mapped
/// counts as could-be: the waiter finds out when it looks itself.
pub(crate) fn could_run(cpu: &Cpu<'_>, w: &Waiting) -> bool {
    if w.deadline.is_some_and(|d| d <= now(cpu)) {
        return true;
    }
    let unmapped = |&p: &u64| !mapped(cpu, p, HEADER_SIZE) || !mapped(cpu, p, object_size(p as *mut u8));
    match &w.on {
        WaitOn::Time => false,
        WaitOn::Objects { objects, .. } if objects.iter().any(unmapped) => true,
        WaitOn::Objects { objects, all } => {
            let objects: Vec<Object> = objects.iter().map(|&p| Object(p as *mut u8)).collect();
            would_satisfy(&objects, w.thread, if *all { WaitType::All } else { WaitType::Any })
        }
        WaitOn::FastMutex(p) => !mapped(cpu, *p, 4) || Object(*p as *mut u8).i32_at(0) & 1 == 1,
        WaitOn::Rundown(r) => crate::ex_rundown::drained(cpu, *r),
        WaitOn::PushLock { lock, exclusive } => crate::ex_push_lock::would_grant(cpu, *lock, *exclusive),
        WaitOn::Irp(irp) => cpu.machine().io().irps_done(ntmem_kernel::io::Irp(ntmem_machine::Va::new(*irp))),
        WaitOn::Resource { resource, exclusive } => {
            cpu.machine().resources().would_grant(*resource, w.thread, *exclusive)
        }
    }
}

/// The IRQL rule of a wait (see the module docs).
pub(crate) fn check_irql(cpu: &Cpu<'_>, object: u64, timeout: Option<i64>) -> Result<(), BugCheck> {
    if cpu.irql() >= Irql::DISPATCH && timeout != Some(0) {
        let m = cpu.machine();
        let irql = cpu.irql();
        return Err(if m.verifier().contains(VerifierFlags::FORCE_IRQL_CHECKING) {
            let timeout = timeout.map_or(0, |t| t as u64);
            Violation::WaitAtDispatch { irql, object, timeout }.stop(m)
        } else {
            m.bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [object, u64::from(irql.0), 0, 0])
        });
    }
    Ok(())
}

/// Waits as the module docs say until `poll` answers `Done` (`Some`), or until
/// `deadline` (interrupt time) passes (`None`); `poll_only` (a zero timeout) looks
/// once. `routine` names the waiting routine in a report; `on` says what could
/// satisfy the wait, for the scheduler to look at while the thread is blocked (it
/// must agree with `poll`).
pub(crate) fn wait_until<T>(
    routine: &'static str,
    deadline: Option<u64>,
    poll_only: bool,
    on: &WaitOn,
    mut poll: impl FnMut(&Cpu<'_>) -> Result<Poll<T>, BugCheck>,
) -> Option<T> {
    let thread = crate::ps::current_thread();
    loop {
        let step = kernel(|cpu| {
            let (object, object_type) = match poll(cpu)? {
                Poll::Done(t) => return Ok(Step::Done(t)),
                Poll::Blocked(object, object_type) => (object, object_type),
            };
            if poll_only || deadline.is_some_and(|d| d <= now(cpu)) {
                return Ok(Step::TimedOut);
            }
            Ok(Step::Blocked(object, object_type))
        });
        let (object, object_type) = match step {
            Step::Done(t) => return Some(t),
            Step::TimedOut => return None,
            Step::Blocked(object, object_type) => (object, object_type),
        };
        run_queued_dpcs();
        let resume_ip = ntmem_host::thunk::driver_frame().and_then(|c| c.return_address()).unwrap_or(0);
        let waiting = Waiting { routine, thread, on: on.clone(), object, object_type, deadline, resume_ip };
        crate::sched::block(waiting);
    }
}

/// A kernel mutex waited on, as deadlock detection tracks it.
fn mutex_request(o: &Object) -> LockRequest {
    LockRequest::exclusive(o.0 as u64, LockKind::Mutex)
}

/// Whether a wait with `timeout` may block: a zero timeout is a try.
fn attempt(timeout: Option<i64>) -> Attempt {
    if timeout == Some(0) {
        Attempt::Try
    } else {
        Attempt::Wait
    }
}

/// The status a satisfied wait returns, or the raise it ends in.
fn finish(outcome: Option<Result<NtStatus, NtStatus>>) -> NtStatus {
    match outcome {
        None => STATUS_TIMEOUT,
        Some(Ok(status)) => status,
        Some(Err(raise)) => crate::seh::raise_status(raise),
    }
}

/// `KeWaitForSingleObject(Object, WaitReason, WaitMode, Alertable, Timeout)`: see the
/// module docs. STATUS_SUCCESS, or STATUS_TIMEOUT.
///
/// # Safety
/// `object` is a dispatcher object (KEVENT, KSEMAPHORE, KTIMER, KMUTEX, a thread);
/// `timeout` is NULL or a LARGE_INTEGER.
pub unsafe extern "win64" fn KeWaitForSingleObject(
    object: *mut c_void,
    _reason: u32,
    _mode: i8,
    _alertable: u8,
    timeout: *const i64,
) -> NtStatus {
    // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
    let timeout = (!timeout.is_null()).then(|| unsafe { timeout.read_unaligned() });
    let deadline = kernel(|cpu| {
        let o = object_of(cpu, object)?;
        check_irql(cpu, object as u64, timeout)?;
        if o.kind() == MUTANT_OBJECT {
            crate::vf::lock_acquiring(cpu, mutex_request(&o), attempt(timeout))?;
        }
        Ok(timeout.map(|t| due_time(cpu, t)))
    });
    let thread = crate::ps::current_thread();
    let on = WaitOn::Objects { objects: vec![object as u64], all: false };
    let outcome = wait_until("KeWaitForSingleObject", deadline, timeout == Some(0), &on, |cpu| {
        let o = object_of(cpu, object)?;
        Ok(if signalled(&o, thread) {
            let taken = take(&o, thread);
            if taken.is_ok() && o.kind() == MUTANT_OBJECT {
                crate::vf::lock_acquired(cpu, mutex_request(&o));
            }
            Poll::Done(taken.map(|()| 0))
        } else {
            Poll::Blocked(o.0 as u64, o.kind())
        })
    });
    finish(outcome)
}

/// `KeWaitForMultipleObjects(Count, Object[], WaitType, WaitReason, WaitMode, Alertable,
/// Timeout, WaitBlockArray)`: WaitAll (0) or WaitAny (1); see the module docs.
///
/// # Safety
/// `objects` holds `count` dispatcher objects; `timeout` is NULL or a LARGE_INTEGER;
/// `wait_blocks` is NULL or `count` KWAIT_BLOCKs.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "win64" fn KeWaitForMultipleObjects(
    count: u32,
    objects: *mut *mut c_void,
    wait_type: u32,
    _reason: u32,
    _mode: i8,
    _alertable: u8,
    timeout: *const i64,
    wait_blocks: *mut c_void,
) -> NtStatus {
    // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
    let timeout = (!timeout.is_null()).then(|| unsafe { timeout.read_unaligned() });
    // A fixed array, not a `Vec`: a wait may be left through the escape hatch (a stop,
    // the end of the run), which drops nothing on the way.
    let mut list = [std::ptr::null_mut::<c_void>(); MAXIMUM_WAIT_OBJECTS as usize];
    let deadline = kernel(|cpu| {
        let limit = if wait_blocks.is_null() { THREAD_WAIT_OBJECTS } else { MAXIMUM_WAIT_OBJECTS };
        if count > limit {
            return Err(cpu.machine().bugcheck(BugCheckCode::MAXIMUM_WAIT_OBJECTS_EXCEEDED, [0; 4]));
        }
        if count > 0 {
            let array = checked(cpu, objects.cast(), u64::from(count) * 8)?.cast::<*mut c_void>();
            if !wait_blocks.is_null() {
                checked(cpu, wait_blocks, u64::from(count) * KWAIT_BLOCK_SIZE)?;
            }
            for (i, slot) in list.iter_mut().enumerate().take(count as usize) {
                // SAFETY: inside the checked array of `count` pointers.
                let p = unsafe { array.add(i).read_unaligned() };
                object_of(cpu, p)?;
                *slot = p;
            }
        }
        let first = if count > 0 { list[0] as u64 } else { 0 };
        check_irql(cpu, first, timeout)?;
        if wait_type == 0 {
            for &p in &list[..count as usize] {
                let o = object_of(cpu, p)?;
                if o.kind() == MUTANT_OBJECT {
                    crate::vf::lock_acquiring(cpu, mutex_request(&o), attempt(timeout))?;
                }
            }
        }
        Ok(timeout.map(|t| due_time(cpu, t)))
    });
    let list = &list[..count as usize];
    let thread = crate::ps::current_thread();
    let wait = if wait_type == 0 { WaitType::All } else { WaitType::Any };
    let on = WaitOn::Objects { objects: list.iter().map(|&p| p as u64).collect(), all: wait == WaitType::All };
    let outcome = wait_until("KeWaitForMultipleObjects", deadline, timeout == Some(0), &on, |cpu| {
        let objects = list.iter().map(|&p| object_of(cpu, p)).collect::<Result<Vec<_>, _>>()?;
        if let Some(outcome) = satisfy(&objects, thread, wait) {
            let taken = match (outcome, wait) {
                (Ok(_), WaitType::All) => &objects[..],
                (Ok(i), WaitType::Any) => objects.get(i as usize..=i as usize).unwrap_or_default(),
                (Err(_), _) => &[],
            };
            for o in taken.iter().filter(|o| o.kind() == MUTANT_OBJECT) {
                crate::vf::lock_acquired(cpu, mutex_request(o));
            }
            return Ok(Poll::Done(outcome));
        }
        let first_blocked = objects.iter().position(|o| !signalled(o, thread));
        let blocked = first_blocked.and_then(|i| objects.get(i));
        Ok(Poll::Blocked(blocked.map_or(0, |o| o.0 as u64), blocked.map_or(0, Object::kind)))
    });
    finish(outcome)
}

/// `KeDelayExecutionThread(WaitMode, Alertable, Interval)`: sleeps `Interval` of
/// simulated time (negative relative, positive absolute): the thread blocks and other
/// threads run; it resumes once simulated time has passed its due time. STATUS_SUCCESS.
///
/// # Safety
/// `interval` is the caller's LARGE_INTEGER.
pub unsafe extern "win64" fn KeDelayExecutionThread(_mode: i8, _alertable: u8, interval: *const i64) -> NtStatus {
    // SAFETY: the caller's LARGE_INTEGER (`# Safety`).
    let interval = unsafe { interval.read_unaligned() };
    let until = kernel(|cpu| Ok(due_time(cpu, interval)));
    wait_until("KeDelayExecutionThread", Some(until), false, &WaitOn::Time, |_| Ok(Poll::<()>::Blocked(0, 0)));
    0
}

#[cfg(test)]
mod tests {
    //! The dispatcher's state machine against a naive model: random signals, resets,
    //! releases and waits (WaitAny, WaitAll) by several threads on events, semaphores
    //! and mutexes, one processor; the same seed gives the same trace. A second thread
    //! may block in a wait ([`Op::Block`]): after every operation the scheduler's look
    //! at its wait from another thread ([`would_satisfy`]) must agree with the model,
    //! and [`Op::Resume`] lets it take its objects as the scheduler would resume it.

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;
    use crate::ke_dispatcher::NOTIFICATION_EVENT;
    use crate::ke_mutex::release_mutant;

    /// An object as the model sees it.
    #[derive(Clone, Debug, PartialEq)]
    enum Model {
        Event { auto_reset: bool, signalled: bool },
        Semaphore { count: i32, limit: i32 },
        Mutex { owner: Option<u64>, depth: i32 },
    }

    impl Model {
        fn signalled(&self, thread: u64) -> bool {
            match *self {
                Model::Event { signalled, .. } => signalled,
                Model::Semaphore { count, .. } => count > 0,
                Model::Mutex { owner, .. } => owner.is_none_or(|o| o == thread),
            }
        }

        fn take(&mut self, thread: u64) {
            match self {
                Model::Event { auto_reset: true, signalled } => *signalled = false,
                Model::Event { .. } => {}
                Model::Semaphore { count, .. } => *count -= 1,
                Model::Mutex { owner, depth } => {
                    *owner = Some(thread);
                    *depth += 1;
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Set(usize),
        Reset(usize),
        Release(usize),
        Wait {
            thread: u64,
            objects: Vec<usize>,
            all: bool,
        },
        /// Thread 9 blocks in this wait (if it is not blocked already).
        Block {
            objects: Vec<usize>,
            all: bool,
        },
        /// Thread 9, if blocked and its wait can be satisfied, resumes and takes it.
        Resume,
    }

    /// The blocked thread of [`Op::Block`].
    const BLOCKED: u64 = 9;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6usize).prop_map(Op::Set),
            (0..6usize).prop_map(Op::Reset),
            (0..6usize, 1..4u64).prop_map(|(i, _)| Op::Release(i)),
            (1..4u64, proptest::collection::btree_set(0..6usize, 1..4), any::<bool>())
                .prop_map(|(thread, set, all)| Op::Wait { thread, objects: set.into_iter().collect(), all }),
            (proptest::collection::btree_set(0..6usize, 1..4), any::<bool>())
                .prop_map(|(set, all)| Op::Block { objects: set.into_iter().collect(), all }),
            Just(Op::Resume),
        ]
    }

    /// Six objects in host memory: a notification and a synchronization event, two
    /// semaphores, two mutexes.
    fn objects() -> (Vec<[u8; 0x38]>, Vec<Model>) {
        let mut memory: Vec<[u8; 0x38]> = vec![[0u8; 0x38]; 6];
        let o = |m: &mut [u8; 0x38]| Object(m.as_mut_ptr());
        o(&mut memory[0]).initialize(NOTIFICATION_EVENT, HEADER_SIZE, 0);
        o(&mut memory[1]).initialize(SYNCHRONIZATION_EVENT, HEADER_SIZE, 0);
        for (i, count) in [(2, 1), (3, 0)] {
            o(&mut memory[i]).initialize(SEMAPHORE_OBJECT, 0x20, count);
            o(&mut memory[i]).set_i32(0x18, 2);
        }
        for i in [4, 5] {
            o(&mut memory[i]).initialize(MUTANT_OBJECT, KMUTANT_SIZE, 1);
            o(&mut memory[i]).set_u8(MUTANT_APC_DISABLE, 1);
        }
        let model = vec![
            Model::Event { auto_reset: false, signalled: false },
            Model::Event { auto_reset: true, signalled: false },
            Model::Semaphore { count: 1, limit: 2 },
            Model::Semaphore { count: 0, limit: 2 },
            Model::Mutex { owner: None, depth: 0 },
            Model::Mutex { owner: None, depth: 0 },
        ];
        (memory, model)
    }

    /// What the real objects say, as the model would.
    fn observed(memory: &mut [[u8; 0x38]]) -> Vec<Model> {
        memory
            .iter_mut()
            .map(|m| {
                let o = Object(m.as_mut_ptr());
                match o.kind() {
                    MUTANT_OBJECT => {
                        let owner = o.u64_at(MUTANT_OWNER);
                        Model::Mutex { owner: (owner != 0).then_some(owner), depth: 1 - o.signal_state() }
                    }
                    SEMAPHORE_OBJECT => Model::Semaphore { count: o.signal_state(), limit: o.i32_at(0x18) },
                    kind => Model::Event { auto_reset: kind == SYNCHRONIZATION_EVENT, signalled: o.signal_state() > 0 },
                }
            })
            .collect()
    }

    /// Whether the model says a wait by `thread` on `objects` is satisfiable.
    fn model_satisfiable(model: &[Model], thread: u64, objects: &[usize], all: bool) -> bool {
        if all {
            objects.iter().all(|&i| model[i].signalled(thread))
        } else {
            objects.iter().any(|&i| model[i].signalled(thread))
        }
    }

    /// Runs `ops` on the real objects and the model side by side; the trace of outcomes.
    fn run(ops: &[Op]) -> Result<Vec<String>, TestCaseError> {
        let (mut memory, mut model) = objects();
        let mut trace = Vec::new();
        let mut blocked: Option<(Vec<usize>, bool)> = None;
        for op in ops {
            let outcome = match op {
                Op::Block { objects, all } => {
                    if blocked.is_none() {
                        blocked = Some((objects.clone(), *all));
                    }
                    format!("block {objects:?} {all}")
                }
                Op::Resume => match blocked.take() {
                    Some((objects, all)) => {
                        let real: Vec<Object> = objects.iter().map(|&i| Object(memory[i].as_mut_ptr())).collect();
                        let wait = if all { WaitType::All } else { WaitType::Any };
                        if would_satisfy(&real, BLOCKED, wait) {
                            let got = satisfy(&real, BLOCKED, wait);
                            prop_assert!(got.is_some_and(|r| r.is_ok()), "resumed but not satisfied: {:?}", got);
                            if all {
                                objects.iter().for_each(|&i| model[i].take(BLOCKED));
                            } else if let Some(k) = objects.iter().position(|&i| model[i].signalled(BLOCKED)) {
                                model[objects[k]].take(BLOCKED);
                            }
                            format!("resume {objects:?}: {got:?}")
                        } else {
                            blocked = Some((objects, all));
                            "still blocked".to_string()
                        }
                    }
                    None => "skip".to_string(),
                },
                Op::Set(i) | Op::Reset(i) if !matches!(model[*i], Model::Event { .. }) => "skip".to_string(),
                Op::Set(i) => {
                    Object(memory[*i].as_mut_ptr()).set_signal_state(1);
                    if let Model::Event { auto_reset, .. } = model[*i] {
                        model[*i] = Model::Event { auto_reset, signalled: true };
                    }
                    "set".to_string()
                }
                Op::Reset(i) => {
                    Object(memory[*i].as_mut_ptr()).set_signal_state(0);
                    if let Model::Event { auto_reset, .. } = model[*i] {
                        model[*i] = Model::Event { auto_reset, signalled: false };
                    }
                    "reset".to_string()
                }
                Op::Release(i) => match model[*i].clone() {
                    Model::Semaphore { count, limit } => {
                        let o = Object(memory[*i].as_mut_ptr());
                        if count < limit {
                            o.set_signal_state(o.signal_state() + 1);
                            model[*i] = Model::Semaphore { count: count + 1, limit };
                        }
                        format!("release {count}")
                    }
                    Model::Mutex { owner, depth } => {
                        let thread = owner.unwrap_or(1);
                        let real = release_mutant(&Object(memory[*i].as_mut_ptr()), thread);
                        let expected = owner.map(|_| 1 - depth);
                        prop_assert_eq!(real, expected);
                        if owner.is_some() {
                            model[*i] = if depth == 1 {
                                Model::Mutex { owner: None, depth: 0 }
                            } else {
                                Model::Mutex { owner, depth: depth - 1 }
                            };
                        }
                        format!("release mutex {real:?}")
                    }
                    Model::Event { .. } => "skip".to_string(),
                },
                Op::Wait { thread, objects, all } => {
                    let real: Vec<Object> = objects.iter().map(|&i| Object(memory[i].as_mut_ptr())).collect();
                    let wait = if *all { WaitType::All } else { WaitType::Any };
                    let got = satisfy(&real, *thread, wait);
                    let expected = if *all {
                        objects.iter().all(|&i| model[i].signalled(*thread)).then(|| {
                            objects.iter().for_each(|&i| model[i].take(*thread));
                            0
                        })
                    } else {
                        objects.iter().position(|&i| model[i].signalled(*thread)).map(|k| {
                            model[objects[k]].take(*thread);
                            k as NtStatus
                        })
                    };
                    prop_assert_eq!(got, expected.map(Ok));
                    format!("wait {thread} {objects:?} {all}: {got:?}")
                }
            };
            prop_assert_eq!(observed(&mut memory), model.clone(), "after {:?}", op);
            if let Some((objects, all)) = &blocked {
                let real: Vec<Object> = objects.iter().map(|&i| Object(memory[i].as_mut_ptr())).collect();
                let wait = if *all { WaitType::All } else { WaitType::Any };
                let hint = would_satisfy(&real, BLOCKED, wait);
                prop_assert_eq!(hint, model_satisfiable(&model, BLOCKED, objects, *all), "hint after {:?}", op);
            }
            trace.push(outcome);
        }
        Ok(trace)
    }

    proptest! {
        #[test]
        fn waits_signals_and_releases_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            run(&ops)?;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let trace = |seed: [u8; 32]| {
            let mut runner =
                TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
            let ops = proptest::collection::vec(op(), 40).new_tree(&mut runner).expect("generated").current();
            run(&ops).expect("the model agrees")
        };
        assert_eq!(trace([7; 32]), trace([7; 32]));
        assert_ne!(trace([7; 32]), trace([8; 32]), "another seed, another trace");
    }
}
