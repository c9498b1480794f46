//! Base relocations: the 64-bit addresses in an image that must move with it.
//!
//! "PE Format", The .reloc Section: blocks of 16-bit entries, type in the top 4 bits, offset
//! in the low 12. A PE32+ driver built by MSVC or lld carries only IMAGE_REL_BASED_DIR64
//! (10, add the delta to the 64-bit value) and IMAGE_REL_BASED_ABSOLUTE (0, padding that
//! does nothing); the parser refuses every other type with
//! [`ImageError::UnsupportedRelocation`](crate::ImageError::UnsupportedRelocation) rather
//! than guess. The kernel applies them as `LdrRelocateImageWithBias` does (research note
//! §6.1 step 4).

/// IMAGE_REL_BASED_ABSOLUTE: skipped; pads a block to a 32-bit boundary.
pub(crate) const IMAGE_REL_BASED_ABSOLUTE: u16 = 0;
/// IMAGE_REL_BASED_DIR64: the 64-bit value at the RVA gets the delta added.
pub(crate) const IMAGE_REL_BASED_DIR64: u16 = 10;

/// One IMAGE_REL_BASED_DIR64 relocation: the 8 bytes at `rva` hold an address that assumes
/// the image sits at its preferred `ImageBase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaseRelocation {
    /// RVA of the 64-bit value; validated so that `rva + 8 ≤ SizeOfImage`.
    pub rva: u32,
}

/// A relocation could not be applied to the laid-out image it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelocError {
    /// The relocation's 8 bytes lie outside the layout (the layout is not this image's).
    #[error("relocation at RVA {rva:#x} lies outside the {len:#x}-byte layout")]
    OutOfBounds {
        /// RVA of the relocation.
        rva: u32,
        /// Length of the layout given.
        len: usize,
    },
}

/// Adds `delta` (new base − preferred base, modulo 2⁶⁴) to every relocated value in `mapped`,
/// the image laid out at its RVAs. Nothing is written unless every relocation fits.
pub(crate) fn apply(relocations: &[BaseRelocation], mapped: &mut [u8], delta: u64) -> Result<(), RelocError> {
    let len = mapped.len();
    let range = |r: &BaseRelocation| {
        let start = usize::try_from(r.rva).ok()?;
        let end = start.checked_add(8)?;
        (end <= len).then_some(start..end)
    };
    if let Some(bad) = relocations.iter().find(|r| range(r).is_none()) {
        return Err(RelocError::OutOfBounds { rva: bad.rva, len });
    }
    for r in relocations {
        if let Some(slot) = range(r).and_then(|span| mapped.get_mut(span)) {
            let mut value = [0; 8];
            value.copy_from_slice(slot);
            slot.copy_from_slice(&u64::from_le_bytes(value).wrapping_add(delta).to_le_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_is_added_modulo_2_pow_64() {
        let mut mapped = [0u8; 24];
        mapped[0..8].copy_from_slice(&0x1_4000_1000u64.to_le_bytes());
        mapped[16..24].copy_from_slice(&0x1_4000_2000u64.to_le_bytes());
        let relocs = [BaseRelocation { rva: 0 }, BaseRelocation { rva: 16 }];
        let delta = 0xFFFF_F800_0000_0000u64.wrapping_sub(0x1_4000_0000);
        apply(&relocs, &mut mapped, delta).unwrap();
        assert_eq!(u64::from_le_bytes(mapped[0..8].try_into().unwrap()), 0xFFFF_F800_0000_1000);
        assert_eq!(u64::from_le_bytes(mapped[16..24].try_into().unwrap()), 0xFFFF_F800_0000_2000);
        assert_eq!(&mapped[8..16], &[0; 8]);
    }

    #[test]
    fn a_relocation_outside_the_layout_changes_nothing() {
        let mut mapped = [0u8; 16];
        let relocs = [BaseRelocation { rva: 0 }, BaseRelocation { rva: 9 }];
        assert_eq!(apply(&relocs, &mut mapped, 1), Err(RelocError::OutOfBounds { rva: 9, len: 16 }));
        assert_eq!(mapped, [0; 16]);
        let far = [BaseRelocation { rva: u32::MAX }];
        assert_eq!(apply(&far, &mut mapped, 1), Err(RelocError::OutOfBounds { rva: u32::MAX, len: 16 }));
    }
}
