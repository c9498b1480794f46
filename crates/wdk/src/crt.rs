//! The C run-time routines ntoskrnl exports to drivers that clang's code calls
//! without being asked: `memcpy`, `memmove`, `memset` and `memcmp` (a structure
//! copy, `RtlCopyMemory`, `RtlZeroMemory`, `RtlFillMemory` and `RtlEqualMemory`
//! are these), and `__chkstk`, the stack probe of every function with more than a
//! page of locals (Microsoft, "__chkstk Routine"; research note
//! `dma-verifier-views.md` §6.5).
//!
//! They touch exactly the bytes asked for, as the kernel's do: a bad pointer faults
//! inside them and the machine's trap decides, from the driver's context recorded
//! at its import call (an access violation on a user address below DISPATCH_LEVEL
//! reaches the driver's `__except`; anything else is the bugcheck Windows gives).

use std::ffi::c_void;

/// `memcpy(dest, src, count)`: copies `count` bytes; returns `dest`. Overlapping
/// ranges are copied as `memmove` copies them (undefined in C; Windows' copies
/// forward or backward by case too).
///
/// # Safety
/// Driver code calls it with ranges it owns; a bad range faults as in Windows.
pub unsafe extern "win64" fn memcpy(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void {
    // SAFETY: as for memmove.
    unsafe { memmove(dest, src, count) }
}

/// `memmove(dest, src, count)`: copies `count` bytes, overlapping or not; returns `dest`.
///
/// # Safety
/// As [`memcpy`].
pub unsafe extern "win64" fn memmove(dest: *mut c_void, src: *const c_void, count: usize) -> *mut c_void {
    // SAFETY: the driver passed the ranges; a fault is the trap's (module docs).
    unsafe { std::ptr::copy(src.cast::<u8>(), dest.cast::<u8>(), count) };
    dest
}

/// `memset(dest, c, count)`: fills `count` bytes with the low byte of `c`; returns `dest`.
///
/// # Safety
/// As [`memcpy`].
pub unsafe extern "win64" fn memset(dest: *mut c_void, c: i32, count: usize) -> *mut c_void {
    // SAFETY: as for memmove.
    unsafe { std::ptr::write_bytes(dest.cast::<u8>(), c as u8, count) };
    dest
}

/// `memcmp(a, b, count)`: the sign of the first differing byte pair (as unsigned
/// bytes), 0 when the ranges are equal.
///
/// # Safety
/// As [`memcpy`].
pub unsafe extern "win64" fn memcmp(a: *const c_void, b: *const c_void, count: usize) -> i32 {
    for i in 0..count {
        // SAFETY: as for memmove; read one byte at a time so a fault names the first
        // byte that is not there.
        let (x, y) = unsafe { (a.cast::<u8>().add(i).read_volatile(), b.cast::<u8>().add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `__chkstk`: probes the stack pages a frame of `rax` bytes will use, from the
/// caller's stack pointer down, one read per page, so that a frame larger than the
/// stack reaches the guard page in order (a stack overflow, 0x7F with parameter 8)
/// instead of skipping it. Changes no register but r10, r11 and the flags, as
/// Microsoft documents.
///
/// # Safety
/// Called by compiler-generated prologs with the frame size in rax.
#[unsafe(naked)]
pub unsafe extern "win64" fn __chkstk() {
    std::arch::naked_asm!(
        "push r10",
        "push r11",
        // The caller's RSP before its call: above the return address and the two pushes.
        "lea r10, [rsp + 24]",
        "mov r11, r10",
        "sub r10, rax",
        "jae 2f",
        "xor r10, r10",
        "2:",
        "and r11, -4096",
        "3:",
        "cmp r11, r10",
        "jbe 4f",
        "sub r11, 4096",
        "test byte ptr [r11], 0",
        "jmp 3b",
        "4:",
        "pop r11",
        "pop r10",
        "ret",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_routines_copy_fill_and_compare_exactly_the_bytes_asked() {
        let mut a = *b"abcdefgh";
        let b = *b"ABCDEFGH";
        // SAFETY: local arrays, in bounds.
        unsafe {
            assert_eq!(memcpy(a.as_mut_ptr().cast(), b.as_ptr().cast(), 3), a.as_mut_ptr().cast());
            assert_eq!(&a, b"ABCdefgh");
            memmove(a.as_mut_ptr().add(1).cast(), a.as_ptr().cast(), 4);
            assert_eq!(&a, b"AABCdfgh");
            memset(a.as_mut_ptr().add(6).cast(), 0x17A, 2);
            assert_eq!(&a, b"AABCdfzz");
            assert_eq!(memcmp(b"ab\xff".as_ptr().cast(), b"ab\x01".as_ptr().cast(), 3), 0xFE);
            assert_eq!(memcmp(b"ab".as_ptr().cast(), b"ac".as_ptr().cast(), 2), -1);
            assert_eq!(memcmp(b"x".as_ptr().cast(), b"y".as_ptr().cast(), 0), 0);
        }
    }

    #[test]
    fn chkstk_probes_a_large_frame_and_preserves_registers() {
        let (out, r10): (u64, u64);
        // SAFETY: probes 64 KB below this thread's stack pointer, well inside the main
        // test thread's stack; rax is the size, as the convention says.
        unsafe {
            std::arch::asm!(
                "mov r10, 77",
                "call {chk}",
                chk = sym __chkstk,
                inout("rax") 0x10000u64 => out,
                out("r10") r10,
                out("r11") _,
            );
        }
        assert_eq!((out, r10), (0x10000, 77));
    }
}
