//! Paging pageable system memory to a simulated paging file (issue 3, item 6;
//! DESIGN.md decision 3: "Paged pool is paged for real").
//!
//! The paging file is a second sealed, sparse memfd, 1.5 times the size of RAM
//! (Windows' default paging-file size). Trimming a resident pageable page copies its
//! frame to a free slot, writes the paging-file PTE of the architecture
//! ([`PteFormat::encode_paging_file`](super::pte::PteFormat::encode_paging_file)), unmaps the page in the host and frees the
//! frame. A later touch faults for real; below DISPATCH_LEVEL the fault handler
//! brings the bytes back into a new frame and the touch is retried, so the driver
//! never notices; at DISPATCH_LEVEL or above the fault is a bugcheck
//! ([`crate::trap`]).
//!
//! Only pages modified since they were last written are written: a page read back
//! keeps its slot as a clean copy until it is written to or freed
//! ([`crate::mm::space::AddressSpace::trim`]).
//!
//! Slots are handed out from a bump pointer and a free list, so a paging file of
//! any size costs nothing until pages are written to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ntmem_host::Ram;
use ntmem_machine::PageShift;

use super::MmError;

/// Pages written to and read from the paging file, and slots in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PagingStats {
    /// Pages written by trims.
    pub pages_out: u64,
    /// Pages read back by faults.
    pub pages_in: u64,
    /// Slots holding a page now.
    pub slots_in_use: u64,
}

#[derive(Debug, Default)]
struct Slots {
    next: u64,
    free: Vec<u64>,
    in_use: u64,
}

/// The paging file.
#[derive(Debug)]
pub struct PagingFile {
    file: Ram,
    page: u64,
    capacity: u64,
    slots: Mutex<Slots>,
    pages_out: AtomicU64,
    pages_in: AtomicU64,
}

impl PagingFile {
    /// A paging file of `bytes`, in pages of `shift`.
    ///
    /// # Errors
    /// When the host cannot create the file.
    pub fn new(bytes: u64, shift: PageShift) -> Result<PagingFile, MmError> {
        let page = shift.page_size();
        let capacity = bytes / page;
        let file = Ram::new((capacity + 1) * page).map_err(MmError::Host)?;
        Ok(PagingFile {
            file,
            page,
            capacity,
            slots: Mutex::new(Slots { next: 1, ..Slots::default() }),
            pages_out: AtomicU64::new(0),
            pages_in: AtomicU64::new(0),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one page to a free slot; the slot number (from 1).
    ///
    /// # Errors
    /// [`MmError::PagingFileFull`] when every slot is taken.
    pub fn write_page(&self, page: &[u8]) -> Result<u64, MmError> {
        let slot = {
            let mut s = self.slots();
            let slot = match s.free.pop() {
                Some(slot) => slot,
                None if s.next <= self.capacity => {
                    s.next += 1;
                    s.next - 1
                }
                None => return Err(MmError::PagingFileFull),
            };
            s.in_use += 1;
            slot
        };
        self.file.write(slot * self.page, page);
        self.pages_out.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    /// Reads the page in `slot` into `page`. The slot stays taken: it holds the
    /// page's clean copy until the page is written or freed ([`PagingFile::release`]).
    pub fn read_page(&self, slot: u64, page: &mut [u8]) {
        self.file.read(slot * self.page, page);
        self.pages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Frees `slot` without reading it (its page was freed while paged out), and
    /// gives its host memory back.
    pub fn release(&self, slot: u64) {
        self.file.zero(slot * self.page, self.page);
        let mut s = self.slots();
        s.free.push(slot);
        s.in_use -= 1;
    }

    /// The counters.
    pub fn stats(&self) -> PagingStats {
        PagingStats {
            pages_out: self.pages_out.load(Ordering::Relaxed),
            pages_in: self.pages_in.load(Ordering::Relaxed),
            slots_in_use: self.slots().in_use,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_come_back_intact_and_slots_are_reused() {
        let file = PagingFile::new(3 * 4096, PageShift::K4).unwrap();
        let a = file.write_page(&[0xAA; 4096]).unwrap();
        let b = file.write_page(&[0xBB; 4096]).unwrap();
        let _c = file.write_page(&[0xCC; 4096]).unwrap();
        assert!(matches!(file.write_page(&[0; 4096]), Err(MmError::PagingFileFull)));
        let mut page = [0u8; 4096];
        file.read_page(b, &mut page);
        assert_eq!(page, [0xBB; 4096]);
        file.release(b);
        assert_eq!(file.write_page(&[0xDD; 4096]).unwrap(), b);
        file.release(a);
        assert_eq!(file.stats(), PagingStats { pages_out: 4, pages_in: 1, slots_in_use: 2 });
    }
}
