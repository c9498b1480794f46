//! An adapter's configuration and its map registers as a finite resource
//! (research/dma-verifier-views.md §1.3, §1.4, §1.6): pure bookkeeping, no memory
//! touched, so it is tested against a naive model (`tests.rs`).
//!
//! [`configure`] is IoGetDmaAdapter's decision: the device's address limit, whether
//! its transfers need map registers backed by low memory, and NumberOfMapRegisters.
//! [`Registers`] hands out runs of consecutive map registers (a "map register file",
//! the `MapRegisterBase` a driver gets back) first fit; a run is consecutive so that
//! a device without scatter/gather sees one contiguous logical range (§1.3,
//! "software S/G").

use ntmem_machine::{Edition, Release};

use super::controller::{Channel, CASCADE_CHANNEL, LAST_ISA_CHANNEL, WORD_CHANNEL_BOUNDARY};
use super::description::{DeviceDescription, DmaRefusal, InterfaceType};

/// Highest address a 24-bit device (ISA, subordinate, or a master that set neither
/// address flag) reaches: 16 MB − 1 (§1.3).
pub const LIMIT_24_BIT: u64 = 0xFF_FFFF;
/// Highest address a 32-bit master reaches (§1.3).
pub const LIMIT_32_BIT: u64 = 0xFFFF_FFFF;
/// Map registers of a subordinate (system DMA) device at most: 16, one 64 KB
/// controller window (§1.3: ReactOS's cap, Neptune OS's ISA cap); twice that on a
/// word channel (5–7), whose window is 128 KB.
pub const SUBORDINATE_CAP: u32 = 16;
/// Map registers of a bus master at most when its transfers need them: 256 (1 MB of
/// bounce buffer). Windows' real cap is undocumented (research §7 U-4); this is
/// ntmem's choice, higher than ReactOS's 16 so that a 64 KB transfer plus an
/// unaligned start (17 registers, §1.3) is granted in one piece as Windows grants it.
pub const MASTER_CAP: u32 = 256;
/// The physical boundary a system DMA controller's transfer may not cross: 64 KB
/// (§1.3 table, "runs may not cross a 64 KB physical boundary").
pub const SUBORDINATE_BOUNDARY: u64 = 0x1_0000;

/// What IoGetDmaAdapter decided for a device (§1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterConfig {
    /// The `Version` asked for: 0, 1, 2 or 3 (the DMA_OPERATIONS table is v1 for 0
    /// and 1).
    pub version: u32,
    /// A bus master (else the system DMA controller transfers for it).
    pub master: bool,
    /// The device does hardware scatter/gather (masters only; a subordinate device's
    /// capability is the controller's, §1.2).
    pub scatter_gather: bool,
    /// The highest logical address the device reaches.
    pub limit: u64,
    /// Transfers go through map registers backed by low memory (bounce buffers);
    /// false only for scatter/gather masters that reach all of RAM (§1.3 table).
    pub bounces: bool,
    /// NumberOfMapRegisters returned to the driver.
    pub map_registers: u32,
    /// A physical boundary no mapped run may cross (0 = none): 64 KB for system DMA.
    pub boundary: u64,
    /// The controller channel of a subordinate device.
    pub channel: Option<Channel>,
    /// A subordinate device's `AutoInitialize`: its channel reloads at terminal count.
    pub auto_initialize: bool,
}

impl AdapterConfig {
    /// The DMA_OPERATIONS version of the adapter's table: 1 for description versions
    /// 0 and 1, else the description's version (§1.1).
    pub fn operations_version(&self) -> u32 {
        self.version.max(1)
    }
}

/// The description versions the machine's HAL accepts: 0 and 1 always, 2 from
/// Windows XP on, 3 from Windows 8 on (§1.1).
pub fn supports_version(edition: &Edition, version: u32) -> bool {
    match version {
        0 | 1 => true,
        2 => edition.release >= Release::WindowsXp,
        3 => edition.release >= Release::Windows8,
        _ => false,
    }
}

/// IoGetDmaAdapter's decision for `desc` on a machine whose highest RAM byte is
/// `highest_ram` and whose pages are `page` bytes (§1.1–§1.3):
///
/// - `MaximumLength` is masked to 31 bits; a scatter/gather PCI master is a 32-bit
///   device whatever it set; `Dma64BitAddresses` wins over `Dma32BitAddresses`;
///   `InterfaceTypeUndefined` asks the PDO, and every PDO ntmem makes is on its PCI
///   bus.
/// - The limit is 2^64−1 for a 64-bit master, 4 GB − 1 for a 32-bit master, 16 MB − 1
///   otherwise; in version 3, `DmaAddressWidth` alone decides a master's limit
///   (2^w − 1; the address flags are ignored, §1.2).
/// - A subordinate device of version 3 with a nonzero `DmaRequestLine` is served
///   by the request line's controller (whether it exists is the caller's check):
///   it reaches `DmaAddressWidth` bits (32 when 0), does scatter/gather, and has
///   no boundary — ntmem's model of a CSRT controller. Any other subordinate
///   device uses ISA channel `DmaChannel`: 24 bits, 64 KB windows, or 128 KB ones
///   on the word channels 5–7 (see [`super::controller`]).
/// - Map registers are backed by memory (the device bounces) unless the device is a
///   scatter/gather master whose limit covers all RAM.
/// - NumberOfMapRegisters is BYTES_TO_PAGES(MaximumLength) + 1 ("one more than the
///   number needed", getting-an-adapter-object), capped at [`MASTER_CAP`] or, for
///   system DMA, [`SUBORDINATE_CAP`]; a subordinate device that can be reprogrammed
///   mid-request (ScatterGather) gets exactly 1.
///
/// # Errors
/// The reason IoGetDmaAdapter returns NULL: an unsupported version, a version 3
/// `DmaAddressWidth` above 64 (or 0 for a master), a subordinate device on channel
/// 4 or beyond 7.
pub fn configure(
    edition: &Edition,
    desc: &DeviceDescription,
    highest_ram: u64,
    page: u64,
) -> Result<AdapterConfig, DmaRefusal> {
    if !supports_version(edition, desc.version) {
        return Err(DmaRefusal::UnsupportedVersion(desc.version));
    }
    let pci = matches!(desc.interface_type, InterfaceType::Pci | InterfaceType::Undefined);
    let max_len = u64::from(desc.maximum_length & 0x7FFF_FFFF);
    let pages = max_len.div_ceil(page);
    let v3 = desc.version >= 3;
    let width = desc.dma_address_width;
    if v3 && (width > 64 || (desc.master && width == 0)) {
        return Err(DmaRefusal::BadAddressWidth(width));
    }
    let width_limit = |w: u32| if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    if desc.master {
        let dma32 = desc.dma32_bit_addresses || (desc.scatter_gather && pci);
        let limit = if v3 {
            width_limit(width)
        } else if desc.dma64_bit_addresses {
            u64::MAX
        } else if dma32 {
            LIMIT_32_BIT
        } else {
            LIMIT_24_BIT
        };
        let bounces = !(desc.scatter_gather && highest_ram <= limit);
        let map_registers = (pages + 1).min(u64::from(MASTER_CAP)) as u32;
        return Ok(AdapterConfig {
            version: desc.version,
            master: true,
            scatter_gather: desc.scatter_gather,
            limit,
            bounces,
            map_registers,
            boundary: 0,
            channel: None,
            auto_initialize: false,
        });
    }
    if v3 && desc.dma_request_line != 0 {
        let limit = width_limit(if width == 0 { 32 } else { width });
        return Ok(AdapterConfig {
            version: desc.version,
            master: false,
            scatter_gather: true,
            limit,
            bounces: highest_ram > limit,
            map_registers: (pages + 1).min(u64::from(MASTER_CAP)) as u32,
            boundary: 0,
            channel: Some(Channel::RequestLine(desc.dma_request_line)),
            auto_initialize: desc.auto_initialize,
        });
    }
    if desc.dma_channel == CASCADE_CHANNEL || desc.dma_channel > LAST_ISA_CHANNEL {
        return Err(DmaRefusal::BadChannel(desc.dma_channel));
    }
    let channel = Channel::Isa(desc.dma_channel);
    let (boundary, cap) = if channel.is_word_channel() {
        (WORD_CHANNEL_BOUNDARY, 2 * SUBORDINATE_CAP)
    } else {
        (SUBORDINATE_BOUNDARY, SUBORDINATE_CAP)
    };
    let map_registers = if desc.scatter_gather { 1 } else { (pages + 1).min(u64::from(cap)) as u32 };
    Ok(AdapterConfig {
        version: desc.version,
        master: false,
        scatter_gather: false,
        limit: LIMIT_24_BIT,
        bounces: highest_ram > LIMIT_24_BIT,
        map_registers,
        boundary,
        channel: Some(channel),
        auto_initialize: desc.auto_initialize,
    })
}

/// An adapter's map registers: `total` of them, each free or in use. Runs are
/// handed out first fit from the lowest index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registers {
    used: Vec<bool>,
}

impl Registers {
    /// `total` free registers.
    pub fn new(total: u32) -> Registers {
        Registers { used: vec![false; total as usize] }
    }

    /// How many there are.
    pub fn total(&self) -> u32 {
        self.used.len() as u32
    }

    /// How many are in use.
    pub fn in_use(&self) -> u32 {
        self.used.iter().filter(|&&u| u).count() as u32
    }

    /// The first index of `n` consecutive free registers, now taken; `None` when no
    /// such run is free (the request waits). `n` = 0 takes nothing and gives index 0.
    pub fn allocate(&mut self, n: u32) -> Option<u32> {
        let n = n as usize;
        if n == 0 {
            return Some(0);
        }
        let mut run = 0;
        for i in 0..self.used.len() {
            run = if self.used[i] { 0 } else { run + 1 };
            if run == n {
                let first = i + 1 - n;
                self.used[first..=i].iter_mut().for_each(|u| *u = true);
                return Some(first as u32);
            }
        }
        None
    }

    /// Frees `n` registers from `first`; false (nothing freed) when any of them is
    /// not in use or beyond the end.
    pub fn free(&mut self, first: u32, n: u32) -> bool {
        let (first, n) = (first as usize, n as usize);
        let Some(run) = self.used.get_mut(first..first.saturating_add(n)) else { return false };
        if run.iter().any(|&u| !u) {
            return false;
        }
        run.iter_mut().for_each(|u| *u = false);
        true
    }
}

/// `IO_ALLOCATION_ACTION`, what an AdapterControl routine returns (§1.4: the values
/// start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AllocationAction {
    /// `KeepObject` (1): the channel stays allocated until FreeAdapterChannel,
    /// which frees the map registers too.
    KeepObject,
    /// `DeallocateObject` (2): the channel and the map registers are released.
    DeallocateObject,
    /// `DeallocateObjectKeepRegisters` (3): the channel is released, the registers
    /// stay until FreeMapRegisters.
    DeallocateObjectKeepRegisters,
}

impl AllocationAction {
    /// The returned value; anything outside 1..=3 is undefined in Windows, and ntmem
    /// keeps the channel (`KeepObject`, the conservative reading: nothing is freed
    /// behind the driver's back).
    pub fn from_raw(raw: u32) -> AllocationAction {
        match raw {
            2 => Self::DeallocateObject,
            3 => Self::DeallocateObjectKeepRegisters,
            _ => Self::KeepObject,
        }
    }
}
