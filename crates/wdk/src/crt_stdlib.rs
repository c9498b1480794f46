//! The C run-time's `stdlib.h` routines ntoskrnl exports: `abs`, `labs`, `qsort`,
//! `bsearch` (Microsoft's C run-time reference, "abs, labs, llabs, _abs64", "qsort",
//! "bsearch").
//!
//! `qsort` sorts in place with the caller's comparator, which receives pointers to
//! two elements of the array. Windows' qsort is a quicksort; which of two elements
//! that compare equal comes first is unspecified there, and here too. ntmem's is a
//! heapsort: at most about `2·n·log2(n)` comparisons whatever the comparator answers,
//! so an inconsistent one (random results, `a < b` and `b < a`) leaves the elements
//! in some order and cannot make it loop; the elements are only ever swapped, so
//! none is lost or duplicated. `bsearch` halves the range each step: at most
//! `log2(n) + 1` comparisons.
//!
//! The array is touched with plain loads and stores, as the kernel's routines touch
//! it (see [`crate::crt`]): a bad pointer faults and the machine's trap decides. A
//! `num · width` that overflows, or a width of 0, sorts nothing and finds nothing.

use std::ffi::c_void;

/// The comparator `qsort` and `bsearch` call (`__cdecl`, the x64 convention).
pub type Compare = unsafe extern "win64" fn(*const c_void, *const c_void) -> i32;

/// `abs(n)`: |n|; `abs(INT_MIN)` is `INT_MIN`, as Microsoft's documents.
pub extern "win64" fn abs(n: i32) -> i32 {
    n.wrapping_abs()
}

/// `labs(n)`: as `abs` (a `long` is 32 bits on Windows).
pub extern "win64" fn labs(n: i32) -> i32 {
    n.wrapping_abs()
}

/// Element `i` of the array.
fn at(base: *mut u8, width: usize, i: usize) -> *mut u8 {
    base.wrapping_add(i * width)
}

/// Swaps elements `i` and `j`.
///
/// # Safety
/// Both are elements of the caller's array.
unsafe fn swap(base: *mut u8, width: usize, i: usize, j: usize) {
    // SAFETY: two distinct elements of the array (`# Safety`), `width` bytes each.
    unsafe { std::ptr::swap_nonoverlapping(at(base, width, i), at(base, width, j), width) }
}

/// Moves element `root` down the heap of the first `end` elements.
///
/// # Safety
/// As [`qsort`].
unsafe fn sift_down(base: *mut u8, width: usize, mut root: usize, end: usize, compare: Compare) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        // SAFETY: `child + 1 < end` and `child`, `root` are elements of the array.
        unsafe {
            if child + 1 < end && compare(at(base, width, child).cast(), at(base, width, child + 1).cast()) < 0 {
                child += 1;
            }
            if compare(at(base, width, root).cast(), at(base, width, child).cast()) >= 0 {
                return;
            }
            swap(base, width, root, child);
        }
        root = child;
    }
}

/// `qsort(base, num, width, compare)`: see the module docs.
///
/// # Safety
/// Driver code passes its array of `num` elements of `width` bytes and its
/// comparator; a bad array faults as on Windows.
pub unsafe extern "win64" fn qsort(base: *mut c_void, num: usize, width: usize, compare: Compare) {
    if num < 2 || width == 0 || num.checked_mul(width).is_none() {
        return;
    }
    let base = base.cast::<u8>();
    // SAFETY: the caller's array (`# Safety`); every index is below `num`.
    unsafe {
        for root in (0..num / 2).rev() {
            sift_down(base, width, root, num, compare);
        }
        for end in (1..num).rev() {
            swap(base, width, 0, end);
            sift_down(base, width, 0, end, compare);
        }
    }
}

/// `bsearch(key, base, num, width, compare)`: an element comparing equal to `key` in
/// the sorted array, or NULL.
///
/// # Safety
/// As [`qsort`]; `key` is what the comparator expects.
pub unsafe extern "win64" fn bsearch(
    key: *const c_void,
    base: *const c_void,
    num: usize,
    width: usize,
    compare: Compare,
) -> *mut c_void {
    if width == 0 || num.checked_mul(width).is_none() {
        return std::ptr::null_mut();
    }
    let (mut low, mut high) = (0, num);
    while low < high {
        let mid = low + (high - low) / 2;
        let element = at(base.cast_mut().cast(), width, mid);
        // SAFETY: `mid < num`: an element of the caller's array (`# Safety`).
        match unsafe { compare(key, element.cast()) } {
            0 => return element.cast(),
            c if c < 0 => high = mid,
            _ => low = mid + 1,
        }
    }
    std::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    unsafe extern "win64" fn by_value(a: *const c_void, b: *const c_void) -> i32 {
        // SAFETY: the test's i32 array.
        let (a, b) = unsafe { (*a.cast::<i32>(), *b.cast::<i32>()) };
        a.cmp(&b) as i32
    }

    thread_local!(static CALLS: Cell<u64> = const { Cell::new(0) });

    unsafe extern "win64" fn liar(_: *const c_void, _: *const c_void) -> i32 {
        CALLS.with(|c| {
            c.set(c.get() + 1);
            // Inconsistent: alternates, and every pair compares both ways.
            if c.get() % 3 == 0 {
                1
            } else {
                -1
            }
        })
    }

    #[test]
    fn sorts_finds_and_survives_a_lying_comparator() {
        let mut v: Vec<i32> = (0..1000).map(|i| (i * 7919) % 1000 - 500).collect();
        // SAFETY: a live array of 1000 i32s.
        unsafe { qsort(v.as_mut_ptr().cast(), v.len(), 4, by_value) };
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        let key = 17;
        // SAFETY: as above.
        let hit = unsafe { bsearch(std::ptr::addr_of!(key).cast(), v.as_ptr().cast(), v.len(), 4, by_value) };
        // SAFETY: bsearch found an element of `v`.
        assert_eq!(unsafe { *hit.cast::<i32>() }, 17);
        let key = 5000;
        // SAFETY: as above.
        assert!(unsafe { bsearch(std::ptr::addr_of!(key).cast(), v.as_ptr().cast(), v.len(), 4, by_value) }.is_null());
        let mut w: Vec<i32> = (0..1000).collect();
        // SAFETY: as above.
        unsafe { qsort(w.as_mut_ptr().cast(), w.len(), 4, liar) };
        assert!(CALLS.with(Cell::get) < 2 * 1000 * 11, "bounded comparisons");
        w.sort_unstable();
        assert_eq!(w, (0..1000).collect::<Vec<_>>(), "a permutation: nothing lost or duplicated");
        assert_eq!((abs(i32::MIN), abs(-5), labs(7)), (i32::MIN, 5, 7));
        // SAFETY: nothing is touched: the product overflows.
        unsafe { qsort(std::ptr::null_mut(), usize::MAX, 2, by_value) };
    }
}
