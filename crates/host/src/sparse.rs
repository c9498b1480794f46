//! Sparse byte tables: a large array of atomic bytes, all zero, that costs host
//! memory only where it has been written.
//!
//! The kernel keeps one state byte per page of each pool region (a pool region
//! can be 128 GB: 32 million pages) and reads it on every `ExFreePool`. A flat
//! table is one index and one load; the host makes it cheap by handing out
//! anonymous pages lazily (`MAP_NORESERVE`, zero-filled on first touch), so a
//! table over a terabyte of address space costs nothing until pool pages exist.

use std::sync::atomic::AtomicU8;

use crate::sys::os_error;
use crate::HostError;

/// `len` atomic bytes, initially zero, backed by host pages only once touched.
#[derive(Debug)]
pub struct SparseBytes {
    addr: usize,
    len: usize,
}

impl SparseBytes {
    /// A table of `len` zero bytes (`len` > 0).
    ///
    /// # Errors
    /// When the host cannot map the range.
    pub fn new(len: usize) -> Result<SparseBytes, HostError> {
        let len = len.max(1);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new mapping chosen by the kernel (no MAP_FIXED) clobbers nothing.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(os_error("mmap(sparse table)"));
        }
        Ok(SparseBytes { addr: p as usize, len })
    }

    /// The bytes.
    #[inline(always)]
    pub fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: `addr..addr + len` is a private read-write mapping owned by `self`
        // until drop, zero-filled by the kernel; every bit pattern is a valid
        // `AtomicU8`, and the shared slice only allows atomic access.
        unsafe { std::slice::from_raw_parts(self.addr as *const AtomicU8, self.len) }
    }
}

impl Drop for SparseBytes {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `new` and no slice of it outlives `self`.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn sixty_four_gigabytes_of_zeros_costs_only_what_is_touched() {
        let before = crate::peak_rss_bytes().unwrap_or(0);
        let t = SparseBytes::new(1 << 36).unwrap();
        let b = t.bytes();
        assert_eq!(b.len(), 1 << 36);
        assert_eq!(b[12345].load(Relaxed), 0);
        b[(1 << 36) - 1].store(7, Relaxed);
        assert_eq!(b[(1 << 36) - 1].load(Relaxed), 7);
        assert!(crate::peak_rss_bytes().unwrap_or(0).saturating_sub(before) < 64 << 20);
    }
}
