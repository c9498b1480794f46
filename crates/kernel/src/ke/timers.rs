//! Timers and DPCs on simulated time (learn.microsoft.com "Timer Objects and DPCs",
//! "KeSetTimerEx", "KeInsertQueueDpc"): the machine's timer queue and DPC queue.
//!
//! The structures themselves (`KTIMER`, `KDPC`) are the driver's, in its memory; the
//! WDK boundary reads and writes them. What the kernel keeps here is the order of
//! things: which timers are set and when they are due (interrupt time, 100-ns units
//! since boot), and which DPCs are queued, in the order they were queued.
//!
//! Time is simulated and moves only when a scenario step advances it or a wait that
//! nothing else can satisfy sleeps until the next timer: no timer fires by itself
//! while driver code runs. A queued DPC runs when the driver routine that queued it
//! has returned (before the next step), or during a wait — on one processor,
//! deterministically.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// A set timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetTimer {
    /// When it is due (interrupt time, 100-ns units).
    pub due: u64,
    /// The period in milliseconds (0: one-shot).
    pub period_ms: u32,
    /// The DPC to queue when it expires (0: none).
    pub dpc: u64,
}

/// A queued DPC: the `KDPC` and its two system arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedDpc {
    /// The `KDPC`'s address (as the driver sees it).
    pub dpc: u64,
    /// `SystemArgument1`.
    pub argument1: u64,
    /// `SystemArgument2`.
    pub argument2: u64,
}

/// Where a DPC joins the queue, from its `KDPC.Importance` (learn.microsoft.com
/// "KeSetImportanceDpc", `KDPC_IMPORTANCE`): a HighImportance DPC goes to the head of
/// the processor's queue, every other importance to the tail. (Low and Medium differ
/// on Windows only in when the queue is drained, which one simulated processor does
/// not show.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpcPlace {
    /// At the tail: LowImportance (0), MediumImportance (1, the default),
    /// MediumHighImportance (3), and any other value.
    Tail,
    /// At the head: HighImportance (2).
    Head,
}

impl DpcPlace {
    /// `HighImportance` in `KDPC_IMPORTANCE`.
    pub const HIGH_IMPORTANCE: u8 = 2;

    /// The place of a DPC whose `Importance` byte is `importance`.
    pub fn of_importance(importance: u8) -> DpcPlace {
        if importance == Self::HIGH_IMPORTANCE {
            DpcPlace::Head
        } else {
            DpcPlace::Tail
        }
    }
}

/// The machine's timers and DPCs.
#[derive(Debug, Default)]
pub struct Timers {
    set: Mutex<BTreeMap<u64, SetTimer>>,
    queued: Mutex<VecDeque<QueuedDpc>>,
}

impl Timers {
    fn set_timers(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SetTimer>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dpcs(&self) -> std::sync::MutexGuard<'_, VecDeque<QueuedDpc>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or resets) the timer at `timer`; returns whether it was set already.
    pub fn set(&self, timer: u64, t: SetTimer) -> bool {
        self.set_timers().insert(timer, t).is_some()
    }

    /// Cancels the timer at `timer`; returns whether it was set.
    pub fn cancel(&self, timer: u64) -> bool {
        self.set_timers().remove(&timer).is_some()
    }

    /// When the next timer is due, if any is set.
    pub fn next_due(&self) -> Option<u64> {
        self.set_timers().values().map(|t| t.due).min()
    }

    /// The timers due at `now`, earliest first (ties in address order), each taken off
    /// the queue — a periodic one set again a period after `now`: Windows re-inserts a
    /// periodic timer with its period as an interval relative to the expiry (the
    /// kernel's timer-expiration DPC, as ReactOS documents it), so one that expired
    /// late — set with a due time already past — keeps the late phase.
    pub fn expire(&self, now: u64) -> Vec<(u64, SetTimer)> {
        let mut set = self.set_timers();
        let mut due: Vec<(u64, SetTimer)> = set.iter().filter(|(_, t)| t.due <= now).map(|(&a, &t)| (a, t)).collect();
        due.sort_by_key(|&(a, t)| (t.due, a));
        for (address, t) in &due {
            if t.period_ms == 0 {
                set.remove(address);
            } else {
                let period = u64::from(t.period_ms) * 10_000;
                set.insert(*address, SetTimer { due: now + period, ..*t });
            }
        }
        due
    }

    /// Queues `dpc` at `place`; false when it is queued already (nothing changes,
    /// its system arguments included).
    pub fn queue(&self, dpc: QueuedDpc, place: DpcPlace) -> bool {
        let mut queued = self.dpcs();
        if queued.iter().any(|d| d.dpc == dpc.dpc) {
            return false;
        }
        match place {
            DpcPlace::Tail => queued.push_back(dpc),
            DpcPlace::Head => queued.push_front(dpc),
        }
        true
    }

    /// Takes `dpc` off the queue; whether it was queued.
    pub fn dequeue(&self, dpc: u64) -> bool {
        let mut queued = self.dpcs();
        let before = queued.len();
        queued.retain(|d| d.dpc != dpc);
        queued.len() != before
    }

    /// The next queued DPC, taken off the queue.
    pub fn next_dpc(&self) -> Option<QueuedDpc> {
        self.dpcs().pop_front()
    }

    /// Whether any DPC is queued.
    pub fn dpcs_queued(&self) -> bool {
        !self.dpcs().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a naive model: each timer fires once per expiry call that reaches its
        /// due time, and a periodic timer is due again a period after that call.
        #[test]
        fn expiries_follow_due_times_and_periods(
            timers in proptest::collection::vec((0u64..5_000_000, 0u32..50), 1..8),
            steps in proptest::collection::vec(0u64..3_000_000, 1..10),
        ) {
            let t = Timers::default();
            for (i, &(due, period_ms)) in timers.iter().enumerate() {
                t.set(i as u64 * 0x40, SetTimer { due, period_ms, dpc: 0 });
            }
            let mut now = 0u64;
            let mut next: Vec<Option<u64>> = timers.iter().map(|&(due, _)| Some(due)).collect();
            for step in steps {
                now += step;
                let fired: Vec<u64> = t.expire(now).into_iter().map(|(a, _)| a).collect();
                let mut expected = Vec::new();
                for (i, &(_, period_ms)) in timers.iter().enumerate() {
                    if let Some(due) = next[i].filter(|&d| d <= now) {
                        expected.push((due, i as u64 * 0x40));
                        next[i] = (period_ms != 0).then(|| now + u64::from(period_ms) * 10_000);
                    }
                }
                expected.sort_unstable();
                prop_assert_eq!(fired, expected.into_iter().map(|(_, a)| a).collect::<Vec<_>>());
                prop_assert_eq!(t.next_due(), next.iter().flatten().min().copied());
            }
        }
    }

    #[test]
    fn a_dpc_is_queued_once_and_runs_in_order() {
        let t = Timers::default();
        let d = |dpc| QueuedDpc { dpc, argument1: 1, argument2: 2 };
        assert!(t.queue(d(0x100), DpcPlace::Tail) && t.queue(d(0x200), DpcPlace::Tail));
        assert!(!t.queue(d(0x100), DpcPlace::Head), "already queued");
        assert!(t.queue(d(0x300), DpcPlace::Head));
        assert!(t.dequeue(0x200));
        assert_eq!(t.next_dpc(), Some(d(0x300)), "a high-importance DPC goes first");
        assert_eq!(t.next_dpc(), Some(d(0x100)));
        assert_eq!(t.next_dpc(), None);
        assert_eq!(DpcPlace::of_importance(2), DpcPlace::Head);
        assert!([0, 1, 3, 0xFF].into_iter().all(|i| DpcPlace::of_importance(i) == DpcPlace::Tail));
    }
}
