//! Address-space reservations: ranges of the host process's address space held for a
//! simulated address space (system space, a process's user space, a kernel stack area).
//!
//! A reservation is created `PROT_NONE`, private, anonymous and `MAP_NORESERVE`, so even
//! 16 TB costs nothing. It is the only thing in ntmem that maps with `MAP_FIXED`, and only
//! inside itself: [`Reservation::map_ram`] puts RAM pages at an offset, [`unmap`] returns
//! them to reserved `PROT_NONE`, [`protect`] changes access. Offsets and lengths must be
//! host-page aligned and inside the reservation; nothing outside it can be clobbered.
//!
//! Nothing here creates a Rust reference to the mapped memory: drivers reach it through
//! raw pointers, so remapping under them causes a fault (handled by [`crate::fault`]), not
//! undefined behaviour in safe code. Mappings keep the RAM file alive on their own, so a
//! mapping stays valid even after its [`Ram`] value is dropped. Dropping the reservation
//! unmaps the whole range.
//!
//! [`unmap`]: Reservation::unmap
//! [`protect`]: Reservation::protect

use crate::sys::{check_aligned, check_offset, check_range, os_error, page_size, volatile_read, volatile_write};
use crate::{HostError, Ram};

/// Where a reservation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// At exactly this (page-aligned) address, or [`HostError::AddressInUse`].
    Exactly(usize),
    /// Wherever the host has room, aligned to `align` (a power of two; at least a page).
    Anywhere { align: usize },
}

/// Access allowed to a range of a reservation. Only driver images loaded into
/// simulated system space are executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    None,
    Read,
    ReadWrite,
    ReadExecute,
    ReadWriteExecute,
}

impl Prot {
    fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Prot::ReadExecute => libc::PROT_READ | libc::PROT_EXEC,
            Prot::ReadWriteExecute => libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        }
    }
}

/// A reserved range of host address space, unmapped on drop.
#[derive(Debug)]
pub struct Reservation {
    base: usize,
    len: usize,
}

const RESERVE_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;

impl Reservation {
    /// Reserves `len` bytes (a non-zero multiple of the page size) placed as asked.
    pub fn new(len: usize, placement: Placement) -> Result<Reservation, HostError> {
        let page = page_size();
        check_aligned("reservation length", len as u64, page as u64)?;
        match placement {
            Placement::Exactly(addr) => Self::exactly(addr, len),
            Placement::Anywhere { align } => {
                if !align.is_power_of_two() {
                    return Err(HostError::Misaligned {
                        what: "reservation alignment",
                        value: align as u64,
                        align: page as u64,
                    });
                }
                Self::anywhere(len, align.max(page))
            }
        }
    }

    fn exactly(addr: usize, len: usize) -> Result<Reservation, HostError> {
        check_offset("reservation address", addr as u64, page_size() as u64)?;
        if addr.checked_add(len).is_none() {
            return Err(HostError::OutOfRange { offset: addr as u64, len: len as u64, limit: usize::MAX as u64 });
        }
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let got = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                RESERVE_FLAGS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if got == libc::MAP_FAILED {
            let err = os_error("mmap(reserve)");
            return Err(match err {
                HostError::Os { errno: libc::EEXIST, .. } => HostError::AddressInUse { addr, len },
                other => other,
            });
        }
        if got as usize != addr {
            // A kernel older than 4.17 treats the flag as a hint and put it elsewhere.
            // SAFETY: `got` is the mapping just created, `len` bytes, referenced by nobody.
            unsafe { libc::munmap(got, len) };
            return Err(HostError::AddressInUse { addr, len });
        }
        Ok(Reservation { base: addr, len })
    }

    fn anywhere(len: usize, align: usize) -> Result<Reservation, HostError> {
        let page = page_size();
        let slack = align - page;
        let total = len.checked_add(slack).ok_or(HostError::OutOfRange {
            offset: 0,
            len: len as u64,
            limit: usize::MAX as u64,
        })?;
        // SAFETY: a new mapping chosen by the kernel (no MAP_FIXED) clobbers nothing.
        let raw = unsafe { libc::mmap(std::ptr::null_mut(), total, libc::PROT_NONE, RESERVE_FLAGS, -1, 0) };
        if raw == libc::MAP_FAILED {
            return Err(os_error("mmap(reserve)"));
        }
        let raw = raw as usize;
        let base = raw.next_multiple_of(align);
        let head = base - raw;
        let tail = total - head - len;
        if head > 0 {
            // SAFETY: `raw..base` is the unused head of the mapping just created.
            unsafe { libc::munmap(raw as *mut libc::c_void, head) };
        }
        if tail > 0 {
            // SAFETY: `base + len..raw + total` is the unused tail of that mapping.
            unsafe { libc::munmap((base + len) as *mut libc::c_void, tail) };
        }
        Ok(Reservation { base, len })
    }

    /// First address of the range.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a reservation has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    fn check(&self, offset: usize, len: usize) -> Result<usize, HostError> {
        let page = page_size() as u64;
        check_offset("offset", offset as u64, page)?;
        check_aligned("length", len as u64, page)?;
        check_range(offset as u64, len as u64, self.len as u64)?;
        Ok(self.base + offset)
    }

    /// Reads `buf.len()` bytes at `base + offset` as the CPU would, with volatile
    /// loads. The range only ever holds RAM mappings or reserved (inaccessible)
    /// pages, never Rust objects, so this is safe: a touch of an inaccessible page
    /// faults for real and goes to the registered fault handler (inside a guarded
    /// call) or aborts the process (outside one).
    ///
    /// # Panics
    /// If the range leaves the reservation.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        let start = self.byte_range(offset, buf.len());
        // SAFETY: inside the reservation, which holds no Rust objects (see above).
        unsafe { volatile_read(start as *const u8, buf) };
    }

    /// Writes `data` at `base + offset` as the CPU would; see [`Reservation::read`].
    ///
    /// # Panics
    /// If the range leaves the reservation.
    pub fn write(&self, offset: usize, data: &[u8]) {
        let start = self.byte_range(offset, data.len());
        // SAFETY: inside the reservation, which holds no Rust objects (see `read`).
        unsafe { volatile_write(start as *mut u8, data) };
    }

    /// Sets `len` bytes at `base + offset` to `byte` with plain stores the compiler
    /// may widen (a `memset`): the fast way to paint a block with a fill pattern.
    /// Safe for the reason [`Reservation::read`] is: the range holds only RAM
    /// mappings or reserved pages, never Rust objects, and nothing in ntmem holds a
    /// Rust reference into it, so no Rust value can observe the stores; an
    /// inaccessible page faults for real as with any other access.
    ///
    /// # Panics
    /// If the range leaves the reservation.
    #[inline]
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        let start = self.byte_range(offset, len);
        // SAFETY: `start..start + len` is inside the reservation, which holds no Rust
        // objects (see above); the pointer comes from an exposed address, so the
        // compiler cannot assume the bytes are dead and drop the stores.
        unsafe { std::ptr::write_bytes(std::ptr::with_exposed_provenance_mut::<u8>(start), byte, len) };
    }

    #[inline]
    fn byte_range(&self, offset: usize, len: usize) -> usize {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "{offset:#x}+{len:#x} outside the reservation"
        );
        self.base + offset
    }

    /// Maps `len` bytes of `ram` from `ram_offset` at `base + offset` with `prot`,
    /// replacing whatever was there. Every mapping of a RAM page aliases every other one
    /// and the RAM's direct map. Async-signal-safe (one `mmap` call): a fault handler may
    /// use it to page memory in.
    pub fn map_ram(&self, offset: usize, ram: &Ram, ram_offset: u64, len: usize, prot: Prot) -> Result<(), HostError> {
        let addr = self.check(offset, len)?;
        check_offset("RAM offset", ram_offset, page_size() as u64)?;
        check_range(ram_offset, len as u64, ram.len())?;
        let file_offset = libc::off_t::try_from(ram_offset).map_err(|_| HostError::OutOfRange {
            offset: ram_offset,
            len: len as u64,
            limit: ram.len(),
        })?;
        // SAFETY: MAP_FIXED only replaces pages inside this reservation (checked above),
        // which no Rust reference points into.
        let got = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                prot.bits(),
                libc::MAP_SHARED | libc::MAP_FIXED,
                ram.raw_fd(),
                file_offset,
            )
        };
        if got == libc::MAP_FAILED {
            return Err(os_error("mmap(map_ram)"));
        }
        Ok(())
    }

    /// Returns `len` bytes at `offset` to reserved, inaccessible, unbacked memory.
    pub fn unmap(&self, offset: usize, len: usize) -> Result<(), HostError> {
        let addr = self.check(offset, len)?;
        // SAFETY: MAP_FIXED only replaces pages inside this reservation (checked above).
        let got = unsafe {
            libc::mmap(addr as *mut libc::c_void, len, libc::PROT_NONE, RESERVE_FLAGS | libc::MAP_FIXED, -1, 0)
        };
        if got == libc::MAP_FAILED {
            return Err(os_error("mmap(unmap)"));
        }
        Ok(())
    }

    /// Changes the access allowed to `len` bytes at `offset` (`mprotect`). Making a
    /// never-mapped range accessible gives it private, zero-filled anonymous memory.
    pub fn protect(&self, offset: usize, len: usize, prot: Prot) -> Result<(), HostError> {
        let addr = self.check(offset, len)?;
        // SAFETY: the range lies inside this reservation (checked above).
        let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot.bits()) };
        if rc != 0 {
            return Err(os_error("mprotect"));
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the whole range belongs to this reservation and nothing else maps there.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: usize = 1 << 40;

    fn peek(addr: usize) -> u64 {
        // SAFETY: the tests only peek at pages they mapped readable just before.
        unsafe { (addr as *const u64).read_volatile() }
    }

    fn poke(addr: usize, v: u64) {
        // SAFETY: the tests only poke pages they mapped writable just before.
        unsafe { (addr as *mut u64).write_volatile(v) }
    }

    #[test]
    fn one_ram_page_at_two_addresses_aliases() {
        let page = page_size();
        let ram = Ram::new(16 * page as u64).unwrap();
        let res = Reservation::new(64 * page, Placement::Anywhere { align: 1 << 21 }).unwrap();
        assert_eq!(res.base() % (1 << 21), 0);
        res.map_ram(0, &ram, 3 * page as u64, page, Prot::ReadWrite).unwrap();
        res.map_ram(40 * page, &ram, 3 * page as u64, page, Prot::Read).unwrap();
        poke(res.base() + 8, 0xfeed_f00d);
        assert_eq!(peek(res.base() + 40 * page + 8), 0xfeed_f00d);
        assert_eq!(ram.load_u64(3 * page as u64 + 8), 0xfeed_f00d);
        ram.store_u64(3 * page as u64 + 16, 77);
        assert_eq!(peek(res.base() + 16), 77);
        assert_eq!(peek(res.base() + 40 * page + 16), 77);
        // Zeroing RAM is seen through the mappings too.
        ram.zero(3 * page as u64, page as u64);
        assert_eq!(peek(res.base() + 40 * page + 8), 0);
        drop(ram); // mappings keep the file alive
        poke(res.base() + 24, 5);
        assert_eq!(peek(res.base() + 40 * page + 24), 5);
    }

    #[test]
    fn fill_goes_through_the_mapping() {
        let page = page_size();
        let ram = Ram::new(2 * page as u64).unwrap();
        let res = Reservation::new(4 * page, Placement::Anywhere { align: page }).unwrap();
        res.map_ram(page, &ram, 0, page, Prot::ReadWrite).unwrap();
        res.fill(page + 3, 100, 0xCD);
        let mut b = [0u8; 104];
        res.read(page + 2, &mut b);
        assert!(b[0] != 0xCD && b[1..101].iter().all(|&x| x == 0xCD) && b[101] != 0xCD);
        assert_eq!(ram.load_u64(8), 0xCDCD_CDCD_CDCD_CDCD);
    }

    #[test]
    fn checks_alignment_and_bounds() {
        let page = page_size();
        let ram = Ram::new(4 * page as u64).unwrap();
        let res = Reservation::new(8 * page, Placement::Anywhere { align: 0 }).unwrap_err();
        assert!(matches!(res, HostError::Misaligned { .. }));
        let res = Reservation::new(8 * page, Placement::Anywhere { align: page }).unwrap();
        assert!(matches!(res.map_ram(1, &ram, 0, page, Prot::Read), Err(HostError::Misaligned { .. })));
        assert!(matches!(res.map_ram(0, &ram, 1, page, Prot::Read), Err(HostError::Misaligned { .. })));
        assert!(matches!(res.map_ram(0, &ram, 0, 0, Prot::Read), Err(HostError::Misaligned { .. })));
        assert!(matches!(res.map_ram(8 * page, &ram, 0, page, Prot::Read), Err(HostError::OutOfRange { .. })));
        assert!(matches!(res.map_ram(0, &ram, 4 * page as u64, page, Prot::Read), Err(HostError::OutOfRange { .. })));
        assert!(matches!(res.unmap(usize::MAX & !(page - 1), page), Err(HostError::OutOfRange { .. })));
        assert!(matches!(res.protect(7 * page, 2 * page, Prot::Read), Err(HostError::OutOfRange { .. })));
        assert!(matches!(
            Reservation::new(page + 1, Placement::Anywhere { align: page }),
            Err(HostError::Misaligned { .. })
        ));
        assert!(res.contains(res.base()) && res.contains(res.base() + 8 * page - 1));
        assert!(!res.contains(res.base() + 8 * page) && !res.contains(res.base() - 1));
    }

    #[test]
    fn exactly_an_occupied_range_is_address_in_use() {
        let page = page_size();
        let res = Reservation::new(16 * page, Placement::Anywhere { align: page }).unwrap();
        let clash = Reservation::new(4 * page, Placement::Exactly(res.base() + 4 * page));
        assert_eq!(clash.unwrap_err(), HostError::AddressInUse { addr: res.base() + 4 * page, len: 4 * page });
        let base = res.base();
        drop(res);
        // The range is free again (unless another test thread grabbed it meanwhile).
        if let Ok(again) = Reservation::new(16 * page, Placement::Exactly(base)) {
            assert_eq!(again.base(), base);
        }
    }

    #[test]
    fn terabytes_cost_nothing() {
        let ram = Ram::new(TB as u64).unwrap();
        let res = Reservation::new(16 * TB, Placement::Anywhere { align: 1 << 30 }).unwrap();
        assert_eq!(res.len(), 16 * TB);
        res.map_ram(15 * TB, &ram, (TB / 2) as u64, 1 << 30, Prot::ReadWrite).unwrap();
        poke(res.base() + 15 * TB + 4096, 9);
        assert_eq!(ram.load_u64((TB / 2 + 4096) as u64), 9);
        assert!(ram.resident_bytes() <= 64 * 1024, "{}", ram.resident_bytes());
    }

    #[test]
    fn unmap_and_protect_really_change_access() {
        let page = page_size();
        let ram = Ram::new(4 * page as u64).unwrap();
        ram.store_u64(0, 11);
        let res = Reservation::new(4 * page, Placement::Anywhere { align: page }).unwrap();
        res.map_ram(page, &ram, 0, page, Prot::Read).unwrap();
        assert_eq!(peek(res.base() + page), 11);
        let probe = |addr: usize, prot: libc::c_int| -> bool {
            // mincore-free check of access: ask the kernel through /proc/self/maps.
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            maps.lines().any(|l| {
                let (range, rest) = l.split_once(' ').unwrap();
                let (s, e) = range.split_once('-').unwrap();
                let (s, e) = (usize::from_str_radix(s, 16).unwrap(), usize::from_str_radix(e, 16).unwrap());
                let want = match prot {
                    libc::PROT_NONE => "---",
                    libc::PROT_READ => "r--",
                    _ => "rw-",
                };
                (s..e).contains(&addr) && rest.starts_with(want)
            })
        };
        assert!(probe(res.base() + page, libc::PROT_READ));
        res.protect(page, page, Prot::ReadWrite).unwrap();
        assert!(probe(res.base() + page, libc::PROT_READ | libc::PROT_WRITE));
        poke(res.base() + page, 12);
        assert_eq!(ram.load_u64(0), 12);
        res.unmap(page, page).unwrap();
        assert!(probe(res.base() + page, libc::PROT_NONE));
        assert_eq!(ram.load_u64(0), 12, "unmapping keeps the RAM's contents");
    }
}
