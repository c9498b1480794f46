//! Address and size types of the simulated machine.
//!
//! Three kinds of address never mix: a [`PhysAddr`] is a location in the simulated
//! physical address space (what `MmGetPhysicalAddress` returns, `PHYSICAL_ADDRESS`);
//! a [`Pfn`] is a physical page frame number (an index into the PFN database); a
//! [`Va`] is a simulated virtual address (what the simulated page tables translate).
//! Host pointers are plain `usize` and live only in the host layer and at the driver
//! boundary. Conversions between pages and bytes need the architecture's page size,
//! so they take a [`PageShift`].

use std::fmt;

/// log2 of the page size: 12 for x86 and x64 (4 KB), 13 for IA-64 (8 KB) (seed 000 §2.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct PageShift(pub u32);

impl PageShift {
    /// 4 KB pages (x86, x64).
    pub const K4: PageShift = PageShift(12);
    /// 8 KB pages (IA-64).
    pub const K8: PageShift = PageShift(13);

    /// The page size in bytes.
    pub const fn page_size(self) -> u64 {
        1 << self.0
    }

    /// Bytes to whole pages, rounding up (`BYTES_TO_PAGES`).
    pub const fn bytes_to_pages(self, bytes: u64) -> u64 {
        (bytes >> self.0) + (bytes & (self.page_size() - 1) != 0) as u64
    }

    /// Pages to bytes.
    pub const fn pages_to_bytes(self, pages: u64) -> u64 {
        pages << self.0
    }

    /// Rounds `bytes` up to a page multiple (`ROUND_TO_PAGES`).
    pub const fn round_up(self, bytes: u64) -> u64 {
        self.pages_to_bytes(self.bytes_to_pages(bytes))
    }

    /// Offset of `addr` within its page (`BYTE_OFFSET`).
    pub const fn offset(self, addr: u64) -> u64 {
        addr & (self.page_size() - 1)
    }
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw value.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw value.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + n`, or `None` on overflow.
            pub const fn checked_add(self, n: u64) -> Option<Self> {
                match self.0.checked_add(n) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self - n`, or `None` on underflow.
            pub const fn checked_sub(self, n: u64) -> Option<Self> {
                match self.0.checked_sub(n) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// Distance from `earlier` to `self` (panics if `earlier > self`).
            pub const fn since(self, earlier: Self) -> u64 {
                self.0 - earlier.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A simulated physical address (`PHYSICAL_ADDRESS.QuadPart`).
    PhysAddr
);
address_type!(
    /// A simulated virtual address: the input of the simulated page tables.
    Va
);
address_type!(
    /// A physical page frame number: `PhysAddr >> PAGE_SHIFT`.
    Pfn
);

impl PhysAddr {
    /// The frame holding this address.
    pub const fn pfn(self, shift: PageShift) -> Pfn {
        Pfn(self.0 >> shift.0)
    }
}

impl Pfn {
    /// The physical address of the frame's first byte.
    pub const fn addr(self, shift: PageShift) -> PhysAddr {
        PhysAddr(self.0 << shift.0)
    }

    /// The frame `n` frames further on.
    pub const fn add(self, n: u64) -> Pfn {
        Pfn(self.0 + n)
    }
}

impl Va {
    /// The page-aligned address of the page holding this address (`PAGE_ALIGN`).
    pub const fn page_base(self, shift: PageShift) -> Va {
        Va(self.0 & !(shift.page_size() - 1))
    }
}

/// Parses a size with an optional K/M/G/T suffix (binary multiples, as Windows
/// documents memory sizes): `"8G"`, `"512M"`, `"4096"`, `"1T"`, `"64KB"`.
///
/// # Errors
/// A message naming the accepted forms when `text` is not a size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let bad = || {
        format!(
            "`{text}` is not a size: use a number of bytes with an optional K, M, G or T suffix (e.g. 512M, 8G, 1T)"
        )
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Formats a byte count the way the summaries print it: exactly when the largest
/// unit divides it (`8 GB`, `640 KB`, `4095 B`), else to one decimal (`3.5 GB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TB", 40), ("GB", 30), ("MB", 20), ("KB", 10)];
    match UNITS.iter().find(|(_, shift)| bytes >= 1 << shift) {
        None => format!("{bytes} B"),
        Some((unit, shift)) if bytes.is_multiple_of(1 << shift) => format!("{} {unit}", bytes >> shift),
        Some((unit, shift)) => format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("eight").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn page_arithmetic_follows_the_page_size() {
        assert_eq!(PageShift::K4.bytes_to_pages(4097), 2);
        assert_eq!(PageShift::K8.bytes_to_pages(8192), 1);
        assert_eq!(PhysAddr::new(0x12345).pfn(PageShift::K4), Pfn::new(0x12));
        assert_eq!(Pfn::new(3).addr(PageShift::K8), PhysAddr::new(0x6000));
        assert_eq!(format_size(8 << 30), "8 GB");
        assert_eq!(format_size(640 << 10), "640 KB");
        assert_eq!(format_size((1 << 30) + 400 * 1024), "1.0 GB");
        assert_eq!(format_size(3 << 29), "1.5 GB");
        assert_eq!(format_size(100), "100 B");
    }
}
