//! The C run time's bounded printf routines ntoskrnl exports: `_vsnprintf` and
//! `_vsnwprintf` (learn.microsoft.com, "_vsnprintf, _vsnwprintf, …"), which
//! `ntstrsafe.h`'s printf routines call, and their variadic forms `_snprintf` and
//! `_snwprintf` (whose entry points are C shims, `c/printf.c`, as `DbgPrint`'s). The format language is Windows'
//! ([`ntmem_kernel::rtl::format`], the one `DbgPrint` uses: `%wZ`, `%ws`, `%S`,
//! `%I64x`, …); wide means 16-bit `wchar_t`.
//!
//! Microsoft's return rule: the count of characters written when the result fits
//! (NUL-terminated when there is room for the NUL, not when it is exactly `count`
//! long), -1 when it was cut at `count` characters (no NUL). `sprintf` and
//! `swprintf` (the legacy form ntoskrnl exports: no count) are the same with an
//! unbounded count.
//!
//! The format and the part of the buffer written are checked mapped
//! (`context::checked_all`) before they are touched, and
//! a string argument that points at memory that cannot be read is the stop the
//! driver's own read gives, never a host crash.

use std::ffi::c_void;

use crate::context::{checked, checked_all, kernel, mapped_prefix, va_of};
use crate::dbg::{DriverMemory, VaList};
use ntmem_kernel::rtl::format::{self, Fault, Target, Unit};

/// The most bytes one call stores: 16 MB. Where ntmem differs: a longer result is
/// cut there (Windows would go on storing).
const LONGEST: u64 = 1 << 24;

/// Formats into `buffer` of `count` units under Microsoft's return rule (module
/// docs).
///
/// # Safety
/// `format` is the driver's NUL-terminated format; `args` its `va_list`;
/// `buffer` holds `count` units.
unsafe fn vsnprintf<U: Unit>(buffer: *mut U, count: usize, fmt: *const U, args: *const u64) -> i32 {
    kernel(|cpu| checked(cpu, fmt.cast_mut().cast(), 1));
    let mut units = Vec::new();
    loop {
        // SAFETY: the driver's NUL-terminated format, its first unit mapped (checked
        // above); a later page that is not faults as the driver's own read would.
        let u = unsafe { fmt.add(units.len()).read_unaligned() };
        if u.value() == 0 {
            break;
        }
        units.push(u);
    }
    // Formatting stops one unit past what the buffer can take: its `count`, or the
    // mapped pages before the first unmapped one (the store there is the driver's
    // fault, reported below), so a huge `count` never formats a huge text; and at
    // most [`LONGEST`] bytes are looked at (a longer result is cut there).
    let unit = std::mem::size_of::<U>() as u64;
    let bytes = (count as u64).saturating_mul(unit).min(LONGEST);
    let room = kernel(|cpu| Ok(mapped_prefix(cpu, buffer.cast(), bytes) / unit));
    let limit = usize::try_from(room).unwrap_or(usize::MAX).min(count).saturating_add(1);
    let formatted = match format::format::<U>(&units, Target::X64, &mut VaList(args), &mut DriverMemory, limit) {
        Ok(f) => f,
        Err(Fault { addr }) => {
            kernel(|cpu| Err(ntmem_kernel::trap::wild_touch(cpu, va_of(cpu, addr as usize as *const c_void), false)))
        }
    };
    let text = &formatted.text;
    let written = text.len().min(count);
    // What is stored: the text, and its NUL when there is room.
    let stored = (text.len() + 1).min(count);
    if stored > 0 {
        let bytes = (stored as u64).saturating_mul(std::mem::size_of::<U>() as u64);
        kernel(|cpu| checked_all(cpu, buffer.cast(), bytes));
    }
    for (i, &u) in text.iter().take(written).enumerate() {
        // SAFETY: `i < stored`, inside the checked part of the buffer.
        unsafe { buffer.add(i).write_unaligned(u) };
    }
    if text.len() > count {
        return -1;
    }
    if text.len() < count {
        // SAFETY: as above: the NUL at `len < stored`.
        unsafe { buffer.add(text.len()).write_unaligned(U::from_char(0)) };
    }
    i32::try_from(text.len()).unwrap_or(-1)
}

/// `int _vsnprintf(char *buffer, size_t count, const char *format, va_list argptr)`.
///
/// # Safety
/// Driver code passes its buffer, format and `va_list` (checked as the module says).
pub unsafe extern "win64" fn _vsnprintf(buffer: *mut u8, count: usize, format: *const u8, args: *const c_void) -> i32 {
    // SAFETY: forwarded.
    unsafe { vsnprintf(buffer, count, format, args.cast()) }
}

/// `int _vsnwprintf(wchar_t *buffer, size_t count, const wchar_t *format, va_list
/// argptr)`: as [`_vsnprintf`], `count` in wide characters.
///
/// # Safety
/// As [`_vsnprintf`].
pub unsafe extern "win64" fn _vsnwprintf(
    buffer: *mut u16,
    count: usize,
    format: *const u16,
    args: *const c_void,
) -> i32 {
    // SAFETY: forwarded.
    unsafe { vsnprintf(buffer, count, format, args.cast()) }
}

extern "win64" {
    /// `int sprintf(char *buffer, const char *format, ...)`: as [`_vsnprintf`] with
    /// no bound but the buffer's mapped pages (`c/printf.c`).
    #[link_name = "ntmem_sprintf"]
    pub fn sprintf(buffer: *mut u8, format: *const u8, ...) -> i32;
    /// `int swprintf(wchar_t *buffer, const wchar_t *format, ...)`: ntoskrnl's
    /// legacy form (no count), as [`sprintf`] (`c/printf.c`).
    #[link_name = "ntmem_swprintf"]
    pub fn swprintf(buffer: *mut u16, format: *const u16, ...) -> i32;
    /// `int _snprintf(char *buffer, size_t count, const char *format, ...)`: as
    /// [`_vsnprintf`] (`c/printf.c`).
    #[link_name = "ntmem__snprintf"]
    pub fn _snprintf(buffer: *mut u8, count: usize, format: *const u8, ...) -> i32;
    /// `int _snwprintf(wchar_t *buffer, size_t count, const wchar_t *format, ...)`:
    /// as [`_vsnwprintf`] (`c/printf.c`).
    #[link_name = "ntmem__snwprintf"]
    pub fn _snwprintf(buffer: *mut u16, count: usize, format: *const u16, ...) -> i32;
}

/// `_snprintf`'s body, called by the shim with its argument list.
///
/// # Safety
/// As [`_vsnprintf`].
#[no_mangle]
unsafe extern "C" fn ntmem_wdk_vsnprintf(buffer: *mut u8, count: usize, format: *const u8, args: *const u64) -> i32 {
    // SAFETY: forwarded.
    unsafe { vsnprintf(buffer, count, format, args) }
}

/// `_snwprintf`'s body, called by the shim with its argument list.
///
/// # Safety
/// As [`_vsnprintf`].
#[no_mangle]
unsafe extern "C" fn ntmem_wdk_vsnwprintf(buffer: *mut u16, count: usize, format: *const u16, args: *const u64) -> i32 {
    // SAFETY: forwarded.
    unsafe { vsnprintf(buffer, count, format, args) }
}
