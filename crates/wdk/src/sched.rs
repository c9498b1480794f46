//! Running simulated threads: when the machine switches from one thread of driver
//! code to another, and what each thread's host thread does (the state machine and
//! the baton are [`ntmem_kernel::ke::sched`]'s; the thread model is [`crate::ps`]'s).
//!
//! **Switch points.** The thread holding the baton runs until it
//! * **blocks** — a wait ([`crate::ke_wait`]) its objects cannot satisfy: its wait is
//!   recorded as data and the next thread is chosen; when the baton comes back it
//!   looks at its objects again;
//! * **ends** — a system thread's start routine returns or it terminates, a work item
//!   returns: the next thread is chosen and the host thread ends;
//! * **goes idle** — the requesting thread at a settle point, between scenario steps
//!   ([`run_until_idle`]): every ready thread runs first.
//!
//! **Choosing the next thread** ([`choose_next`]), in order: queued DPCs run (on the
//! thread that chooses, at DISPATCH_LEVEL); queued work starts, in queue order — new
//! system threads in their own threads, work items in free worker threads — and is
//! ready; blocked threads whose wait could now be satisfied become ready, in the order
//! they blocked; the first ready thread runs. With none ready: if the requesting thread is idle it
//! takes the baton (the scenario goes on); otherwise every thread waits, and simulated
//! time moves to the next timer or wait timeout; with neither, no later step can come
//! and nothing can ever signal the objects: the run stops with
//! [`ntmem_kernel::Halt::WaitNeverEnds`], naming every waiting thread.
//!
//! **Time at a settle point.** The requesting thread at a settle point is not waiting:
//! its next step comes at once. So time moves there only as far as the scenario says
//! (`advance_ms`), stopping at each timer and wait timeout on the way so the threads
//! they wake run at their time; a thread in `KeDelayExecutionThread` at the end of a
//! step sleeps until a later step moves time or the requesting thread itself waits.
//!
//! **A switch.** The outgoing thread records its IRQL, hands the baton over and sleeps
//! (its host thread parked, its watchdog paused); the incoming one sets the processor's
//! IRQL back to what it had. A thread woken after the machine stopped (another thread
//! bugchecked or halted) leaves with that stop, so the stop ends the run as it does
//! today; the requesting thread, which the stopping thread hands the baton to, reports
//! it. At the end of a run [`end_threads`] ends the threads still blocked: each leaves
//! its guarded call through the escape hatch (no driver code runs) and is joined.

use std::cell::Cell;

use ntmem_host::Escape;
use ntmem_kernel::ke::processor::KernelStack;
use ntmem_kernel::ke::sched::{Role, ThreadId, ThreadView, Waiting, Wake, REQUESTING};
use ntmem_kernel::ke::workers::{Work, WorkKind};
use ntmem_kernel::{BugCheck, Cpu, Halt, Irql, Machine};

use crate::context::{self, kernel};
use crate::ke_dispatcher::{advance_to, now, run_queued_dpcs};
use crate::ps::ThreadContext;
use crate::seh::ThreadKind;

/// `Escape::kind` that ends a blocked thread at shutdown ([`end_threads`]).
pub(crate) const ESCAPE_THREAD_KILLED: u32 = 0xD1;

thread_local! {
    /// The simulated thread this host thread runs (the requesting thread by default).
    static SELF: Cell<ThreadId> = const { Cell::new(REQUESTING) };
}

/// The simulated thread running on this host thread.
pub(crate) fn me() -> ThreadId {
    SELF.with(Cell::get)
}

/// Blocks the running thread in `waiting` and runs others until it may be satisfied
/// (see the module docs); returns holding the baton again, to look at its objects.
pub(crate) fn block(waiting: Waiting) {
    let me = me();
    kernel(|cpu| {
        cpu.machine().scheduler().block(me, waiting);
        Ok(())
    });
    let next = choose_next(me);
    switch_to(me, next);
}

/// The requesting thread at a settle point: ready threads run, then time moves on to
/// `until` (interrupt time), stopping at each timer and wait timeout on the way.
pub(crate) fn run_until_idle(until: u64) {
    loop {
        loop {
            let at = kernel(|cpu| Ok(now(cpu)));
            advance_to(at);
            let next = kernel(|cpu| {
                start_queued_work(cpu)?;
                wake(cpu);
                Ok(cpu.machine().scheduler().pop_ready())
            });
            let Some(next) = next else { break };
            kernel(|cpu| {
                cpu.machine().scheduler().idle();
                Ok(())
            });
            switch_to(REQUESTING, next);
        }
        match kernel(|cpu| Ok((next_event(cpu), now(cpu)))) {
            (Some(due), _) if due <= until => advance_to(due),
            (_, at) if at >= until => return,
            _ => advance_to(until),
        }
    }
}

/// The earliest timer or wait timeout.
fn next_event(cpu: &Cpu<'_>) -> Option<u64> {
    let m = cpu.machine();
    match (m.timers().next_due(), m.scheduler().next_deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Blocked threads whose wait could now be satisfied become ready.
fn wake(cpu: &Cpu<'_>) {
    cpu.machine().scheduler().wake(|w| crate::ke_wait::could_run(cpu, w));
}

/// The thread to run after `me`, which blocked or ended (see the module docs); may be
/// `me`. Runs DPCs, starts queued work and moves time as it goes; stops the run when
/// nothing can ever run.
fn choose_next(me: ThreadId) -> ThreadId {
    loop {
        run_queued_dpcs();
        let next = kernel(|cpu| {
            start_queued_work(cpu)?;
            wake(cpu);
            let s = cpu.machine().scheduler();
            Ok(s.pop_ready().or_else(|| s.requesting_idle().then_some(REQUESTING)))
        });
        if let Some(next) = next {
            return next;
        }
        match kernel(|cpu| Ok(next_event(cpu))) {
            Some(due) => advance_to(due),
            None => never_ends(me),
        }
    }
}

/// Every thread waits, the requesting thread among them, and nothing can change that.
fn never_ends(me: ThreadId) -> ! {
    kernel(|cpu| -> Result<(), BugCheck> {
        let waiting = cpu.machine().scheduler().waiters();
        let primary = waiting
            .iter()
            .find(|(t, _)| t.id == me)
            .or_else(|| waiting.iter().find(|(t, _)| t.id == REQUESTING))
            .or(waiting.first())
            .map(|(_, w)| w.clone());
        let waiters = waiting.iter().map(|(t, w)| waiter(t, w)).collect();
        let (routine, object, object_type) = primary.map_or(("a wait", 0, 0), |w| (w.routine, w.object, w.object_type));
        let halt = Halt::WaitNeverEnds { routine: routine.to_string(), object, object_type, waiters };
        Err(cpu.machine().halt(halt))
    });
    unreachable!("kernel() left with the halt")
}

/// A waiting thread as a report names it.
fn waiter(t: &ThreadView, w: &Waiting) -> ntmem_kernel::halt::Waiter {
    ntmem_kernel::halt::Waiter {
        thread: thread_name(t.role).to_string(),
        thread_address: object_of(t.role),
        start_routine: t.start_routine,
        routine: w.routine.to_string(),
        object: w.object,
        object_type: w.object_type,
    }
}

/// A system thread's object; 0 for the requesting and worker threads, whose identity
/// tokens are host addresses that change from run to run (a report stays the same).
fn object_of(role: Role) -> u64 {
    match role {
        Role::System { object } => object,
        _ => 0,
    }
}

/// What a report calls a thread of `role`.
fn thread_name(role: Role) -> &'static str {
    match role {
        Role::Requesting => "requesting thread",
        Role::Worker { .. } => "worker thread",
        Role::System { .. } => "system thread",
    }
}

/// Hands the baton from `me` to `next` and sleeps until it comes back; then the
/// processor gets `me`'s IRQL back. Leaves with the machine's stop if it stopped
/// meanwhile, or through the escape hatch if the machine is ending its threads.
fn switch_to(me: ThreadId, next: ThreadId) {
    let (irql, process, core) = kernel(|cpu| {
        let m = cpu.machine();
        let home = m.scheduler().home();
        if next != me && home != 0 && home != std::ptr::from_ref(m) as usize {
            return Err(moved(m));
        }
        Ok((cpu.irql(), ntmem_kernel::mm::process::ps_get_current_process(cpu), m.scheduler().core()))
    });
    // Parked in the core (never in the machine, which its owner may move meanwhile),
    // shielded from the watchdog; only `Arc`s to drop, and they are dropped before any
    // escape below.
    let wake = ntmem_host::watchdog::shielded(|| core.switch(me, next));
    drop(core);
    if wake == Wake::Die {
        drop(process);
        ntmem_host::escape(Escape { kind: ESCAPE_THREAD_KILLED, words: [0; 7] });
    }
    // `move`: the process's `Arc` is dropped when the closure returns, before a stop
    // escapes.
    kernel(move |cpu| {
        if let Some(stop) = cpu.machine().stopped() {
            return Err(stop);
        }
        cpu.switch_irql(irql);
        // Back in the process it ran in (a requesting thread's caller, or System).
        ntmem_kernel::mm::process::ke_switch_process(cpu, process.as_ref())
    });
}

/// A kernel stack for a new system thread; `None` when the machine has no room.
pub(crate) fn kernel_stack(cpu: &Cpu<'_>) -> Option<KernelStack> {
    cpu.machine().create_kernel_stack().ok()
}

/// Starts queued work, oldest first: a system thread's start in its own thread (on the
/// stack `PsCreateSystemThread` made), a work item in a free worker thread (while one
/// is free; the rest wait in order).
fn start_queued_work(cpu: &Cpu<'_>) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let s = m.scheduler();
    while m.workers().any_queued() {
        let slot = s.free_worker_slot();
        let is_thread = |w: &Work| w.kind == WorkKind::ThreadStart;
        let Some(work) = m.workers().take_first(|w| is_thread(w) || slot.is_some()) else { return Ok(()) };
        if is_thread(&work) {
            let stack = match s.take_stack(work.item) {
                Some(stack) => stack,
                None => m.create_kernel_stack().map_err(|e| internal(m, format!("no kernel stack: {e}")))?,
            };
            let identity = ThreadContext { thread: work.item, ..ThreadContext::default() };
            start(cpu, Role::System { object: work.item }, work, stack, identity)?;
            continue;
        }
        let Some((slot, stack)) = slot.and_then(|slot| Some((slot, worker_stack(m, slot)?))) else {
            // No room for the worker's stack: the item waits, first in line.
            m.workers().requeue_first(work);
            return Ok(());
        };
        let identity = ThreadContext { worker: Some(slot), ..ThreadContext::default() };
        start(cpu, Role::Worker { slot }, work, stack, identity)?;
    }
    Ok(())
}

/// Worker slot `slot`'s kernel stack, made on its first use; `None` when the machine
/// has no room for it (the work item then waits for a worker that has one).
fn worker_stack(m: &Machine, slot: u8) -> Option<KernelStack> {
    let s = m.scheduler();
    if let Some(stack) = s.worker_stack(slot) {
        return Some(stack);
    }
    let stack = m.create_kernel_stack().ok()?;
    s.set_worker_stack(slot, stack);
    Some(stack)
}

/// The machine was moved while threads that started on it waited: their stacks hold
/// its old address, so none of them may run again.
fn moved(m: &Machine) -> BugCheck {
    internal(m, "the machine was moved while its threads waited; they cannot resume".to_string())
}

/// An internal-error halt of the scheduler.
fn internal(m: &Machine, message: String) -> BugCheck {
    m.halt(Halt::Internal { routine: "the scheduler".to_string(), message })
}

/// The machine, for a host thread that runs its simulated thread.
struct MachinePtr(*const Machine);

// SAFETY: a `Machine` is shared between host threads (`Sync`); the pointer is only
// dereferenced while the machine lives, at that address (see `start`).
unsafe impl Send for MachinePtr {}

impl MachinePtr {
    /// # Safety
    /// The machine has not been dropped.
    unsafe fn get(&self) -> &Machine {
        // SAFETY: the caller's contract.
        unsafe { &*self.0 }
    }
}

/// Creates the simulated thread (ready) and its host thread, which waits for the baton.
fn start(cpu: &Cpu<'_>, role: Role, work: Work, stack: KernelStack, identity: ThreadContext) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if !m.scheduler().settle_home(std::ptr::from_ref(m) as usize) {
        return Err(moved(m));
    }
    let id = m.scheduler().create(role, stack, work.routine);
    let core = m.scheduler().core();
    let machine = MachinePtr(std::ptr::from_ref(m));
    let spawned =
        std::thread::Builder::new().name(format!("ntmem-thread-{id}")).stack_size(512 * 1024).spawn(move || {
            // Parked in the core until a thread of the machine hands it the baton.
            if core.wait_turn(id) == Wake::Die {
                return;
            }
            drop(core);
            // SAFETY: the thread that handed the baton over runs on this machine, at the
            // address it had when this thread was made (`switch_to` and `start` check:
            // a machine moved while its threads exist runs none of them again), and the
            // machine joins this host thread before it is dropped (the run ends its
            // threads, `end_threads`; `Machine`'s drop shuts its scheduler down as a
            // last resort, waking parked threads only to leave, through the core).
            let machine = unsafe { machine.get() };
            thread_main(machine, id, work, stack, identity);
        });
    match spawned {
        Ok(host) => {
            m.scheduler().attach_host(id, host);
            Ok(())
        }
        Err(e) => {
            m.scheduler().end(id);
            Err(internal(m, format!("the host refused a thread for a simulated thread: {e}")))
        }
    }
}

/// The life of a simulated thread's host thread (see the module docs).
fn thread_main(machine: &Machine, id: ThreadId, work: Work, stack: KernelStack, identity: ThreadContext) {
    SELF.with(|s| s.set(id));
    crate::ps::set_current(identity);
    let label = if identity.thread != 0 { "system thread" } else { "work item" };
    let r = context::call_thread(machine, 0, stack, ThreadKind::System, |c| {
        c.switch_irql(Irql::PASSIVE);
        Ok(context::enter(c, label, || {
            crate::ps::run_body(work)?;
            let freed = kernel(|cpu| Ok(cpu.machine().scheduler().end(id)));
            Some((choose_next(id), freed))
        }))
    });
    ntmem_host::thunk::release_block();
    let (next, freed) = match r {
        // Ended by `end_threads`, which joins this host thread.
        Ok(None) => return,
        Ok(Some(done)) => done,
        // The machine stopped in this thread: the requesting thread reports it.
        Err(_) => {
            machine.name_timeout(&format!("the {label} started at {:#x}", work.routine));
            (REQUESTING, machine.scheduler().end(id))
        }
    };
    if let Some(s) = freed {
        machine.delete_kernel_stack(s);
    }
    machine.scheduler().hand_to(next);
}

/// Ends the machine's threads at the end of a run (see the module docs): call it from
/// the requesting thread, outside any driver call.
pub fn end_threads(machine: &Machine) {
    for stack in machine.scheduler().shutdown() {
        machine.delete_kernel_stack(stack);
    }
}

/// A thread of a driver still alive when the driver unloaded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeftThread {
    /// `system thread` or `worker thread`.
    pub thread: &'static str,
    /// A system thread's object (0 for a worker thread).
    pub thread_address: u64,
    /// The driver routine it started in.
    pub start_routine: u64,
    /// What it waits in (`KeWaitForSingleObject`, …), if it waits.
    pub routine: Option<&'static str>,
    /// The object it waits on (0: none, or a delay).
    pub object: u64,
    /// Where its driver code would resume.
    pub resume_ip: u64,
}

/// The threads whose code is in `[start, end)` (a driver image about to be unloaded)
/// that are still alive. One that would run again by itself — ready, or waiting with a
/// timeout — would execute the unloaded image when its turn came:
/// DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS (0xCE: the address it resumes
/// at, 8 execute, the same address, 0), as Windows' processor faults on the fetch.
/// One that waits with no timeout is returned: Windows would keep it waiting forever
/// (a leak of the thread and whatever it holds), and would crash the same way if
/// anything ever woke it.
///
/// # Errors
/// The 0xCE stop.
pub fn threads_at_unload(machine: &Machine, start: u64, end: u64) -> Result<Vec<LeftThread>, BugCheck> {
    let inside = |a: u64| a >= start && a < end;
    let s = machine.scheduler();
    let waits = s.waiters();
    let mut left = Vec::new();
    for t in s.alive() {
        let wait = waits.iter().find(|(w, _)| w.id == t.id).map(|(_, w)| w);
        let resume = wait.map_or(t.start_routine, |w| if w.resume_ip != 0 { w.resume_ip } else { t.start_routine });
        if !inside(t.start_routine) && !inside(resume) {
            continue;
        }
        let (thread_address, name) = (object_of(t.role), thread_name(t.role));
        let runs_again = wait.is_none_or(|w| w.deadline.is_some());
        if runs_again {
            let code = ntmem_kernel::BugCheckCode::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS;
            let mut b = machine.bugcheck(code, [resume, 8, resume, 0]);
            b.faulting_ip = Some(resume);
            return Err(b);
        }
        left.push(LeftThread {
            thread: name,
            thread_address,
            start_routine: t.start_routine,
            routine: wait.map(|w| w.routine),
            object: wait.map_or(0, |w| w.object),
            resume_ip: resume,
        });
    }
    Ok(left)
}
