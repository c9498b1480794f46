//! Run-time library routines at the C boundary: the counted-string routines
//! (`RtlInitUnicodeString`, `RtlCopyUnicodeString`, `RtlAppendUnicodeToString`,
//! `RtlCompareUnicodeString`, …). What each computes is
//! [`ntmem_kernel::rtl::string`]'s; this module reads and writes the caller's
//! strings.
//!
//! The caller's memory is touched as Windows' routine touches it, with plain loads
//! and stores outside any kernel lock: a bad pointer faults, and the machine's
//! fault handler takes the fault as the driver's own access would be taken (a
//! NULL `UNICODE_STRING` pointer is an access violation, as on Windows). The
//! characters a comparison reads are copied to the host heap first; a fault there
//! leaves that copy behind (a bugcheck ends the run).

use ntmem_kernel::ex::pool::NtStatus as KStatus;
use ntmem_kernel::rtl::string::{self, Counted, Write};
use ntmem_kernel::trap::pageable_code;

use crate::context::kernel;
use crate::types::{AnsiString, NtStatus, UnicodeString};

/// The wide characters before the NUL of `s`.
///
/// # Safety
/// `s` is non-null; the caller passed it as a NUL-terminated `PCWSTR` (a bad one
/// faults, see the module docs).
unsafe fn wide_len(s: *const u16) -> usize {
    let mut n = 0;
    // SAFETY: the caller's NUL-terminated string (`# Safety`): each unit up to and
    // including the NUL is the caller's memory.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// The bytes before the NUL of `s`.
///
/// # Safety
/// As [`wide_len`], for a `PCSZ`.
unsafe fn narrow_len(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: as in `wide_len`.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// The header of the caller's `UNICODE_STRING`.
///
/// # Safety
/// `s` is the caller's `PUNICODE_STRING` (a bad one faults).
unsafe fn header(s: *const UnicodeString) -> (Counted, *mut u16) {
    // SAFETY: the caller's string header (`# Safety`).
    let (length, maximum_length, buffer) = unsafe {
        (
            std::ptr::addr_of!((*s).length).read_volatile(),
            std::ptr::addr_of!((*s).maximum_length).read_volatile(),
            std::ptr::addr_of!((*s).buffer).read_volatile(),
        )
    };
    (Counted { length, maximum_length }, buffer)
}

/// The characters of the caller's `UNICODE_STRING`.
///
/// # Safety
/// `s` is the caller's `PCUNICODE_STRING`, whose `Buffer` holds `Length` bytes.
unsafe fn characters(s: *const UnicodeString) -> Vec<u16> {
    // SAFETY: forwarded (`# Safety`).
    let (h, buffer) = unsafe { header(s) };
    // SAFETY: `Buffer` holds `Length` bytes (`# Safety`).
    (0..string::chars_of(h.length)).map(|i| unsafe { buffer.add(i).read_volatile() }).collect()
}

/// Stores `write` into the caller's destination string, copying its bytes from
/// `source`.
///
/// # Safety
/// `destination` is the caller's `PUNICODE_STRING` with a `Buffer` of
/// `MaximumLength` bytes; `source` holds `write.bytes` bytes.
unsafe fn store(destination: *mut UnicodeString, buffer: *mut u16, source: *const u16, write: Write) {
    // SAFETY: `write` stays within `MaximumLength` (rtl::string's contract) and the
    // caller's buffers are as `# Safety` says; the source may overlap the
    // destination (Windows moves, as `RtlMoveMemory`).
    unsafe {
        let at = buffer.cast::<u8>().add(usize::from(write.at));
        std::ptr::copy(source.cast::<u8>(), at, usize::from(write.bytes));
        if write.terminate {
            buffer.cast::<u8>().add(usize::from(write.length)).cast::<u16>().write_unaligned(0);
        }
        std::ptr::addr_of_mut!((*destination).length).write_volatile(write.length);
    }
}

/// `RtlInitUnicodeString` (learn.microsoft.com, "RtlInitUnicodeString function
/// (wdm.h)"): `Buffer` = `source`, `Length` its bytes without the NUL,
/// `MaximumLength` with it; a NULL source gives 0, 0, NULL; a source longer than
/// 0xFFFC bytes is cut to 0xFFFC ([`string::init_unicode`]).
///
/// # Safety
/// `destination` is writable; `source` is null or NUL-terminated.
pub unsafe extern "win64" fn RtlInitUnicodeString(destination: *mut UnicodeString, source: *const u16) {
    // SAFETY: the caller's NUL-terminated source (`# Safety`).
    let chars = (!source.is_null()).then(|| unsafe { wide_len(source) });
    let h = kernel(|_| Ok(string::init_unicode(chars)));
    // SAFETY: the caller's writable header (`# Safety`).
    unsafe {
        destination.write_volatile(UnicodeString {
            length: h.length,
            maximum_length: h.maximum_length,
            buffer: source.cast_mut(),
        });
    }
}

/// `RtlInitAnsiString` (learn.microsoft.com, "RtlInitAnsiString function
/// (wdm.h)"): as `RtlInitUnicodeString` for a narrow string, cut at 0xFFFE bytes.
///
/// # Safety
/// `destination` is writable; `source` is null or NUL-terminated.
pub unsafe extern "win64" fn RtlInitAnsiString(destination: *mut AnsiString, source: *const u8) {
    // SAFETY: the caller's NUL-terminated source (`# Safety`).
    let bytes = (!source.is_null()).then(|| unsafe { narrow_len(source) });
    let h = kernel(|_| Ok(string::init_ansi(bytes)));
    // SAFETY: the caller's writable header (`# Safety`).
    unsafe {
        destination.write_volatile(AnsiString {
            length: h.length,
            maximum_length: h.maximum_length,
            buffer: source.cast_mut(),
        });
    }
}

/// `RtlInitString` (learn.microsoft.com, "RtlInitString function (wdm.h)"): the
/// same as `RtlInitAnsiString` (`STRING` and `ANSI_STRING` are one type).
///
/// # Safety
/// As `RtlInitAnsiString`.
pub unsafe extern "win64" fn RtlInitString(destination: *mut AnsiString, source: *const u8) {
    // SAFETY: forwarded (`# Safety`).
    unsafe { RtlInitAnsiString(destination, source) }
}

/// `RtlCopyUnicodeString` (learn.microsoft.com, "RtlCopyUnicodeString function
/// (wdm.h)"): copies the source, cut to the destination's `MaximumLength`, and
/// NUL-terminates when there is room; a NULL source sets `Length` to 0.
///
/// # Safety
/// `destination` is a valid string with a writable buffer of `MaximumLength`
/// bytes; `source` is null or a valid string.
pub unsafe extern "win64" fn RtlCopyUnicodeString(destination: *mut UnicodeString, source: *const UnicodeString) {
    // SAFETY: the caller's strings (`# Safety`).
    let (d, buffer) = unsafe { header(destination) };
    // SAFETY: as above.
    let s = (!source.is_null()).then(|| unsafe { header(source) });
    let write = kernel(|_| Ok(string::copy(d.maximum_length, s.map(|(h, _)| h.length))));
    let from = s.map_or(std::ptr::null(), |(_, b)| b.cast_const());
    // SAFETY: `write` fits the destination; the source holds `write.bytes` bytes.
    unsafe { store(destination, buffer, from, write) }
}

/// The append both routines do.
///
/// # Safety
/// As [`store`], with `destination`'s header read here.
unsafe fn append(destination: *mut UnicodeString, source: *const u16, bytes: u16) -> NtStatus {
    // SAFETY: the caller's string (`# Safety`).
    let (d, buffer) = unsafe { header(destination) };
    match kernel(|_| Ok(string::append(d, bytes))) {
        Ok(write) => {
            // SAFETY: `write` fits the destination; the source holds `bytes` bytes.
            unsafe { store(destination, buffer, source, write) };
            0
        }
        Err(KStatus(status)) => status as NtStatus,
    }
}

/// `RtlAppendUnicodeToString` (learn.microsoft.com, "RtlAppendUnicodeToString
/// function (wdm.h)"): appends a NUL-terminated string;
/// `STATUS_BUFFER_TOO_SMALL` when it does not fit. A NULL source appends nothing.
///
/// # Safety
/// `destination` is a valid string with a writable buffer; `source` is null or
/// NUL-terminated.
pub unsafe extern "win64" fn RtlAppendUnicodeToString(destination: *mut UnicodeString, source: *const u16) -> NtStatus {
    if source.is_null() {
        return 0;
    }
    // SAFETY: the caller's NUL-terminated source (`# Safety`).
    let chars = unsafe { wide_len(source) };
    let Ok(bytes) = u16::try_from(chars.saturating_mul(2)) else {
        return KStatus::BUFFER_TOO_SMALL.0 as NtStatus;
    };
    // SAFETY: forwarded (`# Safety`).
    unsafe { append(destination, source, bytes) }
}

/// `RtlAppendUnicodeStringToString` (learn.microsoft.com,
/// "RtlAppendUnicodeStringToString function (wdm.h)"): appends the source's
/// `Length` bytes; `STATUS_BUFFER_TOO_SMALL` when they do not fit.
///
/// # Safety
/// `destination` is a valid string with a writable buffer; `source` is a valid
/// string.
pub unsafe extern "win64" fn RtlAppendUnicodeStringToString(
    destination: *mut UnicodeString,
    source: *const UnicodeString,
) -> NtStatus {
    // SAFETY: the caller's string (`# Safety`).
    let (s, buffer) = unsafe { header(source) };
    // SAFETY: forwarded (`# Safety`).
    unsafe { append(destination, buffer, s.length) }
}

/// `RtlCompareUnicodeString` (learn.microsoft.com, "RtlCompareUnicodeString
/// function (wdm.h)"): negative, zero or positive ([`string::compare`]). Pageable
/// on Windows (PASSIVE_LEVEL): at DISPATCH_LEVEL or above, 0x0A.
///
/// # Safety
/// Both are valid strings.
pub unsafe extern "win64" fn RtlCompareUnicodeString(
    a: *const UnicodeString,
    b: *const UnicodeString,
    case_insensitive: u8,
) -> i32 {
    kernel(|cpu| pageable_code(cpu, RtlCompareUnicodeString as *const () as u64));
    // SAFETY: the caller's strings (`# Safety`).
    let (a, b) = unsafe { (characters(a), characters(b)) };
    kernel(|_| Ok(string::compare(&a, &b, case_insensitive != 0)))
}

/// `RtlEqualUnicodeString` (learn.microsoft.com, "RtlEqualUnicodeString function
/// (wdm.h)"): TRUE when both have the same length and characters. Pageable on
/// Windows (PASSIVE_LEVEL): at DISPATCH_LEVEL or above, 0x0A.
///
/// # Safety
/// Both are valid strings.
pub unsafe extern "win64" fn RtlEqualUnicodeString(
    a: *const UnicodeString,
    b: *const UnicodeString,
    case_insensitive: u8,
) -> u8 {
    kernel(|cpu| pageable_code(cpu, RtlEqualUnicodeString as *const () as u64));
    // SAFETY: the caller's strings (`# Safety`).
    let (a, b) = unsafe { (characters(a), characters(b)) };
    u8::from(kernel(|_| Ok(string::equal(&a, &b, case_insensitive != 0))))
}

/// The characters of a counted string the caller passed, for the I/O manager's
/// name routines ([`crate::io`]).
///
/// # Safety
/// As [`characters`].
pub(crate) unsafe fn unicode_chars(s: *const UnicodeString) -> Vec<u16> {
    // SAFETY: forwarded (`# Safety`).
    unsafe { characters(s) }
}
