//! Plug and Play start and removal (issue 4 item 7, issue 5 item 3): a PDO for the
//! machine's NIC, IoAttachDeviceToDeviceStack, IRP_MN_START_DEVICE with the raw and
//! translated CM_RESOURCE_LISTs in nonpaged pool, IRP_MN_REMOVE_DEVICE.

use std::cell::RefCell;

use ntmem_kernel::ex::pool::NtStatus;
use ntmem_kernel::hal::device::Space;
use ntmem_kernel::io::device::{io_create_device, io_delete_device, NewDevice};
use ntmem_kernel::io::irp::io_complete_request;
use ntmem_kernel::io::pnp::{
    attached_device, create_pdo, delete_pdo, io_attach_device_to_device_stack, io_detach_device, resource_list_bytes,
    send, PnpRequest, RESOURCE_LIST_TAG,
};
use ntmem_kernel::io::{DeviceObject, Dispatch, Irp, MajorFunction};
use ntmem_kernel::{BugCheck, Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 512 << 20;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

#[derive(Debug, Default)]
struct Seen {
    minor: u8,
    arrival: u32,
    raw: Vec<u8>,
    translated: Vec<u8>,
}

/// Records the PnP IRP and completes it with STATUS_SUCCESS.
struct Fdo(RefCell<Seen>, usize, usize);

impl Dispatch for Fdo {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        _d: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck> {
        assert_eq!(major, MajorFunction::Pnp);
        let space = cpu.machine().space();
        let stack = irp.current_stack_location(cpu)?;
        let mut head = [0u8; 0x18];
        space.read(stack, &mut head).unwrap();
        let ptr = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap());
        let mut seen = Seen { minor: head[1], arrival: irp.io_status(cpu)?.0 .0, ..Seen::default() };
        if seen.minor == 0 {
            seen.raw = vec![0; self.1];
            seen.translated = vec![0; self.2];
            space.read(Va::new(ptr(0x08)), &mut seen.raw).unwrap();
            space.read(Va::new(ptr(0x10)), &mut seen.translated).unwrap();
        }
        *self.0.borrow_mut() = seen;
        irp.set_io_status(cpu, NtStatus::SUCCESS, 0)?;
        io_complete_request(cpu, irp)?;
        Ok(Some(NtStatus::SUCCESS))
    }
}

#[test]
fn start_device_delivers_both_lists_and_remove_follows() {
    let m = boot();
    let nic = m.hal().find("nic0").unwrap();
    // A chipset that decodes the memory CSRs in port space: raw and translated differ.
    m.hal().relocate(nic, 0, Space::Port).unwrap();
    let raw = m.hal().allocated_resources(nic).unwrap();
    let translated = m.hal().allocated_resources_translated(nic).unwrap();
    let (raw_bytes, translated_bytes) = (resource_list_bytes(&raw), resource_list_bytes(&translated));
    assert_ne!(raw_bytes, translated_bytes);
    let fdo_driver = Fdo(RefCell::default(), raw_bytes.len(), translated_bytes.len());
    let before = m.pool().snapshot();
    m.run(0, |cpu| {
        let pdo = create_pdo(cpu)?.unwrap();
        let new =
            NewDevice { driver: 0x1000, extension_size: 16, device_type: 0x12, characteristics: 0, exclusive: false };
        let fdo = io_create_device(cpu, new)?.unwrap();
        assert_eq!(io_attach_device_to_device_stack(cpu, fdo, pdo)?, Some(pdo));
        assert_eq!(attached_device(cpu, pdo)?, Some(fdo));
        // A filter attaching to the PDO lands above the FDO.
        let filter = io_create_device(cpu, new)?.unwrap();
        assert_eq!(io_attach_device_to_device_stack(cpu, filter, pdo)?, Some(fdo));
        io_detach_device(cpu, fdo)?;
        io_delete_device(cpu, filter)?;

        let start = PnpRequest::StartDevice { raw: raw.clone(), translated: translated.clone() };
        let out = send(cpu, fdo, &start, &fdo_driver)?;
        assert!(out.completed);
        assert_eq!(out.status, NtStatus::SUCCESS);
        {
            let seen = fdo_driver.0.borrow();
            assert_eq!((seen.minor, seen.arrival), (0, NtStatus::NOT_SUPPORTED.0));
            assert_eq!(seen.raw, raw_bytes);
            assert_eq!(seen.translated, translated_bytes);
        }
        let out = send(cpu, fdo, &PnpRequest::REMOVE_DEVICE, &fdo_driver)?;
        assert_eq!((fdo_driver.0.borrow().minor, out.status), (2, NtStatus::SUCCESS));
        io_detach_device(cpu, pdo)?;
        io_delete_device(cpu, fdo)?;
        delete_pdo(cpu, pdo)
    })
    .unwrap();
    // The lists were the PnP manager's: freed when the start IRP came back.
    let after = m.pool().snapshot();
    let row = after.iter().find(|r| r.tag == RESOURCE_LIST_TAG).unwrap();
    let was = before.iter().find(|r| r.tag == RESOURCE_LIST_TAG).map_or(0, |r| r.allocs);
    assert_eq!((row.allocs - was, row.allocs - row.frees), (2, 0));
    assert!(m.io().outstanding().is_empty());
}

/// A driver with no IRP_MJ_PNP routine.
struct Nothing;

impl Dispatch for Nothing {
    fn dispatch(&self, _: &Cpu<'_>, _: MajorFunction, _: DeviceObject, _: Irp) -> Result<Option<NtStatus>, BugCheck> {
        Ok(None)
    }
}

#[test]
fn a_pnp_irp_nobody_handles_completes_with_not_supported() {
    let m = boot();
    m.run(0, |cpu| {
        let pdo = create_pdo(cpu)?.unwrap();
        let out = send(cpu, pdo, &PnpRequest::REMOVE_DEVICE, &Nothing)?;
        assert_eq!((out.returned, out.completed, out.status), (None, true, NtStatus::NOT_SUPPORTED));
        delete_pdo(cpu, pdo)
    })
    .unwrap();
}
