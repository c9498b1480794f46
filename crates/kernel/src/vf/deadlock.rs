//! Deadlock detection (`/flags 0x20`; Microsoft, "Deadlock Detection", "!deadlock",
//! "Bug Check 0xC4: DRIVER_VERIFIER_DETECTED_VIOLATION", rows 0x1000–0x100B): the
//! order in which each thread takes locks — spin locks (`KeAcquireSpinLock`,
//! `KeAcquireSpinLockAtDpcLevel`, in-stack queued spin locks), kernel mutexes (KMUTEX),
//! fast mutexes (FAST_MUTEX, taken safe or unsafe), guarded mutexes
//! (KGUARDED_MUTEX) and executive resources (ERESOURCE), the kinds Microsoft's page
//! lists. Who holds what is kept per simulated thread (a spin lock's holder is the
//! thread that took it), with the driver's stack at each acquisition. The WDK
//! boundary calls the hooks ([`super::Verifier::lock_acquiring`] and its kin) where
//! Windows' Verifier thunks a verified driver's lock routines; the primitives check
//! nothing of this themselves.
//!
//! Taking B while holding A records "A before B"; a thread that holds B and asks for
//! A later — anywhere, even where the two could never meet — closes a cycle in the
//! lock hierarchy: 0x1001 (the lock that closes it), with both orders and their
//! stacks kept for the report ([`Cycle`], `!deadlock 1`). The check is made when the
//! thread asks, before it could block, so a real deadlock is reported as 0x1001 and
//! not as a wait that never ends; a *try* (`ExTryToAcquireFastMutex`, a resource
//! asked for with `Wait` FALSE, a zero-timeout wait on a mutex) cannot deadlock and
//! is only recorded once it succeeds. The other checks:
//!
//! - 0x1000 self-deadlock: a thread asks again for a lock it holds. A KMUTEX is
//!   recursive by design and an ERESOURCE may be re-taken by its holder (shared after
//!   shared, anything after exclusive); only exclusive after shared deadlocks.
//! - 0x1002 uninitialized resource: an ERESOURCE acquired that was never initialized
//!   (`ExInitializeResourceLite`), or was deleted.
//! - 0x1003 unexpected release: P2 the lock being released, P3 the one that should
//!   have been released first.
//! - 0x1004 unexpected thread: a lock released by a thread that does not hold it while
//!   another does (P2 the lock, P3 the holder, P4 the current thread).
//! - 0x1005 multiple initialization: an ERESOURCE initialized again without
//!   `ExDeleteResourceLite`.
//! - 0x1007 unacquired resource: a lock released that nobody holds.
//! - 0x1008 (Windows 7 and later) "The driver tried to acquire a lock by using an API
//!   that is mismatched for this lock type": P2 the lock. A lock's type is what it was
//!   last acquired or initialized as ([`LockKind::lock_type`]): a spin lock (however
//!   taken), a KMUTEX, a FAST_MUTEX — taken safe, unsafe or as a guarded mutex, one
//!   type, whose mixing on release is 0x1009 — or an ERESOURCE. A try is checked too.
//!   Memory that becomes another lock loses its old type: pool freed, an image
//!   unloaded, or an initialization routine ntmem sees (`KeInitializeSpinLock`,
//!   `KeInitializeMutex`, `KeInitializeGuardedMutex`, `ExInitializeResourceLite`;
//!   `ExInitializeFastMutex` is inline in `wdm.h`, so a fast mutex is typed at its
//!   first acquisition).
//! - 0x1009 a lock released with the routine of another kind (taken with
//!   `ExAcquireFastMutex`, released with `ExReleaseFastMutexUnsafe`).
//! - 0x100A (Windows 7 and later) "The terminated thread owns the lock": P2 the
//!   thread. A system thread ends (`PsTerminateSystemThread`, or its start routine
//!   returns) holding a lock a verified driver took; checked before the thread's
//!   object is signalled, and before the kernel's own check, THREAD_TERMINATE_HELD_MUTEX
//!   (0x4000008A) for a KMUTEX still owned.
//! - 0x100B a lock deleted while a thread holds it: an ERESOURCE
//!   (`ExDeleteResourceLite`), or any lock in pool the driver frees. A lock in freed
//!   pool or a deleted ERESOURCE leaves the hierarchy, as Windows forgets them.
//!
//! The kernel's own cancel spin lock is followed as a spin lock
//! (`crate::ke::kernel_objects::KernelObject::CancelSpinLock`): a verified driver's
//! `IoAcquireCancelSpinLock` and `IoReleaseCancelSpinLock` go through the hooks as
//! its own spin locks do, and `IoCancelIrp`, which takes it and calls the driver's
//! cancel routine with it held, records it as held by the calling thread, whoever
//! calls — so a driver that takes its queue lock and then the cancel spin lock in one
//! path, and its queue lock in a cancel routine, closes a cycle: 0x1001.
//!
//! **Where ntmem differs.** Locks are identified by address; one in memory other
//! than pool or an image (a stack) keeps its place in the hierarchy for the whole
//! run, and its type until an initialization routine ntmem sees re-types it. Freeing
//! pool that holds a held lock is 0x100B here; Microsoft's table names 0x100B for a
//! deleted lock still owned and says no more. Microsoft does not say which kinds the
//! release order applies to: ntmem checks it between locks whose release restores an
//! IRQL saved at their acquisition (spin locks and fast mutexes taken with
//! `ExAcquireFastMutex`), where the wrong order leaves the wrong IRQL; mutexes and
//! resources may be released in any order. Microsoft does not say which kinds are one
//! type for 0x1008: ntmem makes FAST_MUTEX and KGUARDED_MUTEX one, as Windows 8 and
//! later implement them ("Starting with Windows 8, guarded mutexes and fast mutexes
//! are implemented identically", "Fast Mutexes and Guarded Mutexes"). 0x100A is
//! raised for system threads only: the requesting thread and the worker threads never
//! end (a work item that returns owning a mutex is 0x39 as without Verifier). The
//! kernel's acquisitions of the cancel spin lock are recorded for every caller, and a
//! release by a driver not verified only ends the record, since Windows' Verifier sees
//! only a verified driver's calls; the lock is named `nt!IopCancelSpinLock` in
//! `!deadlock`'s list — the name Windows' symbols give the variable, which
//! Microsoft's documentation does not — at an address of ntmem's in the kernel-image
//! region. Threads without an object in pool (the requesting and worker threads) are
//! fixed addresses there too, so a report names the same threads in every run.
//! Microsoft's table has no 0x1006. Verifier's internal-data parameters are 0. Type
//! names other than 'Spinlock' (the one Microsoft's `!deadlock` example shows) are
//! ntmem's. Stacks hold the driver's frames only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Violation;

/// A kind of lock deadlock detection follows, as `!deadlock` names its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum LockKind {
    /// `KSPIN_LOCK` (`KeAcquireSpinLock`, `KeAcquireSpinLockAtDpcLevel`).
    SpinLock,
    /// `KMUTEX`, taken by a wait (recursive).
    Mutex,
    /// `FAST_MUTEX` taken with `ExAcquireFastMutex` or `ExTryToAcquireFastMutex`.
    FastMutex,
    /// `FAST_MUTEX` taken with `ExAcquireFastMutexUnsafe`.
    FastMutexUnsafe,
    /// `KGUARDED_MUTEX`.
    GuardedMutex,
    /// `ERESOURCE`, shared or exclusive.
    Resource,
}

impl LockKind {
    /// The type as `!deadlock` prints it (`Lock A = … Type 'Spinlock'`).
    pub fn name(self) -> &'static str {
        match self {
            LockKind::SpinLock => "Spinlock",
            LockKind::Mutex => "Mutex",
            LockKind::FastMutex => "Fast Mutex",
            LockKind::FastMutexUnsafe => "Fast Mutex Unsafe",
            LockKind::GuardedMutex => "Guarded Mutex",
            LockKind::Resource => "Resource",
        }
    }

    /// The type of lock it is taken as, for 0x1008: a `FAST_MUTEX` is one type whether
    /// taken safe or unsafe, and a `KGUARDED_MUTEX` is the same type ("Starting with
    /// Windows 8, guarded mutexes and fast mutexes are implemented identically",
    /// Microsoft, "Fast Mutexes and Guarded Mutexes"; ntmem's headers give them one
    /// layout). Spin locks (however acquired), kernel mutexes and resources are a type
    /// each.
    pub fn lock_type(self) -> LockKind {
        match self {
            LockKind::FastMutexUnsafe | LockKind::GuardedMutex => LockKind::FastMutex,
            kind => kind,
        }
    }

    /// Whether releasing it restores an IRQL its acquisition saved, so that locks of
    /// such kinds must be released in the reverse order of their acquisition.
    fn restores_irql(self) -> bool {
        matches!(self, LockKind::SpinLock | LockKind::FastMutex)
    }
}

/// How a lock is asked for: ERESOURCE's two modes (every other kind is exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Access {
    /// Exclusive.
    Exclusive,
    /// Shared.
    Shared,
}

/// A lock asked for: where, of what kind, how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// The lock's address.
    pub lock: u64,
    /// Its kind (the routine's).
    pub kind: LockKind,
    /// Shared or exclusive.
    pub access: Access,
}

impl LockRequest {
    /// An exclusive request for the `kind` lock at `lock`.
    pub fn exclusive(lock: u64, kind: LockKind) -> LockRequest {
        LockRequest { lock, kind, access: Access::Exclusive }
    }
}

/// Whether an acquisition may block: only one that may is checked for a deadlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The thread waits until it gets the lock.
    Wait,
    /// The thread gives up if the lock is taken (a try, a zero timeout).
    Try,
}

/// One acquisition: the lock, its kind, the thread that took it, and the driver's
/// stack then (return addresses, innermost first).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Acquisition {
    /// The lock's address.
    pub lock: u64,
    /// Its kind.
    pub kind: LockKind,
    /// The thread (`KeGetCurrentThread`).
    pub thread: u64,
    /// The driver's frames, innermost first.
    pub stack: Vec<u64>,
}

/// An order seen: `first` was held when `then` was taken, by one thread.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Order {
    /// The lock held.
    pub first: Acquisition,
    /// The lock taken while it was.
    pub then: Acquisition,
}

/// What 0x1001 found: the orders that make the cycle, the earlier ones first (as they
/// were first seen) and the one that closed it last — what `!deadlock 1` shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cycle {
    /// The orders, each the next one's `first` being the previous one's `then`.
    pub orders: Vec<Order>,
}

/// A lock a thread holds.
#[derive(Clone, Debug)]
struct Held {
    taken: Acquisition,
    access: Access,
    /// Acquisitions outstanding (recursive kinds).
    count: u32,
}

/// The hierarchy seen so far, what each thread holds, and the resources initialized.
#[derive(Debug, Default)]
pub(super) struct Locks {
    /// `order[a][b]`: `b` was taken while `a` was held, first seen as this.
    order: BTreeMap<u64, BTreeMap<u64, Order>>,
    /// Per thread, the locks held, in the order taken.
    held: BTreeMap<u64, Vec<Held>>,
    /// ERESOURCEs initialized and not deleted.
    initialized: BTreeSet<u64>,
    /// The kind each lock was last initialized or acquired as (its type, 0x1008).
    kinds: BTreeMap<u64, LockKind>,
    /// The last cycle found.
    cycle: Option<Cycle>,
}

impl Locks {
    /// `thread` asks for `lock` from `stack`: the checks before it may block
    /// (self-deadlock, an uninitialized resource and, for an attempt that waits, a
    /// cycle), then the orders it makes with the locks the thread holds.
    pub(super) fn acquiring(
        &mut self,
        thread: u64,
        lock: u64,
        kind: LockKind,
        access: Access,
        attempt: Attempt,
        stack: &[u64],
    ) -> Result<(), Violation> {
        if self.kinds.get(&lock).is_some_and(|known| known.lock_type() != kind.lock_type()) {
            return Err(Violation::MismatchedAcquire { lock });
        }
        if kind == LockKind::Resource && !self.initialized.contains(&lock) {
            return Err(Violation::UninitializedResource { lock });
        }
        if attempt == Attempt::Try {
            return Ok(());
        }
        let held = self.held.get(&thread).map(Vec::as_slice).unwrap_or_default();
        if let Some(h) = held.iter().find(|h| h.taken.lock == lock) {
            let recursive = match kind {
                LockKind::Mutex => true,
                LockKind::Resource => !(h.access == Access::Shared && access == Access::Exclusive),
                _ => false,
            };
            return if recursive { Ok(()) } else { Err(Violation::Recursion { lock }) };
        }
        let now = Acquisition { lock, kind, thread, stack: stack.to_vec() };
        if let Some(cycle) = held.iter().find_map(|h| self.cycle_through(&h.taken, &now)) {
            self.cycle = Some(cycle);
            return Err(Violation::LockHierarchy { lock });
        }
        self.record_orders(&now);
        Ok(())
    }

    /// `thread` got `lock` from `stack` (after [`Locks::acquiring`], or a try).
    pub(super) fn acquired(&mut self, thread: u64, lock: u64, kind: LockKind, access: Access, stack: &[u64]) {
        self.kinds.insert(lock, kind);
        let taken = Acquisition { lock, kind, thread, stack: stack.to_vec() };
        if let Some(h) = self.held.get_mut(&thread).and_then(|held| held.iter_mut().find(|h| h.taken.lock == lock)) {
            h.count = h.count.saturating_add(1);
            return;
        }
        self.record_orders(&taken);
        self.held.entry(thread).or_default().push(Held { taken, access, count: 1 });
    }

    /// `thread` releases `lock` with a `kind` routine.
    pub(super) fn released(&mut self, thread: u64, lock: u64, kind: LockKind) -> Result<(), Violation> {
        let held = self.held.entry(thread).or_default();
        let Some(at) = held.iter().rposition(|h| h.taken.lock == lock) else {
            let owner = self.holders(lock).next();
            return Err(match owner {
                Some(owner) => Violation::ReleasedByOtherThread { lock, owner, thread },
                None => Violation::Unacquired { lock },
            });
        };
        let h = &mut held[at];
        if h.taken.kind != kind {
            return Err(Violation::MismatchedRelease { lock });
        }
        if h.count > 1 {
            h.count -= 1;
            return Ok(());
        }
        if kind.restores_irql() {
            let later = held[at + 1..].iter().rev().find(|h| h.taken.kind.restores_irql());
            if let Some(expected) = later {
                return Err(Violation::ReleasedOutOfOrder { released: lock, expected: expected.taken.lock });
            }
        }
        held.remove(at);
        Ok(())
    }

    /// `thread` gives up `lock` without the release checks, if it holds it.
    pub(super) fn dropped(&mut self, thread: u64, lock: u64) {
        if let Some(held) = self.held.get_mut(&thread) {
            if let Some(at) = held.iter().rposition(|h| h.taken.lock == lock) {
                held.remove(at);
            }
        }
    }

    /// `ExInitializeResourceLite` on `lock`.
    pub(super) fn initialized(&mut self, lock: u64) -> Result<(), Violation> {
        if !self.initialized.insert(lock) {
            return Err(Violation::MultipleInitialization { lock });
        }
        self.created(lock, LockKind::Resource);
        Ok(())
    }

    /// An initialization routine made the memory at `lock` a lock of `kind`
    /// (`KeInitializeSpinLock`, `KeInitializeMutex`, `KeInitializeGuardedMutex`,
    /// `ExInitializeResourceLite`): whatever type it had before is forgotten, as the
    /// memory now holds another lock. Its place in the hierarchy stays.
    pub(super) fn created(&mut self, lock: u64, kind: LockKind) {
        self.kinds.insert(lock, kind);
    }

    /// `thread` ends (`PsTerminateSystemThread`, or its start routine returned): one
    /// that still holds a lock is 0x100A; else its record goes.
    pub(super) fn thread_ended(&mut self, thread: u64) -> Result<(), Violation> {
        match self.held.remove(&thread) {
            Some(held) if !held.is_empty() => Err(Violation::TerminatedOwner { thread }),
            _ => Ok(()),
        }
    }

    /// `ExDeleteResourceLite` on `lock`: it leaves the hierarchy.
    pub(super) fn deleted(&mut self, lock: u64) -> Result<(), Violation> {
        if let Some(owner) = self.holders(lock).next() {
            return Err(Violation::DeletedWhileOwned { lock, owner });
        }
        self.memory_freed(lock, lock + 1)
    }

    /// Pool `[start, end)` is being freed: a lock in it that a thread holds is
    /// 0x100B (the memory deletes it); the others leave the hierarchy.
    pub(super) fn memory_freed(&mut self, start: u64, end: u64) -> Result<(), Violation> {
        let inside = |lock: u64| (start..end).contains(&lock);
        let held = self.held.iter().find_map(|(&t, held)| held.iter().find(|h| inside(h.taken.lock)).map(|h| (t, h)));
        if let Some((owner, h)) = held {
            return Err(Violation::DeletedWhileOwned { lock: h.taken.lock, owner });
        }
        self.forget(start, end);
        Ok(())
    }

    /// The locks in `[start, end)` leave the hierarchy and lose their type (freed
    /// memory, an unloaded image), whoever holds them.
    pub(super) fn forget(&mut self, start: u64, end: u64) {
        let inside = |lock: u64| (start..end).contains(&lock);
        self.kinds.retain(|&l, _| !inside(l));
        self.initialized.retain(|&l| !inside(l));
        self.order.retain(|&l, _| !inside(l));
        for after in self.order.values_mut() {
            after.retain(|&l, _| !inside(l));
        }
    }

    /// The last cycle 0x1001 was raised for.
    pub(super) fn cycle(&self) -> Option<Cycle> {
        self.cycle.clone()
    }

    /// The threads holding `lock`, by address.
    fn holders(&self, lock: u64) -> impl Iterator<Item = u64> + '_ {
        self.held.iter().filter(move |(_, held)| held.iter().any(|h| h.taken.lock == lock)).map(|(&t, _)| t)
    }

    /// Records "each lock `now.thread` holds, then `now.lock`", the first time seen.
    fn record_orders(&mut self, now: &Acquisition) {
        for h in self.held.get(&now.thread).into_iter().flatten() {
            let order = Order { first: h.taken.clone(), then: now.clone() };
            self.order.entry(h.taken.lock).or_default().entry(now.lock).or_insert(order);
        }
    }

    /// The cycle `now` would close while `held` is held: the orders of a path from
    /// `now.lock` to `held.lock` (the shortest, lowest addresses first), then
    /// "`held`, then `now`".
    fn cycle_through(&self, held: &Acquisition, now: &Acquisition) -> Option<Cycle> {
        let mut came_from: BTreeMap<u64, u64> = BTreeMap::new();
        let mut next = VecDeque::from([now.lock]);
        while let Some(a) = next.pop_front() {
            if a == held.lock {
                let mut orders = vec![Order { first: held.clone(), then: now.clone() }];
                let mut at = a;
                while at != now.lock {
                    let from = came_from[&at];
                    orders.push(self.order[&from][&at].clone());
                    at = from;
                }
                orders.reverse();
                return Some(Cycle { orders });
            }
            for &b in self.order.get(&a).into_iter().flat_map(BTreeMap::keys) {
                if b != now.lock && !came_from.contains_key(&b) {
                    came_from.insert(b, a);
                    next.push_back(b);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T1: u64 = 0x100;
    const T2: u64 = 0x200;

    fn take(l: &mut Locks, thread: u64, lock: u64, kind: LockKind) -> Result<(), Violation> {
        l.acquiring(thread, lock, kind, Access::Exclusive, Attempt::Wait, &[lock + 1])?;
        l.acquired(thread, lock, kind, Access::Exclusive, &[lock + 1]);
        Ok(())
    }

    fn pair(l: &mut Locks, thread: u64, a: u64, b: u64, kind: LockKind) {
        take(l, thread, a, kind).unwrap();
        take(l, thread, b, kind).unwrap();
        l.released(thread, b, kind).unwrap();
        l.released(thread, a, kind).unwrap();
    }

    #[test]
    fn a_cycle_is_0x1001_with_both_orders_and_their_stacks() {
        let mut l = Locks::default();
        pair(&mut l, T1, 0xA0, 0xB0, LockKind::FastMutex);
        take(&mut l, T2, 0xB0, LockKind::FastMutex).unwrap();
        assert_eq!(take(&mut l, T2, 0xA0, LockKind::FastMutex), Err(Violation::LockHierarchy { lock: 0xA0 }));
        let c = l.cycle().unwrap();
        let shown: Vec<_> =
            c.orders.iter().map(|o| (o.first.thread, o.first.lock, o.then.lock, o.then.stack[0])).collect();
        assert_eq!(shown, [(T1, 0xA0, 0xB0, 0xB1), (T2, 0xB0, 0xA0, 0xA1)]);
        // Through a third lock, on one thread: 1 before 2, 2 before 3, then 3 before 1.
        let mut l = Locks::default();
        pair(&mut l, T1, 1 << 8, 2 << 8, LockKind::SpinLock);
        pair(&mut l, T1, 2 << 8, 3 << 8, LockKind::SpinLock);
        take(&mut l, T1, 3 << 8, LockKind::SpinLock).unwrap();
        assert_eq!(take(&mut l, T1, 1 << 8, LockKind::SpinLock), Err(Violation::LockHierarchy { lock: 1 << 8 }));
        assert_eq!(l.cycle().map(|c| c.orders.len()), Some(3));
    }

    #[test]
    fn the_same_order_everywhere_is_fine_and_a_try_is_not_a_deadlock() {
        let mut l = Locks::default();
        for thread in [T1, T2] {
            pair(&mut l, thread, 0xA0, 0xB0, LockKind::SpinLock);
        }
        take(&mut l, T1, 0xB0, LockKind::SpinLock).unwrap();
        l.acquiring(T1, 0xA0, LockKind::SpinLock, Access::Exclusive, Attempt::Try, &[]).unwrap();
        assert_eq!(l.cycle(), None);
    }

    #[test]
    fn recursion_is_0x1000_except_for_mutexes_and_shared_resources() {
        let mut l = Locks::default();
        take(&mut l, T1, 0xA0, LockKind::SpinLock).unwrap();
        assert_eq!(take(&mut l, T1, 0xA0, LockKind::SpinLock), Err(Violation::Recursion { lock: 0xA0 }));
        take(&mut l, T1, 0xB0, LockKind::Mutex).unwrap();
        take(&mut l, T1, 0xB0, LockKind::Mutex).unwrap();
        l.released(T1, 0xB0, LockKind::Mutex).unwrap();
        l.released(T1, 0xB0, LockKind::Mutex).unwrap();
        assert_eq!(l.released(T1, 0xB0, LockKind::Mutex), Err(Violation::Unacquired { lock: 0xB0 }));
        let r = 0xC0;
        assert_eq!(take(&mut l, T1, r, LockKind::Resource), Err(Violation::UninitializedResource { lock: r }));
        l.initialized(r).unwrap();
        let shared = |l: &mut Locks, access| l.acquiring(T2, r, LockKind::Resource, access, Attempt::Wait, &[]);
        shared(&mut l, Access::Shared).unwrap();
        l.acquired(T2, r, LockKind::Resource, Access::Shared, &[]);
        shared(&mut l, Access::Shared).unwrap();
        assert_eq!(shared(&mut l, Access::Exclusive), Err(Violation::Recursion { lock: r }));
        assert_eq!(l.deleted(r), Err(Violation::DeletedWhileOwned { lock: r, owner: T2 }));
        assert_eq!(l.initialized(r), Err(Violation::MultipleInitialization { lock: r }));
        // Freed pool deletes the locks in it: held, 0x100B; else they are forgotten.
        assert_eq!(l.memory_freed(0xC0, 0xC8), Err(Violation::DeletedWhileOwned { lock: r, owner: T2 }));
        let mut l = Locks::default();
        pair(&mut l, T1, 0xA0, 0xB0, LockKind::FastMutex);
        assert_eq!(l.memory_freed(0xB0, 0xB8), Ok(()));
        take(&mut l, T2, 0xB0, LockKind::FastMutex).unwrap();
        assert_eq!(take(&mut l, T2, 0xA0, LockKind::FastMutex), Ok(()), "the freed B's order is forgotten");
    }

    #[test]
    fn releases_out_of_order_by_another_thread_or_of_another_kind() {
        let mut l = Locks::default();
        take(&mut l, T1, 0xA0, LockKind::SpinLock).unwrap();
        take(&mut l, T1, 0xB0, LockKind::SpinLock).unwrap();
        assert_eq!(
            l.released(T1, 0xA0, LockKind::SpinLock),
            Err(Violation::ReleasedOutOfOrder { released: 0xA0, expected: 0xB0 })
        );
        assert_eq!(
            l.released(T2, 0xA0, LockKind::SpinLock),
            Err(Violation::ReleasedByOtherThread { lock: 0xA0, owner: T1, thread: T2 })
        );
        take(&mut l, T2, 0xC0, LockKind::FastMutex).unwrap();
        assert_eq!(l.released(T2, 0xC0, LockKind::FastMutexUnsafe), Err(Violation::MismatchedRelease { lock: 0xC0 }));
        // Mutexes may be released in any order.
        take(&mut l, T2, 0xD0, LockKind::Mutex).unwrap();
        take(&mut l, T2, 0xE0, LockKind::Mutex).unwrap();
        assert_eq!(l.released(T2, 0xD0, LockKind::Mutex), Ok(()));
    }

    #[test]
    fn a_lock_taken_as_another_type_is_0x1008_until_its_memory_is_reused() {
        let mut l = Locks::default();
        pair(&mut l, T1, 0xA0, 0xB0, LockKind::SpinLock);
        assert_eq!(take(&mut l, T1, 0xA0, LockKind::FastMutex), Err(Violation::MismatchedAcquire { lock: 0xA0 }));
        let try_as_mutex = l.acquiring(T1, 0xB0, LockKind::GuardedMutex, Access::Exclusive, Attempt::Try, &[]);
        assert_eq!(try_as_mutex, Err(Violation::MismatchedAcquire { lock: 0xB0 }), "a try is checked too");
        // A FAST_MUTEX is one type, safe, unsafe or guarded.
        take(&mut l, T2, 0xC0, LockKind::FastMutex).unwrap();
        l.released(T2, 0xC0, LockKind::FastMutex).unwrap();
        take(&mut l, T2, 0xC0, LockKind::FastMutexUnsafe).unwrap();
        l.released(T2, 0xC0, LockKind::FastMutexUnsafe).unwrap();
        take(&mut l, T2, 0xC0, LockKind::GuardedMutex).unwrap();
        l.released(T2, 0xC0, LockKind::GuardedMutex).unwrap();
        assert_eq!(take(&mut l, T2, 0xC0, LockKind::Mutex), Err(Violation::MismatchedAcquire { lock: 0xC0 }));
        // Freed memory, an initialization or an unloaded image makes it a new lock.
        l.memory_freed(0xA0, 0xA8).unwrap();
        take(&mut l, T1, 0xA0, LockKind::FastMutex).unwrap();
        l.created(0xB0, LockKind::Mutex);
        take(&mut l, T1, 0xB0, LockKind::Mutex).unwrap();
        l.forget(0xC0, 0xC8);
        take(&mut l, T1, 0xC0, LockKind::SpinLock).unwrap();
        // An ERESOURCE initialized where a spin lock was is a resource from then on.
        take(&mut l, T2, 0xD0, LockKind::SpinLock).unwrap();
        l.released(T2, 0xD0, LockKind::SpinLock).unwrap();
        l.initialized(0xD0).unwrap();
        take(&mut l, T2, 0xD0, LockKind::Resource).unwrap();
    }

    #[test]
    fn a_thread_ending_with_a_lock_is_0x100a_and_one_without_is_forgotten() {
        let mut l = Locks::default();
        take(&mut l, T1, 0xA0, LockKind::Mutex).unwrap();
        take(&mut l, T2, 0xB0, LockKind::SpinLock).unwrap();
        l.released(T2, 0xB0, LockKind::SpinLock).unwrap();
        assert_eq!(l.thread_ended(T2), Ok(()));
        assert_eq!(l.thread_ended(T1), Err(Violation::TerminatedOwner { thread: T1 }));
        assert_eq!(Violation::TerminatedOwner { thread: T1 }.parameters(), [0x100A, T1, 0, 0]);
        // The cancel spin lock the kernel took for a thread is dropped without checks.
        l.acquired(T2, 0xC0, LockKind::SpinLock, Access::Exclusive, &[]);
        l.dropped(T2, 0xC0);
        assert_eq!(l.thread_ended(T2), Ok(()));
    }

    /// One step of the property test: a thread takes or releases a lock (as a spin lock
    /// or a fast mutex: the same rules but for their type), its memory is freed, or a
    /// thread ends.
    #[derive(Clone, Debug)]
    enum Op {
        Take(u64, u64, LockKind),
        Release(u64, u64, LockKind),
        Free(u64),
        End(u64),
    }

    /// The naive reference: the history of acquisitions that succeeded, from which
    /// the order graph is recomputed for every question.
    #[derive(Default)]
    struct Model {
        /// (thread, lock, the locks the thread held then).
        history: Vec<(u64, u64, Vec<u64>)>,
        /// Per thread, (lock, the kind it was taken as), in order.
        held: BTreeMap<u64, Vec<(u64, LockKind)>>,
        /// The kind each lock was last taken as.
        kinds: BTreeMap<u64, LockKind>,
    }

    impl Model {
        fn reaches(&self, from: u64, to: u64) -> bool {
            let edges: BTreeSet<(u64, u64)> =
                self.history.iter().flat_map(|(_, b, held)| held.iter().map(move |&a| (a, *b))).collect();
            let mut seen = BTreeSet::from([from]);
            let mut frontier = vec![from];
            while let Some(a) = frontier.pop() {
                if a == to {
                    return true;
                }
                for &(x, y) in &edges {
                    if x == a && seen.insert(y) {
                        frontier.push(y);
                    }
                }
            }
            false
        }

        fn take(&mut self, thread: u64, lock: u64, kind: LockKind) -> Result<(), Violation> {
            if self.kinds.get(&lock).is_some_and(|&k| k != kind) {
                return Err(Violation::MismatchedAcquire { lock });
            }
            let held: Vec<u64> = self.held.get(&thread).into_iter().flatten().map(|h| h.0).collect();
            if held.contains(&lock) {
                return Err(Violation::Recursion { lock });
            }
            if held.iter().any(|&h| self.reaches(lock, h)) {
                return Err(Violation::LockHierarchy { lock });
            }
            self.history.push((thread, lock, held));
            self.held.entry(thread).or_default().push((lock, kind));
            self.kinds.insert(lock, kind);
            Ok(())
        }

        fn release(&mut self, thread: u64, lock: u64, kind: LockKind) -> Result<(), Violation> {
            let held = self.held.entry(thread).or_default();
            match held.iter().position(|h| h.0 == lock) {
                None => {
                    let owner = self.held.iter().find(|(_, h)| h.iter().any(|h| h.0 == lock)).map(|(&t, _)| t);
                    Err(owner.map_or(Violation::Unacquired { lock }, |owner| Violation::ReleasedByOtherThread {
                        lock,
                        owner,
                        thread,
                    }))
                }
                Some(at) if held[at].1 != kind => Err(Violation::MismatchedRelease { lock }),
                Some(at) if at + 1 != held.len() => {
                    Err(Violation::ReleasedOutOfOrder { released: lock, expected: held[held.len() - 1].0 })
                }
                Some(at) => {
                    held.remove(at);
                    Ok(())
                }
            }
        }

        fn free(&mut self, lock: u64) -> Result<(), Violation> {
            if let Some((&owner, _)) = self.held.iter().find(|(_, h)| h.iter().any(|h| h.0 == lock)) {
                return Err(Violation::DeletedWhileOwned { lock, owner });
            }
            self.kinds.remove(&lock);
            self.history.retain(|(_, b, _)| *b != lock);
            for (_, _, held) in &mut self.history {
                held.retain(|&a| a != lock);
            }
            Ok(())
        }

        fn end(&mut self, thread: u64) -> Result<(), Violation> {
            match self.held.remove(&thread) {
                Some(h) if !h.is_empty() => Err(Violation::TerminatedOwner { thread }),
                _ => Ok(()),
            }
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        let thread = (1u64..=3).prop_map(|t| t << 8);
        let lock = (1u64..=4).prop_map(|l| l << 4);
        let kind = prop_oneof![Just(LockKind::SpinLock), Just(LockKind::FastMutex)];
        prop_oneof![
            8 => (thread.clone(), lock.clone(), kind.clone()).prop_map(|(t, l, k)| Op::Take(t, l, k)),
            8 => (thread.clone(), lock.clone(), kind).prop_map(|(t, l, k)| Op::Release(t, l, k)),
            1 => lock.prop_map(Op::Free),
            1 => thread.prop_map(Op::End),
        ]
    }

    proptest! {
        #[test]
        fn verdicts_follow_the_naive_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut real = Locks::default();
            let mut model = Model::default();
            for op in ops {
                let (got, want) = match op {
                    Op::Take(t, l, k) => (take(&mut real, t, l, k), model.take(t, l, k)),
                    Op::Release(t, l, k) => (real.released(t, l, k), model.release(t, l, k)),
                    Op::Free(l) => (real.memory_freed(l, l + 8), model.free(l)),
                    Op::End(t) => (real.thread_ended(t), model.end(t)),
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
        }
    }
}
