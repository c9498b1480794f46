//! The POOL_HEADER, byte-exact for the architecture, and the geometry of small
//! blocks (research/nt-algorithms.md §1.1, §1.2; seed 000 §7.1).
//!
//! x86 (8 bytes, block unit 8, 512 units a page):
//!
//! | offset | bits | field |
//! |---|---|---|
//! | 0x0 | 0–8 | PreviousSize (units) |
//! | 0x0 | 9–15 | PoolIndex |
//! | 0x2 | 0–8 | BlockSize (units, header included) |
//! | 0x2 | 9–15 | PoolType |
//! | 0x4 | 32 | PoolTag |
//!
//! x64 and IA-64 (16 bytes, block unit 16): PreviousSize, PoolIndex, BlockSize and
//! PoolType one byte each at 0x0–0x3, PoolTag at 0x4, ProcessBilled (the charged
//! process, stored plainly; Windows 8+ obfuscates it) at 0x8.
//!
//! PoolType is 0 for a free block, otherwise `(POOL_TYPE & 7) + 1`, with
//! `POOL_QUOTA_MASK` (8) set when a process was charged (§1.1). The largest small
//! block is the largest BlockSize the field holds that leaves room for nothing
//! else: 511 units on x86, 255 on x64, so requests up to 4080 (x86) / 4064 (x64)
//! bytes are small (§1.2 POOL_MAX_ALLOC). Requests above that are page-rounded,
//! page-aligned "big" allocations with no header — which also covers the few
//! sizes between POOL_MAX_ALLOC and PAGE_SIZE − header that the seed's §7.1 table
//! counts as small: they get a page, aligned better than the table promises.

use ntmem_host::Window;
use ntmem_machine::{Arch, Va};

use crate::mm::space::AddressSpace;

/// `POOL_QUOTA_MASK`: the PoolType bit of a block charged to a process.
pub const POOL_QUOTA_MASK: u8 = 8;

/// Sizes of small blocks on one architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `sizeof(POOL_HEADER)` and the block unit: 8 (x86) or 16.
    pub unit: u64,
    /// PAGE_SIZE.
    pub page: u64,
    /// Units in a page.
    pub units_per_page: u64,
    /// The largest BlockSize of a small block, in units.
    pub max_block: u64,
    /// x86's packed 9/7-bit layout rather than the byte layout.
    pub packed: bool,
    /// Pointer size: where x86 keeps the quota process (the block's last pointer).
    pub pointer: u64,
    /// The cache line, for the cache-aligned types.
    pub cache_line: u64,
    /// log2 of `unit` (the hot paths shift rather than divide).
    pub unit_shift: u32,
    /// log2 of `page`.
    pub page_shift: u32,
}

impl Geometry {
    /// x86: 8-byte units, 4 KB pages, the packed header.
    pub const X86: Geometry = Geometry::build(8, 4096, 4, 64);
    /// x64: 16-byte units, 4 KB pages.
    pub const X64: Geometry = Geometry::build(16, 4096, 8, 64);
    /// IA-64: 16-byte units, 8 KB pages, 128-byte cache lines.
    pub const IA64: Geometry = Geometry::build(16, 8192, 8, 128);

    /// The geometry of `arch`: one of the constants above, which the pool's hit
    /// paths use so that the compiler folds every size and shift.
    pub fn of(arch: Arch) -> Geometry {
        match arch {
            Arch::X86 => Geometry::X86,
            Arch::X64 => Geometry::X64,
            Arch::Ia64 => Geometry::IA64,
        }
    }

    const fn build(unit: u64, page: u64, pointer: u64, cache_line: u64) -> Geometry {
        let packed = unit == 8;
        let field_max = if packed { 511 } else { 255 };
        let units_per_page = page / unit;
        Geometry {
            unit,
            page,
            units_per_page,
            max_block: if field_max < units_per_page - 1 { field_max } else { units_per_page - 1 },
            packed,
            pointer,
            cache_line,
            unit_shift: unit.trailing_zeros(),
            page_shift: page.trailing_zeros(),
        }
    }

    /// The header size (= the unit).
    #[inline]
    pub fn header(&self) -> u64 {
        self.unit
    }

    /// Units for a block holding `bytes` after its header.
    #[inline]
    pub fn units_for(&self, bytes: u64) -> u64 {
        bytes.saturating_add(2 * self.unit - 1) >> self.unit_shift
    }

    /// Whether `va` starts a page (a mask, not a division: the free path asks on
    /// every call).
    #[inline]
    pub fn page_aligned(&self, va: u64) -> bool {
        va & (self.page - 1) == 0
    }

    /// Whether `va` starts a block unit.
    #[inline]
    pub fn unit_aligned(&self, va: u64) -> bool {
        va & (self.unit - 1) == 0
    }

    /// The page holding `va`.
    pub fn page_of(&self, va: u64) -> u64 {
        va & !(self.page - 1)
    }

    /// `va`'s offset in its page, in units.
    #[inline]
    pub fn unit_offset(&self, va: u64) -> u64 {
        (va & (self.page - 1)) >> self.unit_shift
    }
}

/// A decoded POOL_HEADER.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolHeader {
    /// PreviousSize, units.
    pub previous_size: u16,
    /// PoolIndex.
    pub pool_index: u8,
    /// BlockSize, units.
    pub block_size: u16,
    /// PoolType: 0 free, else type + 1 (| quota mask).
    pub pool_type: u8,
    /// PoolTag.
    pub tag: u32,
    /// ProcessBilled (x64 only; 0 on x86).
    pub process_billed: u64,
}

impl PoolHeader {
    /// The header's bytes (8 or 16 of the returned 16).
    pub fn encode(&self, g: &Geometry) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.ulong1(g).to_le_bytes());
        b[4..8].copy_from_slice(&self.tag.to_le_bytes());
        if !g.packed {
            b[8..16].copy_from_slice(&self.process_billed.to_le_bytes());
        }
        b
    }

    /// The first 32 bits (`Ulong1`): sizes, index and type.
    pub fn ulong1(&self, g: &Geometry) -> u32 {
        if g.packed {
            let w0 = u32::from(self.previous_size & 0x1FF) | (u32::from(self.pool_index & 0x7F) << 9);
            let w1 = u32::from(self.block_size & 0x1FF) | (u32::from(self.pool_type & 0x7F) << 9);
            w0 | (w1 << 16)
        } else {
            u32::from_le_bytes([self.previous_size as u8, self.pool_index, self.block_size as u8, self.pool_type])
        }
    }

    /// Decodes a header from its bytes.
    #[inline]
    pub fn decode(b: &[u8; 16], g: &Geometry) -> PoolHeader {
        let tag = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if g.packed {
            let w0 = u16::from_le_bytes([b[0], b[1]]);
            let w1 = u16::from_le_bytes([b[2], b[3]]);
            PoolHeader {
                previous_size: w0 & 0x1FF,
                pool_index: (w0 >> 9) as u8,
                block_size: w1 & 0x1FF,
                pool_type: (w1 >> 9) as u8,
                tag,
                process_billed: 0,
            }
        } else {
            let mut p = [0u8; 8];
            p.copy_from_slice(&b[8..16]);
            PoolHeader {
                previous_size: u16::from(b[0]),
                pool_index: b[1],
                block_size: u16::from(b[2]),
                pool_type: b[3],
                tag,
                process_billed: u64::from_le_bytes(p),
            }
        }
    }

    /// Decodes the first eight bytes of a header (everything but ProcessBilled,
    /// which reads 0), given as one little-endian word.
    #[inline(always)]
    pub fn from_first_word(w: u64, g: &Geometry) -> PoolHeader {
        let tag = (w >> 32) as u32;
        if g.packed {
            PoolHeader {
                previous_size: (w & 0x1FF) as u16,
                pool_index: ((w >> 9) & 0x7F) as u8,
                block_size: ((w >> 16) & 0x1FF) as u16,
                pool_type: ((w >> 25) & 0x7F) as u8,
                tag,
                process_billed: 0,
            }
        } else {
            PoolHeader {
                previous_size: u16::from(w as u8),
                pool_index: (w >> 8) as u8,
                block_size: u16::from((w >> 16) as u8),
                pool_type: (w >> 24) as u8,
                tag,
                process_billed: 0,
            }
        }
    }

    /// "Pool header contents" as BAD_POOL_CALLER reports it: `Ulong1` on x86, the
    /// first eight bytes (sizes, type and tag) on 64-bit machines.
    pub fn contents(&self, g: &Geometry) -> u64 {
        if g.packed {
            u64::from(self.ulong1(g))
        } else {
            u64::from(self.ulong1(g)) | (u64::from(self.tag) << 32)
        }
    }

    /// Whether the block is in use.
    #[inline]
    pub fn in_use(&self) -> bool {
        self.pool_type != 0
    }
}

/// Reads and writes headers in simulated memory, through the machine's mappings:
/// each header word is one load or store through an [`AddressSpace::window`].
#[derive(Clone, Copy)]
pub(crate) struct Mem<'a> {
    pub space: &'a AddressSpace,
    pub g: &'a Geometry,
}

impl<'a> Mem<'a> {
    pub fn read(&self, va: u64, buf: &mut [u8]) {
        self.space.read(Va::new(va), buf).expect("pool addresses lie inside the address space");
    }

    pub fn write(&self, va: u64, data: &[u8]) {
        self.space.write(Va::new(va), data).expect("pool addresses lie inside the address space");
    }

    /// The 8-byte word at `va` (a header's first half, or x64's ProcessBilled).
    #[inline(always)]
    fn word(&self, va: u64) -> Window<'a, 8> {
        self.space.window(Va::new(va)).expect("pool headers are aligned and inside the address space")
    }

    /// The header's first eight bytes (sizes, index, type, tag) as one word.
    #[inline(always)]
    pub fn first_word(&self, entry: u64) -> u64 {
        self.word(entry).read_u64::<0>()
    }

    /// The header at `entry`.
    pub fn header(&self, entry: u64) -> PoolHeader {
        let mut h = PoolHeader::from_first_word(self.first_word(entry), self.g);
        if !self.g.packed {
            h.process_billed = self.word(entry + 8).read_u64::<0>();
        }
        h
    }

    /// Writes the whole header at `entry`.
    pub fn set_header(&self, entry: u64, h: &PoolHeader) {
        self.word(entry).write_u64::<0>(u64::from(h.ulong1(self.g)) | u64::from(h.tag) << 32);
        if !self.g.packed {
            self.word(entry + 8).write_u64::<0>(h.process_billed);
        }
    }

    /// Writes only PreviousSize (and PoolIndex 0): the part of a header the
    /// descriptor may change while a processor's cache owns the block.
    pub fn set_previous_size(&self, entry: u64, previous: u64) {
        let v = if self.g.packed { (previous & 0x1FF) as u16 } else { u16::from(previous as u8) };
        self.word(entry).write_u16::<0>(v);
    }

    /// Writes BlockSize, PoolType, PoolTag (and ProcessBilled on 64-bit): every
    /// byte from offset 2, the part a processor's cache owns.
    #[inline(always)]
    pub fn set_type_and_tag(&self, entry: u64, block: u64, pool_type: u8, tag: u32, billed: u64) {
        let w = self.word(entry);
        w.write_u16::<2>(self.block_and_type(block, pool_type));
        w.write_u32::<4>(tag);
        if !self.g.packed {
            self.word(entry + 8).write_u64::<0>(billed);
        }
    }

    /// Writes BlockSize and PoolType (bytes 2..4), e.g. marking a cached block free.
    #[inline(always)]
    pub fn set_pool_type(&self, entry: u64, block: u64, pool_type: u8) {
        self.word(entry).write_u16::<2>(self.block_and_type(block, pool_type));
    }

    /// Bytes 2..4 of a header: BlockSize and PoolType.
    #[inline(always)]
    fn block_and_type(&self, block: u64, pool_type: u8) -> u16 {
        if self.g.packed {
            (block & 0x1FF) as u16 | (u16::from(pool_type & 0x7F) << 9)
        } else {
            u16::from_le_bytes([block as u8, pool_type])
        }
    }

    /// Fills `len` bytes at `va` with `byte`.
    #[inline(always)]
    pub fn fill(&self, va: u64, len: u64, byte: u8) {
        self.space.fill(Va::new(va), len, byte).expect("pool addresses lie inside the address space");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_constants_match_the_architectures() {
        for arch in [Arch::X86, Arch::X64, Arch::Ia64] {
            let g = Geometry::of(arch);
            assert_eq!(g.unit, arch.pool_header_size(), "{arch:?}");
            assert_eq!(g.page, arch.page_shift().page_size(), "{arch:?}");
            assert_eq!((g.pointer, g.cache_line), (arch.pointer_size(), arch.cache_line()), "{arch:?}");
        }
    }

    #[test]
    fn geometry_per_arch() {
        let x86 = Geometry::of(Arch::X86);
        assert_eq!((x86.unit, x86.units_per_page, x86.max_block), (8, 512, 511));
        let x64 = Geometry::of(Arch::X64);
        assert_eq!((x64.unit, x64.units_per_page, x64.max_block), (16, 256, 255));
        assert_eq!(x64.units_for(1), 2);
        assert_eq!(x64.units_for(16), 2);
        assert_eq!(x64.units_for(17), 3);
        assert_eq!(x86.units_for(4080), 511);
    }

    #[test]
    fn x86_header_bit_layout() {
        let g = Geometry::of(Arch::X86);
        let h = PoolHeader {
            previous_size: 0x1FF,
            pool_index: 0,
            block_size: 3,
            pool_type: 2,
            tag: u32::from_le_bytes(*b"Fred"),
            process_billed: 0,
        };
        let b = h.encode(&g);
        assert_eq!(&b[..8], &[0xFF, 0x01, 0x03, 0x04, b'F', b'r', b'e', b'd']);
        assert_eq!(PoolHeader::decode(&b, &g), h);
        assert_eq!(PoolHeader::from_first_word(u64::from_le_bytes(b[..8].try_into().unwrap()), &g), h);
    }

    #[test]
    fn x64_header_byte_layout() {
        let g = Geometry::of(Arch::X64);
        let h = PoolHeader {
            previous_size: 5,
            pool_index: 0,
            block_size: 7,
            pool_type: 1 | POOL_QUOTA_MASK,
            tag: u32::from_le_bytes(*b"Test"),
            process_billed: 0xFFFF_F000_1234_0000,
        };
        let b = h.encode(&g);
        assert_eq!(&b[..8], &[5, 0, 7, 9, b'T', b'e', b's', b't']);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 0xFFFF_F000_1234_0000);
        assert_eq!(PoolHeader::decode(&b, &g), h);
        assert_eq!(h.contents(&g), 0x7473_6554_0907_0005);
        let first = PoolHeader::from_first_word(u64::from_le_bytes(b[..8].try_into().unwrap()), &g);
        assert_eq!(first, PoolHeader { process_billed: 0, ..h });
    }
}
