//! Counted-string conversions and comparisons beyond [`super::string`]: case
//! (`RtlUpcaseUnicodeChar`, `RtlDowncaseUnicodeChar`, `RtlUpcaseUnicodeString`),
//! prefixes (`RtlPrefixUnicodeString`), ANSI ⇄ Unicode
//! (`RtlUnicodeStringToAnsiString`, `RtlAnsiStringToUnicodeString`), integers
//! (`RtlIntegerToUnicodeString`, `RtlUnicodeStringToInteger`) and the ANSI
//! comparisons (`RtlCompareString`, `RtlEqualString`); wdm.h, learn.microsoft.com,
//! the page of each routine named on its function.
//!
//! Pure functions over characters and lengths: the WDK boundary reads the
//! caller's strings, allocates pool and writes the results.
//!
//! Where ntmem differs: the ANSI code page is Latin-1 (a character below 0x100 is
//! its own byte, any other is `?`, and a byte is the character of its value) where
//! Windows uses the system's ANSI code page (1252 on English systems, which differs
//! in 0x80–0x9F), as [`super::format`] narrows; case mapping is Unicode's simple
//! mapping ([`super::string::upcase`]) where Windows uses its own tables.

use super::format::Unit;
use super::string::upcase;
use crate::ex::pool::NtStatus;

impl NtStatus {
    /// `STATUS_BUFFER_OVERFLOW` (a warning): the result did not fit.
    pub const BUFFER_OVERFLOW: NtStatus = NtStatus(0x8000_0005);
}

/// The tag Windows' run-time library allocates string buffers with
/// (`RtlUpcaseUnicodeString`, `RtlUnicodeStringToAnsiString`,
/// `RtlAnsiStringToUnicodeString`, `RtlCreateUnicodeString`): "Ustr".
pub const STRING_TAG: u32 = u32::from_le_bytes(*b"Ustr");

/// `MAXUSHORT`: the largest counted-string length.
const MAX_LENGTH: usize = 0xFFFF;

/// `RtlDowncaseUnicodeChar` (learn.microsoft.com, "RtlDowncaseUnicodeChar function
/// (wdm.h)"): the lowercase of `c` when it is one UTF-16 unit, else `c`.
pub fn downcase(c: u16) -> u16 {
    if c < 0x80 {
        return u16::from(u8::try_from(c).map_or(0, |b| b.to_ascii_lowercase()));
    }
    let Some(ch) = char::from_u32(u32::from(c)) else { return c };
    let mut low = ch.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => u16::try_from(u32::from(l)).unwrap_or(c),
        _ => c,
    }
}

/// `RtlPrefixUnicodeString` (learn.microsoft.com, "RtlPrefixUnicodeString function
/// (wdm.h)"): whether `prefix` is a prefix of `s` (upcased when
/// `case_insensitive`); an empty prefix is a prefix of everything.
pub fn is_prefix(prefix: &[u16], s: &[u16], case_insensitive: bool) -> bool {
    let fold = |c: u16| if case_insensitive { upcase(c) } else { c };
    prefix.len() <= s.len() && prefix.iter().zip(s).all(|(&a, &b)| fold(a) == fold(b))
}

/// A Unicode character in the ANSI code page (module docs): the narrowing the
/// printf engine does ([`super::format::Unit`] for `u8`), so both agree.
pub fn to_ansi_char(c: u16) -> u8 {
    <u8 as Unit>::from_char(u32::from(c))
}

/// `RtlUpperChar` as the ANSI comparisons fold: the upper case of the Latin-1
/// character when it is one.
fn upper_ansi(b: u8) -> u8 {
    u8::try_from(upcase(u16::from(b))).unwrap_or(b)
}

/// `RtlCompareString` (learn.microsoft.com, "RtlCompareString function (wdm.h)"):
/// negative, zero or positive, as [`super::string::compare`] for ANSI strings.
pub fn compare_ansi(a: &[u8], b: &[u8], case_insensitive: bool) -> i32 {
    let fold = |c: u8| if case_insensitive { upper_ansi(c) } else { c };
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (fold(x), fold(y));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    let len = |s: &[u8]| i32::try_from(s.len()).unwrap_or(i32::MAX);
    len(a).saturating_sub(len(b))
}

/// `RtlEqualString` (learn.microsoft.com, "RtlEqualString function (wdm.h)").
pub fn equal_ansi(a: &[u8], b: &[u8], case_insensitive: bool) -> bool {
    a.len() == b.len() && compare_ansi(a, b, case_insensitive) == 0
}

/// Where a conversion's result goes: a buffer the routine allocates, or the
/// caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `AllocateDestinationString` TRUE: a pool buffer of `MaximumLength` bytes.
    Allocate,
    /// The caller's buffer of `maximum_length` bytes.
    Caller {
        /// Its `MaximumLength`.
        maximum_length: u16,
    },
}

/// What a conversion writes: `length` bytes of result, then a terminator of
/// `terminator` bytes when there is room, into a buffer of `maximum_length`
/// bytes (allocated when the destination is [`Destination::Allocate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sized {
    /// The result's `Length`.
    pub length: u16,
    /// The buffer's `MaximumLength` (the caller's, or the one allocated).
    pub maximum_length: u16,
    /// Whether a terminator follows the result.
    pub terminate: bool,
}

/// Sizes a conversion whose result is `length` bytes with a terminator of
/// `terminator` bytes (`RtlUnicodeStringToAnsiString`,
/// `RtlAnsiStringToUnicodeString`, `RtlIntegerToUnicodeString`): an allocated
/// buffer holds both; a caller's buffer must hold the result and the terminator
/// (the routines' results are NUL-terminated), else `STATUS_BUFFER_OVERFLOW` with
/// nothing written; a result longer than `MAXUSHORT` with its terminator is
/// `STATUS_INVALID_PARAMETER_2`.
///
/// # Errors
/// As above.
pub fn size_terminated(length: usize, terminator: usize, to: Destination) -> Result<Sized, NtStatus> {
    let total = length.saturating_add(terminator);
    let (Ok(length), Ok(total16)) = (u16::try_from(length), u16::try_from(total)) else {
        return Err(NtStatus::INVALID_PARAMETER_2);
    };
    if total > MAX_LENGTH {
        return Err(NtStatus::INVALID_PARAMETER_2);
    }
    match to {
        Destination::Allocate => Ok(Sized { length, maximum_length: total16, terminate: true }),
        Destination::Caller { maximum_length } if maximum_length >= total16 => {
            Ok(Sized { length, maximum_length, terminate: true })
        }
        Destination::Caller { .. } => Err(NtStatus::BUFFER_OVERFLOW),
    }
}

/// `RtlUpcaseUnicodeString` (learn.microsoft.com, "RtlUpcaseUnicodeString function
/// (wdm.h)"): the source's `Length` bytes upcased, not terminated; an allocated
/// buffer is `Length` bytes; a caller's buffer shorter than `Length` is
/// `STATUS_BUFFER_OVERFLOW`.
///
/// # Errors
/// `STATUS_BUFFER_OVERFLOW`.
pub fn size_upcase(source_length: u16, to: Destination) -> Result<Sized, NtStatus> {
    match to {
        Destination::Allocate => Ok(Sized { length: source_length, maximum_length: source_length, terminate: false }),
        Destination::Caller { maximum_length } if maximum_length >= source_length => {
            Ok(Sized { length: source_length, maximum_length, terminate: false })
        }
        Destination::Caller { .. } => Err(NtStatus::BUFFER_OVERFLOW),
    }
}

/// The digits of `value` in `base` (`RtlIntegerToUnicodeString`,
/// learn.microsoft.com, "RtlIntegerToUnicodeString function (wdm.h)"): 0 means
/// 10; upper-case hex digits; `STATUS_INVALID_PARAMETER` for a base other than 0,
/// 2, 8, 10 or 16.
///
/// # Errors
/// `STATUS_INVALID_PARAMETER`.
pub fn integer_digits(value: u32, base: u32) -> Result<Vec<u8>, NtStatus> {
    let base = match base {
        0 => 10,
        2 | 8 | 10 | 16 => base,
        _ => return Err(NtStatus::INVALID_PARAMETER),
    };
    let mut digits = Vec::new();
    let mut v = value;
    loop {
        digits.push(b"0123456789ABCDEF"[(v % base) as usize]);
        v /= base;
        if v == 0 {
            break;
        }
    }
    digits.reverse();
    Ok(digits)
}

/// `RtlUnicodeStringToInteger` (learn.microsoft.com, "RtlUnicodeStringToInteger
/// function (wdm.h)"): leading white space skipped, an optional `+` or `-`, then
/// with `base` 0 a prefix `0x`, `0o` or `0b` choosing the base (10 without one);
/// digits up to the first that is not one of the base. No digits is 0 and
/// success; a `-` negates (modulo 2^32). An empty string, or a base other than 0,
/// 2, 8, 10 or 16, is `STATUS_INVALID_PARAMETER`.
///
/// # Errors
/// `STATUS_INVALID_PARAMETER`.
pub fn parse_integer(chars: &[u16], base: u32) -> Result<u32, NtStatus> {
    if chars.is_empty() || !matches!(base, 0 | 2 | 8 | 10 | 16) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let mut rest = chars;
    while let [c, tail @ ..] = rest {
        if *c > u16::from(b' ') {
            break;
        }
        rest = tail;
    }
    let negative = match rest.first().copied() {
        Some(c) if c == u16::from(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(c) if c == u16::from(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    let mut base = base;
    if base == 0 {
        base = 10;
        if let [zero, kind, tail @ ..] = rest {
            let chosen = match u8::try_from(*kind).unwrap_or(0) {
                b'x' => Some(16),
                b'o' => Some(8),
                b'b' => Some(2),
                _ => None,
            };
            if let (true, Some(b)) = (*zero == u16::from(b'0'), chosen) {
                base = b;
                rest = tail;
            }
        }
    }
    let mut value = 0u32;
    for &c in rest {
        let Some(d) = char::from_u32(u32::from(c)).and_then(|ch| ch.to_digit(base)) else { break };
        value = value.wrapping_mul(base).wrapping_add(d);
    }
    Ok(if negative { value.wrapping_neg() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn the_pages_examples_parse_as_documented() {
        assert_eq!(parse_integer(&w("123"), 10), Ok(123));
        assert_eq!(parse_integer(&w("-345"), 10), Ok(345u32.wrapping_neg()));
        assert_eq!(parse_integer(&w("xyz"), 10), Ok(0));
        assert_eq!(parse_integer(&w("+678abc"), 10), Ok(678));
        assert_eq!(parse_integer(&w("+678abc"), 16), Ok(0x678abc));
        assert_eq!(parse_integer(&w("  0x1F"), 0), Ok(0x1F));
        assert_eq!(parse_integer(&w("0o17"), 0), Ok(0o17));
        assert_eq!(parse_integer(&w("0b101"), 0), Ok(5));
        assert_eq!(parse_integer(&w("0x1F"), 10), Ok(0), "no prefixes with an explicit base");
        assert_eq!(parse_integer(&w(""), 10), Err(NtStatus::INVALID_PARAMETER));
        assert_eq!(parse_integer(&w("12"), 7), Err(NtStatus::INVALID_PARAMETER));
        assert_eq!(parse_integer(&w("99999999999"), 10), Ok(99_999_999_999u64 as u32), "wraps");
    }

    #[test]
    fn integers_print_in_the_documented_bases() {
        assert_eq!(integer_digits(1234, 0).unwrap(), b"1234");
        assert_eq!(integer_digits(0xBEEF, 16).unwrap(), b"BEEF");
        assert_eq!(integer_digits(5, 2).unwrap(), b"101");
        assert_eq!(integer_digits(0, 8).unwrap(), b"0");
        assert_eq!(integer_digits(u32::MAX, 2).unwrap().len(), 32);
        assert_eq!(integer_digits(1, 3), Err(NtStatus::INVALID_PARAMETER));
    }

    #[test]
    fn sizing_needs_room_for_the_terminator_in_the_callers_buffer() {
        let caller = |m| Destination::Caller { maximum_length: m };
        assert_eq!(size_terminated(5, 1, caller(6)), Ok(Sized { length: 5, maximum_length: 6, terminate: true }));
        assert_eq!(size_terminated(5, 1, caller(5)), Err(NtStatus::BUFFER_OVERFLOW));
        assert_eq!(
            size_terminated(8, 2, Destination::Allocate),
            Ok(Sized { length: 8, maximum_length: 10, terminate: true })
        );
        assert_eq!(size_terminated(0xFFFE, 2, Destination::Allocate), Err(NtStatus::INVALID_PARAMETER_2));
        assert_eq!(size_upcase(8, caller(6)), Err(NtStatus::BUFFER_OVERFLOW));
        assert_eq!(size_upcase(8, Destination::Allocate), Ok(Sized { length: 8, maximum_length: 8, terminate: false }));
    }

    #[test]
    fn case_prefixes_and_ansi_comparisons() {
        assert!(is_prefix(&w("\\Device\\"), &w("\\device\\Null"), true));
        assert!(!is_prefix(&w("\\Device\\"), &w("\\device\\Null"), false));
        assert!(is_prefix(&w(""), &w("x"), false));
        assert!(!is_prefix(&w("abc"), &w("ab"), true));
        assert_eq!(downcase(u16::from(b'Q')), u16::from(b'q'));
        assert_eq!(downcase(0x00C9), 0x00E9);
        assert_eq!(to_ansi_char(0x20AC), b'?');
        assert_eq!(compare_ansi(b"abc", b"ABC", true), 0);
        assert!(compare_ansi(b"abc", b"ABC", false) > 0);
        assert!(compare_ansi(b"ab", b"abc", false) < 0);
        assert!(equal_ansi(b"Hello", b"hELLO", true));
        assert!(!equal_ansi(b"Hello", b"Hell", true));
    }

    proptest::proptest! {
        /// Every value prints and parses back in every base, with the prefixes and
        /// signs the page describes.
        #[test]
        fn integers_round_trip(value: u32, base in proptest::sample::select(vec![0u32, 2, 8, 10, 16]), spaces in 0usize..3) {
            let digits = integer_digits(value, base).unwrap();
            let text: Vec<u16> = digits.iter().map(|&b| u16::from(b)).collect();
            proptest::prop_assert_eq!(parse_integer(&text, base), Ok(value));
            let prefix = match base { 2 => "0b", 8 => "0o", 16 => "0x", _ => "" };
            let signed: Vec<u16> = " ".repeat(spaces).encode_utf16().chain("-".encode_utf16()).chain(prefix.encode_utf16()).chain(text).collect();
            proptest::prop_assert_eq!(parse_integer(&signed, 0), Ok(value.wrapping_neg()));
        }

        /// Parsing never panics, whatever the characters.
        #[test]
        fn parsing_any_string_is_a_value_or_invalid_parameter(chars: Vec<u16>, base in 0u32..20) {
            let r = parse_integer(&chars, base);
            proptest::prop_assert!(r.is_ok() || r == Err(NtStatus::INVALID_PARAMETER));
        }

        /// Sizing never promises more than the destination holds.
        #[test]
        fn sizing_fits_the_buffer(length in 0usize..0x20000, terminator in 1usize..3, maximum: u16, allocate: bool) {
            let to = if allocate { Destination::Allocate } else { Destination::Caller { maximum_length: maximum } };
            if let Ok(s) = size_terminated(length, terminator, to) {
                proptest::prop_assert!(usize::from(s.length) + terminator <= usize::from(s.maximum_length));
                proptest::prop_assert_eq!(usize::from(s.length), length);
            }
        }
    }
}
