//! Device objects (learn.microsoft.com "DEVICE_OBJECT structure (wdm.h)",
//! "IoCreateDevice", "IoDeleteDevice").
//!
//! A `DEVICE_OBJECT` lives in nonpaged pool (tag "Devi"), in the x64 layout
//! (0x150 bytes), followed by its device extension (zeroed, 16-byte aligned) in
//! the same block, as Windows allocates them together. Fields written:
//! `Type` 0x00 (3, IO_TYPE_DEVICE), `Size` 0x02, `DriverObject` 0x08,
//! `NextDevice` 0x10, `Flags` 0x30 (DO_DEVICE_INITIALIZING, DO_EXCLUSIVE),
//! `Characteristics` 0x34, `DeviceExtension` 0x40, `DeviceType` 0x48,
//! `StackSize` 0x4C (1), `AlignmentRequirement` 0x98 (0), `DeviceQueue` 0xA0
//! (empty and idle, as `KeInitializeDeviceQueue` leaves it), `SectorSize` 0x130 (0).
//! The driver's devices form the list `DRIVER_OBJECT.DeviceObject` →
//! `NextDevice`, newest first; the WDK boundary keeps the driver object's head
//! (it is not in simulated memory), this module the `NextDevice` links.
//!
//! A device created with a name is found by it ([`io_create_named_device`],
//! [`super::file`]). Not modelled: `DeviceObjectExtension` (NULL), the device's DPC.
//!
//! A device object is reference-counted by the object manager ([`crate::ob`],
//! keyed by its address as drivers see it): `IoCreateDevice` makes it with one
//! reference, `ObReferenceObject` and `IoGetAttachedDeviceReference` add one,
//! `ObDereferenceObject` drops one. `IoDeleteDevice` unlinks the device from its
//! driver's list and its name at once and drops the creation's reference; the
//! memory goes back to the pool with the last reference ([`free_deleted`]), so a
//! driver holding a reference may still read the object after `IoDeleteDevice`, as
//! on Windows (learn.microsoft.com "IoDeleteDevice": "the device object is not
//! deleted until its reference count goes to zero"; "IoGetAttachedDeviceReference").
//! A dereference too many is REFERENCE_BY_POINTER (0x18). `DEVICE_OBJECT.ReferenceCount`
//! (the I/O manager's count of opens) stays 0.

use ntmem_machine::Va;

use super::DeviceRecord;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::ob::{Dereferenced, ObjectType};

/// `sizeof(DEVICE_OBJECT)` on x64.
pub const DEVICE_OBJECT_SIZE: u64 = 0x150;
/// Pool tag of device objects ("Devi").
pub const DEVICE_TAG: PoolTag = PoolTag::new(*b"Devi");
/// `IO_TYPE_DEVICE`.
pub const IO_TYPE_DEVICE: u16 = 3;

const OFF_TYPE: u64 = 0x00;
const OFF_SIZE: u64 = 0x02;
const OFF_DRIVER: u64 = 0x08;
const OFF_NEXT: u64 = 0x10;
const OFF_FLAGS: u64 = 0x30;
const OFF_CHARACTERISTICS: u64 = 0x34;
const OFF_EXTENSION: u64 = 0x40;
const OFF_DEVICE_TYPE: u64 = 0x48;
const OFF_STACK_SIZE: u64 = 0x4C;
const OFF_DEVICE_QUEUE: u64 = 0xA0;

// Every field written lies inside the x64 DEVICE_OBJECT (include/ntmem/io.h
// asserts the C side: DeviceExtension at 0x40, size 0x150).
const _: () = assert!(OFF_EXTENSION == 0x40 && OFF_FLAGS == 0x30 && OFF_STACK_SIZE < DEVICE_OBJECT_SIZE);

bitflags::bitflags! {
    /// `DEVICE_OBJECT.Flags` (`DO_*`, wdm.h).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeviceFlags: u32 {
        /// `DO_VERIFY_VOLUME`.
        const VERIFY_VOLUME = 0x0002;
        /// `DO_BUFFERED_IO`: reads and writes get a system buffer.
        const BUFFERED_IO = 0x0004;
        /// `DO_EXCLUSIVE`.
        const EXCLUSIVE = 0x0008;
        /// `DO_DIRECT_IO`: reads and writes get an MDL over the caller's buffer.
        const DIRECT_IO = 0x0010;
        /// `DO_MAP_IO_BUFFER`.
        const MAP_IO_BUFFER = 0x0020;
        /// `DO_DEVICE_INITIALIZING`: set by IoCreateDevice; the I/O manager clears
        /// it for devices created in DriverEntry, AddDevice routines clear it.
        const DEVICE_INITIALIZING = 0x0080;
        /// `DO_SHUTDOWN_REGISTERED`.
        const SHUTDOWN_REGISTERED = 0x0800;
        /// `DO_BUS_ENUMERATED_DEVICE`.
        const BUS_ENUMERATED_DEVICE = 0x1000;
        /// `DO_POWER_PAGABLE`.
        const POWER_PAGABLE = 0x2000;
        /// `DO_POWER_INRUSH`.
        const POWER_INRUSH = 0x4000;
    }
}

/// A device object: its address (`PDEVICE_OBJECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceObject(pub Va);

/// The parameters of `IoCreateDevice` that ntmem keeps.
#[derive(Clone, Copy, Debug)]
pub struct NewDevice {
    /// `DriverObject`: its address as the driver sees it.
    pub driver: u64,
    /// `DeviceExtensionSize`, bytes.
    pub extension_size: u32,
    /// `DeviceType` (`FILE_DEVICE_*`).
    pub device_type: u32,
    /// `DeviceCharacteristics`.
    pub characteristics: u32,
    /// `Exclusive`: sets DO_EXCLUSIVE.
    pub exclusive: bool,
}

pub(crate) fn fault(cpu: &Cpu<'_>, va: Va) -> BugCheck {
    cpu.machine().bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [va.get(), 0, 0, 0])
}

pub(crate) fn read_bytes<const N: usize>(cpu: &Cpu<'_>, va: Va) -> Result<[u8; N], BugCheck> {
    let mut b = [0u8; N];
    cpu.machine().space().read(va, &mut b).map_err(|_| fault(cpu, va))?;
    Ok(b)
}

pub(crate) fn write_bytes(cpu: &Cpu<'_>, va: Va, data: &[u8]) -> Result<(), BugCheck> {
    cpu.machine().space().write(va, data).map_err(|_| fault(cpu, va))
}

pub(crate) fn at(base: Va, offset: u64) -> Va {
    Va::new(base.get() + offset)
}

impl DeviceObject {
    /// `Flags`, as the driver left them.
    ///
    /// # Errors
    /// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an object outside the address space.
    pub fn flags(self, cpu: &Cpu<'_>) -> Result<DeviceFlags, BugCheck> {
        Ok(DeviceFlags::from_bits_retain(u32::from_le_bytes(read_bytes(cpu, at(self.0, OFF_FLAGS))?)))
    }

    /// Sets `Flags`.
    ///
    /// # Errors
    /// As [`DeviceObject::flags`].
    pub fn set_flags(self, cpu: &Cpu<'_>, flags: DeviceFlags) -> Result<(), BugCheck> {
        write_bytes(cpu, at(self.0, OFF_FLAGS), &flags.bits().to_le_bytes())
    }

    /// `DeviceExtension`.
    ///
    /// # Errors
    /// As [`DeviceObject::flags`].
    pub fn extension(self, cpu: &Cpu<'_>) -> Result<Va, BugCheck> {
        Ok(Va::new(u64::from_le_bytes(read_bytes(cpu, at(self.0, OFF_EXTENSION))?)))
    }

    /// `DriverObject`.
    ///
    /// # Errors
    /// As [`DeviceObject::flags`].
    pub fn driver(self, cpu: &Cpu<'_>) -> Result<u64, BugCheck> {
        Ok(u64::from_le_bytes(read_bytes(cpu, at(self.0, OFF_DRIVER))?))
    }

    /// `StackSize`: how many stack locations an IRP for this device needs.
    ///
    /// # Errors
    /// As [`DeviceObject::flags`].
    pub fn stack_size(self, cpu: &Cpu<'_>) -> Result<u8, BugCheck> {
        Ok(read_bytes::<1>(cpu, at(self.0, OFF_STACK_SIZE))?[0])
    }

    /// `NextDevice`.
    ///
    /// # Errors
    /// As [`DeviceObject::flags`].
    pub fn next_device(self, cpu: &Cpu<'_>) -> Result<u64, BugCheck> {
        Ok(u64::from_le_bytes(read_bytes(cpu, at(self.0, OFF_NEXT))?))
    }
}

/// Rewrites the `NextDevice` links of `driver`'s devices (newest first, each
/// pointing at the one created before it) and returns the newest: the
/// `DRIVER_OBJECT.DeviceObject` head.
fn relink(cpu: &Cpu<'_>, driver: u64) -> Result<Option<DeviceObject>, BugCheck> {
    let devices = cpu.machine().io().devices_of(driver);
    let mut previous = 0u64;
    for d in &devices {
        write_bytes(cpu, at(d.0, OFF_NEXT), &previous.to_le_bytes())?;
        previous = d.0.get();
    }
    Ok(devices.last().copied())
}

/// `IoCreateDevice`: a zeroed device object plus extension from nonpaged pool,
/// DO_DEVICE_INITIALIZING set, first in its driver's list. Returns the object and
/// the driver's new list head; the inner `Err` is `STATUS_INSUFFICIENT_RESOURCES`.
///
/// With `DeviceExtensionSize` 0, `DeviceExtension` is NULL, as on Windows: the
/// `!devobj` output in Microsoft's "Debug Windows drivers step-by-step lab (echo
/// kernel mode)" shows a device without an extension as `DevExt 00000000` with its
/// `DevObjExt` right after the 0x150-byte object (ReactOS's IoCreateDevice, read for
/// the fact only, also leaves it NULL). A driver that reads its extension anyway
/// (Microsoft's SystemDma sample, drivers/samples/systemdma.toml) faults at a small
/// address.
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_create_device(cpu: &Cpu<'_>, new: NewDevice) -> Result<Result<DeviceObject, NtStatus>, BugCheck> {
    let extension = u64::from(new.extension_size).next_multiple_of(16);
    let size = DEVICE_OBJECT_SIZE + extension;
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, DEVICE_TAG)? else {
        return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
    };
    let mut b = vec![0u8; size as usize];
    let put = |b: &mut [u8], off: u64, v: &[u8]| b[off as usize..off as usize + v.len()].copy_from_slice(v);
    put(&mut b, OFF_TYPE, &IO_TYPE_DEVICE.to_le_bytes());
    put(&mut b, OFF_SIZE, &(u16::try_from(size).unwrap_or(u16::MAX)).to_le_bytes());
    put(&mut b, OFF_DRIVER, &new.driver.to_le_bytes());
    let mut flags = DeviceFlags::DEVICE_INITIALIZING;
    if new.exclusive {
        flags |= DeviceFlags::EXCLUSIVE;
    }
    put(&mut b, OFF_FLAGS, &flags.bits().to_le_bytes());
    put(&mut b, OFF_CHARACTERISTICS, &new.characteristics.to_le_bytes());
    let ext = if new.extension_size > 0 { block.get() + DEVICE_OBJECT_SIZE } else { 0 };
    put(&mut b, OFF_EXTENSION, &ext.to_le_bytes());
    put(&mut b, OFF_DEVICE_TYPE, &new.device_type.to_le_bytes());
    b[OFF_STACK_SIZE as usize] = 1;
    // DeviceQueue: initialized empty and idle (KeInitializeDeviceQueue).
    put(&mut b, OFF_DEVICE_QUEUE, &crate::ke::device_queue::DEVICE_QUEUE_OBJECT.to_le_bytes());
    put(&mut b, OFF_DEVICE_QUEUE + 2, &(crate::ke::device_queue::KDEVICE_QUEUE_SIZE as u16).to_le_bytes());
    let head = block.get() + OFF_DEVICE_QUEUE + 8;
    put(&mut b, OFF_DEVICE_QUEUE + 8, &head.to_le_bytes());
    put(&mut b, OFF_DEVICE_QUEUE + 16, &head.to_le_bytes());
    write_bytes(cpu, block, &b)?;
    let device = DeviceObject(block);
    cpu.machine().io().devices().push(DeviceRecord { object: device, driver: new.driver });
    cpu.machine().objects().insert(ob_key(cpu, device), ObjectType::Device, 1);
    relink(cpu, new.driver)?;
    Ok(Ok(device))
}

/// `IoCreateDevice` with its `DeviceName`: as [`io_create_device`], and the device is
/// then found by that name ([`super::file`]). Names compare without case.
///
/// Inner `Err`: STATUS_OBJECT_NAME_COLLISION when a device has the name already,
/// STATUS_OBJECT_NAME_INVALID when it is empty or not a full path (`\Device\X`),
/// before anything is allocated, as Windows checks; else as [`io_create_device`].
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_create_named_device(
    cpu: &Cpu<'_>,
    new: NewDevice,
    name: Option<&[u16]>,
) -> Result<Result<DeviceObject, NtStatus>, BugCheck> {
    let key = match name {
        None => None,
        Some(n) if n.first() != Some(&u16::from(b'\\')) => return Ok(Err(NtStatus::OBJECT_NAME_INVALID)),
        Some(n) => Some(super::file::upcased(&String::from_utf16_lossy(n))),
    };
    if key.as_ref().is_some_and(|k| cpu.machine().io().device_names().contains_key(k)) {
        return Ok(Err(NtStatus::OBJECT_NAME_COLLISION));
    }
    let device = io_create_device(cpu, new)?;
    if let (Ok(d), Some(k)) = (&device, key) {
        cpu.machine().io().device_names().insert(k, *d);
    }
    Ok(device)
}

/// The object manager's key of `device`: its address as drivers see it.
pub fn ob_key(cpu: &Cpu<'_>, device: DeviceObject) -> u64 {
    cpu.machine().space().host_addr(device.0) as u64
}

/// `IoDeleteDevice`: takes the device out of its driver's list and the namespace
/// and drops the reference `IoCreateDevice` made; the last reference frees it (see
/// the module docs). Returns the driver (its `DRIVER_OBJECT` address) and its new
/// list head. Deleting something that is not a device frees it as pool would (a
/// bugcheck when it is not a pool block either).
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_delete_device(cpu: &Cpu<'_>, device: DeviceObject) -> Result<(u64, Option<DeviceObject>), BugCheck> {
    let record = {
        let mut devices = cpu.machine().io().devices();
        let i = devices.iter().position(|d| d.object == device);
        i.map(|i| devices.remove(i))
    };
    cpu.machine().io().device_names().retain(|_, d| *d != device);
    let referenced = cpu.machine().objects().dereference(ob_key(cpu, device)) == Dereferenced::Live;
    let Some(record) = record else {
        pool::free(cpu, device.0, Some(DEVICE_TAG))?;
        return Ok((0, None));
    };
    let head = relink(cpu, record.driver)?;
    if !referenced {
        free_deleted(cpu, device)?;
    }
    Ok((record.driver, head))
}

/// Frees a deleted device whose last reference went (`ObDereferenceObject` after
/// `IoDeleteDevice`).
///
/// # Errors
/// A bugcheck from the pool.
pub fn free_deleted(cpu: &Cpu<'_>, device: DeviceObject) -> Result<(), BugCheck> {
    pool::free(cpu, device.0, Some(DEVICE_TAG))
}

/// Clears DO_DEVICE_INITIALIZING on every device of `driver`: what the I/O
/// manager does for devices created in DriverEntry once it returns.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) if a device object is no longer mapped.
pub fn finish_initializing(cpu: &Cpu<'_>, driver: u64) -> Result<(), BugCheck> {
    for d in cpu.machine().io().devices_of(driver) {
        let flags = d.flags(cpu)?;
        d.set_flags(cpu, flags - DeviceFlags::DEVICE_INITIALIZING)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use ntmem_machine::{BootOptions, MachineConfig};

    #[test]
    fn the_extension_follows_the_object_and_is_null_without_one() {
        let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
        config.ram = 512 << 20;
        config.boot = BootOptions::parse("").unwrap();
        let m = Machine::boot(config.build().unwrap()).unwrap();
        m.run(0, |cpu| {
            for (size, after) in [(0u32, false), (1, true), (0x40, true)] {
                let new = NewDevice {
                    driver: 0,
                    extension_size: size,
                    device_type: 0x22,
                    characteristics: 0,
                    exclusive: false,
                };
                let d = io_create_device(cpu, new)?.expect("pool");
                let ext = u64::from_le_bytes(read_bytes::<8>(cpu, Va::new(d.0.get() + OFF_EXTENSION))?);
                let want = if after { d.0.get() + DEVICE_OBJECT_SIZE } else { 0 };
                assert_eq!(ext, want, "DeviceExtensionSize {size}");
            }
            Ok(())
        })
        .unwrap();
    }
}
