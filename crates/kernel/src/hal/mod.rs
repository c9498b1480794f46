//! `hal`: the hardware abstraction layer's view of devices — register blocks in port
//! or memory space, the 64 KB I/O-port space, resource lists (seed 000 §3, §8;
//! DESIGN.md, layer `hal`).
//!
//! [`Hal`] is the machine's device state: the [`device::Bus`] (every device and where
//! the chipset decodes its blocks — simulated hardware, below every layer, which is
//! why `mm`'s MmMapIoSpace may consult it), the records MmMapIoSpace keeps
//! ([`crate::mm::io_space`]) and a floating-bus page. Modules: [`device`] (devices,
//! placement, moving blocks between spaces), [`port`] (READ_PORT_* / WRITE_PORT_*),
//! [`register`] (READ_REGISTER_* / WRITE_REGISTER_*), [`resources`] (raw and
//! translated CM_RESOURCE_LISTs).
//!
//! Every machine boots with one device, the seed §8 NIC ([`device::DeviceSpec::nic`]),
//! placed at the start of the profile's PCI memory window and at port 0xC000.
//!
//! Locking: the bus is behind a read-write lock (port accesses and MmMapIoSpace
//! read it; adding and moving devices write it); MmMapIoSpace records have their own
//! lock, always taken before the bus's.

pub mod device;
pub mod dma;
pub mod port;
pub mod register;
pub mod resources;

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use ntmem_host::Ram;
use ntmem_machine::{Arch, MachineProfile, PhysAddr, PhysRange};

use crate::mm::io_space::{IoSpaceFinding, IoSpaceMaps};
use crate::mm::MmError;
use device::{Bus, Decode, Device, DeviceId, DeviceSpec, HalError, Space};
use resources::{resource_list, CmResourceList, Resources};

/// Bytes of the floating-bus file: what reads of memory space that nothing decodes
/// return (all ones), mapped in chunks of this size.
pub(crate) const FLOATING_LEN: u64 = 0x1_0000;

/// The machine's devices and I/O-space state.
#[derive(Debug)]
pub struct Hal {
    bus: RwLock<Bus>,
    io: Mutex<IoSpaceMaps>,
    dma: Mutex<dma::DmaState>,
    floating: Ram,
    arch: Arch,
    processors: u32,
}

impl Hal {
    /// The devices of a machine booted from `profile`: the NIC of seed §8.
    ///
    /// # Errors
    /// When the host cannot create a register file.
    pub fn new(profile: &MachineProfile) -> Result<Hal, MmError> {
        let shift = profile.arch.page_shift();
        let window =
            profile.physmap.mmio_windows.iter().find(|w| w.name == "PCI memory").copied().unwrap_or(PhysRange {
                name: "PCI memory",
                start: PhysAddr::new(0xC000_0000),
                len: 0x3EC0_0000,
            });
        let mut bus = Bus::new(window, shift);
        bus.add(&DeviceSpec::nic()).map_err(|e| match e {
            HalError::Host(h) => MmError::Host(h),
            _ => MmError::InvalidRequest("the default devices do not fit the PCI window"),
        })?;
        let floating = Ram::new(FLOATING_LEN).map_err(MmError::Host)?;
        floating.fill(0, FLOATING_LEN, 0xFF);
        Ok(Hal {
            bus: RwLock::new(bus),
            io: Mutex::new(IoSpaceMaps::default()),
            dma: Mutex::new(dma::DmaState::default()),
            floating,
            arch: profile.arch,
            processors: profile.processors,
        })
    }

    /// The bus, for reading.
    pub fn bus(&self) -> RwLockReadGuard<'_, Bus> {
        self.bus.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn io(&self) -> MutexGuard<'_, IoSpaceMaps> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The DMA adapters (taken before physical memory's lock).
    pub fn dma(&self) -> MutexGuard<'_, dma::DmaState> {
        self.dma.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn floating(&self) -> &Ram {
        &self.floating
    }

    /// Adds a device (hot-plug, or before a test's driver starts).
    ///
    /// # Errors
    /// [`HalError`] when it does not fit.
    pub fn add_device(&self, spec: &DeviceSpec) -> Result<DeviceId, HalError> {
        self.bus.write().unwrap_or_else(|e| e.into_inner()).add(spec)
    }

    /// The first device called `name`.
    pub fn find(&self, name: &str) -> Option<DeviceId> {
        self.bus().devices().iter().position(|d| d.name == name).map(DeviceId)
    }

    /// A device, as it is now (its register files are shared: reads and writes
    /// through the copy reach the device).
    pub fn device(&self, id: DeviceId) -> Option<Device> {
        self.bus().device(id).cloned()
    }

    /// Moves block `block` of `id` into `space`, as a chipset that decodes it there
    /// (seed §8); see [`Bus::relocate`].
    ///
    /// # Errors
    /// [`HalError::Mapped`] while an MmMapIoSpace mapping covers the block's current
    /// memory range (a moved block would leave the driver's mapping pointing at the
    /// old place); otherwise as [`Bus::relocate`].
    pub fn relocate(&self, id: DeviceId, block: usize, space: Space) -> Result<Decode, HalError> {
        let io = self.io();
        let mut bus = self.bus.write().unwrap_or_else(|e| e.into_inner());
        if let Some((pa, len)) = bus.memory_range(id, block) {
            if io.covers(pa, len) {
                return Err(HalError::Mapped);
            }
        }
        bus.relocate(id, block, space)
    }

    /// `AllocatedResources` for `id`: the raw resource list.
    pub fn allocated_resources(&self, id: DeviceId) -> Option<CmResourceList> {
        self.bus().device(id).map(|d| resource_list(d, Resources::Raw, self.arch, self.processors))
    }

    /// `AllocatedResourcesTranslated` for `id`: the translated resource list.
    pub fn allocated_resources_translated(&self, id: DeviceId) -> Option<CmResourceList> {
        self.bus().device(id).map(|d| resource_list(d, Resources::Translated, self.arch, self.processors))
    }

    /// What MmMapIoSpace and MmUnmapIoSpace found wrong so far.
    pub fn io_space_findings(&self) -> Vec<IoSpaceFinding> {
        self.io().findings().to_vec()
    }
}
