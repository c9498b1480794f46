//! The simulated physical address space: where RAM, the PC holes and device windows are.
//!
//! Model (a PC chipset of the seed's era, seed 000 §3 and §8):
//! - Installed RAM fills `[0, 0x9F000)` (the first 636 KB; on IA-64 rounded down to an
//!   8 KB page), then `[1 MB, 3 GB)`, and whatever is left is remapped above 4 GB from
//!   `0x1_0000_0000`. Small machines simply end below 3 GB. Every installed byte appears
//!   once, so the host file that backs RAM is exactly as long as the RAM installed.
//! - `[0x9F000, 1 MB)` is the legacy video/BIOS area; `[3 GB, 4 GB)` is the PCI/MMIO hole,
//!   with the device windows listed in [`PhysMap::mmio_windows`]. Seed 000 §3: "some of
//!   that memory will be unusable because some of the physical address space is mapped
//!   for other uses".
//! - I/O ports are a separate 64 KB space (seed 000 §3).
//! - [`PhysMap::ram`] is the installed RAM the memory manager may use: runs above the
//!   physical-address limit of the paging mode or the edition, and at or above `/MAXMEM`,
//!   are left out (the profile says why in its warnings). `/BURNMEMORY` memory stays in
//!   `ram`; the kernel allocates [`PhysMap::burned`] bytes at boot.

use crate::addr::{PageShift, PhysAddr};

const MB: u64 = 1 << 20;
/// First byte of the legacy video/BIOS area.
const LEGACY_START: u64 = 0x9F000;
/// Where RAM resumes above the legacy area.
const LOW_RAM_RESUME: u64 = MB;
/// Start of the PCI/MMIO hole below 4 GB.
pub(crate) const HOLE_START: u64 = 0xC000_0000;
/// 4 GB: the end of the hole and where remapped RAM starts.
pub(crate) const FOUR_GB: u64 = 1 << 32;

/// Device windows inside the hole: (name, start, length).
const MMIO_WINDOWS: [(&str, u64, u64); 4] = [
    ("PCI memory", HOLE_START, 0xFEC0_0000 - HOLE_START),
    ("I/O APIC", 0xFEC0_0000, 0x1000),
    ("local APIC", 0xFEE0_0000, 0x1000),
    ("BIOS flash", 0xFFE0_0000, 2 * MB),
];

/// A run of physical RAM.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct RamRun {
    /// First byte.
    pub start: PhysAddr,
    /// Length in bytes (a page multiple).
    pub len: u64,
}

impl RamRun {
    /// The first address past the run.
    pub fn limit(&self) -> PhysAddr {
        PhysAddr::new(self.start.get() + self.len)
    }

    /// Whether `pa` lies in the run.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        pa >= self.start && pa < self.limit()
    }
}

/// A named range of physical address space that is not RAM.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct PhysRange {
    /// What it is.
    pub name: &'static str,
    /// First byte.
    pub start: PhysAddr,
    /// Length in bytes.
    pub len: u64,
}

/// The physical memory map of a machine (see the module docs for the model).
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct PhysMap {
    /// RAM the memory manager may use, sorted, non-overlapping.
    pub ram: Vec<RamRun>,
    /// All installed RAM as the chipset decodes it, before any limit.
    pub installed: Vec<RamRun>,
    /// Address ranges that are not RAM: the legacy area and the PCI/MMIO hole.
    pub reserved: Vec<PhysRange>,
    /// Device windows inside the hole.
    pub mmio_windows: Vec<PhysRange>,
    /// Size of the separate I/O port space: 64 KB (seed 000 §3).
    pub io_port_space: u64,
    /// Bytes `/BURNMEMORY` takes away; the kernel allocates them at boot.
    pub burned: u64,
    /// `/NOLOWMEM` in effect: general allocations avoid physical memory below 4 GB.
    pub nolowmem: bool,
    /// Offset in the RAM file of each installed run (prefix sums of `installed`).
    #[serde(skip)]
    file_starts: Vec<u64>,
}

impl PhysMap {
    /// Lays out `installed_bytes` of RAM and keeps what lies below `usable_limit`.
    pub(crate) fn new(
        installed_bytes: u64,
        shift: PageShift,
        usable_limit: u64,
        burned: u64,
        nolowmem: bool,
    ) -> PhysMap {
        let low_end = LEGACY_START & !(shift.page_size() - 1);
        let mut left = installed_bytes;
        let mut installed = Vec::new();
        for (start, room) in [(0, low_end), (LOW_RAM_RESUME, HOLE_START - LOW_RAM_RESUME), (FOUR_GB, u64::MAX)] {
            let len = left.min(room);
            if len > 0 {
                installed.push(RamRun { start: PhysAddr::new(start), len });
            }
            left -= len;
        }
        let ram = installed
            .iter()
            .filter(|r| r.start.get() < usable_limit)
            .map(|r| RamRun { start: r.start, len: r.len.min(usable_limit - r.start.get()) })
            .collect();
        let file_starts = installed
            .iter()
            .scan(0, |offset, r| {
                let start = *offset;
                *offset += r.len;
                Some(start)
            })
            .collect();
        let range = |name, start, len| PhysRange { name, start: PhysAddr::new(start), len };
        PhysMap {
            ram,
            installed,
            reserved: vec![
                range("legacy video and BIOS", low_end, LOW_RAM_RESUME - low_end),
                range("PCI/MMIO hole", HOLE_START, FOUR_GB - HOLE_START),
            ],
            mmio_windows: MMIO_WINDOWS.iter().map(|&(name, start, len)| range(name, start, len)).collect(),
            io_port_space: 0x10000,
            burned,
            nolowmem,
            file_starts,
        }
    }

    /// Bytes in [`PhysMap::ram`]: what the memory manager manages, burned memory included.
    pub fn managed_ram(&self) -> u64 {
        self.ram.iter().map(|r| r.len).sum()
    }

    /// RAM left for the system: [`PhysMap::managed_ram`] less what `/BURNMEMORY` takes.
    pub fn usable_ram(&self) -> u64 {
        self.managed_ram().saturating_sub(self.burned)
    }

    /// Length of the host file that backs installed RAM (all installed runs, packed in order).
    pub fn ram_file_len(&self) -> u64 {
        self.installed.iter().map(|r| r.len).sum()
    }

    /// Offset of `pa` in the RAM file, or `None` if `pa` is not installed RAM. O(log runs).
    pub fn file_offset(&self, pa: PhysAddr) -> Option<u64> {
        let index = self.installed.partition_point(|r| r.start <= pa).checked_sub(1)?;
        let run = self.installed[index];
        run.contains(pa).then(|| self.file_starts[index] + pa.since(run.start))
    }

    /// The physical address stored at `off` in the RAM file. O(log runs).
    ///
    /// # Panics
    /// If `off` is not below [`PhysMap::ram_file_len`].
    pub fn phys_of_file_offset(&self, off: u64) -> PhysAddr {
        assert!(off < self.ram_file_len(), "offset {off:#x} is beyond the RAM file");
        let index = self.file_starts.partition_point(|&s| s <= off) - 1;
        PhysAddr::new(self.installed[index].start.get() + (off - self.file_starts[index]))
    }

    /// The last byte of usable RAM (inclusive, like `MmHighestPhysicalAddress`).
    pub fn highest_ram_address(&self) -> PhysAddr {
        self.ram.last().map_or(PhysAddr::new(0), |r| PhysAddr::new(r.limit().get() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GB: u64 = 1 << 30;

    #[test]
    fn four_gb_remaps_the_hole_above_4_gb() {
        let map = PhysMap::new(4 * GB, PageShift::K4, FOUR_GB, 0, false);
        let runs: Vec<(u64, u64)> = map.installed.iter().map(|r| (r.start.get(), r.len)).collect();
        assert_eq!(runs, [(0, 0x9F000), (MB, 3 * GB - MB), (4 * GB, GB - 0x9F000 + MB)]);
        assert_eq!(map.ram_file_len(), 4 * GB);
        assert_eq!(map.ram.len(), 2, "32 physical bits: nothing above 4 GB");
        assert_eq!(map.usable_ram(), 3 * GB - MB + 0x9F000);
        assert_eq!(map.highest_ram_address(), PhysAddr::new(3 * GB - 1));
        assert_eq!(map.file_offset(PhysAddr::new(0xA0000)), None);
        assert_eq!(map.file_offset(PhysAddr::new(MB)), Some(0x9F000));
        assert_eq!(map.file_offset(PhysAddr::new(4 * GB)), Some(3 * GB - MB + 0x9F000));
        assert_eq!(map.file_offset(PhysAddr::new(3 * GB)), None);
    }

    #[test]
    fn small_machines_end_below_the_hole_and_ia64_rounds_the_legacy_area() {
        let map = PhysMap::new(64 * MB, PageShift::K8, u64::MAX, 0, false);
        assert_eq!(map.installed[0].len, 0x9E000);
        assert_eq!(map.installed.len(), 2);
        assert_eq!(map.highest_ram_address(), PhysAddr::new(MB + 64 * MB - 0x9E000 - 1));
        assert_eq!(map.reserved[0].start, PhysAddr::new(0x9E000));
    }

    proptest! {
        #[test]
        fn file_offsets_round_trip(mb in 64u64..300_000, pick in any::<u64>(), limit_gb in 1u64..400) {
            let map = PhysMap::new(mb * MB, PageShift::K4, limit_gb * GB, 0, false);
            prop_assert_eq!(map.ram_file_len(), mb * MB);
            let off = pick % map.ram_file_len();
            let pa = map.phys_of_file_offset(off);
            prop_assert_eq!(map.file_offset(pa), Some(off));
            prop_assert!(map.ram.iter().all(|r| r.limit().get() <= limit_gb * GB && r.len > 0));
            for pair in map.installed.windows(2) {
                prop_assert!(pair[0].limit() <= pair[1].start);
            }
        }
    }
}
