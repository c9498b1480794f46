//! Passive-level work the machine runs for drivers: queued work items, and the
//! state of system threads (learn.microsoft.com "System Worker Threads",
//! "IoQueueWorkItem", "PsCreateSystemThread").
//!
//! Queued work — a work item, or a new system thread's start — waits here, in order,
//! until the scheduler ([`super::sched`]) starts it at the next switch point (a
//! settle point after the driver routine that queued it returned, or a thread
//! blocking): a work item in a free system worker thread, a start routine in its own
//! thread; either then runs at PASSIVE_LEVEL and may block like any thread. For each
//! system thread, what is kept here is whether it has ended, its exit status and its
//! priority. The structures themselves (`IO_WORKITEM`, `WORK_QUEUE_ITEM`, the thread
//! object) are in simulated memory.
//!
//! **Where it differs from Windows.** The queue type (critical, delayed,
//! hypercritical) does not choose a thread or a priority; at most
//! [`super::sched::MAX_WORKERS`] worker threads exist at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// What queued the work, which decides how it is called and what ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkKind {
    /// `IoQueueWorkItem`: `routine(DeviceObject, Context)`.
    IoWorkItem,
    /// `ExQueueWorkItem`: `routine(Parameter)`.
    ExWorkItem,
    /// `PsCreateSystemThread`: `routine(StartContext)` in the new thread.
    ThreadStart,
    /// A power IRP requested above PASSIVE_LEVEL (`PoRequestPowerIrp`), delivered to
    /// the top device (`argument1`) at PASSIVE_LEVEL: `argument2` is the IRP, and
    /// `routine` is 0 (the I/O manager's own work, no driver routine).
    PowerIrp,
}

/// One piece of queued work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// Which routine queued it.
    pub kind: WorkKind,
    /// The driver routine to call.
    pub routine: u64,
    /// Its first argument (`DeviceObject`, `Parameter`, `StartContext`).
    pub argument1: u64,
    /// Its second argument (`Context` of an I/O work item; 0 otherwise).
    pub argument2: u64,
    /// The work item (`IO_WORKITEM`, `WORK_QUEUE_ITEM`) or thread object it belongs to.
    pub item: u64,
}

/// A system thread's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadState {
    /// Whether its start routine has returned or it called `PsTerminateSystemThread`.
    pub ended: bool,
    /// Its exit status.
    pub exit_status: i32,
    /// Its priority (`KeSetPriorityThread`); 8 at creation, as Windows' system threads.
    pub priority: i32,
}

/// The machine's queued work and system threads.
#[derive(Debug, Default)]
pub struct Workers {
    queue: Mutex<VecDeque<Work>>,
    threads: Mutex<BTreeMap<u64, ThreadState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Workers {
    /// Queues `work` last; false (nothing queued) when its item is queued already.
    pub fn queue(&self, work: Work) -> bool {
        let mut q = lock(&self.queue);
        if q.iter().any(|w| w.item == work.item) {
            return false;
        }
        q.push_back(work);
        true
    }

    /// The oldest queued work, taken off the queue.
    pub fn next(&self) -> Option<Work> {
        lock(&self.queue).pop_front()
    }

    /// The oldest queued work `startable` accepts, taken off the queue (the rest keep
    /// their order).
    pub fn take_first(&self, startable: impl Fn(&Work) -> bool) -> Option<Work> {
        let mut q = lock(&self.queue);
        let i = q.iter().position(startable)?;
        q.remove(i)
    }

    /// Puts `work` back first in the queue (taken, then found not startable yet).
    pub fn requeue_first(&self, work: Work) {
        lock(&self.queue).push_front(work);
    }

    /// Whether `item` is queued.
    pub fn is_queued(&self, item: u64) -> bool {
        lock(&self.queue).iter().any(|w| w.item == item)
    }

    /// Whether any work is queued.
    pub fn any_queued(&self) -> bool {
        !lock(&self.queue).is_empty()
    }

    /// Records a new thread (not ended, priority 8).
    pub fn create_thread(&self, thread: u64) {
        lock(&self.threads).insert(thread, ThreadState { ended: false, exit_status: 0, priority: 8 });
    }

    /// The state of the thread at `thread`, if it is one.
    pub fn thread(&self, thread: u64) -> Option<ThreadState> {
        lock(&self.threads).get(&thread).copied()
    }

    /// Marks the thread ended with `status`.
    pub fn end_thread(&self, thread: u64, status: i32) {
        if let Some(t) = lock(&self.threads).get_mut(&thread) {
            t.ended = true;
            t.exit_status = status;
        }
    }

    /// Sets the thread's priority; the previous one.
    pub fn set_priority(&self, thread: u64, priority: i32) -> Option<i32> {
        lock(&self.threads).get_mut(&thread).map(|t| std::mem::replace(&mut t.priority, priority))
    }

    /// Forgets the thread (its object was freed).
    pub fn delete_thread(&self, thread: u64) {
        lock(&self.threads).remove(&thread);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_in_order_and_an_item_is_queued_once() {
        let w = Workers::default();
        let work = |item| Work { kind: WorkKind::IoWorkItem, routine: 1, argument1: 2, argument2: 3, item };
        assert!(w.queue(work(0x10)) && w.queue(work(0x20)));
        assert!(!w.queue(work(0x10)), "queued already");
        assert!(w.is_queued(0x20));
        assert_eq!(w.next(), Some(work(0x10)));
        assert_eq!(w.next(), Some(work(0x20)));
        assert!(!w.any_queued());
    }

    #[test]
    fn a_thread_ends_once_with_its_status() {
        let w = Workers::default();
        w.create_thread(0x100);
        assert_eq!(w.set_priority(0x100, 16), Some(8));
        w.end_thread(0x100, 5);
        assert_eq!(w.thread(0x100), Some(ThreadState { ended: true, exit_status: 5, priority: 16 }));
        w.delete_thread(0x100);
        assert_eq!(w.thread(0x100), None);
    }
}
