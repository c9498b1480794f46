//! `DEVICE_DESCRIPTION` (research/dma-verifier-views.md §1.2; learn.microsoft.com
//! "DEVICE_DESCRIPTION structure (wdm.h)") and what IoGetDmaAdapter derives from it:
//! the device's address limit and its map-register needs (§1.3).
//!
//! The layout is the same on x86 and x64 (no pointers): 0x28 bytes up to `DmaPort`,
//! 0x40 with the Windows 8 tail that version 3 reads.

use std::fmt;

/// `sizeof(DEVICE_DESCRIPTION)` without the Windows 8 tail (§1.2).
pub const DESCRIPTION_V2_SIZE: usize = 0x28;
/// `sizeof(DEVICE_DESCRIPTION)` with the Windows 8 tail (§1.2).
pub const DESCRIPTION_SIZE: usize = 0x40;

/// `INTERFACE_TYPE` (§1.2, enum values from the WDK's `wdm.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum InterfaceType {
    /// `InterfaceTypeUndefined` (−1): the bus of the PDO is used.
    Undefined,
    /// `Internal` (0).
    Internal,
    /// `Isa` (1).
    Isa,
    /// `Eisa` (2).
    Eisa,
    /// `PCIBus` (5).
    Pci,
    /// `PNPISABus` (14).
    PnpIsa,
    /// Any other bus, by its value (MicroChannel 3 … ACPIBus 17).
    Other(i32),
}

impl InterfaceType {
    /// The value a driver stored.
    pub fn from_raw(raw: i32) -> InterfaceType {
        match raw {
            -1 => Self::Undefined,
            0 => Self::Internal,
            1 => Self::Isa,
            2 => Self::Eisa,
            5 => Self::Pci,
            14 => Self::PnpIsa,
            n => Self::Other(n),
        }
    }

    /// Its INTERFACE_TYPE name in the WDK (the value for the others).
    pub fn name(self) -> String {
        match self {
            Self::Undefined => "InterfaceTypeUndefined".into(),
            Self::Internal => "Internal".into(),
            Self::Isa => "Isa".into(),
            Self::Eisa => "Eisa".into(),
            Self::Pci => "PCIBus".into(),
            Self::PnpIsa => "PNPISABus".into(),
            Self::Other(n) => format!("INTERFACE_TYPE {n}"),
        }
    }
}

/// `DMA_WIDTH` (§1.2): the system controller's transfer width (subordinate devices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DmaWidth {
    /// `Width8Bits` (0).
    Bits8,
    /// `Width16Bits` (1).
    Bits16,
    /// `Width32Bits` (2).
    Bits32,
    /// `Width64Bits` (3).
    Bits64,
    /// `WidthNoWrap` (4).
    NoWrap,
    /// A value beyond the enumeration.
    Invalid(u32),
}

impl DmaWidth {
    fn from_raw(raw: u32) -> DmaWidth {
        match raw {
            0 => Self::Bits8,
            1 => Self::Bits16,
            2 => Self::Bits32,
            3 => Self::Bits64,
            4 => Self::NoWrap,
            n => Self::Invalid(n),
        }
    }
}

/// `DMA_SPEED` (§1.2), read for subordinate devices of versions 0–2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DmaSpeed {
    /// `Compatible` (0).
    Compatible,
    /// `TypeA` (1).
    TypeA,
    /// `TypeB` (2).
    TypeB,
    /// `TypeC` (3).
    TypeC,
    /// `TypeF` (4).
    TypeF,
    /// A value beyond the enumeration.
    Invalid(u32),
}

impl DmaSpeed {
    fn from_raw(raw: u32) -> DmaSpeed {
        match raw {
            0 => Self::Compatible,
            1 => Self::TypeA,
            2 => Self::TypeB,
            3 => Self::TypeC,
            4 => Self::TypeF,
            n => Self::Invalid(n),
        }
    }
}

/// A `DEVICE_DESCRIPTION` as a driver filled it in, every field kept (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceDescription {
    /// `Version` (0x00): 0 (`DEVICE_DESCRIPTION_VERSION`), 1, 2 or 3.
    pub version: u32,
    /// `Master` (0x04): bus master (else subordinate: the system DMA controller).
    pub master: bool,
    /// `ScatterGather` (0x05): hardware scatter/gather.
    pub scatter_gather: bool,
    /// `DemandMode` (0x06): version 2, subordinate devices only.
    pub demand_mode: bool,
    /// `AutoInitialize` (0x07): subordinate devices.
    pub auto_initialize: bool,
    /// `Dma32BitAddresses` (0x08): versions 0–2.
    pub dma32_bit_addresses: bool,
    /// `IgnoreCount` (0x09): versions 1+.
    pub ignore_count: bool,
    /// `Reserved1` (0x0A): must be FALSE.
    pub reserved1: bool,
    /// `Dma64BitAddresses` (0x0B): versions 0–2.
    pub dma64_bit_addresses: bool,
    /// `BusNumber` (0x0C): not used by WDM drivers.
    pub bus_number: u32,
    /// `DmaChannel` (0x10): subordinate devices (ISA 0–7, 4 is the cascade).
    pub dma_channel: u32,
    /// `InterfaceType` (0x14).
    pub interface_type: InterfaceType,
    /// `DmaWidth` (0x18).
    pub dma_width: DmaWidth,
    /// `DmaSpeed` (0x1C).
    pub dma_speed: DmaSpeed,
    /// `MaximumLength` (0x20): the largest single transfer, bytes.
    pub maximum_length: u32,
    /// `DmaPort` (0x24): obsolete.
    pub dma_port: u32,
    /// `DmaAddressWidth` (0x28): version 3 masters, 1..=64.
    pub dma_address_width: u32,
    /// `DmaControllerInstance` (0x2C): not used.
    pub dma_controller_instance: u32,
    /// `DmaRequestLine` (0x30): version 3 subordinate devices.
    pub dma_request_line: u32,
    /// `DeviceAddress` (0x38): version 3 subordinate devices.
    pub device_address: u64,
}

impl DeviceDescription {
    /// The structure's bytes: the first 0x28 always, the Windows 8 tail only for
    /// version 3 (a pre-Windows 8 driver's structure is 0x28 bytes long, and the
    /// fields after it are not read) — `bytes` may be 0x28 long then.
    pub fn from_bytes(bytes: &[u8]) -> Option<DeviceDescription> {
        if bytes.len() < DESCRIPTION_V2_SIZE {
            return None;
        }
        let u32_at = |o: usize| bytes.get(o..o + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let u64_at = |o: usize| u64::from(u32_at(o)) | u64::from(u32_at(o + 4)) << 32;
        let flag = |o: usize| bytes[o] != 0;
        let version = u32_at(0);
        let v3 = version >= 3 && bytes.len() >= DESCRIPTION_SIZE;
        Some(DeviceDescription {
            version,
            master: flag(4),
            scatter_gather: flag(5),
            demand_mode: flag(6),
            auto_initialize: flag(7),
            dma32_bit_addresses: flag(8),
            ignore_count: flag(9),
            reserved1: flag(0xA),
            dma64_bit_addresses: flag(0xB),
            bus_number: u32_at(0xC),
            dma_channel: u32_at(0x10),
            interface_type: InterfaceType::from_raw(u32_at(0x14) as i32),
            dma_width: DmaWidth::from_raw(u32_at(0x18)),
            dma_speed: DmaSpeed::from_raw(u32_at(0x1C)),
            maximum_length: u32_at(0x20),
            dma_port: u32_at(0x24),
            dma_address_width: if v3 { u32_at(0x28) } else { 0 },
            dma_controller_instance: if v3 { u32_at(0x2C) } else { 0 },
            dma_request_line: if v3 { u32_at(0x30) } else { 0 },
            device_address: if v3 { u64_at(0x38) } else { 0 },
        })
    }

    /// A zeroed description of `version` (drivers must zero it first, §1.1).
    pub fn zeroed(version: u32) -> DeviceDescription {
        let mut bytes = [0u8; DESCRIPTION_SIZE];
        bytes[..4].copy_from_slice(&version.to_le_bytes());
        DeviceDescription::from_bytes(&bytes).expect("0x40 bytes")
    }
}

/// Why IoGetDmaAdapter returns NULL, or a DMA routine refuses a request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DmaRefusal {
    /// `Version` is not one this machine's HAL supports (§1.1: NULL, how drivers
    /// probe for v2/v3).
    UnsupportedVersion(u32),
    /// Version 3 with `DmaAddressWidth` 0 or above 64 (§1.2).
    BadAddressWidth(u32),
    /// A subordinate device on channel 4 (the cascade) or above 7 (§1.2).
    BadChannel(u32),
    /// A version 3 subordinate device on a request line no system DMA controller
    /// serves (the SystemDma sample's expected outcome on a PC).
    NoRequestLine(u32),
    /// No run of low memory for the adapter's map registers.
    NoMapBuffer {
        /// Registers (pages) wanted.
        pages: u64,
        /// The device's highest reachable address.
        limit: u64,
    },
    /// A common buffer needs more physically contiguous memory within the device's
    /// reach than there is (seed 001, research §4.2).
    NotEnoughContiguousMemory {
        /// Pages asked for.
        pages: u64,
        /// The device's highest reachable address.
        limit: u64,
        /// The longest free run below the limit, pages.
        largest_run: u64,
    },
    /// The contiguous pages were there, the system PTEs to map them were not.
    NoSystemPtes {
        /// Pages to map.
        pages: u64,
    },
    /// Every map register of the adapter is charged (seed 002: each common buffer
    /// uses at least one).
    NoMapRegisterLeft {
        /// The adapter's NumberOfMapRegisters.
        total: u32,
    },
    /// A routine ran at an IRQL its page does not allow.
    WrongIrql {
        /// The routine.
        routine: &'static str,
        /// The IRQL it was called at.
        irql: u8,
    },
}

impl fmt::Display for DmaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reach = |limit: u64| match limit.checked_add(1) {
            None => "2^64".to_string(),
            Some(end) if end >= 1 << 30 => format!("{} GB", end >> 30),
            Some(end) => format!("{} MB", end >> 20),
        };
        match *self {
            Self::UnsupportedVersion(v) => write!(f, "DEVICE_DESCRIPTION version {v} is not supported here"),
            Self::BadAddressWidth(w) => write!(f, "DmaAddressWidth {w} is not in 1..=64"),
            Self::BadChannel(c) => write!(f, "DMA channel {c} cannot be used (4 is the cascade channel; 0-7 exist)"),
            Self::NoRequestLine(l) => write!(f, "no system DMA controller serves request line {l:#x}"),
            Self::NoMapBuffer { pages, limit } => {
                write!(f, "no {pages} physically contiguous pages below {limit:#x} for map registers")
            }
            Self::NotEnoughContiguousMemory { pages, limit, largest_run } => write!(
                f,
                "not enough physically contiguous memory within the device's reach (below {}): \
                 {pages} pages needed, the largest free run there is {largest_run} pages",
                reach(limit)
            ),
            Self::NoSystemPtes { pages } => write!(f, "no {pages} free system PTEs to map the buffer"),
            Self::NoMapRegisterLeft { total } => {
                write!(f, "all {total} map registers of the adapter are in use (each common buffer uses one)")
            }
            Self::WrongIrql { routine, irql } => write!(f, "{routine} called at IRQL {irql}"),
        }
    }
}
