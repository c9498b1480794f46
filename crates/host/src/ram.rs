//! Simulated RAM: the machine's physical memory as one sealed, sparse memfd.
//!
//! Physical page *p* is the file's bytes at `p * PAGE_SIZE`. The file is created, sized and
//! sealed (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) in [`Ram::new`] and never changes
//! size, so a mapping of it can never fall off the end (no SIGBUS). The file is sparse: a
//! 1 TB machine costs the host only the pages that are touched, and [`Ram::zero`] gives
//! whole host pages back with `fallocate(PUNCH_HOLE)`.
//!
//! The kernel model reads and writes RAM through a private *direct map* (like Linux's
//! physmap): one shared mapping of the whole file made at creation, never handed out as a
//! pointer. Its accessors use volatile or atomic operations only and never create a Rust
//! reference to RAM, because the same bytes are concurrently visible through every other
//! mapping (drivers' virtual addresses, simulated DMA). Accessors panic on out-of-range or
//! misaligned offsets: those are bugs in the layer above, not driver errors.
//!
//! [`Reservation::map_ram`](crate::Reservation::map_ram) maps the same file elsewhere;
//! every mapping aliases the direct map.

use crate::sys::{check_aligned, check_range, os_error, page_size, volatile_read, volatile_write};
use crate::HostError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The machine's physical memory. `Send + Sync`: all access is atomic or volatile.
pub struct Ram {
    fd: OwnedFd,
    len: u64,
    direct: NonNull<u8>,
}

// SAFETY: `direct` points to a shared file mapping owned by this value for its whole life;
// every access through it is volatile or atomic and bounds-checked, so sharing it between
// threads is no different from sharing memory with another process.
unsafe impl Send for Ram {}
// SAFETY: as for `Send`: `&Ram` only allows volatile/atomic accesses to the mapping.
unsafe impl Sync for Ram {}

impl std::fmt::Debug for Ram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ram").field("fd", &self.fd.as_raw_fd()).field("len", &format_args!("{:#x}", self.len)).finish()
    }
}

impl Ram {
    /// Creates `len` bytes of zeroed RAM (a non-zero multiple of the host page size).
    pub fn new(len: u64) -> Result<Ram, HostError> {
        check_aligned("RAM size", len, page_size() as u64)?;
        let map_len =
            usize::try_from(len).map_err(|_| HostError::OutOfRange { offset: 0, len, limit: usize::MAX as u64 })?;
        let off_len = libc::off_t::try_from(len).map_err(|_| HostError::OutOfRange {
            offset: 0,
            len,
            limit: libc::off_t::MAX as u64,
        })?;
        // SAFETY: the name is a NUL-terminated literal; the flags are valid.
        let raw = unsafe { libc::memfd_create(c"ntmem-ram".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(os_error("memfd_create"));
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), off_len) } != 0 {
            return Err(os_error("ftruncate"));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(os_error("fcntl(F_ADD_SEALS)"));
        }
        // SAFETY: a new shared mapping chosen by the kernel (no MAP_FIXED) clobbers nothing.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(os_error("mmap(direct map)"));
        }
        let direct =
            NonNull::new(addr.cast::<u8>()).ok_or(HostError::Os { op: "mmap(direct map)", errno: libc::EINVAL })?;
        Ok(Ram { fd, len, direct })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: RAM has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, for [`Reservation::map_ram`](crate::Reservation::map_ram).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The direct-map address of `off..off + size`, after checking bounds and alignment.
    fn at(&self, off: u64, size: u64, align: u64) -> *mut u8 {
        assert!(
            check_range(off, size, self.len).is_ok(),
            "ntmem: RAM access {off:#x}..+{size:#x} beyond {:#x}",
            self.len
        );
        assert!(off.is_multiple_of(align), "ntmem: RAM access at {off:#x} not {align}-aligned");
        // The direct map covers `len` bytes and off + size <= len, so this stays inside.
        self.direct.as_ptr().wrapping_add(off as usize)
    }

    /// Atomically loads the 8-aligned `u64` at `off` (SeqCst). Panics if out of range.
    pub fn load_u64(&self, off: u64) -> u64 {
        let p = self.at(off, 8, 8).cast::<u64>();
        // SAFETY: `p` is 8-aligned, inside the live direct map, and only ever accessed
        // atomically or volatilely, never through a Rust reference to plain data.
        unsafe { AtomicU64::from_ptr(p) }.load(Ordering::SeqCst)
    }

    /// Atomically stores `v` at the 8-aligned `off` (SeqCst). Panics if out of range.
    pub fn store_u64(&self, off: u64, v: u64) {
        let p = self.at(off, 8, 8).cast::<u64>();
        // SAFETY: as in `load_u64`.
        unsafe { AtomicU64::from_ptr(p) }.store(v, Ordering::SeqCst);
    }

    /// Atomically loads the 4-aligned `u32` at `off` (SeqCst). Panics if out of range.
    pub fn load_u32(&self, off: u64) -> u32 {
        let p = self.at(off, 4, 4).cast::<u32>();
        // SAFETY: `p` is 4-aligned and inside the live direct map; accessed atomically.
        unsafe { AtomicU32::from_ptr(p) }.load(Ordering::SeqCst)
    }

    /// Atomically stores `v` at the 4-aligned `off` (SeqCst). Panics if out of range.
    pub fn store_u32(&self, off: u64, v: u32) {
        let p = self.at(off, 4, 4).cast::<u32>();
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::SeqCst);
    }

    /// Atomic compare-and-exchange of the `u64` at the 8-aligned `off` (SeqCst): `Ok(old)`
    /// if it held `current` and now holds `new`, else `Err(actual)`.
    pub fn compare_exchange_u64(&self, off: u64, current: u64, new: u64) -> Result<u64, u64> {
        let p = self.at(off, 8, 8).cast::<u64>();
        // SAFETY: as in `load_u64`.
        unsafe { AtomicU64::from_ptr(p) }.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }

    /// Copies RAM at `off` into `buf` (volatile reads). Panics if out of range.
    pub fn read(&self, off: u64, buf: &mut [u8]) {
        let src = self.at(off, buf.len() as u64, 1);
        // SAFETY: `src..src+len` is inside the checked range of the direct map.
        unsafe { volatile_read(src, buf) };
    }

    /// Copies `data` into RAM at `off` (volatile writes). Panics if out of range.
    pub fn write(&self, off: u64, data: &[u8]) {
        let dst = self.at(off, data.len() as u64, 1);
        // SAFETY: `dst..dst+len` is inside the checked range of the direct map.
        unsafe { volatile_write(dst, data) };
    }

    /// Sets `len` bytes at `off` to `byte` (volatile writes). Panics if out of range.
    /// Touches every page; use [`Ram::zero`] to clear memory.
    pub fn fill(&self, off: u64, len: u64, byte: u8) {
        let dst = self.at(off, len, 1);
        let len = len as usize;
        let pattern = u64::from_ne_bytes([byte; 8]);
        let mut i = 0;
        while i < len {
            let p = dst.wrapping_add(i);
            if (p as usize).is_multiple_of(8) && len - i >= 8 {
                // SAFETY: `p..p+8` is inside the checked range of the direct map, aligned.
                unsafe { p.cast::<u64>().write_volatile(pattern) };
                i += 8;
            } else {
                // SAFETY: `p` is inside the checked range of the direct map.
                unsafe { p.write_volatile(byte) };
                i += 1;
            }
        }
    }

    /// Zeroes `len` bytes at `off`. Whole host pages are released to the host
    /// (`fallocate(PUNCH_HOLE | KEEP_SIZE)`: every mapping then reads zeros and the pages
    /// stop counting in [`Ram::resident_bytes`]); partial pages at the ends are cleared
    /// in place. Panics if out of range.
    pub fn zero(&self, off: u64, len: u64) {
        self.at(off, len, 1);
        let page = page_size() as u64;
        let end = off + len;
        let hole_start = off.next_multiple_of(page);
        let hole_end = end - end % page;
        if hole_start >= hole_end {
            self.fill(off, len, 0);
            return;
        }
        self.fill(off, hole_start - off, 0);
        self.fill(hole_end, end - hole_end, 0);
        let punched = (|| {
            let start = libc::off_t::try_from(hole_start).ok()?;
            let size = libc::off_t::try_from(hole_end - hole_start).ok()?;
            // SAFETY: plain system call on our descriptor, inside the file's size.
            let rc = unsafe {
                libc::fallocate(
                    self.fd.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    start,
                    size,
                )
            };
            (rc == 0).then_some(())
        })();
        if punched.is_none() {
            // Hole punching unsupported: still honour the contract.
            self.fill(hole_start, hole_end - hole_start, 0);
        }
    }

    /// Bytes of the file the host has really allocated (`st_blocks * 512`).
    pub fn resident_bytes(&self) -> u64 {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `st` is a valid out-pointer for fstat on our descriptor.
        let rc = unsafe { libc::fstat(self.fd.as_raw_fd(), st.as_mut_ptr()) };
        if rc != 0 {
            return 0;
        }
        // SAFETY: fstat succeeded and initialized `st`.
        let st = unsafe { st.assume_init() };
        (st.st_blocks as u64) * 512
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: the direct map is ours, `len` bytes long, and no reference into it exists.
        unsafe { libc::munmap(self.direct.as_ptr().cast(), self.len as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(Ram::new(0), Err(HostError::Misaligned { .. })));
        assert!(matches!(Ram::new(100), Err(HostError::Misaligned { .. })));
    }

    #[test]
    fn starts_zeroed_and_round_trips() {
        let ram = Ram::new(MB).unwrap();
        assert_eq!(ram.load_u64(0x1000), 0);
        ram.store_u64(0x1000, 0x1122_3344_5566_7788);
        assert_eq!(ram.load_u64(0x1000), 0x1122_3344_5566_7788);
        assert_eq!(ram.load_u32(0x1000), 0x5566_7788);
        ram.store_u32(0x1004, 7);
        assert_eq!(ram.load_u64(0x1000), 0x0000_0007_5566_7788);
        assert_eq!(ram.compare_exchange_u64(0x1000, 1, 2), Err(0x0000_0007_5566_7788));
        assert_eq!(ram.compare_exchange_u64(0x1000, 0x0000_0007_5566_7788, 2), Ok(0x0000_0007_5566_7788));
        assert_eq!(ram.load_u64(0x1000), 2);

        let data: Vec<u8> = (0..100u8).collect();
        ram.write(MB - 103, &data); // unaligned head and tail, crosses words
        let mut back = vec![0u8; 100];
        ram.read(MB - 103, &mut back);
        assert_eq!(back, data);
        ram.fill(5, 20, 0xab);
        let mut bytes = [0u8; 22];
        ram.read(4, &mut bytes);
        assert_eq!(bytes[0], 0);
        assert!(bytes[1..21].iter().all(|&b| b == 0xab));
        assert_eq!(bytes[21], 0);
    }

    #[test]
    #[should_panic(expected = "beyond")]
    fn out_of_range_panics() {
        let ram = Ram::new(MB).unwrap();
        ram.load_u64(MB);
    }

    #[test]
    #[should_panic(expected = "aligned")]
    fn misaligned_atomic_panics() {
        let ram = Ram::new(MB).unwrap();
        ram.store_u64(4, 1);
    }

    #[test]
    fn is_sealed() {
        let ram = Ram::new(MB).unwrap();
        // SAFETY: plain system calls on the test's own descriptor.
        let (seals, grow) = unsafe {
            (libc::fcntl(ram.raw_fd(), libc::F_GET_SEALS), libc::ftruncate(ram.raw_fd(), 2 * MB as libc::off_t))
        };
        assert_eq!(seals, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL);
        assert_eq!(grow, -1, "a sealed RAM file must not grow");
    }

    #[test]
    fn zero_releases_host_memory() {
        let ram = Ram::new(64 * MB).unwrap();
        assert!(ram.resident_bytes() < MB);
        ram.fill(0, 16 * MB, 0x5a);
        let touched = ram.resident_bytes();
        assert!(touched >= 16 * MB, "resident {touched}");
        ram.zero(3, 16 * MB - 6); // partial pages at both ends
        let after = ram.resident_bytes();
        assert!(after <= 2 * page_size() as u64, "resident after zero {after}");
        let mut bytes = vec![0xffu8; 16 * MB as usize];
        ram.read(0, &mut bytes);
        assert_eq!(&bytes[..3], &[0x5a; 3]);
        assert!(bytes[3..bytes.len() - 3].iter().all(|&b| b == 0));
        assert_eq!(&bytes[bytes.len() - 3..], &[0x5a; 3]);
    }

    #[test]
    fn terabyte_ram_is_sparse() {
        let ram = Ram::new(1 << 40).unwrap();
        ram.store_u64((1 << 40) - 8, 42);
        assert_eq!(ram.load_u64((1 << 40) - 8), 42);
        assert!(ram.resident_bytes() <= 64 * 1024, "{}", ram.resident_bytes());
    }
}
