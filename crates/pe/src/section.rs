//! Section headers of a driver image and what their names and characteristics mean to the
//! kernel's loader.
//!
//! Sources: "PE Format", Section Table and Section Flags; "Making Drivers Pageable"
//! (learn.microsoft.com/windows-hardware/drivers/kernel/making-drivers-pageable): a section
//! whose name begins with `PAGE` is pageable, `INIT` (discardable) is freed after
//! `DriverEntry`; research note §6.1 step 7 and §6.2.

use bitflags::bitflags;

bitflags! {
    /// `IMAGE_SCN_*` section characteristics ("PE Format", Section Flags). Bits not named
    /// here are kept as they are.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SectionFlags: u32 {
        /// IMAGE_SCN_CNT_CODE: executable code.
        const CODE = 0x0000_0020;
        /// IMAGE_SCN_CNT_INITIALIZED_DATA.
        const INITIALIZED_DATA = 0x0000_0040;
        /// IMAGE_SCN_CNT_UNINITIALIZED_DATA.
        const UNINITIALIZED_DATA = 0x0000_0080;
        /// IMAGE_SCN_MEM_DISCARDABLE: can be discarded as needed (INIT after DriverEntry).
        const DISCARDABLE = 0x0200_0000;
        /// IMAGE_SCN_MEM_NOT_CACHED.
        const NOT_CACHED = 0x0400_0000;
        /// IMAGE_SCN_MEM_NOT_PAGED.
        const NOT_PAGED = 0x0800_0000;
        /// IMAGE_SCN_MEM_SHARED.
        const SHARED = 0x1000_0000;
        /// IMAGE_SCN_MEM_EXECUTE.
        const EXECUTE = 0x2000_0000;
        /// IMAGE_SCN_MEM_READ.
        const READ = 0x4000_0000;
        /// IMAGE_SCN_MEM_WRITE.
        const WRITE = 0x8000_0000;
        const _ = !0;
    }
}

/// One section header of an image, validated against the image's size and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name, at most 8 characters (the PE limit; longer names are cut by the linker),
    /// up to the first NUL, bytes that are not UTF-8 replaced.
    pub name: String,
    /// RVA of the section's first byte.
    pub virtual_address: u32,
    /// Bytes the section occupies once mapped: `VirtualSize`, or `SizeOfRawData` when
    /// `VirtualSize` is 0.
    pub virtual_size: u32,
    /// File offset of the section's initialised bytes.
    pub raw_offset: u32,
    /// Initialised bytes in the file; only `min(raw_size, virtual_size)` are mapped, the rest
    /// of the section is zero.
    pub raw_size: u32,
    /// The section's characteristics.
    pub characteristics: SectionFlags,
}

impl Section {
    /// RVA one past the section's last mapped byte.
    pub fn end(&self) -> u32 {
        // Validated by the parser: virtual_address + virtual_size ≤ SizeOfImage.
        self.virtual_address.saturating_add(self.virtual_size)
    }

    /// Whether `rva` lies inside the mapped section.
    pub fn contains(&self, rva: u32) -> bool {
        (self.virtual_address..self.end()).contains(&rva)
    }

    /// Bytes copied from the file when the section is mapped.
    pub fn mapped_raw_size(&self) -> u32 {
        self.raw_size.min(self.virtual_size)
    }

    /// `INIT`-style: IMAGE_SCN_MEM_DISCARDABLE, freed by the kernel once `DriverEntry` has
    /// returned (research note §6.2; lld needs `/section:INIT,erd` to set it).
    pub fn is_discardable(&self) -> bool {
        self.characteristics.contains(SectionFlags::DISCARDABLE)
    }

    /// `PAGE*`: pageable like paged pool. The name test is case-sensitive capital `PAGE`, as
    /// documented ("Making Drivers Pageable"; research note §6.3). ReactOS also pages
    /// `.edata`; Windows' documentation does not say so and ntmem does not.
    pub fn is_pageable(&self) -> bool {
        self.name.starts_with("PAGE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, characteristics: SectionFlags) -> Section {
        Section {
            name: name.to_owned(),
            virtual_address: 0x1000,
            virtual_size: 0x10,
            raw_offset: 0x400,
            raw_size: 0x200,
            characteristics,
        }
    }

    #[test]
    fn page_sections_are_pageable_by_capital_prefix_only() {
        assert!(section("PAGE", SectionFlags::CODE).is_pageable());
        assert!(section("PAGEdata", SectionFlags::CODE).is_pageable());
        assert!(!section("page", SectionFlags::CODE).is_pageable());
        assert!(!section(".text", SectionFlags::CODE).is_pageable());
    }

    #[test]
    fn discardable_is_the_characteristic_not_the_name() {
        assert!(section("INIT", SectionFlags::DISCARDABLE | SectionFlags::EXECUTE).is_discardable());
        assert!(!section("INIT", SectionFlags::EXECUTE).is_discardable());
    }

    #[test]
    fn mapped_bytes_are_bounded_by_both_sizes() {
        let s = section(".data", SectionFlags::WRITE);
        assert_eq!(s.mapped_raw_size(), 0x10);
        assert_eq!(s.end(), 0x1010);
        assert!(s.contains(0x100f) && !s.contains(0x1010));
    }
}
