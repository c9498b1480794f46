//! Deadlock detection (`/flags 0x20`; Microsoft, "Deadlock Detection"): the order
//! in which each processor takes locks. Taking B while holding A records "A before
//! B"; taking A later while holding B — anywhere, even where the two could never
//! actually meet — closes a cycle in the lock hierarchy, which is
//! DRIVER_VERIFIER_DETECTED_VIOLATION 0x1001 (the lock that closes it). Releasing a
//! lock while one taken after it is still held is 0x1003 (the lock expected, the
//! lock released). Recursion on one lock is 0x1000, found where the lock is taken
//! ([`crate::Cpu::acquire_spin_lock_at_dpc_level`]).
//!
//! Where ntmem differs: locks are identified by address; a lock in memory that is
//! freed and reused keeps its place in the hierarchy (Windows forgets a resource
//! whose pool is freed). Only spin locks are tracked (the mutex family comes with
//! threads). Each processor is one thread.

use std::collections::{HashMap, HashSet};

use super::Violation;

/// The hierarchy seen so far and what each processor holds.
#[derive(Debug, Default)]
pub(super) struct Locks {
    /// `before[a]`: the locks taken while `a` was held.
    before: HashMap<u64, HashSet<u64>>,
    /// Per processor, the locks held, in the order taken.
    held: HashMap<u32, Vec<u64>>,
}

impl Locks {
    /// Processor `cpu` took `lock`.
    pub(super) fn acquired(&mut self, cpu: u32, lock: u64) -> Result<(), Violation> {
        let held = self.held.entry(cpu).or_default().clone();
        if held.iter().any(|&h| self.reaches(lock, h)) {
            return Err(Violation::LockHierarchy { lock });
        }
        for h in held {
            self.before.entry(h).or_default().insert(lock);
        }
        self.held.entry(cpu).or_default().push(lock);
        Ok(())
    }

    /// Processor `cpu` released `lock`.
    pub(super) fn released(&mut self, cpu: u32, lock: u64) -> Result<(), Violation> {
        let held = self.held.entry(cpu).or_default();
        let Some(at) = held.iter().rposition(|&h| h == lock) else { return Ok(()) };
        if let Some(&last) = held.last().filter(|&&last| last != lock) {
            return Err(Violation::ReleasedOutOfOrder { expected: last, released: lock });
        }
        held.remove(at);
        Ok(())
    }

    /// Whether `from` was ever taken before `to`, directly or through others.
    fn reaches(&self, from: u64, to: u64) -> bool {
        let mut seen = HashSet::new();
        let mut next = vec![from];
        while let Some(a) = next.pop() {
            if a == to {
                return true;
            }
            if seen.insert(a) {
                next.extend(self.before.get(&a).into_iter().flatten().copied());
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_in_the_hierarchy_is_0x1001_even_on_one_processor() {
        let mut l = Locks::default();
        l.acquired(0, 0xA).unwrap();
        l.acquired(0, 0xB).unwrap();
        l.released(0, 0xB).unwrap();
        l.released(0, 0xA).unwrap();
        l.acquired(0, 0xB).unwrap();
        assert_eq!(l.acquired(0, 0xA), Err(Violation::LockHierarchy { lock: 0xA }));
        // Through a third lock: A before B, B before C, then C before A.
        let mut l = Locks::default();
        for (a, b) in [(1, 2), (2, 3)] {
            l.acquired(0, a).unwrap();
            l.acquired(0, b).unwrap();
            l.released(0, b).unwrap();
            l.released(0, a).unwrap();
        }
        l.acquired(1, 3).unwrap();
        assert_eq!(l.acquired(1, 1), Err(Violation::LockHierarchy { lock: 1 }));
    }

    #[test]
    fn the_same_order_everywhere_is_fine_and_out_of_order_release_is_0x1003() {
        let mut l = Locks::default();
        for cpu in 0..2 {
            l.acquired(cpu, 0xA).unwrap();
            l.acquired(cpu, 0xB).unwrap();
            l.released(cpu, 0xB).unwrap();
            l.released(cpu, 0xA).unwrap();
        }
        l.acquired(0, 0xA).unwrap();
        l.acquired(0, 0xB).unwrap();
        assert_eq!(l.released(0, 0xA), Err(Violation::ReleasedOutOfOrder { expected: 0xB, released: 0xA }));
    }
}
