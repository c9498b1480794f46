//! `CM_RESOURCE_LIST`: the hardware resources the PnP manager hands a driver in
//! IRP_MN_START_DEVICE, raw and translated (seed 000 §8; WDK `wdm.h`,
//! `CM_PARTIAL_RESOURCE_DESCRIPTOR`).
//!
//! Rust structures with the WDK's field names and values; the byte-exact C layout
//! comes with the WDK boundary. The *raw* list says how a block is wired (port or
//! memory); the *translated* list says where the chipset decodes it now, and so
//! whether the driver must use READ_PORT_* or MmMapIoSpace and READ_REGISTER_*.
//! Interrupts: raw = the line; translated = a vector and DIRQL. ntmem's choice of
//! numbers (Windows' depend on the HAL): x86 as the PIC HAL, vector 0x30 + line and
//! DIRQL 27 − line; x64 and IA-64 vector 0x60 + line and DIRQL vector / 16.

use ntmem_machine::{Arch, PhysAddr};

use super::device::{Decode, Device};

/// `CM_RESOURCE_TYPE` values of the descriptors ntmem produces (`CmResourceType*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u8)]
pub enum CmResourceType {
    /// CmResourceTypeNull (0).
    Null = 0,
    /// CmResourceTypePort (1): registers in I/O space.
    Port = 1,
    /// CmResourceTypeInterrupt (2).
    Interrupt = 2,
    /// CmResourceTypeMemory (3): registers in memory space.
    Memory = 3,
}

/// `CM_SHARE_DISPOSITION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u8)]
pub enum CmShareDisposition {
    /// CmResourceShareUndetermined (0).
    Undetermined = 0,
    /// CmResourceShareDeviceExclusive (1).
    DeviceExclusive = 1,
    /// CmResourceShareDriverExclusive (2).
    DriverExclusive = 2,
    /// CmResourceShareShared (3).
    Shared = 3,
}

/// `INTERFACE_TYPE` of the buses ntmem has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(i32)]
pub enum InterfaceType {
    /// Internal (0).
    Internal = 0,
    /// Isa (1).
    Isa = 1,
    /// PCIBus (5).
    PciBus = 5,
}

/// `Flags` for CmResourceTypePort: the port lives in memory space (0).
pub const CM_RESOURCE_PORT_MEMORY: u16 = 0x0000;
/// `Flags` for CmResourceTypePort: the port lives in I/O space.
pub const CM_RESOURCE_PORT_IO: u16 = 0x0001;
/// `Flags` for CmResourceTypePort: the device decodes 10 bits of the port address.
pub const CM_RESOURCE_PORT_10_BIT_DECODE: u16 = 0x0004;
/// `Flags` for CmResourceTypePort: 12-bit decode.
pub const CM_RESOURCE_PORT_12_BIT_DECODE: u16 = 0x0008;
/// `Flags` for CmResourceTypePort: 16-bit decode.
pub const CM_RESOURCE_PORT_16_BIT_DECODE: u16 = 0x0010;
/// `Flags` for CmResourceTypePort: positive decode.
pub const CM_RESOURCE_PORT_POSITIVE_DECODE: u16 = 0x0020;
/// `Flags` for CmResourceTypeMemory: readable and writable (0).
pub const CM_RESOURCE_MEMORY_READ_WRITE: u16 = 0x0000;
/// `Flags` for CmResourceTypeMemory: read-only.
pub const CM_RESOURCE_MEMORY_READ_ONLY: u16 = 0x0001;
/// `Flags` for CmResourceTypeMemory: write-only.
pub const CM_RESOURCE_MEMORY_WRITE_ONLY: u16 = 0x0002;
/// `Flags` for CmResourceTypeMemory: prefetchable.
pub const CM_RESOURCE_MEMORY_PREFETCHABLE: u16 = 0x0004;
/// `Flags` for CmResourceTypeMemory: write-combined.
pub const CM_RESOURCE_MEMORY_COMBINEDWRITE: u16 = 0x0008;
/// `Flags` for CmResourceTypeMemory: 24-bit addressing.
pub const CM_RESOURCE_MEMORY_24: u16 = 0x0010;
/// `Flags` for CmResourceTypeMemory: cacheable.
pub const CM_RESOURCE_MEMORY_CACHEABLE: u16 = 0x0020;
/// `Flags` for CmResourceTypeInterrupt: level-sensitive (0).
pub const CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE: u16 = 0x0000;
/// `Flags` for CmResourceTypeInterrupt: latched (edge).
pub const CM_RESOURCE_INTERRUPT_LATCHED: u16 = 0x0001;

/// The union `u` of a descriptor, for the types ntmem produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CmResourceData {
    /// `u.Port`: `Start` holds the port number when the resource is in I/O space.
    Port {
        /// Start.
        start: PhysAddr,
        /// Length in bytes.
        length: u32,
    },
    /// `u.Interrupt`.
    Interrupt {
        /// Level (raw: the line; translated: the DIRQL).
        level: u32,
        /// Vector (raw: the line; translated: the IDT vector).
        vector: u32,
        /// Affinity: the processors that may take it.
        affinity: u64,
    },
    /// `u.Memory`.
    Memory {
        /// Start (a physical address).
        start: PhysAddr,
        /// Length in bytes.
        length: u32,
    },
}

/// `CM_PARTIAL_RESOURCE_DESCRIPTOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CmPartialResourceDescriptor {
    /// `Type`.
    pub r#type: CmResourceType,
    /// `ShareDisposition`.
    pub share_disposition: CmShareDisposition,
    /// `Flags` (`CM_RESOURCE_*`, by type).
    pub flags: u16,
    /// `u`.
    pub u: CmResourceData,
}

/// `CM_PARTIAL_RESOURCE_LIST`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CmPartialResourceList {
    /// `Version` (1).
    pub version: u16,
    /// `Revision` (1).
    pub revision: u16,
    /// `Count`: the number of descriptors.
    pub count: u32,
    /// `PartialDescriptors`.
    pub partial_descriptors: Vec<CmPartialResourceDescriptor>,
}

/// `CM_FULL_RESOURCE_DESCRIPTOR`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CmFullResourceDescriptor {
    /// `InterfaceType`.
    pub interface_type: InterfaceType,
    /// `BusNumber`.
    pub bus_number: u32,
    /// `PartialResourceList`.
    pub partial_resource_list: CmPartialResourceList,
}

/// `CM_RESOURCE_LIST`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CmResourceList {
    /// `Count`: the number of full descriptors (1 for a PnP device).
    pub count: u32,
    /// `List`.
    pub list: Vec<CmFullResourceDescriptor>,
}

/// Raw or translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resources {
    /// `AllocatedResources`: as the hardware is wired.
    Raw,
    /// `AllocatedResourcesTranslated`: as the system decodes it now.
    Translated,
}

fn region(at: Decode, len: u64) -> CmPartialResourceDescriptor {
    let length = u32::try_from(len).expect("register blocks are below 4 GB");
    let (r#type, flags, u) = match at {
        Decode::Port(p) => (
            CmResourceType::Port,
            CM_RESOURCE_PORT_IO | CM_RESOURCE_PORT_16_BIT_DECODE,
            CmResourceData::Port { start: PhysAddr::new(u64::from(p.0)), length },
        ),
        Decode::Memory(pa) => {
            (CmResourceType::Memory, CM_RESOURCE_MEMORY_READ_WRITE, CmResourceData::Memory { start: pa, length })
        }
    };
    CmPartialResourceDescriptor { r#type, share_disposition: CmShareDisposition::DeviceExclusive, flags, u }
}

/// The resource list of `device`: one descriptor per register block in BAR order,
/// then its interrupt.
pub fn resource_list(device: &Device, which: Resources, arch: Arch, processors: u32) -> CmResourceList {
    let mut descriptors: Vec<_> = device
        .blocks
        .iter()
        .map(|b| match which {
            Resources::Raw => region(b.wired, b.len),
            Resources::Translated => region(b.decode, b.len),
        })
        .collect();
    if let Some(line) = device.interrupt {
        let (level, vector) = match (which, arch) {
            (Resources::Raw, _) => (line, line),
            (Resources::Translated, Arch::X86) => (27 - line.min(15), 0x30 + line),
            (Resources::Translated, Arch::X64 | Arch::Ia64) => ((0x60 + line) / 16, 0x60 + line),
        };
        let affinity = if processors >= 64 { u64::MAX } else { (1u64 << processors) - 1 };
        descriptors.push(CmPartialResourceDescriptor {
            r#type: CmResourceType::Interrupt,
            share_disposition: CmShareDisposition::Shared,
            flags: CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE,
            u: CmResourceData::Interrupt { level, vector, affinity },
        });
    }
    let count = u32::try_from(descriptors.len()).expect("a handful of descriptors");
    CmResourceList {
        count: 1,
        list: vec![CmFullResourceDescriptor {
            interface_type: InterfaceType::PciBus,
            bus_number: 0,
            partial_resource_list: CmPartialResourceList {
                version: 1,
                revision: 1,
                count,
                partial_descriptors: descriptors,
            },
        }],
    }
}
