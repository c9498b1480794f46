//! The scheduler of simulated threads: which thread of driver code runs, which wait,
//! and the baton that lets exactly one of them run at a time (learn.microsoft.com
//! "Scheduling, Thread Context, and IRQL", "KeWaitForSingleObject" — a thread that
//! waits on an object not signalled is put in a wait state; another ready thread runs).
//!
//! **What a thread is here.** Every simulated thread that has started runs on a host
//! thread of its own (the requesting thread on the host thread that runs the
//! scenario), with its own simulated kernel stack. Only the holder of the *baton*
//! runs; the others sleep on their own condition variable until [`Scheduler::switch`]
//! hands it to them. One host thread per simulated thread keeps everything a thread
//! owns in host thread-locals — its guarded-call frames and escape hatch, its SEH
//! frames, its GS block and import capture, its alternate signal stack, the
//! `Cpu` it runs on — without saving and restoring any of them at a switch (stack
//! switching on one host thread would have to swap every one of those by hand, in
//! four crates, and a signal arriving mid-swap would see them torn). The baton is an
//! atomic holder number with `thread::park`/`unpark` (a futex wake and wait per
//! switch, no lock on the way); the states and queues beside it are under a mutex.
//! See BENCHMARKS.md, "Thread switch".
//!
//! This module keeps the state machine and the baton only; what a thread runs, and
//! when the machine switches, is the WDK boundary's (`ntmem_wdk::sched`). States:
//! `Ready` (in the FIFO ready queue), `Running` (holds the baton), `Blocked` in a
//! [`Waiting`] (described as data, so any thread can tell whether it could now be
//! satisfied), `Idle` (the requesting thread at a settle point, between scenario
//! steps: it takes the baton back when nothing else is ready) and `Ended`.
//!
//! **Determinism.** Which thread runs next depends only on the order of events the
//! machine itself decides — the ready queue is FIFO, blocked threads are woken in the
//! order they blocked — never on the host's scheduling: a thread that does not hold
//! the baton runs no machine code.
//!
//! **Moves.** A parked host thread waits in the scheduler's [`Core`], on the heap,
//! never in the `Machine`, which its owner may move between runs; but the parked
//! thread's frames hold the machine's address. So the address threads started at is
//! recorded ([`Core::home`]), and a thread is handed the baton only by a thread
//! running on the machine at that address: a machine moved while its threads wait
//! stops with an internal error instead of resuming them (`ntmem_wdk::sched`).
//!
//! **Leaving no host thread behind.** [`Scheduler::shutdown`] wakes every thread still
//! blocked with [`Wake::Die`]: it leaves its guarded call through its escape hatch
//! (the escape contract of `ntmem_host::guard`) and its host thread ends; shutdown
//! joins each. `Machine` shuts its scheduler down when dropped, as a last resort.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};

use super::processor::KernelStack;

/// A simulated thread's number: its index in creation order. 0 is the requesting thread.
pub type ThreadId = usize;

/// The requesting thread: DriverEntry, DriverUnload, dispatch routines, and the DPCs a
/// scenario step brings about.
pub const REQUESTING: ThreadId = 0;

/// How many system worker threads may exist at once (work items beyond them wait
/// in the queue until one is free, as they wait for a free worker on Windows).
pub const MAX_WORKERS: u8 = 16;

/// What kind of thread it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The requesting thread.
    Requesting,
    /// A system worker thread running a work item; `slot` names it (0 to
    /// [`MAX_WORKERS`] - 1), reused once the thread ends.
    Worker {
        /// Which worker.
        slot: u8,
    },
    /// A thread `PsCreateSystemThread` made; `object` is its thread object.
    System {
        /// The thread object (the driver's `PKTHREAD`).
        object: u64,
    },
}

/// What a blocked thread waits for, as data any thread can evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitOn {
    /// Dispatcher objects (their addresses): any one of them, or all together.
    Objects {
        /// The objects, in the caller's order.
        objects: Vec<u64>,
        /// WaitAll (else WaitAny).
        all: bool,
    },
    /// A fast or guarded mutex (free when its `Count` has bit 0 set).
    FastMutex(u64),
    /// An executive resource, exclusive or shared.
    Resource {
        /// Its address.
        resource: u64,
        /// Exclusive (else shared) access.
        exclusive: bool,
    },
    /// A push lock (`EX_PUSH_LOCK`), exclusive or shared.
    PushLock {
        /// Its address.
        lock: u64,
        /// Exclusive (else shared) access.
        exclusive: bool,
    },
    /// Run-down protection's wait (`ExWaitForRundownProtectionRelease`): until the
    /// `EX_RUNDOWN_REF` at this address has no reference left.
    Rundown(u64),
    /// A request the thread sent and waits for, synchronously (the IRP's address):
    /// until the I/O manager has completed it.
    Irp(u64),
    /// Nothing but time (`KeDelayExecutionThread`).
    Time,
}

/// A blocked thread's wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The routine that waits (`KeWaitForSingleObject`, …).
    pub routine: &'static str,
    /// The waiter's identity (`KeGetCurrentThread`), for mutex ownership.
    pub thread: u64,
    /// What would satisfy it.
    pub on: WaitOn,
    /// The first object not signalled when it blocked, and its dispatcher type
    /// (0 and 0 for a delay): what a report names.
    pub object: u64,
    /// See `object`.
    pub object_type: u8,
    /// When the wait times out (interrupt time, 100 ns), if it does.
    pub deadline: Option<u64>,
    /// Where the thread's driver code resumes when the wait returns (the return
    /// address of its call into the routine; 0 when not known).
    pub resume_ip: u64,
}

/// A thread's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the baton in the ready queue.
    Ready,
    /// Holding the baton.
    Running,
    /// In a wait.
    Blocked(Waiting),
    /// The requesting thread between scenario steps (see the module docs).
    Idle,
    /// Its routine returned or it was terminated.
    Ended,
}

/// Why a parked thread woke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// It holds the baton: run.
    Run,
    /// The machine is shutting down its threads: leave (see the module docs).
    Die,
}

/// A snapshot of one thread, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadView {
    /// Its number.
    pub id: ThreadId,
    /// Its kind.
    pub role: Role,
    /// Its state.
    pub state: State,
    /// The driver routine it started in (0 for the requesting thread).
    pub start_routine: u64,
    /// Whether it has run at all.
    pub started: bool,
}

#[derive(Debug)]
struct Record {
    role: Role,
    state: State,
    started: bool,
    die: bool,
    stack: Option<KernelStack>,
    start_routine: u64,
    blocked_at: u64,
    /// The host thread to unpark when it gets the baton.
    waker: Option<Thread>,
    host: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    threads: Vec<Record>,
    ready: VecDeque<ThreadId>,
    seq: u64,
    worker_stacks: Vec<KernelStack>,
    /// Kernel stacks of system threads created but not started yet, by thread object.
    unstarted: std::collections::BTreeMap<u64, KernelStack>,
}

/// One machine's simulated threads (see the module docs): a handle on the [`Core`],
/// which lives on the heap so that a host thread parked in it never reads the
/// `Machine` (which its owner may move between runs).
#[derive(Debug, Default)]
pub struct Scheduler {
    core: Arc<Core>,
}

impl std::ops::Deref for Scheduler {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Scheduler {
    /// The core, for a host thread to park in.
    pub fn core(&self) -> Arc<Core> {
        Arc::clone(&self.core)
    }
}

/// The scheduler's state and baton (see [`Scheduler`]).
#[derive(Debug)]
pub struct Core {
    inner: Mutex<Inner>,
    /// The baton: the thread that may run.
    running: AtomicUsize,
    /// The address of the `Machine` its threads started on (0: none yet). Their
    /// stacks hold it: they may resume only on a machine still at that address.
    home: AtomicUsize,
}

impl Default for Core {
    fn default() -> Self {
        let requesting = Record {
            role: Role::Requesting,
            state: State::Running,
            started: true,
            die: false,
            stack: None,
            start_routine: 0,
            blocked_at: 0,
            waker: None,
            host: None,
        };
        Core {
            running: AtomicUsize::new(REQUESTING),
            home: AtomicUsize::new(0),
            inner: Mutex::new(Inner {
                threads: vec![requesting],
                ready: VecDeque::new(),
                seq: 0,
                worker_stacks: Vec::new(),
                unstarted: std::collections::BTreeMap::new(),
            }),
        }
    }
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the machine of the threads now alive is (0: no thread alive yet).
    pub fn home(&self) -> usize {
        self.home.load(Ordering::Acquire)
    }

    /// Records where the machine is, as a thread starts on it: false (nothing changed)
    /// when threads alive started on a machine at another address.
    pub fn settle_home(&self, machine: usize) -> bool {
        let alive = !self.alive().is_empty();
        let home = self.home();
        if alive && home != 0 && home != machine {
            return false;
        }
        self.home.store(machine, Ordering::Release);
        true
    }

    /// A new thread of `role` on `stack`, starting in `start_routine`: ready, last in
    /// the ready queue. Its host thread is attached with [`Scheduler::attach_host`].
    pub fn create(&self, role: Role, stack: KernelStack, start_routine: u64) -> ThreadId {
        let mut s = self.lock();
        let id = s.threads.len();
        s.threads.push(Record {
            role,
            state: State::Ready,
            started: false,
            die: false,
            stack: Some(stack),
            start_routine,
            blocked_at: 0,
            waker: None,
            host: None,
        });
        s.ready.push_back(id);
        id
    }

    /// Records the host thread that runs `id` (joined at [`Scheduler::shutdown`]).
    pub fn attach_host(&self, id: ThreadId, host: JoinHandle<()>) {
        if let Some(r) = self.lock().threads.get_mut(id) {
            r.waker = Some(host.thread().clone());
            r.host = Some(host);
        }
    }

    /// The thread now holding the baton.
    pub fn running(&self) -> ThreadId {
        self.running.load(Ordering::Acquire)
    }

    /// `me` (running) blocks in `waiting`.
    pub fn block(&self, me: ThreadId, waiting: Waiting) {
        let mut s = self.lock();
        s.seq += 1;
        let seq = s.seq;
        if let Some(r) = s.threads.get_mut(me) {
            r.state = State::Blocked(waiting);
            r.blocked_at = seq;
        }
    }

    /// The requesting thread (running) goes idle at a settle point.
    pub fn idle(&self) {
        if let Some(r) = self.lock().threads.get_mut(REQUESTING) {
            r.state = State::Idle;
        }
    }

    /// Whether the requesting thread is idle at a settle point.
    pub fn requesting_idle(&self) -> bool {
        self.lock().threads.first().is_some_and(|r| r.state == State::Idle)
    }

    /// Moves every blocked thread whose wait `could_run` says may now be satisfied to
    /// the ready queue, in the order they blocked.
    pub fn wake(&self, mut could_run: impl FnMut(&Waiting) -> bool) {
        let mut s = self.lock();
        let mut woken: Vec<(u64, ThreadId)> = s
            .threads
            .iter()
            .enumerate()
            .filter_map(|(id, r)| match &r.state {
                State::Blocked(w) if could_run(w) => Some((r.blocked_at, id)),
                _ => None,
            })
            .collect();
        woken.sort_unstable();
        for (_, id) in woken {
            s.threads[id].state = State::Ready;
            s.ready.push_back(id);
        }
    }

    /// The next ready thread, taken off the ready queue.
    pub fn pop_ready(&self) -> Option<ThreadId> {
        self.lock().ready.pop_front()
    }

    /// Whether any thread is ready.
    pub fn any_ready(&self) -> bool {
        !self.lock().ready.is_empty()
    }

    /// The earliest deadline of a blocked thread's wait.
    pub fn next_deadline(&self) -> Option<u64> {
        let s = self.lock();
        s.threads
            .iter()
            .filter_map(|r| match &r.state {
                State::Blocked(w) => w.deadline,
                _ => None,
            })
            .min()
    }

    /// The blocked threads and their waits, in the order they blocked.
    pub fn waiters(&self) -> Vec<(ThreadView, Waiting)> {
        let s = self.lock();
        let mut v: Vec<(u64, ThreadView, Waiting)> = s
            .threads
            .iter()
            .enumerate()
            .filter_map(|(id, r)| match &r.state {
                State::Blocked(w) => Some((r.blocked_at, view(id, r), w.clone())),
                _ => None,
            })
            .collect();
        v.sort_unstable_by_key(|(at, ..)| *at);
        v.into_iter().map(|(_, t, w)| (t, w)).collect()
    }

    /// Every thread but the requesting one that has not ended, oldest first.
    pub fn alive(&self) -> Vec<ThreadView> {
        let s = self.lock();
        let live = |(_, r): &(usize, &Record)| r.role != Role::Requesting && r.state != State::Ended;
        s.threads.iter().enumerate().filter(live).map(|(id, r)| view(id, r)).collect()
    }

    /// A worker slot no live worker thread uses, if any.
    pub fn free_worker_slot(&self) -> Option<u8> {
        let s = self.lock();
        (0..MAX_WORKERS)
            .find(|&slot| !s.threads.iter().any(|r| r.role == Role::Worker { slot } && r.state != State::Ended))
    }

    /// The kernel stack worker slot `slot` keeps, if it has one yet.
    pub fn worker_stack(&self, slot: u8) -> Option<KernelStack> {
        self.lock().worker_stacks.get(usize::from(slot)).copied()
    }

    /// Gives worker slot `slot` (the next without one) its kernel stack.
    pub fn set_worker_stack(&self, slot: u8, stack: KernelStack) {
        let mut s = self.lock();
        if usize::from(slot) == s.worker_stacks.len() {
            s.worker_stacks.push(stack);
        }
    }

    /// Keeps the kernel stack of system thread `object`, created but not started yet.
    pub fn keep_stack(&self, object: u64, stack: KernelStack) {
        self.lock().unstarted.insert(object, stack);
    }

    /// The kernel stack kept for system thread `object`, taken.
    pub fn take_stack(&self, object: u64) -> Option<KernelStack> {
        self.lock().unstarted.remove(&object)
    }

    /// `me` has ended; its kernel stack (a system thread's, to free), if any.
    pub fn end(&self, me: ThreadId) -> Option<KernelStack> {
        let mut s = self.lock();
        let r = s.threads.get_mut(me)?;
        r.state = State::Ended;
        match r.role {
            Role::System { .. } => r.stack.take(),
            _ => None,
        }
    }

    /// Hands the baton from `me` to `next` and sleeps until it comes back (at once
    /// when `next` is `me`). The caller holds the baton, on `me`'s host thread.
    pub fn switch(&self, me: ThreadId, next: ThreadId) -> Wake {
        let mut s = self.lock();
        if next == me {
            s.threads[me].state = State::Running;
            return Wake::Run;
        }
        // The requesting thread's host thread is whichever runs the scenario.
        let current = std::thread::current();
        if s.threads[me].waker.as_ref().is_none_or(|w| w.id() != current.id()) {
            s.threads[me].waker = Some(current);
        }
        drop(s);
        self.hand_to(next);
        self.wait_turn(me)
    }

    /// Hands the baton to `next` without waiting for it back (a thread that ends).
    pub fn hand_to(&self, next: ThreadId) {
        let waker = {
            let mut s = self.lock();
            s.threads.get_mut(next).and_then(|r| {
                if r.state != State::Ended {
                    r.state = State::Running;
                    r.started = true;
                }
                r.waker.clone()
            })
        };
        self.running.store(next, Ordering::Release);
        if let Some(w) = waker {
            w.unpark();
        }
    }

    /// Sleeps until `me` holds the baton (a new thread's first wait, and every switch).
    pub fn wait_turn(&self, me: ThreadId) -> Wake {
        ntmem_host::watchdog::parked(|| {
            while self.running.load(Ordering::Acquire) != me {
                std::thread::park();
            }
        });
        if self.lock().threads[me].die {
            Wake::Die
        } else {
            Wake::Run
        }
    }

    /// Ends every host thread: each thread still alive is woken with [`Wake::Die`] and
    /// joined, one at a time, then those that ended before are joined; the baton goes
    /// back to the requesting thread. Returns the kernel stacks of the system threads it
    /// ended or that never started (their memory is the caller's to free). Call it from the requesting thread
    /// while no other thread holds the baton.
    pub fn shutdown(&self) -> Vec<KernelStack> {
        let mut stacks = Vec::new();
        loop {
            let victim = {
                let mut s = self.lock();
                let found = s.threads.iter().position(|r| r.host.is_some() && r.state != State::Ended);
                let Some(id) = found else { break };
                let r = &mut s.threads[id];
                r.die = true;
                r.state = State::Ended;
                if matches!(r.role, Role::System { .. }) {
                    stacks.extend(r.stack.take());
                }
                let (host, waker) = (r.host.take(), r.waker.clone());
                drop(s);
                self.running.store(id, Ordering::Release);
                if let Some(w) = waker {
                    w.unpark();
                }
                host
            };
            if let Some(h) = victim {
                let _ = h.join();
            }
        }
        self.running.store(REQUESTING, Ordering::Release);
        let ended: Vec<JoinHandle<()>> = {
            let mut s = self.lock();
            s.ready.clear();
            let unstarted = std::mem::take(&mut s.unstarted);
            stacks.extend(unstarted.into_values());
            s.threads.iter_mut().filter_map(|r| r.host.take()).collect()
        };
        for h in ended {
            let _ = h.join();
        }
        stacks
    }
}

fn view(id: ThreadId, r: &Record) -> ThreadView {
    ThreadView { id, role: r.role, state: r.state.clone(), start_routine: r.start_routine, started: r.started }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntmem_machine::Va;

    fn stack() -> KernelStack {
        KernelStack { base: Va::new(0x1000), size: 0x6000 }
    }

    fn waiting(deadline: Option<u64>) -> Waiting {
        Waiting {
            routine: "KeWaitForSingleObject",
            thread: 1,
            on: WaitOn::Time,
            object: 0,
            object_type: 0,
            deadline,
            resume_ip: 0,
        }
    }

    #[test]
    fn blocked_threads_wake_in_the_order_they_blocked() {
        let s = Scheduler::default();
        let a = s.create(Role::System { object: 0xA0 }, stack(), 1);
        let b = s.create(Role::System { object: 0xB0 }, stack(), 2);
        assert_eq!((s.pop_ready(), s.pop_ready(), s.pop_ready()), (Some(a), Some(b), None));
        s.block(b, waiting(Some(5)));
        s.block(a, waiting(None));
        assert_eq!(s.next_deadline(), Some(5));
        assert_eq!(s.waiters().iter().map(|(t, _)| t.id).collect::<Vec<_>>(), vec![b, a]);
        s.wake(|_| true);
        assert_eq!((s.pop_ready(), s.pop_ready()), (Some(b), Some(a)));
    }

    #[test]
    fn the_baton_passes_between_host_threads_and_shutdown_joins_them() {
        let s = Scheduler::default().core();
        let id = s.create(Role::Worker { slot: 0 }, stack(), 1);
        assert_eq!(s.free_worker_slot(), Some(1));
        let other = Arc::clone(&s);
        let host = std::thread::spawn(move || {
            let mut rounds = 0;
            while other.wait_turn(id) == Wake::Run {
                rounds += 1;
                other.hand_to(REQUESTING);
            }
            assert_eq!(rounds, 3);
        });
        s.attach_host(id, host);
        for _ in 0..3 {
            assert_eq!(s.switch(REQUESTING, id), Wake::Run);
        }
        assert!(s.shutdown().is_empty(), "a worker's stack stays with its slot");
        assert_eq!(s.alive(), vec![]);
        assert_eq!(s.running(), REQUESTING);
    }
}
