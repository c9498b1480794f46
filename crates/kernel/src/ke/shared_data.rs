//! `KUSER_SHARED_DATA`: the page of time and system facts the kernel keeps for
//! everyone to read (WDK `ntddk.h`, `KUSER_SHARED_DATA`; the x64 WDK's
//! `KeQueryTickCount`, `KeQuerySystemTime` and `KeQueryInterruptTime` macros read it).
//!
//! **Where it is.** Windows puts its kernel view at `KI_USER_SHARED_DATA`:
//! `0xFFDF0000` on x86 (inside the HAL's 4 MB) and `0xFFFFF780_00000000` on x64
//! (research/nt-algorithms.md §8.1, §8.2). ntmem maps it at the x86 address itself,
//! and on x64 and IA-64 at the layout's `SharedUserData` region — the same place in
//! ntmem's placement of the high half (`0x900_0000_0000`, `ntmem_machine::layout`),
//! since no Linux process can map the canonical address. A driver cannot use
//! Windows' constant, so `include/ntmem/ke.h` defines `KI_USER_SHARED_DATA` from the
//! variable `KiUserSharedData` the loader binds to the page's address (relocation
//! included); `SharedUserData`, `SharedTickCount` and friends follow from it.
//!
//! **What is in it.** The fields drivers read, at their x64 offsets
//! ([`KUserSharedData`], asserted at compile time here and in the header):
//! `TickCountMultiplier`, `InterruptTime`, `SystemTime`, `ImageNumberLow/High`,
//! `NtSystemRoot`, `NtProductType`, `ProductTypeIsValid`, `NtMajorVersion`,
//! `NtMinorVersion`, `ProcessorFeatures`, `SuiteMask`, `KdDebuggerEnabled`,
//! `NumberOfPhysicalPages` and `TickCount`. The times move with simulated time
//! ([`SharedData::set_time`], called as the clock advances), each `KSYSTEM_TIME`
//! written `High2Time`, `LowPart`, `High1Time` as Windows writes it, so a reader that
//! compares the two high parts never sees a torn value.
//!
//! **Read-only.** The page is mapped read-only: a driver's write stops with
//! ATTEMPTED_WRITE_TO_READONLY_MEMORY (0xBE, `crate::trap`). Where that differs: on
//! the editions ntmem simulates, the kernel's own view was writable (the clock
//! interrupt wrote the times through it), so a stray write went unnoticed there;
//! the user view was the read-only one.
//!
//! **The user view.** Every process maps the same frame read-only at `0x7FFE0000`
//! (`layout.shared_user_data`; `crate::mm::process`), so a driver in a process's
//! context reads the same page there, and its write through that address is an
//! access violation its `__try` can take, as on Windows.

use ntmem_machine::{Arch, MachineProfile, PagingMode, Pfn, RegionKind, Va};

use crate::mm::frames::{FrameRequest, PhysicalMemory};
use crate::mm::pfn::PageUse;
use crate::mm::space::{Access, AddressSpace};
use crate::mm::MmError;
use crate::rtl::environment::system_environment;
use crate::rtl::version::OsVersion;

/// The system time the simulated machines boot at, in 100-ns units since 1601-01-01
/// (Windows' FILETIME epoch): 2005-01-01 00:00:00 UTC, fixed, so runs repeat.
pub const BOOT_SYSTEM_TIME: i64 = 127_490_112_000_000_000;

/// `KeQueryTimeIncrement`'s answer: the clock interval, 15.625 ms in 100-ns units.
pub const TIME_INCREMENT: u32 = 156_250;

/// 100-ns units per millisecond of simulated time.
pub const UNITS_PER_MS: i64 = 10_000;

/// `KI_USER_SHARED_DATA` on x86.
pub const X86_KERNEL_ADDRESS: u64 = 0xFFDF_0000;

/// `KSYSTEM_TIME`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KSystemTime {
    /// `LowPart`.
    pub low_part: u32,
    /// `High1Time`.
    pub high1_time: i32,
    /// `High2Time`.
    pub high2_time: i32,
}

/// `KUSER_SHARED_DATA` up to `Cookie`, x64 layout (the fields ntmem fills are named;
/// the rest is reserved here).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KUserSharedData {
    /// `TickCountLowDeprecated`.
    pub tick_count_low_deprecated: u32,
    /// `TickCountMultiplier`: the tick length in 100-ns units, times 2^24 / 10,000.
    pub tick_count_multiplier: u32,
    /// `InterruptTime`.
    pub interrupt_time: KSystemTime,
    /// `SystemTime`.
    pub system_time: KSystemTime,
    /// `TimeZoneBias`.
    pub time_zone_bias: KSystemTime,
    /// `ImageNumberLow`.
    pub image_number_low: u16,
    /// `ImageNumberHigh`.
    pub image_number_high: u16,
    /// `NtSystemRoot`.
    pub nt_system_root: [u16; 260],
    /// `MaxStackTraceDepth` … `Reserved2`.
    pub reserved_0x238: [u32; 11],
    /// `NtProductType`.
    pub nt_product_type: u32,
    /// `ProductTypeIsValid`.
    pub product_type_is_valid: u8,
    /// Padding.
    pub pad_0x269: [u8; 3],
    /// `NtMajorVersion`.
    pub nt_major_version: u32,
    /// `NtMinorVersion`.
    pub nt_minor_version: u32,
    /// `ProcessorFeatures[PROCESSOR_FEATURE_MAX]`.
    pub processor_features: [u8; 64],
    /// `Reserved1` … `SystemExpirationDate`.
    pub reserved_0x2b4: [u32; 7],
    /// `SuiteMask`.
    pub suite_mask: u32,
    /// `KdDebuggerEnabled`.
    pub kd_debugger_enabled: u8,
    /// `NXSupportPolicy` and padding.
    pub pad_0x2d5: [u8; 3],
    /// `ActiveConsoleId` … `LastSystemRITEventTickCount`.
    pub reserved_0x2d8: [u32; 4],
    /// `NumberOfPhysicalPages`.
    pub number_of_physical_pages: u32,
    /// `SafeBootMode` … `SystemCall` and the rest before `TickCount`.
    pub reserved_0x2ec: [u32; 13],
    /// `TickCount` (a `KSYSTEM_TIME`; `TickCountQuad` in its union).
    pub tick_count: KSystemTime,
    /// `TickCountPad`.
    pub tick_count_pad: u32,
    /// `Cookie`.
    pub cookie: u32,
}

// Windows' offsets (WDK ntddk.h; the x64 WDK's SharedInterruptTime, SharedSystemTime
// and SharedTickCount are KI_USER_SHARED_DATA + 0x8, + 0x14 and + 0x320).
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(KUserSharedData, tick_count_multiplier) == 0x004);
    assert!(offset_of!(KUserSharedData, interrupt_time) == 0x008);
    assert!(offset_of!(KUserSharedData, system_time) == 0x014);
    assert!(offset_of!(KUserSharedData, image_number_low) == 0x02C);
    assert!(offset_of!(KUserSharedData, nt_system_root) == 0x030);
    assert!(offset_of!(KUserSharedData, nt_product_type) == 0x264);
    assert!(offset_of!(KUserSharedData, product_type_is_valid) == 0x268);
    assert!(offset_of!(KUserSharedData, nt_major_version) == 0x26C);
    assert!(offset_of!(KUserSharedData, nt_minor_version) == 0x270);
    assert!(offset_of!(KUserSharedData, processor_features) == 0x274);
    assert!(offset_of!(KUserSharedData, suite_mask) == 0x2D0);
    assert!(offset_of!(KUserSharedData, kd_debugger_enabled) == 0x2D4);
    assert!(offset_of!(KUserSharedData, number_of_physical_pages) == 0x2E8);
    assert!(offset_of!(KUserSharedData, tick_count) == 0x320);
    assert!(offset_of!(KUserSharedData, cookie) == 0x330);
};

/// `PF_*` indices of `ProcessorFeatures` (WDK `ntddk.h`).
const PF_COMPARE_EXCHANGE_DOUBLE: usize = 2;
const PF_MMX_INSTRUCTIONS_AVAILABLE: usize = 3;
const PF_XMMI_INSTRUCTIONS_AVAILABLE: usize = 6;
const PF_RDTSC_INSTRUCTION_AVAILABLE: usize = 8;
const PF_PAE_ENABLED: usize = 9;
const PF_XMMI64_INSTRUCTIONS_AVAILABLE: usize = 10;
const PF_NX_ENABLED: usize = 12;

/// The page: where it is mapped and the frame behind it.
#[derive(Debug)]
pub struct SharedData {
    va: Va,
    pfn: Pfn,
    file_offset: u64,
}

/// `KSYSTEM_TIME` parts of a 64-bit time: `(LowPart, High1Time = High2Time)`.
fn parts(t: i64) -> (u32, i32) {
    (t as u32, (t >> 32) as i32)
}

impl SharedData {
    /// Allocates the page, fills it for `profile` and maps it read-only at its
    /// address (module docs).
    ///
    /// # Errors
    /// No frame, or the mapping fails.
    pub fn map(profile: &MachineProfile, phys: &PhysicalMemory, space: &AddressSpace) -> Result<SharedData, MmError> {
        let va = match profile.arch {
            Arch::X86 => Va::new(X86_KERNEL_ADDRESS),
            _ => profile
                .layout
                .region(RegionKind::SharedUserData)
                .map(|r| r.start)
                .ok_or(MmError::InvalidRequest("the layout has no shared user data page"))?,
        };
        let frames = phys.allocate(&FrameRequest::new(1, PageUse::SharedUserData).zeroed())?;
        let file_offset = phys.file_offset(frames.first()).ok_or(MmError::NotRam(frames.first()))?;
        space.map(phys, va, &frames, Access::ReadOnly)?;
        let page = SharedData { va, pfn: frames.first(), file_offset };
        page.fill(profile, phys);
        Ok(page)
    }

    /// The kernel view's simulated address.
    pub fn va(&self) -> Va {
        self.va
    }

    /// The frame, which each process also maps at its user view.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    fn write(&self, phys: &PhysicalMemory, offset: usize, data: &[u8]) {
        phys.ram().write(self.file_offset + offset as u64, data);
    }

    fn write_u32(&self, phys: &PhysicalMemory, offset: usize, v: u32) {
        self.write(phys, offset, &v.to_le_bytes());
    }

    fn fill(&self, profile: &MachineProfile, phys: &PhysicalMemory) {
        use std::mem::offset_of;
        let version = OsVersion::of(profile.edition);
        let image = match profile.arch {
            Arch::X86 => 0x014C,
            Arch::X64 => 0x8664,
            Arch::Ia64 => 0x0200,
        };
        let multiplier = ((u64::from(TIME_INCREMENT) << 24) / 10_000) as u32;
        self.write_u32(phys, offset_of!(KUserSharedData, tick_count_multiplier), multiplier);
        self.write(phys, offset_of!(KUserSharedData, image_number_low), &[image as u8, (image >> 8) as u8]);
        self.write(phys, offset_of!(KUserSharedData, image_number_high), &[image as u8, (image >> 8) as u8]);
        let root = system_environment(profile.edition).into_iter().next().map(|(_, v)| v).unwrap_or_default();
        let root: Vec<u8> = root.iter().take(259).flat_map(|c| c.to_le_bytes()).collect();
        self.write(phys, offset_of!(KUserSharedData, nt_system_root), &root);
        self.write_u32(phys, offset_of!(KUserSharedData, nt_product_type), u32::from(version.product_type));
        self.write(phys, offset_of!(KUserSharedData, product_type_is_valid), &[1]);
        self.write_u32(phys, offset_of!(KUserSharedData, nt_major_version), version.major);
        self.write_u32(phys, offset_of!(KUserSharedData, nt_minor_version), version.minor);
        let mut features = [0u8; 64];
        let wide = matches!(profile.paging, PagingMode::X64 | PagingMode::X86Pae);
        for (index, on) in [
            (PF_COMPARE_EXCHANGE_DOUBLE, true),
            (PF_MMX_INSTRUCTIONS_AVAILABLE, true),
            (PF_XMMI_INSTRUCTIONS_AVAILABLE, true),
            (PF_RDTSC_INSTRUCTION_AVAILABLE, true),
            (PF_XMMI64_INSTRUCTIONS_AVAILABLE, true),
            (PF_PAE_ENABLED, wide),
            (PF_NX_ENABLED, profile.paging == PagingMode::X64),
        ] {
            features[index] = u8::from(on);
        }
        self.write(phys, offset_of!(KUserSharedData, processor_features), &features);
        self.write_u32(phys, offset_of!(KUserSharedData, suite_mask), u32::from(version.suite_mask));
        self.write(phys, offset_of!(KUserSharedData, kd_debugger_enabled), &[u8::from(profile.boot.debug)]);
        let pages = profile.physmap.usable_ram() / profile.arch.page_shift().page_size();
        self.write_u32(
            phys,
            offset_of!(KUserSharedData, number_of_physical_pages),
            u32::try_from(pages).unwrap_or(u32::MAX),
        );
        self.set_time(phys, 0);
    }

    /// Writes the times for `now_ms` of simulated time: `InterruptTime` (100-ns units
    /// since boot), `SystemTime` ([`BOOT_SYSTEM_TIME`] plus that) and `TickCount`
    /// (whole [`TIME_INCREMENT`]s since boot).
    pub fn set_time(&self, phys: &PhysicalMemory, now_ms: u64) {
        use std::mem::offset_of;
        let interrupt = i64::try_from(now_ms).unwrap_or(i64::MAX).saturating_mul(UNITS_PER_MS);
        let times = [
            (offset_of!(KUserSharedData, interrupt_time), interrupt),
            (offset_of!(KUserSharedData, system_time), BOOT_SYSTEM_TIME.saturating_add(interrupt)),
            (offset_of!(KUserSharedData, tick_count), interrupt / i64::from(TIME_INCREMENT)),
        ];
        for (at, t) in times {
            let (low, high) = parts(t);
            self.write(phys, at + 8, &high.to_le_bytes());
            self.write(phys, at, &low.to_le_bytes());
            self.write(phys, at + 4, &high.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_multiplier_is_windows_value_for_15_625_ms() {
        assert_eq!(((u64::from(TIME_INCREMENT) << 24) / 10_000) as u32, 0x0FA0_0000);
        assert_eq!(std::mem::size_of::<KUserSharedData>(), 0x334);
        assert_eq!(parts(0x1_0000_0002), (2, 1));
    }
}
