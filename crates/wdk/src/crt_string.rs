//! The C run-time string routines ntoskrnl exports (`string.h`): narrow (`char`)
//! and wide (`wchar_t`, 16-bit on Windows) forms of length, compare, copy,
//! concatenate and search, and `memchr`, with the C standard's semantics as
//! Microsoft's C run time documents them (learn.microsoft.com, "strlen, wcslen",
//! "strcmp, wcscmp", "_stricmp, _wcsicmp", "strncpy, wcsncpy", …). Case-insensitive
//! forms fold ASCII letters only, as the kernel's "C" locale does.
//!
//! Like `memcpy` ([`crate::crt`]), they touch the bytes the call asks for, one
//! character at a time: a bad pointer faults inside them and the machine's trap
//! decides from the driver's context at its import call (an access violation the
//! driver's `__except` can take below DISPATCH_LEVEL, else Windows' bugcheck).

use std::ffi::c_void;

/// A character of either width.
trait Char: Copy + Eq {
    const NUL: Self;
    fn code(self) -> u32;
    fn from_code(c: u32) -> Self;
}

impl Char for u8 {
    const NUL: u8 = 0;
    fn code(self) -> u32 {
        u32::from(self)
    }
    fn from_code(c: u32) -> u8 {
        c as u8
    }
}

impl Char for u16 {
    const NUL: u16 = 0;
    fn code(self) -> u32 {
        u32::from(self)
    }
    fn from_code(c: u32) -> u16 {
        c as u16
    }
}

/// ASCII lower case, as the "C" locale folds.
fn lower(c: u32) -> u32 {
    if (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// ASCII upper case.
fn upper(c: u32) -> u32 {
    if (u32::from(b'a')..=u32::from(b'z')).contains(&c) {
        c - 32
    } else {
        c
    }
}

/// The character at `p + i`.
///
/// # Safety
/// The driver's string (a bad one faults: module docs).
unsafe fn at<C: Char>(p: *const C, i: usize) -> C {
    // SAFETY: the caller's contract.
    unsafe { p.add(i).read_volatile() }
}

/// Characters before the terminator, at most `max`.
unsafe fn length<C: Char>(s: *const C, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: the caller's string.
    while n < max && unsafe { at(s, n) } != C::NUL {
        n += 1;
    }
    n
}

/// Compares at most `max` characters; `fold`: ASCII case folded.
unsafe fn compare<C: Char>(a: *const C, b: *const C, max: usize, fold: bool) -> i32 {
    for i in 0..max {
        // SAFETY: the caller's strings.
        let (x, y) = unsafe { (at(a, i).code(), at(b, i).code()) };
        let (x, y) = if fold { (lower(x), lower(y)) } else { (x, y) };
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        if x == 0 {
            return 0;
        }
    }
    0
}

/// `strcpy`/`strncpy`: copies up to the terminator (`count`: at most `count`
/// characters, the rest of the `count` padded with NULs, no terminator added when
/// the source is that long).
unsafe fn copy<C: Char>(dest: *mut C, src: *const C, count: Option<usize>) -> *mut C {
    let mut i = 0;
    loop {
        if count.is_some_and(|n| i >= n) {
            return dest;
        }
        // SAFETY: the caller's buffers.
        let c = unsafe { at(src, i) };
        // SAFETY: as above.
        unsafe { dest.add(i).write_volatile(c) };
        i += 1;
        if c == C::NUL {
            break;
        }
    }
    if let Some(n) = count {
        while i < n {
            // SAFETY: as above: strncpy pads to `count`.
            unsafe { dest.add(i).write_volatile(C::NUL) };
            i += 1;
        }
    }
    dest
}

/// `strcat`/`strncat`: appends `src` (at most `count` characters, then always a
/// terminator).
unsafe fn append<C: Char>(dest: *mut C, src: *const C, count: Option<usize>) -> *mut C {
    // SAFETY: the caller's buffers.
    unsafe {
        let end = dest.add(length(dest, usize::MAX));
        let n = length(src, count.unwrap_or(usize::MAX));
        for i in 0..n {
            end.add(i).write_volatile(at(src, i));
        }
        end.add(n).write_volatile(C::NUL);
    }
    dest
}

/// `strchr` (first) / `strrchr` (last) occurrence of `c`, the terminator included.
unsafe fn find<C: Char>(s: *const C, c: u32, last: bool) -> *mut C {
    let c = C::from_code(c);
    let mut found = std::ptr::null_mut();
    let mut i = 0;
    loop {
        // SAFETY: the caller's string.
        let x = unsafe { at(s, i) };
        if x == c {
            found = s.wrapping_add(i).cast_mut();
            if !last {
                return found;
            }
        }
        if x == C::NUL {
            return found;
        }
        i += 1;
    }
}

/// `strstr`: the first occurrence of `needle` (the haystack itself for an empty one).
unsafe fn find_string<C: Char>(haystack: *const C, needle: *const C) -> *mut C {
    // SAFETY: the caller's strings.
    unsafe {
        let n = length(needle, usize::MAX);
        let mut i = 0;
        loop {
            if (0..n).all(|j| at(haystack, i + j) == at(needle, j)) {
                return haystack.add(i).cast_mut();
            }
            if at(haystack, i) == C::NUL {
                return std::ptr::null_mut();
            }
            i += 1;
        }
    }
}

macro_rules! crt_strings {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:expr;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// Driver code calls it with its own strings; a bad one faults as on Windows.
        pub unsafe extern "win64" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's contract (module docs).
            unsafe { $body }
        }
    )*};
}

crt_strings! {
    /// `strlen`.
    fn strlen(s: *const u8) -> usize = length(s, usize::MAX);
    /// `strnlen`: at most `max`.
    fn strnlen(s: *const u8, max: usize) -> usize = length(s, max);
    /// `wcslen`.
    fn wcslen(s: *const u16) -> usize = length(s, usize::MAX);
    /// `wcsnlen`.
    fn wcsnlen(s: *const u16, max: usize) -> usize = length(s, max);
    /// `strcmp`: -1, 0 or 1.
    fn strcmp(a: *const u8, b: *const u8) -> i32 = compare(a, b, usize::MAX, false);
    /// `strncmp`.
    fn strncmp(a: *const u8, b: *const u8, n: usize) -> i32 = compare(a, b, n, false);
    /// `_stricmp`: ASCII letters folded.
    fn _stricmp(a: *const u8, b: *const u8) -> i32 = compare(a, b, usize::MAX, true);
    /// `_strnicmp`.
    fn _strnicmp(a: *const u8, b: *const u8, n: usize) -> i32 = compare(a, b, n, true);
    /// `wcscmp`.
    fn wcscmp(a: *const u16, b: *const u16) -> i32 = compare(a, b, usize::MAX, false);
    /// `wcsncmp`.
    fn wcsncmp(a: *const u16, b: *const u16, n: usize) -> i32 = compare(a, b, n, false);
    /// `_wcsicmp`: ASCII letters folded.
    fn _wcsicmp(a: *const u16, b: *const u16) -> i32 = compare(a, b, usize::MAX, true);
    /// `_wcsnicmp`.
    fn _wcsnicmp(a: *const u16, b: *const u16, n: usize) -> i32 = compare(a, b, n, true);
    /// `strcpy`: returns `dest`.
    fn strcpy(dest: *mut u8, src: *const u8) -> *mut u8 = copy(dest, src, None);
    /// `strncpy`: pads with NULs; no terminator when `src` has `n` characters or more.
    fn strncpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 = copy(dest, src, Some(n));
    /// `wcscpy`.
    fn wcscpy(dest: *mut u16, src: *const u16) -> *mut u16 = copy(dest, src, None);
    /// `wcsncpy`.
    fn wcsncpy(dest: *mut u16, src: *const u16, n: usize) -> *mut u16 = copy(dest, src, Some(n));
    /// `strcat`.
    fn strcat(dest: *mut u8, src: *const u8) -> *mut u8 = append(dest, src, None);
    /// `strncat`: at most `n` characters, then a terminator.
    fn strncat(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 = append(dest, src, Some(n));
    /// `wcscat`.
    fn wcscat(dest: *mut u16, src: *const u16) -> *mut u16 = append(dest, src, None);
    /// `wcsncat`.
    fn wcsncat(dest: *mut u16, src: *const u16, n: usize) -> *mut u16 = append(dest, src, Some(n));
    /// `strchr`: the first `c` (the terminator for 0), else NULL.
    fn strchr(s: *const u8, c: i32) -> *mut u8 = find(s, c as u8 as u32, false);
    /// `strrchr`: the last.
    fn strrchr(s: *const u8, c: i32) -> *mut u8 = find(s, c as u8 as u32, true);
    /// `wcschr`.
    fn wcschr(s: *const u16, c: u16) -> *mut u16 = find(s, u32::from(c), false);
    /// `wcsrchr`.
    fn wcsrchr(s: *const u16, c: u16) -> *mut u16 = find(s, u32::from(c), true);
    /// `strstr`.
    fn strstr(haystack: *const u8, needle: *const u8) -> *mut u8 = find_string(haystack, needle);
    /// `wcsstr`.
    fn wcsstr(haystack: *const u16, needle: *const u16) -> *mut u16 = find_string(haystack, needle);
}

/// `memchr(s, c, count)`: the first byte equal to `c`'s low byte among `count`, else NULL.
///
/// # Safety
/// As the string routines.
pub unsafe extern "win64" fn memchr(s: *const c_void, c: i32, count: usize) -> *mut c_void {
    let s = s.cast::<u8>();
    for i in 0..count {
        // SAFETY: the caller's range (module docs).
        if unsafe { at(s, i) } == c as u8 {
            return s.wrapping_add(i).cast_mut().cast();
        }
    }
    std::ptr::null_mut()
}

/// `toupper`: ASCII letters, as the "C" locale.
pub extern "win64" fn toupper(c: i32) -> i32 {
    u32::try_from(c).map_or(c, |u| upper(u) as i32)
}

/// `tolower`.
pub extern "win64" fn tolower(c: i32) -> i32 {
    u32::try_from(c).map_or(c, |u| lower(u) as i32)
}

/// `towupper`.
pub extern "win64" fn towupper(c: u16) -> u16 {
    upper(u32::from(c)) as u16
}

/// `towlower`.
pub extern "win64" fn towlower(c: u16) -> u16 {
    lower(u32::from(c)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().chain([0]).collect()
    }

    #[test]
    fn narrow_and_wide_forms_follow_the_c_standard() {
        // SAFETY: NUL-terminated test strings and buffers large enough.
        unsafe {
            assert_eq!(strlen(c"hello".as_ptr().cast()), 5);
            assert_eq!(strnlen(c"hello".as_ptr().cast(), 3), 3);
            assert_eq!(wcslen(w("héllo").as_ptr()), 5);
            assert_eq!(strcmp(c"abc".as_ptr().cast(), c"abd".as_ptr().cast()), -1);
            assert_eq!(strncmp(c"abc".as_ptr().cast(), c"abd".as_ptr().cast(), 2), 0);
            assert_eq!(_stricmp(c"HeLLo".as_ptr().cast(), c"hello".as_ptr().cast()), 0);
            assert_eq!(_wcsicmp(w("ABC").as_ptr(), w("abd").as_ptr()), -1);
            let mut buf = [0xAAu8; 8];
            strncpy(buf.as_mut_ptr(), c"ab".as_ptr().cast(), 5);
            assert_eq!(buf, [b'a', b'b', 0, 0, 0, 0xAA, 0xAA, 0xAA], "padded to n, no further");
            strncpy(buf.as_mut_ptr(), c"abcdefgh".as_ptr().cast(), 3);
            assert_eq!(&buf[..4], b"abc\0", "no terminator added at n");
            let mut cat = [0u8; 16];
            strcpy(cat.as_mut_ptr(), c"net".as_ptr().cast());
            strncat(cat.as_mut_ptr(), c"work!".as_ptr().cast(), 4);
            assert_eq!(&cat[..8], b"network\0");
            let s = c"a/b/c";
            assert_eq!(strchr(s.as_ptr().cast(), i32::from(b'/')), s.as_ptr().cast::<u8>().add(1).cast_mut());
            assert_eq!(strrchr(s.as_ptr().cast(), i32::from(b'/')), s.as_ptr().cast::<u8>().add(3).cast_mut());
            assert_eq!(strchr(s.as_ptr().cast(), 0), s.as_ptr().cast::<u8>().add(5).cast_mut(), "the terminator");
            assert!(strchr(s.as_ptr().cast(), i32::from(b'z')).is_null());
            let hay = w("find the needle");
            assert_eq!(wcsstr(hay.as_ptr(), w("needle").as_ptr()), hay.as_ptr().add(9).cast_mut());
            assert!(strstr(c"abc".as_ptr().cast(), c"abd".as_ptr().cast()).is_null());
            assert_eq!(strstr(c"abc".as_ptr().cast(), c"".as_ptr().cast()), c"abc".as_ptr().cast::<u8>().cast_mut());
            let bytes = [1u8, 2, 3];
            assert_eq!(memchr(bytes.as_ptr().cast(), 3 + 256, 3), bytes.as_ptr().add(2).cast_mut().cast());
        }
        assert_eq!(
            (toupper(i32::from(b'q')), tolower(i32::from(b'Q')), toupper(-1)),
            (i32::from(b'Q'), i32::from(b'q'), -1)
        );
        assert_eq!(towupper(u16::from(b'z')), u16::from(b'Z'));
    }
}
