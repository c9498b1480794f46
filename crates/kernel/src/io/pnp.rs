//! Plug and Play, as far as a function driver's start and removal go (seed 000 §8;
//! learn.microsoft.com "IRP_MN_START_DEVICE", "IRP_MN_REMOVE_DEVICE",
//! "CM_RESOURCE_LIST structure (wdm.h)", "IoAttachDeviceToDeviceStack",
//! "IoDetachDevice", "DRIVER_EXTENSION structure (wdm.h)").
//!
//! The PnP manager's part: a physical device object (PDO) for a device of the
//! [`crate::hal`] bus ([`create_pdo`]), owned by no driver (its `DriverObject` is
//! NULL: the bus driver is not modelled); after the function driver's AddDevice
//! has created and attached its FDO, [`send`] delivers `IRP_MJ_PNP` with
//! `IRP_MN_START_DEVICE` and the device's raw and translated `CM_RESOURCE_LIST`s,
//! and later `IRP_MN_REMOVE_DEVICE`. Both IRPs start with `IoStatus.Status`
//! `STATUS_NOT_SUPPORTED`, as the PnP manager sends them.
//!
//! The resource lists are serialised by [`resource_list_bytes`] into nonpaged pool
//! (tag "PnpR", ntmem's choice) in the packed x64 layout of wdm.h, where the
//! structures sit between `pshpack4.h` and `poppack.h`:
//!
//! | structure                         | size | fields (offset)                                   |
//! |-----------------------------------|------|---------------------------------------------------|
//! | `CM_PARTIAL_RESOURCE_DESCRIPTOR`  | 0x14 | `Type` 0, `ShareDisposition` 1, `Flags` 2, `u` 4   |
//! | `u.Port` / `u.Memory`             |      | `Start` 4 (8 bytes, 4-aligned), `Length` 0xC       |
//! | `u.Interrupt`                     |      | `Level` 4, `Vector` 8, `Affinity` 0xC (KAFFINITY)  |
//! | `CM_PARTIAL_RESOURCE_LIST`        | 8 + 0x14·n | `Version` 0, `Revision` 2, `Count` 4, `PartialDescriptors` 8 |
//! | `CM_FULL_RESOURCE_DESCRIPTOR`     | 8 + list | `InterfaceType` 0, `BusNumber` 4, `PartialResourceList` 8 |
//! | `CM_RESOURCE_LIST`                | 4 + fulls | `Count` 0, `List` 4                               |
//!
//! The lists are the PnP manager's: freed when the start IRP comes back, so a
//! driver keeps what it needs (seed §8: "parse and save the translated resource
//! lists in the device extension").
//!
//! [`io_attach_device_to_device_stack`] attaches to the top of any chain, and
//! requests go to the top of the stack ([`io_get_attached_device`]). A function
//! driver may complete PnP IRPs itself or pass them down to the PDO
//! (`IoCallDriver`, [`super::stack`]); the bus driver is not modelled: the PDO
//! completes IRP_MN_START_DEVICE and IRP_MN_REMOVE_DEVICE with STATUS_SUCCESS and
//! other PnP IRPs with the status they hold. Where Windows would wait for the bus
//! driver to start the hardware first, ntmem's hardware is always on.

use ntmem_machine::Va;

use super::device::{self, at, read_bytes, write_bytes, DeviceObject, NewDevice};
use super::irp::{self, Irp, IrpContents, Parameters};
use super::{Dispatch, IrpRecord, MajorFunction};
use crate::bugcheck::BugCheck;
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::hal::resources::{CmResourceData, CmResourceList};
use crate::ke::processor::Cpu;

/// Pool tag of the resource lists handed to a driver at start ("PnpR", ntmem's).
pub const RESOURCE_LIST_TAG: PoolTag = PoolTag::new(*b"PnpR");
/// `sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR)` on x64 (packed to 4).
pub const PARTIAL_DESCRIPTOR_SIZE: usize = 0x14;
/// `FILE_DEVICE_BUS_EXTENDER`: the PDO's device type.
pub const FILE_DEVICE_BUS_EXTENDER: u32 = 0x2A;
/// The "driver" of PDOs in the I/O manager's device list: none (the bus driver is
/// not modelled; `DriverObject` is NULL).
pub const BUS_DRIVER: u64 = 0;

const OFF_ATTACHED: u64 = 0x18;
const OFF_STACK_SIZE: u64 = 0x4C;
const OFF_ALIGNMENT: u64 = 0x98;

impl NtStatus {
    /// `STATUS_NOT_SUPPORTED`: what a PnP IRP holds until a driver handles it.
    pub const NOT_SUPPORTED: NtStatus = NtStatus(0xC000_00BB);
}

/// `IRP_MN_*` of `IRP_MJ_PNP` that ntmem sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum PnpMinor {
    /// `IRP_MN_START_DEVICE` (0x00).
    StartDevice = 0x00,
    /// `IRP_MN_QUERY_REMOVE_DEVICE` (0x01).
    QueryRemoveDevice = 0x01,
    /// `IRP_MN_REMOVE_DEVICE` (0x02).
    RemoveDevice = 0x02,
    /// `IRP_MN_CANCEL_REMOVE_DEVICE` (0x03).
    CancelRemoveDevice = 0x03,
    /// `IRP_MN_STOP_DEVICE` (0x04).
    StopDevice = 0x04,
    /// `IRP_MN_QUERY_STOP_DEVICE` (0x05).
    QueryStopDevice = 0x05,
    /// `IRP_MN_SURPRISE_REMOVAL` (0x17).
    SurpriseRemoval = 0x17,
}

impl PnpMinor {
    /// The WDK's name.
    pub fn name(self) -> &'static str {
        match self {
            PnpMinor::StartDevice => "IRP_MN_START_DEVICE",
            PnpMinor::QueryRemoveDevice => "IRP_MN_QUERY_REMOVE_DEVICE",
            PnpMinor::RemoveDevice => "IRP_MN_REMOVE_DEVICE",
            PnpMinor::CancelRemoveDevice => "IRP_MN_CANCEL_REMOVE_DEVICE",
            PnpMinor::StopDevice => "IRP_MN_STOP_DEVICE",
            PnpMinor::QueryStopDevice => "IRP_MN_QUERY_STOP_DEVICE",
            PnpMinor::SurpriseRemoval => "IRP_MN_SURPRISE_REMOVAL",
        }
    }
}

/// A PnP request for a device stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PnpRequest {
    /// `IRP_MN_START_DEVICE` with `Parameters.StartDevice`.
    StartDevice {
        /// `AllocatedResources`: as the hardware is wired.
        raw: CmResourceList,
        /// `AllocatedResourcesTranslated`: as the system decodes it now.
        translated: CmResourceList,
    },
    /// A request without parameters (`IRP_MN_QUERY_REMOVE_DEVICE`,
    /// `IRP_MN_REMOVE_DEVICE`, `IRP_MN_SURPRISE_REMOVAL`, …).
    Plain(PnpMinor),
}

impl PnpRequest {
    /// `IRP_MN_REMOVE_DEVICE`.
    pub const REMOVE_DEVICE: PnpRequest = PnpRequest::Plain(PnpMinor::RemoveDevice);

    /// The minor function.
    pub fn minor(&self) -> PnpMinor {
        match self {
            PnpRequest::StartDevice { .. } => PnpMinor::StartDevice,
            PnpRequest::Plain(minor) => *minor,
        }
    }
}

/// What came back from a PnP IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PnpOutcome {
    /// What the dispatch routine returned (`None`: the driver has no
    /// `IRP_MJ_PNP` routine; the IRP was completed with STATUS_NOT_SUPPORTED).
    pub returned: Option<NtStatus>,
    /// Whether the IRP was completed.
    pub completed: bool,
    /// `IoStatus.Status` as completed (the returned status if it was not).
    pub status: NtStatus,
    /// `AllocatedResources` as the driver saw it (0 for other requests).
    pub raw: u64,
    /// `AllocatedResourcesTranslated` as the driver saw it.
    pub translated: u64,
}

/// `list` in the packed x64 layout of `CM_RESOURCE_LIST` (see the module table).
pub fn resource_list_bytes(list: &CmResourceList) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&list.count.to_le_bytes());
    for full in &list.list {
        b.extend_from_slice(&(full.interface_type as i32).to_le_bytes());
        b.extend_from_slice(&full.bus_number.to_le_bytes());
        let partial = &full.partial_resource_list;
        b.extend_from_slice(&partial.version.to_le_bytes());
        b.extend_from_slice(&partial.revision.to_le_bytes());
        b.extend_from_slice(&partial.count.to_le_bytes());
        for d in &partial.partial_descriptors {
            let start = b.len();
            b.push(d.r#type as u8);
            b.push(d.share_disposition as u8);
            b.extend_from_slice(&d.flags.to_le_bytes());
            match d.u {
                CmResourceData::Port { start, length } | CmResourceData::Memory { start, length } => {
                    b.extend_from_slice(&start.get().to_le_bytes());
                    b.extend_from_slice(&length.to_le_bytes());
                }
                CmResourceData::Interrupt { level, vector, affinity } => {
                    b.extend_from_slice(&level.to_le_bytes());
                    b.extend_from_slice(&vector.to_le_bytes());
                    b.extend_from_slice(&affinity.to_le_bytes());
                }
            }
            b.resize(start + PARTIAL_DESCRIPTOR_SIZE, 0);
        }
    }
    b
}

/// Creates the PDO of a bus device (what the bus driver does when it enumerates
/// it): a device object owned by no driver, `DO_BUS_ENUMERATED_DEVICE`, not
/// initializing. The inner `Err` is `STATUS_INSUFFICIENT_RESOURCES`.
///
/// # Errors
/// A bugcheck from the pool.
pub fn create_pdo(cpu: &Cpu<'_>) -> Result<Result<DeviceObject, NtStatus>, BugCheck> {
    let new = NewDevice {
        driver: BUS_DRIVER,
        extension_size: 0,
        device_type: FILE_DEVICE_BUS_EXTENDER,
        characteristics: 0,
        exclusive: false,
    };
    let pdo = match device::io_create_device(cpu, new)? {
        Ok(d) => d,
        Err(s) => return Ok(Err(s)),
    };
    let flags = pdo.flags(cpu)?;
    pdo.set_flags(
        cpu,
        (flags - device::DeviceFlags::DEVICE_INITIALIZING) | device::DeviceFlags::BUS_ENUMERATED_DEVICE,
    )?;
    Ok(Ok(pdo))
}

/// Deletes a PDO made by [`create_pdo`] (the bus driver, once the device is gone).
///
/// # Errors
/// A bugcheck from the pool.
pub fn delete_pdo(cpu: &Cpu<'_>, pdo: DeviceObject) -> Result<(), BugCheck> {
    device::io_delete_device(cpu, pdo).map(drop)
}

fn u64_at(cpu: &Cpu<'_>, va: Va) -> Result<u64, BugCheck> {
    Ok(u64::from_le_bytes(read_bytes(cpu, va)?))
}

/// `DEVICE_OBJECT.AttachedDevice` (None: nothing above it).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a device outside the address space.
pub fn attached_device(cpu: &Cpu<'_>, device: DeviceObject) -> Result<Option<DeviceObject>, BugCheck> {
    let a = u64_at(cpu, at(device.0, OFF_ATTACHED))?;
    Ok((a != 0).then(|| DeviceObject(Va::new(a))))
}

/// `IoGetAttachedDevice(DeviceObject)`: the highest device of `device`'s stack (the
/// one requests for `device` are sent to). A chain of `AttachedDevice` links longer
/// than 256 (a loop a driver made) ends there.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a device outside the address space.
pub fn io_get_attached_device(cpu: &Cpu<'_>, device: DeviceObject) -> Result<DeviceObject, BugCheck> {
    let mut top = device;
    for _ in 0..256 {
        match attached_device(cpu, top)? {
            Some(above) => top = above,
            None => break,
        }
    }
    Ok(top)
}

/// `IoAttachDeviceToDeviceStack(SourceDevice, TargetDevice)`: attaches `source`
/// above the highest device of `target`'s stack and returns that device (the
/// one `source` now sends IRPs down to). Sets the highest device's
/// `AttachedDevice`, and `source`'s `StackSize` (the lower one's + 1) and
/// `AlignmentRequirement` (the lower one's), as documented. `None` (NULL) when
/// `target` is not a device.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a device outside the address space.
pub fn io_attach_device_to_device_stack(
    cpu: &Cpu<'_>,
    source: DeviceObject,
    target: DeviceObject,
) -> Result<Option<DeviceObject>, BugCheck> {
    let known = |d: DeviceObject| cpu.machine().io().devices().iter().any(|r| r.object == d);
    if !known(target) || !known(source) || source == target {
        return Ok(None);
    }
    let top = io_get_attached_device(cpu, target)?;
    let [stack] = read_bytes::<1>(cpu, at(top.0, OFF_STACK_SIZE))?;
    let alignment: [u8; 4] = read_bytes(cpu, at(top.0, OFF_ALIGNMENT))?;
    write_bytes(cpu, at(top.0, OFF_ATTACHED), &source.0.get().to_le_bytes())?;
    write_bytes(cpu, at(source.0, OFF_STACK_SIZE), &[stack.saturating_add(1)])?;
    write_bytes(cpu, at(source.0, OFF_ALIGNMENT), &alignment)?;
    Ok(Some(top))
}

/// `IoDetachDevice(TargetDevice)`: clears `target`'s `AttachedDevice` (the driver
/// above detaches from the device it attached to).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a device outside the address space.
pub fn io_detach_device(cpu: &Cpu<'_>, target: DeviceObject) -> Result<(), BugCheck> {
    write_bytes(cpu, at(target.0, OFF_ATTACHED), &0u64.to_le_bytes())
}

/// Copies `list` into nonpaged pool; `Ok(None)`: no pool.
fn put_list(cpu: &Cpu<'_>, list: &CmResourceList) -> Result<Option<Va>, BugCheck> {
    let bytes = resource_list_bytes(list);
    let Some(va) = pool::allocate(cpu, PoolType::NonPagedPool, bytes.len() as u64, RESOURCE_LIST_TAG)? else {
        return Ok(None);
    };
    write_bytes(cpu, va, &bytes)?;
    Ok(Some(va))
}

/// Sends `IRP_MJ_PNP` / `request` to `device` (the top of the stack: the FDO)
/// through `driver`, at the caller's IRQL (PASSIVE_LEVEL), as kernel-mode.
///
/// # Errors
/// The bugcheck that stopped the machine (in the driver or the I/O manager).
pub fn send(
    cpu: &Cpu<'_>,
    device: DeviceObject,
    request: &PnpRequest,
    driver: &dyn Dispatch,
) -> Result<PnpOutcome, BugCheck> {
    let failed = |status| PnpOutcome { returned: None, completed: false, status, raw: 0, translated: 0 };
    let (mut raw, mut translated) = (None, None);
    let free_lists = |raw: Option<Va>, translated: Option<Va>| -> Result<(), BugCheck> {
        for va in [raw, translated].into_iter().flatten() {
            pool::free(cpu, va, Some(RESOURCE_LIST_TAG))?;
        }
        Ok(())
    };
    if let PnpRequest::StartDevice { raw: r, translated: t } = request {
        raw = put_list(cpu, r)?;
        translated = put_list(cpu, t)?;
        if raw.is_none() || translated.is_none() {
            free_lists(raw, translated)?;
            return Ok(failed(NtStatus::INSUFFICIENT_RESOURCES));
        }
    }
    let addr = |v: Option<Va>| v.map_or(0, Va::get);
    let parameters = match request {
        PnpRequest::StartDevice { .. } => Parameters::StartDevice { raw: addr(raw), translated: addr(translated) },
        PnpRequest::Plain(_) => Parameters::None,
    };
    let contents = IrpContents::system(MajorFunction::Pnp, request.minor() as u8, parameters, device);
    let Some(Sent { returned, completed: done, .. }) = send_system_irp(cpu, &contents, driver)? else {
        free_lists(raw, translated)?;
        return Ok(failed(NtStatus::INSUFFICIENT_RESOURCES));
    };
    free_lists(raw, translated)?;
    let status = done.unwrap_or(returned.unwrap_or(NtStatus::PENDING));
    Ok(PnpOutcome { returned, completed: done.is_some(), status, raw: addr(raw), translated: addr(translated) })
}

/// Sends the kernel-mode IRP `contents` describes (a PnP or power request) to the
/// top of its device's stack through `driver`, `IoStatus.Status`
/// STATUS_NOT_SUPPORTED as the PnP and power managers send them; a driver with no
/// routine for the major function has it completed as it is. Returns what the
/// dispatch routine returned (`None`: no routine) and the final status if the IRP
/// was completed; `Ok(None)`: no pool for the IRP.
///
/// # Errors
/// The bugcheck that stopped the machine (in the driver or the I/O manager).
pub(crate) fn send_system_irp(
    cpu: &Cpu<'_>,
    contents: &IrpContents,
    driver: &dyn Dispatch,
) -> Result<Option<Sent>, BugCheck> {
    let m = cpu.machine();
    let Some(irp) = irp::build(cpu, contents)? else { return Ok(None) };
    irp.set_io_status(cpu, NtStatus::NOT_SUPPORTED, 0)?;
    m.io().irps().insert(irp.0.get(), IrpRecord::request(None, 0));
    let returned = driver.dispatch(cpu, contents.major, contents.device, irp)?;
    if returned.is_none() {
        irp::io_complete_request(cpu, irp)?;
    }
    let completed = m.io().take_completion(irp).map(|(s, _)| s);
    let pending = completed.is_none().then_some(irp);
    Ok(Some(Sent { returned, completed, pending }))
}

/// What came back from a PnP or power IRP ([`send_system_irp`]).
pub(crate) struct Sent {
    /// What the dispatch routine returned (`None`: no routine).
    pub returned: Option<NtStatus>,
    /// The final status, if the IRP was completed.
    pub completed: Option<NtStatus>,
    /// The IRP, while it is pending ([`super::IoManager::take_completion`] tells when
    /// it is done).
    pub pending: Option<Irp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::resources::{
        CmFullResourceDescriptor, CmPartialResourceDescriptor, CmPartialResourceList, CmResourceType,
        CmShareDisposition, InterfaceType, CM_RESOURCE_PORT_IO,
    };
    use ntmem_machine::PhysAddr;

    #[test]
    fn lists_serialise_in_the_packed_x64_layout() {
        let d = |r#type, u| CmPartialResourceDescriptor {
            r#type,
            share_disposition: CmShareDisposition::DeviceExclusive,
            flags: CM_RESOURCE_PORT_IO,
            u,
        };
        let list = CmResourceList {
            count: 1,
            list: vec![CmFullResourceDescriptor {
                interface_type: InterfaceType::PciBus,
                bus_number: 0,
                partial_resource_list: CmPartialResourceList {
                    version: 1,
                    revision: 1,
                    count: 2,
                    partial_descriptors: vec![
                        d(
                            CmResourceType::Memory,
                            CmResourceData::Memory { start: PhysAddr::new(0xC000_0000), length: 0x1000 },
                        ),
                        d(CmResourceType::Interrupt, CmResourceData::Interrupt { level: 7, vector: 0x6B, affinity: 3 }),
                    ],
                },
            }],
        };
        let b = resource_list_bytes(&list);
        assert_eq!(b.len(), 4 + 8 + 8 + 2 * PARTIAL_DESCRIPTOR_SIZE);
        assert_eq!(&b[4..8], &5i32.to_le_bytes(), "InterfaceType PCIBus");
        assert_eq!(&b[16..20], &2u32.to_le_bytes(), "Count");
        let first = 20;
        assert_eq!(b[first], 3, "CmResourceTypeMemory");
        assert_eq!(&b[first + 4..first + 12], &0xC000_0000u64.to_le_bytes(), "u.Memory.Start");
        assert_eq!(&b[first + 12..first + 16], &0x1000u32.to_le_bytes(), "u.Memory.Length");
        let second = first + PARTIAL_DESCRIPTOR_SIZE;
        assert_eq!(b[second], 2, "CmResourceTypeInterrupt");
        assert_eq!(&b[second + 4..second + 8], &7u32.to_le_bytes(), "u.Interrupt.Level");
        assert_eq!(&b[second + 8..second + 12], &0x6Bu32.to_le_bytes(), "u.Interrupt.Vector");
        assert_eq!(&b[second + 12..second + 20], &3u64.to_le_bytes(), "u.Interrupt.Affinity");
    }
}
