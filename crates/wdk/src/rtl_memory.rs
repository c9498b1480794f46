//! Memory and version routines of the run-time library at the C boundary:
//! `RtlCompareMemory`, `RtlFillMemoryUlong`, `RtlGetVersion` and
//! `RtlIsNtDdiVersionAvailable`. (`RtlCopyMemory`, `RtlZeroMemory`,
//! `RtlEqualMemory`, `RtlSecureZeroMemory` and the like are the WDK's macros and
//! inline functions in `include/ntmem/memory.h`.)
//!
//! Every range is checked mapped (`context::checked`) page by page before
//! it is touched: a NULL or wild pointer is the stop the driver's own touch gives,
//! never a host crash.

use std::ffi::c_void;

use ntmem_kernel::rtl::version::{self, OsVersion, VER_PLATFORM_WIN32_NT};
use ntmem_kernel::trap::pageable_code;

use crate::context::{checked, kernel};
use crate::types::NtStatus;

/// `sizeof(RTL_OSVERSIONINFOW)`.
pub const OSVERSIONINFOW_SIZE: u32 = 0x114;
/// `sizeof(RTL_OSVERSIONINFOEXW)`.
pub const OSVERSIONINFOEXW_SIZE: u32 = 0x11C;

/// `RTL_OSVERSIONINFOEXW` (wdm.h; learn.microsoft.com, "OSVERSIONINFOEXW structure
/// (wdm.h)"); its first 0x114 bytes are `RTL_OSVERSIONINFOW`.
#[repr(C)]
#[derive(Debug)]
pub struct OsVersionInfoExW {
    /// `dwOSVersionInfoSize`.
    pub size: u32,
    /// `dwMajorVersion`.
    pub major: u32,
    /// `dwMinorVersion`.
    pub minor: u32,
    /// `dwBuildNumber`.
    pub build: u32,
    /// `dwPlatformId`.
    pub platform_id: u32,
    /// `szCSDVersion`.
    pub csd: [u16; 128],
    /// `wServicePackMajor`.
    pub service_pack_major: u16,
    /// `wServicePackMinor`.
    pub service_pack_minor: u16,
    /// `wSuiteMask`.
    pub suite_mask: u16,
    /// `wProductType`.
    pub product_type: u8,
    /// `wReserved`.
    pub reserved: u8,
}

const _: () = assert!(std::mem::size_of::<OsVersionInfoExW>() == OSVERSIONINFOEXW_SIZE as usize);
const _: () = assert!(std::mem::offset_of!(OsVersionInfoExW, csd) == 0x14);
const _: () = assert!(std::mem::offset_of!(OsVersionInfoExW, service_pack_major) == OSVERSIONINFOW_SIZE as usize);
const _: () = assert!(std::mem::offset_of!(OsVersionInfoExW, product_type) == 0x11A);

/// `RtlCompareMemory` (learn.microsoft.com, "RtlCompareMemory function (wdm.h)"):
/// the number of leading bytes that match (`length` when all do), compared page by
/// page up to the first difference: an unmapped page stops the machine only when
/// the comparison reaches it, as the driver's own reads would. Any IRQL when both
/// blocks are nonpaged, else below DISPATCH_LEVEL.
///
/// # Safety
/// Driver code passes two blocks of `length` bytes (checked: a bad one stops as
/// on Windows).
pub unsafe extern "win64" fn RtlCompareMemory(a: *const c_void, b: *const c_void, length: usize) -> usize {
    let mut i = 0;
    while i < length {
        let n = chunk(a as usize + i, length - i).min(chunk(b as usize + i, length - i));
        let (x, y) = kernel(|cpu| {
            let len = n as u64;
            Ok((checked(cpu, a.wrapping_add(i).cast_mut(), len)?, checked(cpu, b.wrapping_add(i).cast_mut(), len)?))
        });
        // SAFETY: `n` bytes within one page of each block, mapped (checked above).
        if let Some(d) = (0..n).find(|&j| unsafe { x.add(j).read_volatile() != y.add(j).read_volatile() }) {
            return i + d;
        }
        i += n;
    }
    length
}

/// The bytes from `at` to the end of its page, at most `left`.
fn chunk(at: usize, left: usize) -> usize {
    (0x1000 - at % 0x1000).min(left)
}

/// `RtlFillMemoryUlong` (learn.microsoft.com, "RtlFillMemoryUlong function
/// (ntifs.h)"): `length / 4` copies of `pattern` (a remainder of `length` is not
/// written), page by page: an unmapped page stops the machine where the driver's
/// own stores would. Any IRQL when the block is nonpaged, else below
/// DISPATCH_LEVEL.
///
/// # Safety
/// As [`RtlCompareMemory`], for a writable block.
pub unsafe extern "win64" fn RtlFillMemoryUlong(destination: *mut c_void, length: usize, pattern: u32) {
    let (total, bytes) = (length / 4 * 4, pattern.to_le_bytes());
    let mut i = 0;
    while i < total {
        let n = chunk(destination as usize + i, total - i);
        let d = kernel(|cpu| checked(cpu, destination.wrapping_byte_add(i), n as u64));
        for j in 0..n {
            // SAFETY: `n` mapped bytes of the driver's block (checked above).
            unsafe { d.add(j).write_volatile(bytes[(i + j) % 4]) };
        }
        i += n;
    }
}

/// `RtlGetVersion` (learn.microsoft.com, "RtlGetVersion function (wdm.h)"): the
/// machine's version ([`OsVersion::of`] its edition) into an `RTL_OSVERSIONINFOW`,
/// or an `RTL_OSVERSIONINFOEXW` when `dwOSVersionInfoSize` says so; always
/// STATUS_SUCCESS (as the page says, for any size: the base structure is written
/// for a size other than the extended one). PASSIVE_LEVEL (pageable).
///
/// # Safety
/// `info` is the driver's structure (checked: a bad one stops as on Windows).
pub unsafe extern "win64" fn RtlGetVersion(info: *mut c_void) -> NtStatus {
    let (p, v, extended) = kernel(|cpu| {
        pageable_code(cpu, RtlGetVersion as *const () as u64)?;
        let head = checked(cpu, info, 4)?;
        // SAFETY: 4 mapped bytes (checked above).
        let size = unsafe { head.cast::<u32>().read_unaligned() };
        let extended = size == OSVERSIONINFOEXW_SIZE;
        let bytes = if extended { OSVERSIONINFOEXW_SIZE } else { OSVERSIONINFOW_SIZE };
        let p = checked(cpu, info, u64::from(bytes))?;
        Ok((p, OsVersion::of(cpu.machine().profile().edition), extended))
    });
    let mut csd = [0u16; 128];
    csd.iter_mut().zip(v.csd.encode_utf16().take(127)).for_each(|(d, c)| *d = c);
    // SAFETY: the structure's bytes for its size are mapped (checked above); the
    // fields are written unaligned.
    unsafe {
        let at = |off: usize| p.add(off);
        at(0x04).cast::<u32>().write_unaligned(v.major);
        at(0x08).cast::<u32>().write_unaligned(v.minor);
        at(0x0C).cast::<u32>().write_unaligned(v.build);
        at(0x10).cast::<u32>().write_unaligned(VER_PLATFORM_WIN32_NT);
        at(0x14).cast::<[u16; 128]>().write_unaligned(csd);
        if extended {
            at(0x114).cast::<u16>().write_unaligned(v.service_pack_major);
            at(0x116).cast::<u16>().write_unaligned(v.service_pack_minor);
            at(0x118).cast::<u16>().write_unaligned(v.suite_mask);
            at(0x11A).write_unaligned(v.product_type);
            at(0x11B).write_unaligned(0);
        }
    }
    0
}

/// `RtlIsNtDdiVersionAvailable` (learn.microsoft.com, "RtlIsNtDdiVersionAvailable
/// function (wdm.h)"): TRUE when the machine's release is `version` (an `NTDDI_*`
/// value) or later. Windows exports it from Vista on and links it from
/// `Rtlver.lib` before; ntmem exports it for every edition. PASSIVE_LEVEL.
pub extern "win64" fn RtlIsNtDdiVersionAvailable(version: u32) -> u8 {
    u8::from(kernel(|cpu| {
        pageable_code(cpu, RtlIsNtDdiVersionAvailable as *const () as u64)?;
        Ok(version::ntddi_available(cpu.machine().profile().edition, version))
    }))
}
