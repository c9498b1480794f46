//! The device side of bus-master DMA (issue 13 item 1): a device transfers at the
//! logical address the driver programmed into its registers, as hardware would —
//! wherever it points, with no check, so a wrong address, a forgotten flush or a
//! buffer freed too early shows as the memory damage it causes.
//!
//! The seed's NIC has no documented register map; ntmem's model gives it three
//! bus-master DMA registers in its CSR block (BAR 0), **ntmem's choice**:
//! [`DMA_ADDRESS_LOW`], [`DMA_ADDRESS_HIGH`] and [`DMA_LENGTH`]. A device declared
//! with fewer than 64 address bits ([`super::DmaState::set_address_bits`]) drops
//! the higher ones: a driver that tells the HAL its 32-bit device reaches 64 bits
//! gets buffers above 4 GB unbounced, and the device writes below 4 GB instead.

use super::{device_access, LogicalAddress};
use crate::hal::device::DeviceId;
use crate::Machine;

/// CSR offset of the transfer's logical address, low 32 bits.
pub const DMA_ADDRESS_LOW: u64 = 0x100;
/// CSR offset of the transfer's logical address, high 32 bits.
pub const DMA_ADDRESS_HIGH: u64 = 0x104;
/// CSR offset of the transfer's length in bytes.
pub const DMA_LENGTH: u64 = 0x108;
/// The most a device moves in one transfer (16 MB; a scenario step's limit).
pub const MAX_TRANSFER: u32 = 16 << 20;

/// Which way the data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The device reads memory (the driver's WriteToDevice TRUE).
    ToDevice,
    /// The device writes memory (WriteToDevice FALSE).
    FromDevice,
}

/// What one transfer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The logical address in the registers.
    pub logical: LogicalAddress,
    /// The address the device put on the bus (the logical one without the bits
    /// the device does not drive).
    pub reached: LogicalAddress,
    /// The length in the registers.
    pub length: u32,
    /// Bytes that reached RAM (the rest of the range is no RAM).
    pub in_ram: usize,
    /// For a transfer to the device, what it read.
    pub read: Vec<u8>,
}

/// Device `id` transfers as its DMA registers say: to the device, it reads
/// `length` bytes at the address; from it, it writes `data` there, repeated to fill
/// `length`.
///
/// # Errors
/// A device without a CSR block big enough for the registers, a length above
/// [`MAX_TRANSFER`], or empty `data` for a write to memory.
pub fn device_transfer(m: &Machine, id: DeviceId, direction: Direction, data: &[u8]) -> Result<Transfer, String> {
    let device = m.hal().device(id).ok_or("no such device")?;
    let name = device.name;
    let block = device.blocks.first().filter(|b| b.len >= DMA_LENGTH + 4);
    if block.is_none() {
        return Err(format!("{name} has no DMA registers (CSR block 0 up to {:#x})", DMA_LENGTH + 4));
    }
    let low = u64::from(device.read_u32(0, DMA_ADDRESS_LOW));
    let high = u64::from(device.read_u32(0, DMA_ADDRESS_HIGH));
    let logical = LogicalAddress::new(high << 32 | low);
    let bits = m.hal().dma().address_bits(id);
    let reached = LogicalAddress::new(if bits >= 64 { logical.get() } else { logical.get() & ((1u64 << bits) - 1) });
    let length = device.read_u32(0, DMA_LENGTH);
    if length > MAX_TRANSFER {
        return Err(format!("{name}'s DMA length register holds {length:#x}, above the {MAX_TRANSFER:#x} ntmem moves"));
    }
    let mut buf = match direction {
        Direction::ToDevice => vec![0u8; length as usize],
        Direction::FromDevice if data.is_empty() => return Err("a transfer from the device needs data".into()),
        Direction::FromDevice => data.iter().copied().cycle().take(length as usize).collect(),
    };
    let in_ram = device_access(m, reached, &mut buf, direction == Direction::FromDevice);
    let read = if direction == Direction::ToDevice { buf } else { Vec::new() };
    Ok(Transfer { logical, reached, length, in_ram, read })
}
