//! Executive resources (`ERESOURCE`): reader/writer locks a thread may take
//! recursively (learn.microsoft.com "Introduction to ERESOURCE Routines",
//! "ExAcquireResourceExclusiveLite", "ExAcquireResourceSharedLite",
//! "ExReleaseResourceLite", bug check 0xE3 "RESOURCE_NOT_OWNED").
//!
//! The structure is the driver's; who owns each initialized resource, and how many
//! times, is kept here by its address. The rules, as Windows grants: exclusive access
//! when nobody else holds the resource (recursively for its exclusive owner); shared
//! access when no other thread holds it exclusively and no exclusive waiter is
//! starved (ntmem has no waiters queued while one thread runs, so: when no other
//! thread holds it exclusively); a thread that holds it exclusively may also acquire
//! it shared (counted as exclusive). Acquiring exclusive while holding it only shared
//! never succeeds (on Windows a deadlock).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Who holds one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    /// The exclusive owner and its recursion count.
    pub exclusive: Option<(u64, u32)>,
    /// Shared owners and their counts.
    pub shared: BTreeMap<u64, u32>,
}

impl Holders {
    /// The number of acquisitions outstanding (`ActiveCount` as Windows keeps it: owners).
    pub fn active(&self) -> usize {
        usize::from(self.exclusive.is_some()) + self.shared.len()
    }
}

/// What an acquire found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// Granted.
    Granted,
    /// Another thread holds it incompatibly: wait or fail.
    Busy,
    /// Not an initialized resource.
    Unknown,
}

/// Why a release failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The thread does not hold it (RESOURCE_NOT_OWNED).
    NotOwned,
    /// Not an initialized resource.
    Unknown,
}

/// The machine's initialized resources.
#[derive(Debug, Default)]
pub struct Resources(Mutex<BTreeMap<u64, Holders>>);

impl Resources {
    fn map(&self) -> MutexGuard<'_, BTreeMap<u64, Holders>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `ExInitializeResourceLite`: free (a re-initialization forgets the holders).
    pub fn initialize(&self, resource: u64) {
        self.map().insert(resource, Holders::default());
    }

    /// `ExDeleteResourceLite`: forgets it; its holders, if any.
    pub fn delete(&self, resource: u64) -> Option<Holders> {
        self.map().remove(&resource)
    }

    /// Who holds it.
    pub fn holders(&self, resource: u64) -> Option<Holders> {
        self.map().get(&resource).cloned()
    }

    /// Whether an acquire by `thread` (exclusive or shared) would be granted now,
    /// changing nothing (an unknown resource: false).
    pub fn would_grant(&self, resource: u64, thread: u64, exclusive: bool) -> bool {
        let map = self.map();
        let Some(h) = map.get(&resource) else { return false };
        match h.exclusive {
            Some((owner, _)) => owner == thread,
            None => !exclusive || h.shared.is_empty(),
        }
    }

    /// Exclusive access for `thread`.
    pub fn acquire_exclusive(&self, resource: u64, thread: u64) -> Acquire {
        let mut map = self.map();
        let Some(h) = map.get_mut(&resource) else { return Acquire::Unknown };
        match h.exclusive {
            Some((owner, n)) if owner == thread => h.exclusive = Some((owner, n.saturating_add(1))),
            None if h.shared.is_empty() => h.exclusive = Some((thread, 1)),
            _ => return Acquire::Busy,
        }
        Acquire::Granted
    }

    /// Shared access for `thread`.
    pub fn acquire_shared(&self, resource: u64, thread: u64) -> Acquire {
        let mut map = self.map();
        let Some(h) = map.get_mut(&resource) else { return Acquire::Unknown };
        match h.exclusive {
            Some((owner, n)) if owner == thread => h.exclusive = Some((owner, n.saturating_add(1))),
            Some(_) => return Acquire::Busy,
            None => {
                let n = h.shared.entry(thread).or_insert(0);
                *n = n.saturating_add(1);
            }
        }
        Acquire::Granted
    }

    /// `thread` releases one acquisition.
    pub fn release(&self, resource: u64, thread: u64) -> Result<(), ReleaseError> {
        let mut map = self.map();
        let Some(h) = map.get_mut(&resource) else { return Err(ReleaseError::Unknown) };
        match h.exclusive {
            Some((owner, n)) if owner == thread => {
                h.exclusive = (n > 1).then_some((owner, n - 1));
                return Ok(());
            }
            _ => {}
        }
        match h.shared.get_mut(&thread) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                h.shared.remove(&thread);
            }
            None => return Err(ReleaseError::NotOwned),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_a_writer_excludes_and_recursion_counts() {
        let r = Resources::default();
        assert_eq!(r.acquire_shared(0x10, 1), Acquire::Unknown);
        r.initialize(0x10);
        assert_eq!(r.acquire_shared(0x10, 1), Acquire::Granted);
        assert_eq!(r.acquire_shared(0x10, 2), Acquire::Granted);
        assert_eq!(r.acquire_exclusive(0x10, 1), Acquire::Busy, "shared holders");
        assert_eq!(r.release(0x10, 3), Err(ReleaseError::NotOwned));
        assert_eq!((r.release(0x10, 1), r.release(0x10, 2)), (Ok(()), Ok(())));
        assert_eq!(r.acquire_exclusive(0x10, 1), Acquire::Granted);
        assert_eq!(r.acquire_exclusive(0x10, 1), Acquire::Granted, "recursive");
        assert_eq!(r.acquire_shared(0x10, 1), Acquire::Granted, "the owner, shared");
        assert_eq!(r.acquire_shared(0x10, 2), Acquire::Busy);
        assert_eq!(r.holders(0x10).map(|h| h.exclusive), Some(Some((1, 3))));
        for _ in 0..3 {
            assert_eq!(r.release(0x10, 1), Ok(()));
        }
        assert_eq!(r.release(0x10, 1), Err(ReleaseError::NotOwned));
        assert_eq!(r.delete(0x10).map(|h| h.active()), Some(0));
    }
}
