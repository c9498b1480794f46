//! Devices and their register blocks, and where the chipset decodes them (seed 000
//! §3, §8).
//!
//! A [`Device`] has register blocks. Each block is *wired* in one space — I/O ports
//! or memory — which is what its raw resource says, and is *decoded* at a place in
//! one space now ([`Decode`]), which is what its translated resource says. The two
//! differ when a chipset maps a port block into memory space (seed §8: "some
//! chipsets change the mapping"); [`Bus::relocate`] moves a block between spaces so
//! a test can play that chipset.
//!
//! A block's registers are bytes in a host [`Ram`] of their own, so MmMapIoSpace maps
//! real memory and a driver's READ_REGISTER_ULONG reads what the device model holds;
//! port accesses read and write the same bytes. Two blocks may share one register
//! file — the seed's NIC decodes its control/status registers both through a 4 KB
//! memory BAR and a 32-byte I/O BAR, as the Intel 8255x the sample comes from does.
//! Registers are plain storage: reading has no side effect, and a port written
//! repeatedly keeps the last value (no FIFOs yet).
//!
//! Placement: memory blocks go in the profile's "PCI memory" window, each at a
//! multiple of its size rounded up to a power of two and to the page size (as PCI
//! BARs are naturally aligned); port blocks go in `0xC000..0x10000`, aligned the same
//! way (minimum 4). Locking: the [`Bus`] sits behind the HAL's read-write lock.

use std::sync::Arc;

use ntmem_host::Ram;
use ntmem_machine::{PageShift, PhysAddr, PhysRange};

use super::port::IoPort;

/// First port handed to devices (PCI I/O BARs of the era sat high in the 64 KB space).
const PORT_BASE: u64 = 0xC000;
/// The end of I/O space (seed §3: 64 KB).
const PORT_END: u64 = 0x1_0000;

/// Index of a device on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DeviceId(pub usize);

/// One of the two physical spaces of a PC (seed §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Space {
    /// The 64 KB I/O-port space (IN/OUT, READ_PORT_*).
    Port,
    /// Physical memory space (MOV through a mapping, READ_REGISTER_*).
    Memory,
}

/// Where a block answers: a port range's first port, or a physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Decode {
    /// In I/O space from this port.
    Port(IoPort),
    /// In memory space from this physical address (page-aligned).
    Memory(PhysAddr),
}

impl Decode {
    /// The space.
    pub fn space(self) -> Space {
        match self {
            Decode::Port(_) => Space::Port,
            Decode::Memory(_) => Space::Memory,
        }
    }
}

/// A block of device registers.
#[derive(Clone, Debug)]
pub struct RegisterBlock {
    /// Its name (what the device's data sheet calls it).
    pub name: &'static str,
    /// Its length in bytes (the BAR size).
    pub len: u64,
    /// How the hardware is wired: the raw resource.
    pub wired: Decode,
    /// Where the chipset decodes it now: the translated resource.
    pub decode: Decode,
    regs: Arc<Ram>,
}

impl RegisterBlock {
    /// The register file (shared with blocks that alias it).
    pub fn registers(&self) -> &Arc<Ram> {
        &self.regs
    }
}

/// A device: register blocks in BAR order and an interrupt line.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its name.
    pub name: &'static str,
    /// Register blocks, in BAR order (seed §8: "BARs are always returned in order").
    pub blocks: Vec<RegisterBlock>,
    /// The interrupt line it is wired to, if any.
    pub interrupt: Option<u32>,
}

impl Device {
    /// Reads the device's own view of block `block`'s registers at `offset` (what the
    /// device model holds, whatever space the block is decoded in).
    ///
    /// # Panics
    /// If the block does not exist or the range leaves its register file.
    pub fn read(&self, block: usize, offset: u64, buf: &mut [u8]) {
        self.blocks[block].regs.read(offset, buf);
    }
    /// Sets block `block`'s registers at `offset`, as the device would.
    ///
    /// # Panics
    /// As [`Device::read`].
    pub fn write(&self, block: usize, offset: u64, data: &[u8]) {
        self.blocks[block].regs.write(offset, data);
    }
    /// A little-endian ULONG register.
    ///
    /// # Panics
    /// As [`Device::read`].
    pub fn read_u32(&self, block: usize, offset: u64) -> u32 {
        let mut b = [0; 4];
        self.read(block, offset, &mut b);
        u32::from_le_bytes(b)
    }
    /// Sets a little-endian ULONG register.
    ///
    /// # Panics
    /// As [`Device::read`].
    pub fn write_u32(&self, block: usize, offset: u64, value: u32) {
        self.write(block, offset, &value.to_le_bytes());
    }
}

/// What a device is made of, before the bus places it.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    name: &'static str,
    blocks: Vec<(&'static str, u64, Space, Option<usize>)>,
    interrupt: Option<u32>,
}

impl DeviceSpec {
    /// A device with no registers yet.
    pub fn new(name: &'static str) -> DeviceSpec {
        DeviceSpec { name, blocks: Vec::new(), interrupt: None }
    }
    /// A block of `len` bytes wired in `space`, with a register file of its own.
    pub fn block(mut self, name: &'static str, len: u64, space: Space) -> Self {
        self.blocks.push((name, len, space, None));
        self
    }
    /// A block of `len` bytes wired in `space` that decodes the registers of block
    /// `of` (the same registers reachable through two BARs).
    pub fn alias(mut self, name: &'static str, len: u64, space: Space, of: usize) -> Self {
        self.blocks.push((name, len, space, Some(of)));
        self
    }
    /// The interrupt line.
    pub fn interrupt(mut self, line: u32) -> Self {
        self.interrupt = Some(line);
        self
    }
    /// The seed's NIC: a 4 KB memory CSR block (BAR 0), the same CSRs through a
    /// 32-byte I/O block (BAR 1), interrupt line 11.
    pub fn nic() -> DeviceSpec {
        DeviceSpec::new("nic0")
            .block("CSR (memory)", 0x1000, Space::Memory)
            .alias("CSR (I/O)", 32, Space::Port, 0)
            .interrupt(11)
    }
}

/// Why the bus refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HalError {
    /// No device or block with that number.
    #[error("no such device or register block")]
    NoSuchBlock,
    /// No free, aligned room in the space for the block.
    #[error("no room for a {len:#x}-byte block in {space:?} space")]
    NoRoom {
        /// The space.
        space: Space,
        /// The block's length.
        len: u64,
    },
    /// An alias names a block that does not come before it.
    #[error("block {0} aliases a block that does not exist")]
    BadAlias(usize),
    /// MmMapIoSpace mappings still cover the block's memory range.
    #[error("the block is mapped by MmMapIoSpace; unmap it before moving it")]
    Mapped,
    /// The host could not create the register file.
    #[error("host: {0}")]
    Host(ntmem_host::HostError),
}

/// The machine's devices and the chipset's decoding of them.
#[derive(Debug)]
pub struct Bus {
    devices: Vec<Device>,
    window: PhysRange,
    shift: PageShift,
}

impl Bus {
    /// An empty bus whose memory blocks go in `window`.
    pub fn new(window: PhysRange, shift: PageShift) -> Bus {
        Bus { devices: Vec::new(), window, shift }
    }

    /// Every device.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// A device.
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(id.0)
    }

    /// Places `spec`'s blocks (each where it is wired) and adds the device.
    ///
    /// # Errors
    /// [`HalError`] when a space is full, an alias is wrong or the host refuses.
    pub fn add(&mut self, spec: &DeviceSpec) -> Result<DeviceId, HalError> {
        let mut blocks: Vec<RegisterBlock> = Vec::new();
        for (i, &(name, len, space, alias)) in spec.blocks.iter().enumerate() {
            let regs = match alias {
                Some(of) => Arc::clone(&blocks.get(of).ok_or(HalError::BadAlias(i))?.regs),
                None => Arc::new(Ram::new(self.regs_len(len)).map_err(HalError::Host)?),
            };
            let at = self.free_slot(space, len, &blocks)?;
            blocks.push(RegisterBlock { name, len, wired: at, decode: at, regs });
        }
        self.devices.push(Device { name: spec.name, blocks, interrupt: spec.interrupt });
        Ok(DeviceId(self.devices.len() - 1))
    }

    fn regs_len(&self, len: u64) -> u64 {
        let unit = self.shift.page_size().max(ntmem_host::page_size() as u64);
        len.max(1).next_multiple_of(unit)
    }

    /// The bytes a block occupies in its space: memory blocks whole pages.
    fn extent(&self, decode: Decode, len: u64) -> (u64, u64) {
        match decode {
            Decode::Port(p) => (u64::from(p.0), len),
            Decode::Memory(pa) => (pa.get(), self.shift.round_up(len)),
        }
    }

    fn align(&self, space: Space, len: u64) -> u64 {
        let natural = len.max(4).next_power_of_two();
        match space {
            Space::Port => natural,
            Space::Memory => natural.max(self.shift.page_size()),
        }
    }

    /// The lowest free, aligned place for `len` bytes in `space`, also avoiding `extra`.
    fn free_slot(&self, space: Space, len: u64, extra: &[RegisterBlock]) -> Result<Decode, HalError> {
        let align = self.align(space, len);
        let (lo, hi) = match space {
            Space::Port => (PORT_BASE, PORT_END),
            Space::Memory => (self.window.start.get(), self.window.start.get() + self.window.len),
        };
        let taken: Vec<(u64, u64)> = self
            .devices
            .iter()
            .flat_map(|d| d.blocks.iter())
            .chain(extra)
            .filter(|b| b.decode.space() == space)
            .map(|b| self.extent(b.decode, b.len))
            .collect();
        let want = match space {
            Space::Port => len,
            Space::Memory => self.shift.round_up(len),
        };
        let mut at = lo.next_multiple_of(align);
        while at + want <= hi {
            match taken.iter().find(|&&(s, l)| at < s + l && s < at + want) {
                Some(&(s, l)) => at = (s + l).next_multiple_of(align),
                None => {
                    return Ok(match space {
                        Space::Port => Decode::Port(IoPort(u16::try_from(at).expect("below 64 KB"))),
                        Space::Memory => Decode::Memory(PhysAddr::new(at)),
                    })
                }
            }
        }
        Err(HalError::NoRoom { space, len })
    }

    /// Moves block `block` of device `id` into `space` (as a chipset that decodes it
    /// there would): back to where it is wired if that space is its wiring and the
    /// place is free, else to the lowest free aligned place. Its registers keep their
    /// values. Returns where it now decodes.
    ///
    /// # Errors
    /// [`HalError::NoSuchBlock`], [`HalError::NoRoom`].
    pub fn relocate(&mut self, id: DeviceId, block: usize, space: Space) -> Result<Decode, HalError> {
        let b = self.devices.get(id.0).and_then(|d| d.blocks.get(block)).ok_or(HalError::NoSuchBlock)?.clone();
        if b.decode.space() == space {
            return Ok(b.decode);
        }
        // The block decodes in the other space now, so it occupies nothing in `space`.
        let placed = if b.wired.space() == space && !self.occupied(space, self.extent(b.wired, b.len)) {
            b.wired
        } else {
            self.free_slot(space, b.len, &[])?
        };
        self.devices[id.0].blocks[block].decode = placed;
        Ok(placed)
    }

    fn occupied(&self, space: Space, (start, len): (u64, u64)) -> bool {
        self.devices.iter().flat_map(|d| d.blocks.iter()).filter(|o| o.decode.space() == space).any(|o| {
            let (s, l) = self.extent(o.decode, o.len);
            start < s + l && s < start + len
        })
    }

    /// The memory range block `block` of `id` decodes now, if it is in memory space.
    pub fn memory_range(&self, id: DeviceId, block: usize) -> Option<(PhysAddr, u64)> {
        let b = self.devices.get(id.0)?.blocks.get(block)?;
        match b.decode {
            Decode::Memory(pa) => Some((pa, self.shift.round_up(b.len))),
            Decode::Port(_) => None,
        }
    }

    /// The register file and offset behind the physical page at `pa`, if a block
    /// decodes it.
    pub fn decode_memory(&self, pa: PhysAddr) -> Option<(Arc<Ram>, u64)> {
        self.devices.iter().flat_map(|d| d.blocks.iter()).find_map(|b| match b.decode {
            Decode::Memory(start) if start <= pa && pa.since(start) < self.shift.round_up(b.len) => {
                Some((Arc::clone(&b.regs), pa.since(start)))
            }
            _ => None,
        })
    }

    /// The register file and offset behind I/O port `port`, if a block decodes it.
    pub fn decode_port(&self, port: u64) -> Option<(&Ram, u64)> {
        self.devices.iter().flat_map(|d| d.blocks.iter()).find_map(|b| match b.decode {
            Decode::Port(start) if u64::from(start.0) <= port && port - u64::from(start.0) < b.len => {
                Some((&*b.regs, port - u64::from(start.0)))
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> Bus {
        let window = PhysRange { name: "PCI memory", start: PhysAddr::new(0xC000_0000), len: 0x1000_0000 };
        Bus::new(window, PageShift::K4)
    }

    #[test]
    fn blocks_are_placed_aligned_and_apart() {
        let mut bus = bus();
        let a = bus.add(&DeviceSpec::nic()).unwrap();
        let b = bus.add(&DeviceSpec::new("big").block("BAR0", 0x10000, Space::Memory)).unwrap();
        let c = bus.add(&DeviceSpec::nic()).unwrap();
        assert_eq!(bus.device(a).unwrap().blocks[0].decode, Decode::Memory(PhysAddr::new(0xC000_0000)));
        assert_eq!(bus.device(a).unwrap().blocks[1].decode, Decode::Port(IoPort(0xC000)));
        assert_eq!(bus.device(b).unwrap().blocks[0].decode, Decode::Memory(PhysAddr::new(0xC001_0000)));
        assert_eq!(bus.device(c).unwrap().blocks[0].decode, Decode::Memory(PhysAddr::new(0xC000_1000)));
        assert_eq!(bus.device(c).unwrap().blocks[1].decode, Decode::Port(IoPort(0xC020)));
    }

    #[test]
    fn aliased_blocks_share_registers_and_moves_keep_them() {
        let mut bus = bus();
        let id = bus.add(&DeviceSpec::nic()).unwrap();
        bus.device(id).unwrap().write_u32(0, 4, 0xDEAD_BEEF);
        let (ram, off) = bus.decode_port(0xC004).unwrap();
        assert_eq!(off, 4);
        let mut b = [0; 4];
        ram.read(off, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xDEAD_BEEF);
        let to = bus.relocate(id, 1, Space::Memory).unwrap();
        assert_eq!(to, Decode::Memory(PhysAddr::new(0xC000_1000)));
        assert!(bus.decode_port(0xC004).is_none());
        let (ram, off) = bus.decode_memory(PhysAddr::new(0xC000_1000)).unwrap();
        assert_eq!((ram.load_u32(4), off), (0xDEAD_BEEF, 0));
        assert_eq!(bus.relocate(id, 1, Space::Port).unwrap(), Decode::Port(IoPort(0xC000)));
    }
}
