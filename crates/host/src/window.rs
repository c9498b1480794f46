//! Windows: `N` bytes of a reservation at one place, checked once, then read and
//! written field by field with no further checks.
//!
//! The kernel's hot paths (a pool header, a lookaside list head) touch a few fields
//! of one small structure per call. Checking the range and the alignment on every
//! access would cost more than the access; a window checks them
//! when it is made — inside the reservation, 8-byte aligned — and each accessor names
//! its field's offset as a constant, so whether the field lies inside the window and
//! is naturally aligned is decided by the compiler (`const` assertions), not at run
//! time. Every access is one volatile load or store, for the reason
//! [`Reservation::read`] gives: the range holds only RAM mappings or reserved pages,
//! never Rust objects, and a touch of an inaccessible page faults for real.

use std::marker::PhantomData;

use crate::Reservation;

/// `N` bytes of a [`Reservation`] at an 8-byte aligned address inside it.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a, const N: usize> {
    addr: usize,
    reservation: PhantomData<&'a Reservation>,
}

impl Reservation {
    /// The window of `N` bytes at `base + offset`; `None` unless the window is inside
    /// the reservation and `offset` is a multiple of 8.
    #[inline]
    pub fn window<const N: usize>(&self, offset: usize) -> Option<Window<'_, N>> {
        let inside = offset.is_multiple_of(8) && self.len().checked_sub(N).is_some_and(|last| offset <= last);
        inside.then(|| Window { addr: self.base() + offset, reservation: PhantomData })
    }
}

macro_rules! accessors {
    ($($t:ty: $read:ident, $write:ident;)*) => {$(
        #[doc = concat!("Reads the `", stringify!($t), "` at offset `OFF` (one volatile load).")]
        #[inline]
        pub fn $read<const OFF: usize>(self) -> $t {
            // SAFETY: `self.field` checks at compile time that the field lies inside
            // the window and is naturally aligned; the window is inside the
            // reservation, which holds no Rust objects (module docs).
            unsafe { self.field::<$t, OFF>().read_volatile() }
        }

        #[doc = concat!("Writes the `", stringify!($t), "` at offset `OFF` (one volatile store).")]
        #[inline]
        pub fn $write<const OFF: usize>(self, v: $t) {
            // SAFETY: as for the read.
            unsafe { self.field::<$t, OFF>().write_volatile(v) }
        }
    )*};
}

impl<const N: usize> Window<'_, N> {
    /// The host address of the window's first byte.
    pub fn addr(self) -> usize {
        self.addr
    }

    /// The field of type `T` at offset `OFF`: inside the window and naturally aligned
    /// (fields of at most 8 bytes in an 8-aligned window), or the build fails.
    #[inline]
    fn field<T, const OFF: usize>(self) -> *mut T {
        const {
            assert!(OFF + size_of::<T>() <= N, "the field leaves the window");
            assert!(size_of::<T>() <= 8 && OFF.is_multiple_of(size_of::<T>()), "the field is misaligned");
        }
        std::ptr::with_exposed_provenance_mut::<T>(self.addr + OFF)
    }

    /// Touches the window's first and last 8 bytes as writes that change nothing
    /// (an atomic `fetch_or(0)` each, so no concurrent store is lost): an
    /// inaccessible or read-only page faults here, as the first store into it
    /// would, and a resident page is left exactly as it was.
    #[inline]
    pub fn touch(self) {
        const { assert!(N >= 8, "a window of at least 8 bytes") };
        for offset in [0, (N - 8) & !7] {
            let p = std::ptr::with_exposed_provenance_mut::<u64>(self.addr + offset);
            // SAFETY: the window is inside the reservation and 8-aligned, so the
            // 8 bytes at an 8-aligned offset inside it are an aligned u64 of it;
            // the reservation holds no Rust objects (module docs), and the access
            // is atomic, so it races with nothing.
            unsafe { std::sync::atomic::AtomicU64::from_ptr(p) }.fetch_or(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    accessors! {
        u16: read_u16, write_u16;
        u32: read_u32, write_u32;
        u64: read_u64, write_u64;
    }
}

#[cfg(test)]
mod tests {
    use crate::{page_size, Placement, Prot, Ram, Reservation};

    #[test]
    fn windows_are_checked_once_and_alias_the_memory() {
        let page = page_size();
        let ram = Ram::new(page as u64).unwrap();
        let r = Reservation::new(page, Placement::Anywhere { align: page }).unwrap();
        r.map_ram(0, &ram, 0, page, Prot::ReadWrite).unwrap();
        assert!(r.window::<16>(4).is_none(), "misaligned");
        assert!(r.window::<16>(r.len() - 8).is_none(), "leaves the reservation");
        assert!(r.window::<16>(usize::MAX - 7).is_none(), "overflows");
        let w = r.window::<16>(page - 16).expect("last 16 bytes");
        w.write_u64::<0>(0x1122_3344_5566_7788);
        w.write_u16::<8>(0xABCD);
        w.write_u32::<12>(0xDEAD_BEEF);
        assert_eq!(w.read_u32::<4>(), 0x1122_3344);
        assert_eq!(ram.load_u64(page as u64 - 8) & 0xFFFF, 0xABCD);
        assert_eq!(w.read_u32::<12>(), 0xDEAD_BEEF);
        assert_eq!(w.addr(), r.base() + page - 16);
        assert_eq!(ram.load_u64(page as u64 - 16), 0x1122_3344_5566_7788);
        w.touch();
        assert_eq!(
            (w.read_u64::<0>(), w.read_u32::<12>()),
            (0x1122_3344_5566_7788, 0xDEAD_BEEF),
            "a touch changes nothing"
        );
    }
}
