//! Small wrappers over libc shared by the host modules: the page size, errno, and
//! async-signal-safe writes to stderr.

use crate::HostError;
use std::sync::atomic::{AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The host's page size (4096 on x86_64 Linux). Every offset and length handed to
/// [`Reservation`](crate::Reservation) and every hole punched in [`Ram`](crate::Ram) is a
/// multiple of it.
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = usize::try_from(size).ok().filter(|s| s.is_power_of_two()).unwrap_or(4096);
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// The `HostError::Os` for the errno the last failed call left.
pub(crate) fn os_error(op: &'static str) -> HostError {
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    HostError::Os { op, errno }
}

/// Checks that `value` is a non-zero multiple of `align` (a power of two).
pub(crate) fn check_aligned(what: &'static str, value: u64, align: u64) -> Result<(), HostError> {
    if value == 0 || value & (align - 1) != 0 {
        return Err(HostError::Misaligned { what, value, align });
    }
    Ok(())
}

/// Checks that `offset` is a multiple of `align` (zero allowed).
pub(crate) fn check_offset(what: &'static str, value: u64, align: u64) -> Result<(), HostError> {
    if value & (align - 1) != 0 {
        return Err(HostError::Misaligned { what, value, align });
    }
    Ok(())
}

/// Checks that `offset..offset + len` lies inside `0..limit`.
pub(crate) fn check_range(offset: u64, len: u64, limit: u64) -> Result<(), HostError> {
    match offset.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(HostError::OutOfRange { offset, len, limit }),
    }
}

/// Writes the pieces to stderr with `write(2)` only: usable in a signal handler.
pub(crate) fn write_stderr(pieces: &[&[u8]]) {
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            // SAFETY: the pointer and length describe the live slice `rest`.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n.unsigned_abs()..];
        }
    }
}

/// Formats `value` as `0x` and 16 hex digits without allocating.
pub(crate) fn hex(value: usize) -> [u8; 18] {
    let mut out = [b'0'; 18];
    out[1] = b'x';
    for (i, byte) in out[2..].iter_mut().enumerate() {
        let nibble = (value >> ((15 - i) * 4)) & 0xf;
        *byte = b"0123456789abcdef"[nibble];
    }
    out
}

/// Copies `buf.len()` bytes from `src` with volatile reads (aligned words where it can).
///
/// # Safety
/// `src..src + buf.len()` must be readable memory that no Rust reference covers, or
/// memory whose faults a guarded call handles.
pub(crate) unsafe fn volatile_read(src: *const u8, buf: &mut [u8]) {
    let mut i = 0;
    while i < buf.len() {
        let p = src.wrapping_add(i);
        if (p as usize).is_multiple_of(8) && buf.len() - i >= 8 {
            // SAFETY: `p..p+8` is inside the caller's range and aligned.
            let word = unsafe { p.cast::<u64>().read_volatile() };
            buf[i..i + 8].copy_from_slice(&word.to_ne_bytes());
            i += 8;
        } else {
            // SAFETY: `p` is inside the caller's range.
            buf[i] = unsafe { p.read_volatile() };
            i += 1;
        }
    }
}

/// Copies `data` to `dst` with volatile writes (aligned words where it can).
///
/// # Safety
/// As [`volatile_read`], for writing.
pub(crate) unsafe fn volatile_write(dst: *mut u8, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let p = dst.wrapping_add(i);
        if (p as usize).is_multiple_of(8) && data.len() - i >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[i..i + 8]);
            // SAFETY: `p..p+8` is inside the caller's range and aligned.
            unsafe { p.cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
            i += 8;
        } else {
            // SAFETY: `p` is inside the caller's range.
            unsafe { p.write_volatile(data[i]) };
            i += 1;
        }
    }
}

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`),
/// or `None` where the kernel does not report it. For `ntmem boot`'s summary and the
/// boot benchmark: what a machine really costs the host.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Restores the default action for SIGPIPE, so a command whose output is piped
/// into a reader that stops early (`ntmem machines | head`) ends quietly, as other
/// Unix tools do, instead of failing on a write (Rust ignores SIGPIPE by default).
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler code; it is
    // called once at start-up, before any thread that could race on it exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn hex_formats_without_allocating() {
        assert_eq!(&hex(0xdead_beef), b"0x00000000deadbeef");
    }

    #[test]
    fn range_checks() {
        assert!(check_range(0, 4096, 4096).is_ok());
        assert!(check_range(1, 4096, 4096).is_err());
        assert!(check_range(u64::MAX, 2, u64::MAX).is_err());
        assert!(check_aligned("len", 0, 4096).is_err());
        assert!(check_offset("offset", 0, 4096).is_ok());
        assert!(check_offset("offset", 12, 4096).is_err());
    }
}
