//! Pool tracking: every pool block a driver allocated and has not freed, with the
//! driver's stack at the allocation, its per-driver counts, and the log of recent
//! allocate and free operations (research note `dma-verifier-views.md` §3.2;
//! Microsoft, "Pool Tracking" and "Debugging memory leaks — DRIVER_VERIFIER_DETECTED_VIOLATION (C4): 0x62").
//!
//! ntmem records the blocks of verified drivers under any Verifier option, so that
//! its report can list a leak's allocation site; only with the pool tracking option
//! does a leak at unload stop the machine (0xC4/0x62), as on Windows. Windows'
//! per-driver counters (`!verifier 1`) are these counts. Without Verifier the
//! report finds leaked blocks by walking the pool, as `!poolfind` does.

use std::collections::{HashMap, VecDeque};

use crate::ex::pool::{PoolKind, PoolTag};

use super::CallSite;

/// The tag Verifier's pool tracking charges an MDL from `IoAllocateMdl` under
/// (Microsoft, "Pool Tracking" and the 0x62 how-to: "VMdl").
pub const VERIFIER_MDL_TAG: PoolTag = PoolTag::new(*b"VMdl");

/// The tag it charges a work item from `IoAllocateWorkItem` under ("Vfwi", same
/// sources).
pub const VERIFIER_WORK_ITEM_TAG: PoolTag = PoolTag::new(*b"Vfwi");

/// The tag pool tracking records a block `routine` allocated for a driver under:
/// Verifier's substitute tag where Microsoft names one (IoAllocateMdl, IoAllocateWorkItem);
/// `None` keeps the routine's own. Microsoft's pages name no substitute tag for
/// IoAllocateIrp or the Rtl string routines, so their blocks keep theirs ("Irp ",
/// "Ustr"). Where ntmem differs: the pool block itself (PoolMon, `!pool`) keeps the
/// routine's tag; only Verifier's records use the substitute.
pub fn substitute_tag(routine: &str) -> Option<PoolTag> {
    match routine {
        "IoAllocateMdl" => Some(VERIFIER_MDL_TAG),
        "IoAllocateWorkItem" => Some(VERIFIER_WORK_ITEM_TAG),
        _ => None,
    }
}

/// Entries in the allocate/free log: Windows keeps the most recent 0x10000.
pub const LOG_ENTRIES: usize = 0x10000;

/// A pool block a driver allocated and has not freed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TrackedBlock {
    /// The block's address (what the driver got).
    pub va: u64,
    /// The bytes the driver asked for.
    pub bytes: u64,
    /// Its tag (Verifier's substitute tag for blocks a routine allocated for the driver).
    pub tag: PoolTag,
    /// Paged or nonpaged.
    pub kind: PoolKind,
    /// The routine that allocated it.
    pub routine: &'static str,
    /// The driver it is charged to.
    pub driver: String,
    /// The driver's return addresses at the allocation, innermost first.
    pub stack: Vec<u64>,
    /// The thread that allocated it (its `KTHREAD` address; 0: not known).
    pub thread: u64,
}

/// A count and its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    /// Blocks.
    pub allocations: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One driver's counts, nonpaged then paged (`!verifier 1`'s "Pool Allocation
/// Statistics: ( NonPagedPool / PagedPool )").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriverPool {
    /// Outstanding now.
    pub current: [Count; 2],
    /// The most ever outstanding at once.
    pub peak: [Count; 2],
}

/// An allocate or free in the log (`!verifier 0x80`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Allocated (`true`) or freed.
    pub allocate: bool,
    /// The block.
    pub va: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its tag.
    pub tag: PoolTag,
    /// The driver it was charged to.
    pub driver: String,
    /// The driver's stack at the allocation (empty for a free: the free may come
    /// from the system, an MDL or IRP freed by the I/O manager).
    pub stack: Vec<u64>,
    /// The allocating thread (0 for a free: ntmem does not note who freed).
    pub thread: u64,
}

/// Pages a driver locked in a process with `MmProbeAndLockPages` and has not
/// unlocked (pool tracking tracks locked pages from Windows Vista on: Microsoft,
/// "Pool Tracking").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedMdl {
    /// The MDL.
    pub mdl: u64,
    /// The process object the pages belong to.
    pub process: u64,
    /// Pages locked.
    pub pages: u64,
    /// The driver that locked them.
    pub driver: String,
}

/// A driver's unload in progress: from its `DriverUnload`'s start until its image is
/// unloaded ([`super::Verifier::unload_started`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Unloading {
    /// The driver's image name.
    pub(super) driver: String,
    /// The thread running its `DriverUnload` (a `KTHREAD` address or token).
    pub(super) thread: u64,
}

/// The tracked blocks, counts and log, the drivers' locked MDLs, and the unloads in
/// progress.
#[derive(Debug, Default)]
pub(super) struct Tracking {
    blocks: HashMap<u64, TrackedBlock>,
    drivers: HashMap<String, DriverPool>,
    log: VecDeque<LogEntry>,
    locked: Vec<LockedMdl>,
    pub(super) unloading: Vec<Unloading>,
}

impl Tracking {
    pub(super) fn allocated(&mut self, block: TrackedBlock) {
        let counts = self.drivers.entry(block.driver.clone()).or_default();
        let k = block.kind.index();
        counts.current[k].allocations += 1;
        counts.current[k].bytes += block.bytes;
        counts.peak[k].allocations = counts.peak[k].allocations.max(counts.current[k].allocations);
        counts.peak[k].bytes = counts.peak[k].bytes.max(counts.current[k].bytes);
        self.note(LogEntry {
            allocate: true,
            va: block.va,
            bytes: block.bytes,
            tag: block.tag,
            driver: block.driver.clone(),
            stack: block.stack.clone(),
            thread: block.thread,
        });
        self.blocks.insert(block.va, block);
    }

    /// Forgets the block at `va`, if tracked.
    pub(super) fn freed(&mut self, va: u64) {
        let Some(block) = self.blocks.remove(&va) else { return };
        if let Some(counts) = self.drivers.get_mut(&block.driver) {
            let c = &mut counts.current[block.kind.index()];
            c.allocations = c.allocations.saturating_sub(1);
            c.bytes = c.bytes.saturating_sub(block.bytes);
        }
        self.note(LogEntry {
            allocate: false,
            va,
            bytes: block.bytes,
            tag: block.tag,
            driver: block.driver,
            stack: Vec::new(),
            thread: 0,
        });
    }

    /// Notes a driver's lock (an MDL locked again replaces its record).
    pub(super) fn locked(&mut self, lock: LockedMdl) {
        self.unlocked(lock.mdl);
        self.locked.push(lock);
    }

    /// Forgets the lock of the MDL at `mdl`.
    pub(super) fn unlocked(&mut self, mdl: u64) {
        self.locked.retain(|l| l.mdl != mdl);
    }

    /// The first lock still held in the process whose object is at `process`.
    pub(super) fn held_in(&self, process: u64) -> Option<LockedMdl> {
        self.locked.iter().find(|l| l.process == process).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// `driver`'s outstanding blocks, by address.
    pub(super) fn outstanding(&self, driver: &str) -> Vec<TrackedBlock> {
        let mut v: Vec<TrackedBlock> = self.blocks.values().filter(|b| b.driver == driver).cloned().collect();
        v.sort_by_key(|b| b.va);
        v
    }

    pub(super) fn counts(&self, driver: &str) -> DriverPool {
        self.drivers.get(driver).copied().unwrap_or_default()
    }

    pub(super) fn log(&self) -> Vec<LogEntry> {
        self.log.iter().cloned().collect()
    }

    fn note(&mut self, entry: LogEntry) {
        if self.log.len() == LOG_ENTRIES {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }
}

impl CallSite {
    /// The tracked block `va` of `bytes` tagged `tag` in `kind` pool, allocated by
    /// `routine` from this site.
    pub fn block(&self, routine: &'static str, va: u64, bytes: u64, tag: PoolTag, kind: PoolKind) -> TrackedBlock {
        TrackedBlock {
            va,
            bytes,
            tag,
            kind,
            routine,
            driver: self.driver.clone(),
            stack: self.frames.iter().map(|f| f.0).collect(),
            thread: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site(driver: &str) -> CallSite {
        CallSite { driver: driver.into(), frames: vec![(0x1010, 0x10)] }
    }

    proptest! {
        /// Against a naive reference: the set of live blocks per driver, and the
        /// current and peak counts as sums over it.
        #[test]
        fn counts_follow_the_live_blocks(ops in proptest::collection::vec((any::<bool>(), 0u64..16, 1u64..5000, 0usize..2, any::<bool>()), 0..200)) {
            let mut t = Tracking::default();
            let mut live: HashMap<u64, (u64, usize, &str)> = HashMap::new();
            let mut peak = HashMap::<&str, [Count; 2]>::new();
            for (alloc, slot, bytes, kind, other) in ops {
                let va = 0x1000 * (slot + 1);
                let driver = if other { "b.sys" } else { "a.sys" };
                if alloc && !live.contains_key(&va) {
                    let k = if kind == 0 { PoolKind::Nonpaged } else { PoolKind::Paged };
                    t.allocated(site(driver).block("ExAllocatePoolWithTag", va, bytes, PoolTag(0x6161_6161), k));
                    live.insert(va, (bytes, kind, driver));
                } else if !alloc {
                    t.freed(va);
                    live.remove(&va);
                }
                for d in ["a.sys", "b.sys"] {
                    let mut now = [Count::default(); 2];
                    for (_, &(bytes, kind, owner)) in live.iter().filter(|(_, v)| v.2 == d) {
                        let _ = owner;
                        now[kind].allocations += 1;
                        now[kind].bytes += bytes;
                    }
                    let p = peak.entry(d).or_default();
                    for k in 0..2 {
                        p[k].allocations = p[k].allocations.max(now[k].allocations);
                        p[k].bytes = p[k].bytes.max(now[k].bytes);
                    }
                    let counts = t.counts(d);
                    prop_assert_eq!(counts.current, now);
                    prop_assert_eq!(counts.peak, *p);
                    prop_assert_eq!(t.outstanding(d).len() as u64, now[0].allocations + now[1].allocations);
                }
            }
        }
    }

    /// A verifier with pool tracking holding, for `leaky.sys`, 0x30 paged bytes and
    /// 0x50 + 0x20 nonpaged bytes.
    fn leaky() -> crate::vf::Verifier {
        let v = crate::vf::Verifier::default();
        v.set_flags(crate::vf::VerifierFlags::POOL_TRACKING);
        for (va, bytes, kind) in
            [(0x1000, 0x30, PoolKind::Paged), (0x2000, 0x50, PoolKind::Nonpaged), (0x3000, 0x20, PoolKind::Nonpaged)]
        {
            v.allocated(Some(site("leaky.sys").block("ExAllocatePoolWithTag", va, bytes, PoolTag(1), kind)), true);
        }
        v
    }

    #[test]
    fn a_leak_at_unload_is_0x60_with_bytes_on_windows_2000_and_0x62_with_the_name_later() {
        use ntmem_machine::Release;
        let v = leaky();
        let stop = |release| v.unload_violation("leaky.sys", 0x1234, release).map(crate::vf::Violation::parameters);
        assert_eq!(stop(Release::Windows2000), Some([0x60, 0x30, 0x70, 3]));
        assert_eq!(stop(Release::WindowsXp), Some([0x62, 0x1234, 0, 3]));
        assert_eq!(stop(Release::Windows8), Some([0x62, 0x1234, 0, 3]));
        assert_eq!(v.unload_violation("other.sys", 0x1234, Release::Windows2000), None, "nothing outstanding");
        v.set_flags(crate::vf::VerifierFlags::SPECIAL_POOL);
        assert_eq!(stop(Release::Windows2000), None, "only with pool tracking");
    }

    #[test]
    fn only_another_thread_allocating_during_the_unload_is_0x61() {
        let v = leaky();
        let (unloader, other) = (0xAAAA, 0xBBBB);
        assert_eq!(v.allocating_while_unloading("leaky.sys", Some(other)), None, "no unload yet");
        v.unload_started("leaky.sys", unloader);
        assert_eq!(v.allocating_while_unloading("leaky.sys", Some(unloader)), None, "DriverUnload itself may");
        assert_eq!(v.allocating_while_unloading("other.sys", Some(other)), None, "another driver's");
        let stop = |thread| v.allocating_while_unloading("leaky.sys", thread).map(crate::vf::Violation::parameters);
        assert_eq!(stop(Some(other)), Some([0x61, 0x30, 0x70, 3]), "a system thread or a work item");
        assert_eq!(stop(None), Some([0x61, 0x30, 0x70, 3]), "a DPC");
        v.unload_finished("leaky.sys");
        assert_eq!(stop(Some(other)), None, "the image is gone");
        v.unload_started("leaky.sys", unloader);
        v.set_drivers(Some(vec!["else".into()]));
        assert_eq!(stop(Some(other)), None, "not verified");
    }

    #[test]
    fn the_log_keeps_the_last_0x10000_operations() {
        let mut t = Tracking::default();
        for i in 0..(LOG_ENTRIES as u64 + 10) {
            t.allocated(site("a.sys").block("ExAllocatePoolWithTag", i * 16, 16, PoolTag(1), PoolKind::Nonpaged));
        }
        let log = t.log();
        assert_eq!(log.len(), LOG_ENTRIES);
        assert_eq!(log[0].va, 10 * 16, "the oldest ten fell out");
        t.freed(10 * 16);
        assert!(!t.log().last().unwrap().allocate);
    }
}
