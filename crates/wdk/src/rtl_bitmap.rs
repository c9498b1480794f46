//! The `RTL_BITMAP` routines at the C boundary (wdm.h; learn.microsoft.com,
//! "RtlInitializeBitMap function (wdm.h)" and the page of each routine below).
//! What each computes is [`ntmem_kernel::rtl::bitmap`]'s; this module reads the
//! driver's header and the words of its buffer a routine touches, and writes back
//! the words a routine changes.
//!
//! The header and every page of the words touched are checked mapped
//! (`context::checked_all`) before anything is read: a NULL or wild header or
//! buffer is the stop a driver's own touch of it gives (an access violation,
//! `PAGE_FAULT_IN_NONPAGED_AREA`, or `IRQL_NOT_LESS_OR_EQUAL` at DISPATCH_LEVEL),
//! never a host crash. Words are read and written unaligned.
//!
//! IRQL (every page): any IRQL when the header and the buffer are resident, else
//! `<= APC_LEVEL`; a paged buffer touched at DISPATCH_LEVEL faults as the driver's
//! own access would.

use std::ffi::c_void;

use ntmem_kernel::rtl::bitmap::{words_for, Bit, BitMap};
use ntmem_kernel::{BugCheck, Cpu};

use crate::context::{checked, checked_all, kernel};

/// `RTL_BITMAP` (wdm.h): the bitmap's size in bits and its buffer of `ULONG`s.
#[repr(C)]
#[derive(Debug)]
pub struct RtlBitmap {
    /// `SizeOfBitMap`.
    pub size_of_bitmap: u32,
    /// `Buffer`.
    pub buffer: *mut u32,
}

const _: () = assert!(std::mem::size_of::<RtlBitmap>() == 0x10);
const _: () = assert!(std::mem::offset_of!(RtlBitmap, buffer) == 0x08);

/// `SizeOfBitMap`, and the words a routine touches (`count` from word `first` of
/// the buffer, at `at`), checked mapped.
struct Words {
    size: u32,
    first: u64,
    at: *mut u32,
    count: usize,
}

/// Checks the header at `h`, reads it, and checks every page of the words
/// `range(size)` (first word, count) of its buffer.
fn words(cpu: &Cpu<'_>, h: *mut RtlBitmap, range: impl FnOnce(u32) -> (u64, u64)) -> Result<Words, BugCheck> {
    let header = checked(cpu, h.cast(), 0x10)?;
    // SAFETY: 16 mapped bytes of the driver's header (checked above).
    let (size, buffer) =
        unsafe { (header.cast::<u32>().read_unaligned(), header.add(8).cast::<*mut u32>().read_unaligned()) };
    let (first, count) = range(size);
    let at = buffer.wrapping_add(usize::try_from(first).unwrap_or(usize::MAX));
    if count > 0 {
        checked_all(cpu, at.cast::<c_void>(), count.saturating_mul(4))?;
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(Words { size, first, at, count })
}

impl Words {
    /// The words, copied from the driver's buffer.
    fn read(&self) -> Vec<u32> {
        // SAFETY: every page of the `count` words is mapped (`words`).
        (0..self.count).map(|i| unsafe { self.at.add(i).read_unaligned() }).collect()
    }

    /// `words` written back where they differ from `before`.
    fn write(&self, before: &[u32], words: &[u32]) {
        for (i, (&a, &b)) in before.iter().zip(words).enumerate() {
            if a != b {
                // SAFETY: as in `read`: a word of the driver's checked buffer.
                unsafe { self.at.add(i).write_unaligned(b) };
            }
        }
    }
}

/// Runs `op` over the bitmap at `h`, the words `need(size)` copied in and, when
/// `op` changed them, back out. Expands inside each routine, so a panic-fence
/// report names the routine.
macro_rules! with_bitmap {
    ($h:expr, $need:expr, |$map:ident| $op:expr) => {{
        let w = kernel(|cpu| words(cpu, $h, $need));
        let before = w.read();
        let mut after = before.clone();
        let r = kernel(|_| {
            #[allow(unused_mut)]
            let mut $map = BitMap::window(&mut after, w.first, w.size);
            Ok($op)
        });
        w.write(&before, &after);
        r
    }};
}

/// The words of a whole bitmap.
fn all_words(size: u32) -> (u64, u64) {
    (0, words_for(u64::from(size)))
}

/// The words a range of `count` bits from `start` touches, inside the bitmap or
/// not (Windows' free build touches them either way).
fn range_words(start: u32, count: u32) -> impl FnOnce(u32) -> (u64, u64) {
    move |_| {
        let first = u64::from(start) / 32;
        let end = if count == 0 { first } else { words_for(u64::from(start) + u64::from(count)) };
        (first, end - first)
    }
}

/// The words a test of `length` bits from `start` reads: none when the range is
/// not inside the bitmap (the answer is FALSE without a read).
fn test_words(start: u32, length: u32) -> impl FnOnce(u32) -> (u64, u64) {
    move |size| {
        if u64::from(start) + u64::from(length) > u64::from(size) {
            (0, 0)
        } else {
            range_words(start, length)(size)
        }
    }
}

/// `RtlInitializeBitMap` (learn.microsoft.com, "RtlInitializeBitMap function
/// (wdm.h)"): stores `buffer` and `size` in the header; the buffer is not touched
/// (the caller clears or sets it).
///
/// # Safety
/// `h` is the driver's `PRTL_BITMAP` (checked: a bad one stops as Windows would).
pub unsafe extern "win64" fn RtlInitializeBitMap(h: *mut RtlBitmap, buffer: *mut u32, size: u32) {
    let header = kernel(|cpu| checked(cpu, h.cast(), 0x10));
    // SAFETY: 16 mapped bytes of the driver's header (checked above).
    unsafe {
        header.cast::<u32>().write_unaligned(size);
        header.add(8).cast::<*mut u32>().write_unaligned(buffer);
    }
}

/// `RtlClearAllBits` (learn.microsoft.com, "RtlClearAllBits function (wdm.h)"):
/// every `ULONG` of the bitmap zeroed.
///
/// # Safety
/// As [`RtlInitializeBitMap`]; the header's buffer holds `SizeOfBitMap` bits.
pub unsafe extern "win64" fn RtlClearAllBits(h: *mut RtlBitmap) {
    with_bitmap!(h, all_words, |map| map.write_all(Bit::Clear))
}

/// `RtlSetAllBits` (learn.microsoft.com, "RtlSetAllBits function (wdm.h)"): every
/// `ULONG` of the bitmap all-ones.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlSetAllBits(h: *mut RtlBitmap) {
    with_bitmap!(h, all_words, |map| map.write_all(Bit::Set))
}

/// `RtlSetBits` (learn.microsoft.com, "RtlSetBits function (wdm.h)"): sets
/// `count` bits from `start`, touching only the words that hold them. A range past
/// `SizeOfBitMap` is written as Windows' free build writes it (the page requires
/// it inside the bitmap).
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlSetBits(h: *mut RtlBitmap, start: u32, count: u32) {
    with_bitmap!(h, range_words(start, count), |map| map.write_range(u64::from(start), u64::from(count), Bit::Set))
}

/// `RtlClearBits` (learn.microsoft.com, "RtlClearBits function (wdm.h)"): clears
/// `count` bits from `start`, as [`RtlSetBits`].
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlClearBits(h: *mut RtlBitmap, start: u32, count: u32) {
    with_bitmap!(h, range_words(start, count), |map| map.write_range(u64::from(start), u64::from(count), Bit::Clear))
}

/// `RtlFindClearBits` (learn.microsoft.com, "RtlFindClearBits function (wdm.h)"):
/// the start of `count` clear bits, searched from `hint` to the end and then from
/// 0 back to the hint; 0xFFFFFFFF when there is none.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlFindClearBits(h: *mut RtlBitmap, count: u32, hint: u32) -> u32 {
    with_bitmap!(h, all_words, |map| map.find(count, hint, Bit::Clear))
}

/// `RtlFindSetBits` (learn.microsoft.com, "RtlFindSetBits function (wdm.h)"): as
/// [`RtlFindClearBits`] for set bits.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlFindSetBits(h: *mut RtlBitmap, count: u32, hint: u32) -> u32 {
    with_bitmap!(h, all_words, |map| map.find(count, hint, Bit::Set))
}

/// `RtlFindClearBitsAndSet` (learn.microsoft.com, "RtlFindClearBitsAndSet
/// function (wdm.h)"): [`RtlFindClearBits`], then the run found set.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlFindClearBitsAndSet(h: *mut RtlBitmap, count: u32, hint: u32) -> u32 {
    with_bitmap!(h, all_words, |map| map.find_and_flip(count, hint, Bit::Clear))
}

/// `RtlFindSetBitsAndClear` (learn.microsoft.com, "RtlFindSetBitsAndClear
/// function (wdm.h)"): [`RtlFindSetBits`], then the run found cleared.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlFindSetBitsAndClear(h: *mut RtlBitmap, count: u32, hint: u32) -> u32 {
    with_bitmap!(h, all_words, |map| map.find_and_flip(count, hint, Bit::Set))
}

/// `RtlAreBitsClear` (learn.microsoft.com, "RtlAreBitsClear function (wdm.h)"):
/// TRUE when the `length` bits from `start` are clear; FALSE for a range not
/// inside the bitmap or an empty one.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlAreBitsClear(h: *mut RtlBitmap, start: u32, length: u32) -> u8 {
    u8::from(with_bitmap!(h, test_words(start, length), |map| map.all(start, length, Bit::Clear)))
}

/// `RtlAreBitsSet` (learn.microsoft.com, "RtlAreBitsSet function (wdm.h)"): as
/// [`RtlAreBitsClear`] for set bits.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlAreBitsSet(h: *mut RtlBitmap, start: u32, length: u32) -> u8 {
    u8::from(with_bitmap!(h, test_words(start, length), |map| map.all(start, length, Bit::Set)))
}

/// `RtlNumberOfSetBits` (learn.microsoft.com, "RtlNumberOfSetBits function
/// (wdm.h)"): the set bits among the bitmap's `SizeOfBitMap`.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlNumberOfSetBits(h: *mut RtlBitmap) -> u32 {
    with_bitmap!(h, all_words, |map| map.count(Bit::Set))
}

/// `RtlNumberOfClearBits` (learn.microsoft.com, "RtlNumberOfClearBits function
/// (wdm.h)"): the clear bits among the bitmap's `SizeOfBitMap`.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlNumberOfClearBits(h: *mut RtlBitmap) -> u32 {
    with_bitmap!(h, all_words, |map| map.count(Bit::Clear))
}

/// `RtlTestBit` (learn.microsoft.com, "RtlTestBit function (wdm.h)"): TRUE when
/// bit `bit` is set. The page requires `bit < SizeOfBitMap`; a bit past it is read
/// from the word that holds it, as Windows' free build reads it.
///
/// # Safety
/// As [`RtlClearAllBits`].
pub unsafe extern "win64" fn RtlTestBit(h: *mut RtlBitmap, bit: u32) -> u8 {
    u8::from(with_bitmap!(h, range_words(bit, 1), |map| map.test(u64::from(bit))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_wdks() {
        assert_eq!(std::mem::align_of::<RtlBitmap>(), 8);
        assert_eq!(range_words(40, 30)(10), (1, 2));
        assert_eq!(range_words(0, 1)(100), (0, 1));
        assert_eq!(range_words(0xFFFF_FFF0, 0)(100), (0x7FF_FFFF, 0));
        assert_eq!(test_words(90, 20)(100), (0, 0), "not inside the bitmap");
        assert_eq!(all_words(0), (0, 0));
    }
}
