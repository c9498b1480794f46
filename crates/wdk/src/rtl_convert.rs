//! Counted-string routines that convert, allocate or fold case, at the C boundary:
//! `RtlPrefixUnicodeString`, `RtlUpcaseUnicodeString`,
//! `RtlUnicodeStringToAnsiString`, `RtlAnsiStringToUnicodeString`,
//! `RtlFreeUnicodeString`, `RtlFreeAnsiString`, `RtlCreateUnicodeString`,
//! `RtlIntegerToUnicodeString`, `RtlUnicodeStringToInteger`,
//! `RtlUpcaseUnicodeChar`, `RtlDowncaseUnicodeChar`, `RtlCompareString`,
//! `RtlEqualString`. What each computes is [`ntmem_kernel::rtl::convert`]'s.
//!
//! Every header, buffer and output pointer is checked mapped
//! (`context::checked`) before it is touched: a NULL or wild one is the
//! stop the driver's own touch gives, never a host crash. The strings are copied
//! to the host heap, converted there, and the results stored with unaligned
//! writes.
//!
//! Allocating forms take paged pool tagged [`STRING_TAG`] ("Ustr"), freed by
//! `RtlFreeUnicodeString` / `RtlFreeAnsiString` (a leak shows under the tag). The
//! routines are pageable on Windows (PASSIVE_LEVEL): at DISPATCH_LEVEL or above,
//! 0x0A. Where ntmem differs: an allocation of 0 bytes (an empty source) is no
//! allocation: `Buffer` NULL, `MaximumLength` 0.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::{self, NtStatus as KStatus, PoolKind, PoolTag, PoolType};
use ntmem_kernel::rtl::convert::{self, Destination, Sized, STRING_TAG};
use ntmem_kernel::rtl::string;
use ntmem_kernel::trap::pageable_code;
use ntmem_kernel::{BugCheck, Cpu};

use crate::context::{checked, checked_all, host_ptr, kernel, va_of};
use crate::types::{AnsiString, NtStatus, UnicodeString};

/// A counted string's header as the driver's memory holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    at: *mut u8,
    length: u16,
    maximum_length: u16,
    buffer: *mut u8,
}

impl Header {
    /// Checks and reads the header at `s`.
    fn read(cpu: &Cpu<'_>, s: *const c_void) -> Result<Header, BugCheck> {
        let at = checked(cpu, s.cast_mut(), 0x10)?;
        // SAFETY: 16 mapped bytes (checked above).
        let (length, maximum_length, buffer) = unsafe {
            (
                at.cast::<u16>().read_unaligned(),
                at.add(2).cast::<u16>().read_unaligned(),
                at.add(8).cast::<*mut u8>().read_unaligned(),
            )
        };
        Ok(Header { at, length, maximum_length, buffer })
    }

    /// Checks every page of the first `bytes` of the buffer mapped (nothing for 0).
    fn check_buffer(&self, cpu: &Cpu<'_>, bytes: u64) -> Result<(), BugCheck> {
        if bytes > 0 {
            checked_all(cpu, self.buffer.cast(), bytes)?;
        }
        Ok(())
    }

    /// The `Length` bytes of the buffer (checked by [`Header::check_buffer`]).
    fn bytes(&self) -> Vec<u8> {
        // SAFETY: every page of the buffer's `Length` bytes is mapped (`check_buffer`).
        (0..usize::from(self.length)).map(|i| unsafe { self.buffer.add(i).read_volatile() }).collect()
    }

    /// The `Length / 2` characters of the buffer.
    fn units(&self) -> Vec<u16> {
        // SAFETY: as `bytes`.
        (0..string::chars_of(self.length))
            .map(|i| unsafe { self.buffer.cast::<u16>().add(i).read_unaligned() })
            .collect()
    }

    /// Stores `Length`, and `MaximumLength` and `Buffer` when `buffer` is given.
    fn store(&self, length: u16, buffer: Option<(u16, *mut u8)>) {
        // SAFETY: the header's 16 bytes were checked mapped in `read`.
        unsafe {
            self.at.cast::<u16>().write_unaligned(length);
            if let Some((maximum_length, b)) = buffer {
                self.at.add(2).cast::<u16>().write_unaligned(maximum_length);
                self.at.add(8).cast::<*mut u8>().write_unaligned(b);
            }
        }
    }
}

/// Reads a source string's header and checks its buffer.
fn source(cpu: &Cpu<'_>, s: *const c_void) -> Result<Header, BugCheck> {
    let h = Header::read(cpu, s)?;
    h.check_buffer(cpu, u64::from(h.length))?;
    Ok(h)
}

/// Where `routine`'s result goes: the destination header read, and the buffer
/// (allocated when asked; else the caller's, checked mapped for the result and its
/// `terminator` bytes), or the status that ends the call.
pub(crate) fn destination(
    cpu: &Cpu<'_>,
    routine: &'static str,
    d: *mut c_void,
    allocate: u8,
    terminator: u16,
    size: impl FnOnce(Destination) -> Result<Sized, KStatus>,
) -> Result<Result<(Header, Sized, *mut u8), NtStatus>, BugCheck> {
    let h = Header::read(cpu, d)?;
    let to =
        if allocate != 0 { Destination::Allocate } else { Destination::Caller { maximum_length: h.maximum_length } };
    let sized = match size(to) {
        Ok(s) => s,
        Err(KStatus(status)) => return Ok(Err(status as NtStatus)),
    };
    let buffer = if to == Destination::Allocate {
        if sized.maximum_length == 0 {
            std::ptr::null_mut()
        } else {
            // Driver Verifier fails and tracks it as the routine's (research note §3.2, §3.4).
            let tag = PoolTag(STRING_TAG);
            let allocate = || pool::allocate(cpu, PoolType::PagedPool, u64::from(sized.maximum_length), tag);
            let ask = crate::vf::Ask::object(routine, tag, PoolKind::Paged);
            let va = crate::vf::allocation(cpu, ask, || None, allocate, |va| *va)?;
            let Some(va) = va else { return Ok(Err(KStatus::NO_MEMORY.0 as NtStatus)) };
            host_ptr(cpu, Some(va)).cast()
        }
    } else {
        let terminator = if sized.terminate { u64::from(terminator) } else { 0 };
        h.check_buffer(cpu, u64::from(sized.length) + terminator)?;
        h.buffer
    };
    Ok(Ok((h, sized, buffer)))
}

/// Writes `bytes` then, when `sized.terminate`, `terminator` zero bytes to
/// `buffer`, and the header.
///
/// # Safety
/// `buffer` holds `sized.maximum_length` bytes, which hold `bytes` and the
/// terminator (`convert`'s sizing); `h` is the destination header.
pub(crate) unsafe fn finish(
    h: &Header,
    sized: Sized,
    buffer: *mut u8,
    bytes: &[u8],
    terminator: usize,
    allocated: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len());
        if sized.terminate {
            std::ptr::write_bytes(buffer.add(bytes.len()), 0, terminator);
        }
    }
    h.store(sized.length, allocated.then_some((sized.maximum_length, buffer)));
}

/// `RtlPrefixUnicodeString` (learn.microsoft.com, "RtlPrefixUnicodeString function
/// (wdm.h)"): TRUE when `prefix` begins `s` (case folded on request).
///
/// # Safety
/// Driver code passes its strings (checked: a bad one stops as on Windows).
pub unsafe extern "win64" fn RtlPrefixUnicodeString(
    prefix: *const UnicodeString,
    s: *const UnicodeString,
    case_insensitive: u8,
) -> u8 {
    let (p, s) = kernel(|cpu| {
        pageable_code(cpu, RtlPrefixUnicodeString as *const () as u64)?;
        Ok((source(cpu, prefix.cast())?, source(cpu, s.cast())?))
    });
    let (p, s) = (p.units(), s.units());
    u8::from(kernel(|_| Ok(convert::is_prefix(&p, &s, case_insensitive != 0))))
}

/// `RtlUpcaseUnicodeString` (learn.microsoft.com, "RtlUpcaseUnicodeString function
/// (wdm.h)"): the source upcased into the destination (allocated from paged pool
/// when `allocate`, `MaximumLength` = the source's `Length`); not terminated.
/// `STATUS_BUFFER_OVERFLOW` when the caller's buffer is shorter than the source,
/// `STATUS_NO_MEMORY` when the allocation fails.
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlUpcaseUnicodeString(
    d: *mut UnicodeString,
    s: *const UnicodeString,
    allocate: u8,
) -> NtStatus {
    let src = kernel(|cpu| {
        pageable_code(cpu, RtlUpcaseUnicodeString as *const () as u64)?;
        source(cpu, s.cast())
    });
    let units = src.units();
    let upper: Vec<u8> = units.iter().flat_map(|&c| string::upcase(c).to_le_bytes()).collect();
    let length = src.length;
    match kernel(|cpu| {
        destination(cpu, "RtlUpcaseUnicodeString", d.cast(), allocate, 0, |to| convert::size_upcase(length, to))
    }) {
        // SAFETY: `buffer` holds `MaximumLength` >= `Length` bytes (the sizing).
        Ok((h, sized, buffer)) => unsafe { finish(&h, sized, buffer, &upper, 0, allocate != 0) },
        Err(status) => return status,
    }
    0
}

/// `RtlUnicodeStringToAnsiString` (learn.microsoft.com,
/// "RtlUnicodeStringToAnsiString function (wdm.h)"): the characters in the ANSI
/// code page (`convert`'s module docs), NUL-terminated; allocated from paged pool
/// (`Length + 1` bytes) when `allocate`, freed by `RtlFreeAnsiString`.
/// `STATUS_BUFFER_OVERFLOW` when the caller's buffer cannot hold the result and
/// its NUL (nothing converted, as the page says); `STATUS_INVALID_PARAMETER_2`
/// when the result would exceed `MAXUSHORT`.
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlUnicodeStringToAnsiString(
    d: *mut AnsiString,
    s: *const UnicodeString,
    allocate: u8,
) -> NtStatus {
    let src = kernel(|cpu| {
        pageable_code(cpu, RtlUnicodeStringToAnsiString as *const () as u64)?;
        source(cpu, s.cast())
    });
    let bytes: Vec<u8> = src.units().into_iter().map(convert::to_ansi_char).collect();
    let n = bytes.len();
    match kernel(|cpu| {
        destination(cpu, "RtlUnicodeStringToAnsiString", d.cast(), allocate, 1, |to| convert::size_terminated(n, 1, to))
    }) {
        // SAFETY: `buffer` holds the result and its NUL (the sizing).
        Ok((h, sized, buffer)) => unsafe { finish(&h, sized, buffer, &bytes, 1, allocate != 0) },
        Err(status) => return status,
    }
    0
}

/// `RtlAnsiStringToUnicodeString` (learn.microsoft.com,
/// "RtlAnsiStringToUnicodeString function (wdm.h)"): each byte its character,
/// NUL-terminated; allocated from paged pool (`Length * 2 + 2` bytes) when
/// `allocate`, freed by `RtlFreeUnicodeString`. Statuses as
/// [`RtlUnicodeStringToAnsiString`].
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlAnsiStringToUnicodeString(
    d: *mut UnicodeString,
    s: *const AnsiString,
    allocate: u8,
) -> NtStatus {
    let src = kernel(|cpu| {
        pageable_code(cpu, RtlAnsiStringToUnicodeString as *const () as u64)?;
        source(cpu, s.cast())
    });
    let wide: Vec<u8> = src.bytes().into_iter().flat_map(|b| u16::from(b).to_le_bytes()).collect();
    let n = wide.len();
    match kernel(|cpu| {
        destination(cpu, "RtlAnsiStringToUnicodeString", d.cast(), allocate, 2, |to| convert::size_terminated(n, 2, to))
    }) {
        // SAFETY: `buffer` holds the result and its NUL (the sizing).
        Ok((h, sized, buffer)) => unsafe { finish(&h, sized, buffer, &wide, 2, allocate != 0) },
        Err(status) => return status,
    }
    0
}

/// Frees a string's buffer (when not NULL) and zeroes its header.
fn free_string(s: *mut c_void) {
    kernel(|cpu| {
        let h = Header::read(cpu, s)?;
        if !h.buffer.is_null() {
            pool::free(cpu, va_of(cpu, h.buffer.cast()), None)?;
        }
        h.store(0, Some((0, std::ptr::null_mut())));
        Ok(())
    })
}

/// `RtlFreeUnicodeString` (learn.microsoft.com, "RtlFreeUnicodeString function
/// (wdm.h)"): frees the buffer `RtlAnsiStringToUnicodeString`,
/// `RtlUpcaseUnicodeString` or `RtlCreateUnicodeString` allocated, and zeroes the
/// header; a buffer that is not pool is the pool's bugcheck (BAD_POOL_CALLER).
/// IRQL <= APC_LEVEL.
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlFreeUnicodeString(s: *mut UnicodeString) {
    free_string(s.cast());
}

/// `RtlFreeAnsiString` (learn.microsoft.com, "RtlFreeAnsiString function
/// (wdm.h)"): as [`RtlFreeUnicodeString`] for `RtlUnicodeStringToAnsiString`'s
/// buffers.
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlFreeAnsiString(s: *mut AnsiString) {
    free_string(s.cast());
}

/// `RtlCreateUnicodeString` (learn.microsoft.com, "RtlCreateUnicodeString function
/// (ntifs.h)"): a copy of the NUL-terminated `source`, terminator included, in
/// paged pool; `Length` without the NUL, `MaximumLength` with it. FALSE when the
/// copy would exceed `MAXUSHORT` bytes or pool is short. Freed by
/// `RtlFreeUnicodeString`.
///
/// # Safety
/// `source` is the driver's NUL-terminated string (its first character is
/// checked mapped; a bad pointer stops as on Windows).
pub unsafe extern "win64" fn RtlCreateUnicodeString(d: *mut UnicodeString, source: *const u16) -> u8 {
    kernel(|cpu| {
        pageable_code(cpu, RtlCreateUnicodeString as *const () as u64)?;
        checked(cpu, source.cast_mut().cast(), 2).map(|_| ())
    });
    let mut chars = Vec::new();
    // SAFETY: the driver's NUL-terminated string (`# Safety`); its start is
    // mapped, a later page that is not faults as the driver's own read would.
    while let c @ 1.. = unsafe { source.add(chars.len()).read_unaligned() } {
        chars.push(c);
        if chars.len() > 0x8000 {
            return 0;
        }
    }
    let bytes: Vec<u8> = chars.iter().flat_map(|c| c.to_le_bytes()).collect();
    let n = bytes.len();
    match kernel(|cpu| {
        destination(cpu, "RtlCreateUnicodeString", d.cast(), 1, 2, |to| convert::size_terminated(n, 2, to))
    }) {
        // SAFETY: `buffer` holds the copy and its NUL (the sizing).
        Ok((h, sized, buffer)) => unsafe { finish(&h, sized, buffer, &bytes, 2, true) },
        Err(_) => return 0,
    }
    1
}

/// `RtlIntegerToUnicodeString` (learn.microsoft.com, "RtlIntegerToUnicodeString
/// function (wdm.h)"): `value` in `base` (0 or 10, 2, 8, 16; upper-case hex),
/// NUL-terminated, into the caller's string. `STATUS_INVALID_PARAMETER` for
/// another base, `STATUS_BUFFER_OVERFLOW` when the digits and their NUL do not
/// fit (nothing written).
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlIntegerToUnicodeString(value: u32, base: u32, s: *mut UnicodeString) -> NtStatus {
    let digits = match kernel(|cpu| {
        pageable_code(cpu, RtlIntegerToUnicodeString as *const () as u64)?;
        Ok(convert::integer_digits(value, base))
    }) {
        Ok(d) => d,
        Err(KStatus(status)) => return status as NtStatus,
    };
    let wide: Vec<u8> = digits.into_iter().flat_map(|b| u16::from(b).to_le_bytes()).collect();
    let n = wide.len();
    match kernel(|cpu| {
        destination(cpu, "RtlIntegerToUnicodeString", s.cast(), 0, 2, |to| convert::size_terminated(n, 2, to))
    }) {
        // SAFETY: `buffer` holds the digits and their NUL (the sizing).
        Ok((h, sized, buffer)) => unsafe { finish(&h, sized, buffer, &wide, 2, false) },
        Err(status) => return status,
    }
    0
}

/// `RtlUnicodeStringToInteger` (learn.microsoft.com, "RtlUnicodeStringToInteger
/// function (wdm.h)"): the number the string spells ([`convert::parse_integer`]);
/// `STATUS_INVALID_PARAMETER` for an empty string or a base other than 0, 2, 8,
/// 10 or 16 (`*Value` untouched).
///
/// # Safety
/// As [`RtlPrefixUnicodeString`]; `value` is writable.
pub unsafe extern "win64" fn RtlUnicodeStringToInteger(
    s: *const UnicodeString,
    base: u32,
    value: *mut u32,
) -> NtStatus {
    let src = kernel(|cpu| {
        pageable_code(cpu, RtlUnicodeStringToInteger as *const () as u64)?;
        source(cpu, s.cast())
    });
    let units = src.units();
    kernel(|cpu| {
        let v = match convert::parse_integer(&units, base) {
            Ok(v) => v,
            Err(KStatus(status)) => return Ok(status as NtStatus),
        };
        let out = checked(cpu, value.cast(), 4)?;
        // SAFETY: 4 mapped bytes (checked above).
        unsafe { out.cast::<u32>().write_unaligned(v) };
        Ok(0)
    })
}

/// `RtlUpcaseUnicodeChar` (learn.microsoft.com, "RtlUpcaseUnicodeChar function
/// (wdm.h)"): the upper case of `c` ([`string::upcase`]). IRQL <= APC_LEVEL: at
/// DISPATCH_LEVEL or above, 0x0A (the case tables are pageable).
pub extern "win64" fn RtlUpcaseUnicodeChar(c: u16) -> u16 {
    kernel(|cpu| {
        pageable_code(cpu, RtlUpcaseUnicodeChar as *const () as u64)?;
        Ok(string::upcase(c))
    })
}

/// `RtlDowncaseUnicodeChar` (learn.microsoft.com, "RtlDowncaseUnicodeChar function
/// (wdm.h)"): the lower case of `c` ([`convert::downcase`]). PASSIVE_LEVEL: at
/// DISPATCH_LEVEL or above, 0x0A.
pub extern "win64" fn RtlDowncaseUnicodeChar(c: u16) -> u16 {
    kernel(|cpu| {
        pageable_code(cpu, RtlDowncaseUnicodeChar as *const () as u64)?;
        Ok(convert::downcase(c))
    })
}

/// `RtlCompareString` (learn.microsoft.com, "RtlCompareString function (wdm.h)"):
/// negative, zero or positive ([`convert::compare_ansi`]). Pageable (PASSIVE_LEVEL).
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlCompareString(a: *const AnsiString, b: *const AnsiString, case_insensitive: u8) -> i32 {
    let (a, b) = kernel(|cpu| {
        pageable_code(cpu, RtlCompareString as *const () as u64)?;
        Ok((source(cpu, a.cast())?, source(cpu, b.cast())?))
    });
    let (a, b) = (a.bytes(), b.bytes());
    kernel(|_| Ok(convert::compare_ansi(&a, &b, case_insensitive != 0)))
}

/// `RtlEqualString` (learn.microsoft.com, "RtlEqualString function (wdm.h)"): TRUE
/// when both have the same length and characters. Pageable (PASSIVE_LEVEL).
///
/// # Safety
/// As [`RtlPrefixUnicodeString`].
pub unsafe extern "win64" fn RtlEqualString(a: *const AnsiString, b: *const AnsiString, case_insensitive: u8) -> u8 {
    let (a, b) = kernel(|cpu| {
        pageable_code(cpu, RtlEqualString as *const () as u64)?;
        Ok((source(cpu, a.cast())?, source(cpu, b.cast())?))
    });
    let (a, b) = (a.bytes(), b.bytes());
    u8::from(kernel(|_| Ok(convert::equal_ansi(&a, &b, case_insensitive != 0))))
}
