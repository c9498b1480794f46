//! `mm`: the memory manager — physical memory, page tables, address spaces and
//! system PTEs (DESIGN.md, layer `mm`).
//!
//! Locking: the PFN database and free map share one lock ([`frames`]); each
//! address space's page tables have their own; the system PTE pool has its own.
//! Code never holds two of them at once except page tables → PFN (a table frame is
//! allocated while the page-table lock is held), so there is no cycle.

pub mod contiguous;
pub mod fragment;
pub mod frames;
pub mod free_map;
pub mod image_paging;
pub mod images;
pub mod io_space;
pub mod mdl;
pub mod page_table;
pub mod pager;
pub mod pfn;
pub mod probe;
pub mod process;
pub mod pte;
pub mod secure;
pub mod space;
pub mod sysload;
pub mod system_ptes;
pub mod system_size;

use ntmem_host::HostError;
use ntmem_machine::{Pfn, Va};

/// What can go wrong in the memory manager. Drivers never see these: the WDK
/// boundary turns them into NULL, an NTSTATUS or a bugcheck, as the routine's
/// documentation says.
#[derive(Debug, thiserror::Error)]
pub enum MmError {
    /// The host refused (memfd, mmap, reservation).
    #[error("host: {0}")]
    Host(HostError),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Not enough free physical memory meets the request.
    #[error("not enough free physical memory for the request")]
    NoMemory,
    /// A frame was freed that was not allocated.
    #[error("frame {0:?} is not allocated")]
    NotAllocated(Pfn),
    /// A frame is not installed RAM.
    #[error("frame {0:?} is not RAM")]
    NotRam(Pfn),
    /// An address outside the machine's address space.
    #[error("{0:?} is outside the address space")]
    OutsideSpace(Va),
    /// The paging file has no free slot.
    #[error("the paging file is full")]
    PagingFileFull,
    /// No run of free system PTEs is long enough.
    #[error("no {requested} consecutive system PTEs free ({free} of {total} free)")]
    NoSystemPtes {
        /// Pages asked for.
        requested: u64,
        /// Free PTEs.
        free: u64,
        /// All PTEs.
        total: u64,
    },
}
