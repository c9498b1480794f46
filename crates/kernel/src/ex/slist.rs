//! The x64 `SLIST_HEADER` (wdm.h; learn.microsoft.com "Singly and Doubly Linked
//! Lists", "SLIST_HEADER"): 16 bytes, 16-byte aligned. The first quadword holds
//! `Depth` (bits 0–15) and `Sequence` (bits 16–63), the second `HeaderType` (bit 0, 1:
//! the 16-byte form) and the first entry's address (bits 4–63; entries are 16-byte
//! aligned, `SLIST_ENTRY` being `DECLSPEC_ALIGN(16)`). `ExQueryDepthSList` reads the
//! low 16 bits; every push, pop and flush moves `Sequence` on (what makes the
//! compare-exchange of a pop safe against a pop and push in between).

/// The header's quadwords decoded: (depth, sequence, first entry's address, 0 for none).
pub fn decode(alignment: u64, region: u64) -> (u16, u64, u64) {
    ((alignment & 0xFFFF) as u16, alignment >> 16, region & !0xF)
}

/// The header's quadwords for `depth`, `sequence` (its low 48 bits) and `first` (0:
/// empty; `HeaderType` set otherwise).
pub fn encode(depth: u16, sequence: u64, first: u64) -> (u64, u64) {
    let alignment = u64::from(depth) | (sequence & 0xFFFF_FFFF_FFFF) << 16;
    (alignment, if first == 0 { 0 } else { (first & !0xF) | 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_keeps_windows_bit_layout() {
        let (a, r) = encode(3, 7, 0x1234_5670);
        assert_eq!((a, r), (3 | 7 << 16, 0x1234_5671));
        assert_eq!(decode(a, r), (3, 7, 0x1234_5670));
        assert_eq!(encode(0, 1, 0), (1 << 16, 0), "an empty list has no HeaderType");
        assert_eq!(decode(u64::MAX, 0).1, 0xFFFF_FFFF_FFFF, "48 bits of sequence");
    }
}
