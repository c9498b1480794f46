//! The PFN database: one entry per physical page (research/nt-algorithms.md §6.5, §8.6).
//!
//! Windows keeps an `MMPFN` per page; ntmem keeps a [`PfnEntry`] with the fields a
//! driver's behaviour depends on: the page's list state, what it is used for, its
//! cache type, the reference, lock and share counts, the start/end-of-allocation
//! marks and the virtual address that maps it. Entries are stored in chunks that
//! exist only once a page of theirs has been touched, so the database of a 1 TB
//! machine (268 million pages) costs nothing at boot. An untouched entry reads as
//! [`PageState::Zeroed`]: the RAM file is sparse, so a page nobody wrote is zero.

use ntmem_machine::Pfn;

/// Which list a page is on (Windows' `MMLISTS`, simplified).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum PageState {
    /// Free and known to be zero.
    #[default]
    Zeroed,
    /// Free; may hold what its last owner wrote.
    Free,
    /// In use (`ActiveAndValid`).
    Active,
    /// Not RAM the memory manager may use (a hole, or taken by /BURNMEMORY).
    Bad,
}

/// What an active page is for (the `!pfn` "usage" a debugger would show).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum PageUse {
    /// Not in use.
    #[default]
    None,
    /// A page table (any level).
    PageTable,
    /// Nonpaged pool.
    NonPagedPool,
    /// Paged pool.
    PagedPool,
    /// A kernel stack.
    KernelStack,
    /// Physically contiguous memory (MmAllocateContiguousMemory*).
    Contiguous,
    /// Pages allocated for an MDL (MmAllocatePagesForMdl*).
    MdlPages,
    /// Memory a user process allocated.
    UserPrivate,
    /// A page of a loaded driver image (MmLoadSystemImage).
    DriverImage,
    /// Removed from use by /BURNMEMORY.
    Burned,
    /// The `KUSER_SHARED_DATA` page (`crate::ke::shared_data`).
    SharedUserData,
    /// Taken by a test or benchmark to shape the free memory.
    Reserved,
}

/// `MEMORY_CACHING_TYPE` (WDK `wdm.h`): how a page may be mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum CacheType {
    /// MmNonCached (0).
    NonCached = 0,
    /// MmCached (1).
    #[default]
    Cached = 1,
    /// MmWriteCombined (2).
    WriteCombined = 2,
}

/// One page's entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PfnEntry {
    /// The list the page is on.
    pub state: PageState,
    /// What the page is used for.
    pub usage: PageUse,
    /// The cache type it was allocated or mapped with.
    pub cache: CacheType,
    /// First page of a multi-page allocation (`StartOfAllocation`).
    pub start_of_allocation: bool,
    /// Last page of a multi-page allocation (`EndOfAllocation`).
    pub end_of_allocation: bool,
    /// References (`ReferenceCount`): 1 while allocated, +1 per lock.
    pub reference_count: u16,
    /// Locks taken by MmProbeAndLockPages and the like.
    pub lock_count: u16,
    /// Valid PTEs that map the page (`ShareCount`).
    pub share_count: u32,
    /// The simulated virtual address of a mapping of the page (`PteAddress`'s VA), or 0.
    pub mapped_at: u64,
    /// The paging-file slot holding a current copy of the page, or 0: the page is
    /// clean while this is set (Windows keeps the slot in `OriginalPte` and clears
    /// `Modified`). A write through a mapping (the PTE's dirty bit) or a lock (the
    /// page may change behind the PTE's back) gives the slot up.
    pub paging_slot: u64,
}

impl PfnEntry {
    /// Whether the page may not leave memory: it is locked (MmProbeAndLockPages
    /// and the like), referenced beyond its allocation, or mapped by a second PTE
    /// (an MDL's system mapping of it). Windows' trimmer skips such pages
    /// (nt-algorithms.md §6.5: a page is freed only when its reference and share
    /// counts drop to zero; trimming removes one working-set PTE).
    pub fn is_pinned(&self) -> bool {
        self.lock_count > 0 || self.reference_count > 1 || self.share_count > 1
    }
}

const CHUNK_SHIFT: u32 = 12;
const CHUNK: usize = 1 << CHUNK_SHIFT;

/// The database.
#[derive(Debug)]
pub struct PfnDatabase {
    chunks: Vec<Option<Box<[PfnEntry]>>>,
}

impl PfnDatabase {
    /// A database for frames `0..frames`, all reading as zeroed.
    pub fn new(frames: u64) -> PfnDatabase {
        PfnDatabase { chunks: vec![None; frames.div_ceil(CHUNK as u64) as usize] }
    }

    /// The entry of `pfn`; a frame beyond the database reads as an untouched one.
    pub fn get(&self, pfn: Pfn) -> PfnEntry {
        let (c, i) = Self::split(pfn);
        self.chunks.get(c).and_then(Option::as_ref).map_or_else(PfnEntry::default, |chunk| chunk[i])
    }

    /// Mutable access to the entry of `pfn` (creating its chunk).
    pub fn get_mut(&mut self, pfn: Pfn) -> &mut PfnEntry {
        let (c, i) = Self::split(pfn);
        &mut self.chunks[c].get_or_insert_with(|| vec![PfnEntry::default(); CHUNK].into_boxed_slice())[i]
    }

    /// Chunks materialised so far (a measure of what the database costs the host).
    pub fn materialised_chunks(&self) -> usize {
        self.chunks.iter().filter(|c| c.is_some()).count()
    }

    fn split(pfn: Pfn) -> (usize, usize) {
        ((pfn.get() >> CHUNK_SHIFT) as usize, (pfn.get() as usize) & (CHUNK - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_entries_read_zeroed_and_cost_nothing() {
        let mut db = PfnDatabase::new(268_435_456);
        assert_eq!(db.get(Pfn::new(123_456_789)).state, PageState::Zeroed);
        assert_eq!(db.materialised_chunks(), 0);
        db.get_mut(Pfn::new(5)).state = PageState::Active;
        assert_eq!(db.get(Pfn::new(5)).state, PageState::Active);
        assert_eq!(db.get(Pfn::new(6)).state, PageState::Zeroed);
        assert_eq!(db.materialised_chunks(), 1);
    }
}
