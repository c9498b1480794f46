//! Counted strings: the arithmetic of `UNICODE_STRING` and `ANSI_STRING` as the
//! `Rtl…String` routines do it (wdm.h; learn.microsoft.com, the page of each
//! routine named below), as pure functions over the strings' `Length` /
//! `MaximumLength` and their characters. The WDK boundary reads and writes the
//! caller's memory; this module decides what is read, written and returned.
//!
//! A `UNICODE_STRING` counts bytes of 16-bit `WCHAR`s (UTF-16, Windows' wide
//! character); an odd `Length` counts its last half character as absent.
//!
//! Where ntmem differs: case-insensitive comparison upcases with Unicode's simple
//! uppercase mapping ([`upcase`]); Windows uses its own upcase table
//! (`RtlUpcaseUnicodeChar`), which agrees on ASCII and nearly everywhere else.

use crate::ex::pool::NtStatus;

impl NtStatus {
    /// `STATUS_BUFFER_TOO_SMALL`: the append routines' result when the
    /// destination's `MaximumLength` cannot hold the result.
    pub const BUFFER_TOO_SMALL: NtStatus = NtStatus(0xC000_0023);
}

/// A counted string's header: `Length` and `MaximumLength`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Bytes of the string, without a terminator.
    pub length: u16,
    /// Bytes of the buffer.
    pub maximum_length: u16,
}

/// The longest `Length` `RtlInitUnicodeString` gives: `MAX_USTRING` (0xFFFE, the
/// largest even `USHORT`) less one `WCHAR` for the terminator.
pub const MAX_UNICODE_LENGTH: u16 = 0xFFFC;

/// The longest `Length` `RtlInitAnsiString` / `RtlInitString` give: `MAXUSHORT`
/// less one byte for the terminator.
pub const MAX_ANSI_LENGTH: u16 = 0xFFFE;

/// `RtlInitUnicodeString` (learn.microsoft.com, "RtlInitUnicodeString function
/// (wdm.h)"): the header for a NUL-terminated source of `chars` wide characters
/// (without the terminator); `None` is a NULL source, which gives 0/0 (and a NULL
/// `Buffer`). `Length` is the source's bytes and `MaximumLength` two more (the
/// terminator). The page's note: a source longer than `MAX_USTRING - 1` bytes
/// (`MAX_USTRING` = 0xFFFE) gets `Length` `MAX_USTRING - 2` (0xFFFC,
/// [`MAX_UNICODE_LENGTH`]) and `MaximumLength` `MAX_USTRING`, which misstate the
/// source's length (the counted string covers its first 0x7FFE characters).
pub fn init_unicode(chars: Option<usize>) -> Counted {
    let Some(chars) = chars else { return Counted { length: 0, maximum_length: 0 } };
    let bytes = chars.saturating_mul(2).min(usize::from(MAX_UNICODE_LENGTH));
    let length = u16::try_from(bytes).unwrap_or(MAX_UNICODE_LENGTH);
    Counted { length, maximum_length: length + 2 }
}

/// `RtlInitAnsiString` and `RtlInitString` (learn.microsoft.com, "RtlInitAnsiString
/// function (wdm.h)", "RtlInitString function (wdm.h)"): as [`init_unicode`] for a
/// NUL-terminated narrow source of `bytes` bytes. The page: a source longer than
/// `MAXUSHORT - 1` bytes gets `Length` `MAXUSHORT - 1` ([`MAX_ANSI_LENGTH`]) and
/// `MaximumLength` `MAXUSHORT`.
pub fn init_ansi(bytes: Option<usize>) -> Counted {
    let Some(bytes) = bytes else { return Counted { length: 0, maximum_length: 0 } };
    let length = u16::try_from(bytes.min(usize::from(MAX_ANSI_LENGTH))).unwrap_or(MAX_ANSI_LENGTH);
    Counted { length, maximum_length: length + 1 }
}

/// What a copy or an append writes into the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// Byte offset in the destination's buffer where the copied bytes go.
    pub at: u16,
    /// How many bytes of the source are copied there.
    pub bytes: u16,
    /// The destination's new `Length`.
    pub length: u16,
    /// Whether a NUL `WCHAR` is stored after the new `Length` (there is room for
    /// one within `MaximumLength`).
    pub terminate: bool,
}

/// `RtlCopyUnicodeString` (learn.microsoft.com, "RtlCopyUnicodeString function
/// (wdm.h)"): copies `source_length` bytes, cut to the destination's
/// `MaximumLength`, to the start of the destination, and NUL-terminates it when
/// there is room. A NULL source (`None`) sets the destination's `Length` to 0 and
/// writes nothing.
pub fn copy(destination_maximum: u16, source_length: Option<u16>) -> Write {
    let bytes = source_length.map_or(0, |s| s.min(destination_maximum));
    let terminate = source_length.is_some() && u32::from(bytes) + 2 <= u32::from(destination_maximum);
    Write { at: 0, bytes, length: bytes, terminate }
}

/// `RtlAppendUnicodeStringToString` and `RtlAppendUnicodeToString`
/// (learn.microsoft.com, the pages of both, wdm.h): appends `source_length` bytes
/// after the destination's `Length`, NUL-terminating when there is room;
/// `STATUS_BUFFER_TOO_SMALL` (nothing written) when the result would not fit in
/// `MaximumLength`.
///
/// # Errors
/// `STATUS_BUFFER_TOO_SMALL`.
pub fn append(destination: Counted, source_length: u16) -> Result<Write, NtStatus> {
    let total = u32::from(destination.length) + u32::from(source_length);
    if total > u32::from(destination.maximum_length) {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    let length = u16::try_from(total).map_err(|_| NtStatus::BUFFER_TOO_SMALL)?;
    let terminate = total + 2 <= u32::from(destination.maximum_length);
    Ok(Write { at: destination.length, bytes: source_length, length, terminate })
}

/// `RtlUpcaseUnicodeChar` as ntmem has it: Unicode's simple uppercase mapping when
/// it is one UTF-16 unit, else the character itself (surrogates, and characters
/// whose uppercase is several, such as U+00DF, are left as they are, as Windows'
/// table leaves them).
pub fn upcase(c: u16) -> u16 {
    if c < 0x80 {
        return u16::from(u8::try_from(c).map_or(0, |b| b.to_ascii_uppercase()));
    }
    let Some(ch) = char::from_u32(u32::from(c)) else { return c };
    let mut up = ch.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(c),
        _ => c,
    }
}

/// `RtlCompareUnicodeString` (learn.microsoft.com, "RtlCompareUnicodeString
/// function (wdm.h)"): negative, zero or positive as `a` sorts before, equal to or
/// after `b`, character by character (upcased when `case_insensitive`), a prefix
/// before the longer string. The value is the difference of the first differing
/// characters, else of the lengths in bytes (callers may rely on the sign only).
pub fn compare(a: &[u16], b: &[u16], case_insensitive: bool) -> i32 {
    let fold = |c: u16| if case_insensitive { upcase(c) } else { c };
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (fold(x), fold(y));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    let bytes = |s: &[u16]| i32::try_from(s.len().saturating_mul(2)).unwrap_or(i32::MAX);
    bytes(a).saturating_sub(bytes(b))
}

/// `RtlEqualUnicodeString` (learn.microsoft.com, "RtlEqualUnicodeString function
/// (wdm.h)"): the same length and the same characters (upcased when
/// `case_insensitive`).
pub fn equal(a: &[u16], b: &[u16], case_insensitive: bool) -> bool {
    a.len() == b.len() && compare(a, b, case_insensitive) == 0
}

/// The characters a counted string's `Length` bytes cover (an odd byte is not a
/// character).
pub fn chars_of(length: u16) -> usize {
    usize::from(length / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn init_counts_bytes_and_a_terminator_and_null_is_empty() {
        assert_eq!(init_unicode(Some(6)), Counted { length: 12, maximum_length: 14 });
        assert_eq!(init_unicode(Some(0)), Counted { length: 0, maximum_length: 2 });
        assert_eq!(init_unicode(None), Counted { length: 0, maximum_length: 0 });
        assert_eq!(init_ansi(Some(5)), Counted { length: 5, maximum_length: 6 });
        assert_eq!(init_ansi(None), Counted { length: 0, maximum_length: 0 });
    }

    #[test]
    fn init_truncates_long_sources_at_the_largest_counted_length() {
        assert_eq!(init_unicode(Some(0x7FFE)), Counted { length: 0xFFFC, maximum_length: 0xFFFE });
        assert_eq!(init_unicode(Some(0x7FFF)), Counted { length: 0xFFFC, maximum_length: 0xFFFE });
        assert_eq!(init_unicode(Some(usize::MAX)), Counted { length: 0xFFFC, maximum_length: 0xFFFE });
        assert_eq!(init_unicode(Some(0x7FFD)), Counted { length: 0xFFFA, maximum_length: 0xFFFC });
        assert_eq!(init_ansi(Some(0x1_0000)), Counted { length: 0xFFFE, maximum_length: 0xFFFF });
    }

    #[test]
    fn copy_cuts_to_the_destination_and_terminates_when_there_is_room() {
        assert_eq!(copy(20, Some(10)), Write { at: 0, bytes: 10, length: 10, terminate: true });
        assert_eq!(copy(12, Some(10)), Write { at: 0, bytes: 10, length: 10, terminate: true });
        assert_eq!(copy(10, Some(10)), Write { at: 0, bytes: 10, length: 10, terminate: false });
        assert_eq!(copy(6, Some(10)), Write { at: 0, bytes: 6, length: 6, terminate: false });
        assert_eq!(copy(6, None), Write { at: 0, bytes: 0, length: 0, terminate: false });
    }

    #[test]
    fn append_fails_with_buffer_too_small_when_it_does_not_fit() {
        let d = Counted { length: 4, maximum_length: 10 };
        assert_eq!(append(d, 6), Ok(Write { at: 4, bytes: 6, length: 10, terminate: false }));
        assert_eq!(append(d, 4), Ok(Write { at: 4, bytes: 4, length: 8, terminate: true }));
        assert_eq!(append(d, 8), Err(NtStatus::BUFFER_TOO_SMALL));
        let full = Counted { length: 0xFFFE, maximum_length: 0xFFFE };
        assert_eq!(append(full, 2), Err(NtStatus::BUFFER_TOO_SMALL));
    }

    #[test]
    fn comparison_folds_case_on_request_and_orders_prefixes_first() {
        assert_eq!(compare(&w("Device"), &w("DEVICE"), true), 0);
        assert!(compare(&w("Device"), &w("DEVICE"), false) > 0);
        assert!(compare(&w("abc"), &w("abd"), true) < 0);
        assert!(compare(&w("ab"), &w("abc"), false) < 0);
        assert!(compare(&w("abc"), &w("ab"), false) > 0);
        assert!(equal(&w("\\DosDevices\\IoctlTest"), &w("\\dosdevices\\IOCTLTEST"), true));
        assert!(!equal(&w("ab"), &w("abc"), true));
        assert!(!equal(&w("ab"), &w("AB"), false));
        assert_eq!(upcase(u16::from(b'z')), u16::from(b'Z'));
        assert_eq!(upcase(0x00E9), 0x00C9, "é upcases to É");
        assert_eq!(upcase(0x00DF), 0x00DF, "ß has no one-unit uppercase");
        assert_eq!(upcase(0xD800), 0xD800, "a lone surrogate stays");
    }
}
