//! Device registers in port and memory space (seed 000 §8, issue 4 item 7): the
//! default NIC, resource lists, MmMapIoSpace and READ/WRITE_REGISTER through real
//! mappings, READ/WRITE_PORT, the seed's resource loop, moving a block between
//! spaces, and running out of system PTEs.

use ntmem_kernel::hal::device::{Decode, DeviceId, DeviceSpec, HalError, Space};
use ntmem_kernel::hal::port::{
    read_port_buffer_uchar, read_port_uchar, read_port_ulong, read_port_ushort, write_port_buffer_ushort,
    write_port_uchar, write_port_ulong, write_port_ushort, IoPort,
};
use ntmem_kernel::hal::register::{
    read_register_buffer_ulong, read_register_uchar, read_register_ulong, read_register_ushort,
    write_register_buffer_ulong, write_register_ulong, write_register_ushort,
};
use ntmem_kernel::hal::resources::{
    CmResourceData, CmResourceList, CmResourceType, CmShareDisposition, CM_RESOURCE_MEMORY_READ_WRITE,
    CM_RESOURCE_PORT_IO,
};
use ntmem_kernel::mm::contiguous::{mm_get_physical_address, MemoryCachingType};
use ntmem_kernel::mm::io_space::{mm_map_io_space, mm_unmap_io_space};
use ntmem_kernel::mm::pte::{PteFlags, PteFormat};
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, PhysAddr, Va};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;
const NIC_CSR: u64 = 0xC000_0000;

fn boot(edition: &str, ram: u64) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

fn nic(m: &Machine) -> DeviceId {
    m.hal().find("nic0").unwrap()
}

#[test]
fn every_machine_has_the_nic_with_raw_and_translated_resources() {
    for (edition, ram) in [("xp-professional", 512 * MB), ("ws03sp1-enterprise-x64", 8 * GB), ("xp-64bit-ia64", 4 * GB)]
    {
        let m = boot(edition, ram);
        let id = nic(&m);
        let raw = m.hal().allocated_resources(id).unwrap();
        let translated = m.hal().allocated_resources_translated(id).unwrap();
        assert_eq!(raw.count, 1);
        let list = &translated.list[0].partial_resource_list;
        assert_eq!((list.version, list.revision, list.count), (1, 1, 3));
        let d = &list.partial_descriptors;
        assert_eq!((d[0].r#type, d[0].flags), (CmResourceType::Memory, CM_RESOURCE_MEMORY_READ_WRITE));
        assert_eq!(d[0].u, CmResourceData::Memory { start: PhysAddr::new(NIC_CSR), length: 0x1000 });
        assert_eq!(d[0].share_disposition, CmShareDisposition::DeviceExclusive);
        assert_eq!(d[1].r#type, CmResourceType::Port);
        assert_ne!(d[1].flags & CM_RESOURCE_PORT_IO, 0);
        assert_eq!(d[1].u, CmResourceData::Port { start: PhysAddr::new(0xC000), length: 32 });
        assert_eq!(d[2].r#type, CmResourceType::Interrupt);
        let CmResourceData::Interrupt { vector, affinity, .. } =
            raw.list[0].partial_resource_list.partial_descriptors[2].u
        else {
            panic!()
        };
        assert_eq!((vector, affinity), (11, (1 << m.profile().processors) - 1));
        // Nothing is translated differently until a chipset moves a block.
        assert_eq!(raw.list[0].partial_resource_list.partial_descriptors[..2], d[..2]);
        assert!(m
            .profile()
            .physmap
            .mmio_windows
            .iter()
            .any(|w| w.start.get() <= NIC_CSR && NIC_CSR + 0x1000 <= w.start.get() + w.len));
    }
}

#[test]
fn registers_written_through_mm_map_io_space_reach_the_device() {
    for (edition, ram) in
        [("xp-professional", 512 * MB), ("ws03sp1-enterprise", 8 * GB), ("ws03sp1-enterprise-x64", 8 * GB)]
    {
        let m = boot(edition, ram);
        let dev = m.hal().device(nic(&m)).unwrap();
        m.run(0, |cpu| {
            let ptes = m.system_ptes().free();
            let csr = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, MemoryCachingType::NonCached).unwrap();
            assert_eq!(m.system_ptes().free(), ptes - 1);
            assert_eq!(mm_get_physical_address(cpu, Va::new(csr.get() + 0x18)), PhysAddr::new(NIC_CSR + 0x18));
            let walk = m.space().walk(m.phys(), csr);
            let flags = PteFormat::new(m.profile().paging).decode(walk.steps.last().unwrap().raw).1;
            assert!(flags.contains(PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH), "{flags:?}");
            // Driver → device.
            write_register_ulong(cpu, Va::new(csr.get() + 8), 0x1234_5678)?;
            assert_eq!(dev.read_u32(0, 8), 0x1234_5678);
            // Device → driver.
            dev.write_u32(0, 0x10, 0xCAFE_F00D);
            assert_eq!(read_register_ulong(cpu, Va::new(csr.get() + 0x10))?, 0xCAFE_F00D);
            assert_eq!(read_register_ushort(cpu, Va::new(csr.get() + 0x12))?, 0xCAFE);
            assert_eq!(read_register_uchar(cpu, Va::new(csr.get() + 0x10))?, 0x0D);
            // Buffer forms walk consecutive registers.
            write_register_buffer_ulong(cpu, Va::new(csr.get() + 0x100), &[1, 2, 3])?;
            assert_eq!([dev.read_u32(0, 0x100), dev.read_u32(0, 0x104), dev.read_u32(0, 0x108)], [1, 2, 3]);
            let mut back = [0u32; 3];
            read_register_buffer_ulong(cpu, Va::new(csr.get() + 0x100), &mut back)?;
            assert_eq!(back, [1, 2, 3]);
            // A second mapping aliases the same registers.
            let again = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR + 8), 4, MemoryCachingType::NonCached).unwrap();
            assert_eq!(read_register_ulong(cpu, again)?, 0x1234_5678);
            mm_unmap_io_space(cpu, again, 4)?;
            mm_unmap_io_space(cpu, csr, 0x1000)?;
            assert_eq!(m.system_ptes().free(), ptes);
            assert_eq!(mm_get_physical_address(cpu, csr), PhysAddr::new(0));
            Ok(())
        })
        .unwrap();
        assert!(m.hal().io_space_findings().is_empty());
    }
}

#[test]
fn ports_reach_the_device_and_unclaimed_ports_read_all_ones() {
    let m = boot("xp-professional", 512 * MB);
    let dev = m.hal().device(nic(&m)).unwrap();
    m.run(0, |cpu| {
        let base = IoPort(0xC000);
        write_port_ushort(cpu, IoPort(0xC002), 0xBEEF);
        assert_eq!(dev.read_u32(1, 0) >> 16, 0xBEEF);
        write_port_uchar(cpu, base, 0x5A);
        assert_eq!(read_port_uchar(cpu, base), 0x5A);
        assert_eq!(read_port_ulong(cpu, base), 0xBEEF_005A);
        dev.write_u32(1, 0x1C, 0x0102_0304);
        assert_eq!(read_port_ulong(cpu, IoPort(0xC01C)), 0x0102_0304);
        // The I/O BAR decodes the same CSRs as the memory BAR (Intel 8255x style).
        assert_eq!(dev.read_u32(0, 0x1C), 0x0102_0304);
        // Past the block's 32 bytes, and anywhere nobody decodes, the bus floats.
        assert_eq!(read_port_ushort(cpu, IoPort(0xC01F)), 0xFF01);
        assert_eq!(read_port_ulong(cpu, IoPort(0x1234)), 0xFFFF_FFFF);
        assert_eq!(read_port_ushort(cpu, IoPort(0xFFFF)), 0xFFFF);
        write_port_ulong(cpu, IoPort(0x1234), 0);
        assert_eq!(read_port_uchar(cpu, IoPort(0x1234)), 0xFF);
        // Buffer forms repeat one port (x86 `rep insb` / `rep outsw`).
        write_port_buffer_ushort(cpu, IoPort(0xC004), &[1, 2, 3]);
        assert_eq!(dev.read_u32(1, 4) & 0xFFFF, 3);
        let mut buf = [0u8; 3];
        read_port_buffer_uchar(cpu, IoPort(0xC004), &mut buf);
        assert_eq!(buf, [3, 3, 3]);
        Ok(())
    })
    .unwrap();
}

#[test]
fn undecoded_memory_space_reads_all_ones() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    m.run(0, |cpu| {
        let va = mm_map_io_space(cpu, PhysAddr::new(0xD000_0000), 0x2_0000 + 8, MemoryCachingType::NonCached).unwrap();
        assert_eq!(read_register_ulong(cpu, va)?, 0xFFFF_FFFF);
        assert_eq!(read_register_ulong(cpu, Va::new(va.get() + 0x2_0004))?, 0xFFFF_FFFF);
        mm_unmap_io_space(cpu, va, 0x2_0000 + 8)?;
        Ok(())
    })
    .unwrap();
}

/// How the seed §8 driver reaches its CSRs after parsing the translated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csr {
    /// FdoData->ReadPort = READ_PORT_USHORT.
    Port(IoPort),
    /// FdoData->ReadPort = READ_REGISTER_USHORT, on FdoData->CSRAddress.
    Register(Va, u64),
}

impl Csr {
    fn read(self, cpu: &Cpu<'_>, offset: u16) -> Result<u16, BugCheck> {
        match self {
            Csr::Port(p) => Ok(read_port_ushort(cpu, IoPort(p.0 + offset))),
            Csr::Register(va, _) => read_register_ushort(cpu, Va::new(va.get() + u64::from(offset))),
        }
    }
    fn write(self, cpu: &Cpu<'_>, offset: u16, value: u16) -> Result<(), BugCheck> {
        match self {
            Csr::Port(p) => {
                write_port_ushort(cpu, IoPort(p.0 + offset), value);
                Ok(())
            }
            Csr::Register(va, _) => write_register_ushort(cpu, Va::new(va.get() + u64::from(offset)), value),
        }
    }
}

/// The seed §8 loop over `AllocatedResourcesTranslated->List[0].PartialResourceList`.
fn start_device(cpu: &Cpu<'_>, translated: &CmResourceList) -> Option<Csr> {
    let partial = &translated.list[0].partial_resource_list;
    let mut csr = None;
    for resource in partial.partial_descriptors.iter().take(partial.count as usize) {
        match (resource.r#type, resource.u) {
            (CmResourceType::Port, CmResourceData::Port { start, .. }) => {
                // The CSRs are in port space: USHORT-wide port accessors.
                csr = Some(Csr::Port(IoPort(u16::try_from(start.get()).unwrap())));
            }
            (CmResourceType::Memory, CmResourceData::Memory { start, length }) => {
                // The CSRs are in memory space: map them noncached.
                let va = mm_map_io_space(cpu, start, u64::from(length), MemoryCachingType::NonCached)?;
                csr = Some(Csr::Register(va, u64::from(length)));
            }
            _ => {}
        }
    }
    csr
}

fn stop_device(cpu: &Cpu<'_>, csr: Csr) -> Result<(), BugCheck> {
    match csr {
        Csr::Register(va, len) => mm_unmap_io_space(cpu, va, len),
        _ => Ok(()),
    }
}

#[test]
fn the_seed_resource_loop_follows_a_block_the_chipset_moves_between_spaces() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let id = m.hal().add_device(&DeviceSpec::new("csr-dev").block("CSR", 0x20, Space::Port).interrupt(5)).unwrap();
    let dev = m.hal().device(id).unwrap();
    let Decode::Port(wired) = dev.blocks[0].wired else { panic!("wired in port space") };
    // Wired and decoded in port space.
    m.run(0, |cpu| {
        let csr = start_device(cpu, &m.hal().allocated_resources_translated(id).unwrap()).unwrap();
        assert_eq!(csr, Csr::Port(wired));
        csr.write(cpu, 2, 0x1111)?;
        stop_device(cpu, csr)?;
        Ok(())
    })
    .unwrap();
    // The chipset maps the block into memory space: the raw list still says port.
    let moved = m.hal().relocate(id, 0, Space::Memory).unwrap();
    let Decode::Memory(pa) = moved else { panic!("{moved:?}") };
    assert!(pa.get() >= NIC_CSR + 0x1000 && pa.get() % 0x1000 == 0);
    let raw = m.hal().allocated_resources(id).unwrap();
    assert_eq!(raw.list[0].partial_resource_list.partial_descriptors[0].r#type, CmResourceType::Port);
    m.run(0, |cpu| {
        let csr = start_device(cpu, &m.hal().allocated_resources_translated(id).unwrap()).unwrap();
        let Csr::Register(va, 0x20) = csr else { panic!("{csr:?}") };
        assert_eq!(mm_get_physical_address(cpu, va), pa);
        assert_eq!(csr.read(cpu, 2)?, 0x1111, "the registers kept their value");
        csr.write(cpu, 4, 0x2222)?;
        // Port space no longer decodes it.
        assert_eq!(read_port_ushort(cpu, IoPort(wired.0 + 4)), 0xFFFF);
        // Moving it while the driver has it mapped is refused.
        assert_eq!(m.hal().relocate(id, 0, Space::Port), Err(HalError::Mapped));
        stop_device(cpu, csr)?;
        Ok(())
    })
    .unwrap();
    // And back where it is wired.
    assert_eq!(m.hal().relocate(id, 0, Space::Port).unwrap(), Decode::Port(wired));
    m.run(0, |cpu| {
        let csr = start_device(cpu, &m.hal().allocated_resources_translated(id).unwrap()).unwrap();
        assert_eq!(csr, Csr::Port(wired));
        assert_eq!(csr.read(cpu, 4)?, 0x2222);
        Ok(())
    })
    .unwrap();
    assert_eq!(dev.read_u32(0, 4) & 0xFFFF, 0x2222);
}

#[test]
fn mm_map_io_space_returns_none_when_system_ptes_run_out() {
    let m = boot("xp-professional", 512 * MB);
    let free = m.system_ptes().free();
    let hog = m.system_ptes().reserve(free - 2).unwrap();
    m.run(0, |cpu| {
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 3 * 0x1000, MemoryCachingType::NonCached), None);
        let a = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, MemoryCachingType::NonCached).unwrap();
        let b = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR + 0x10), 4, MemoryCachingType::NonCached).unwrap();
        assert_eq!(m.system_ptes().free(), 0);
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 1, MemoryCachingType::NonCached), None);
        mm_unmap_io_space(cpu, a, 0x1000)?;
        let c = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 1, MemoryCachingType::NonCached).unwrap();
        mm_unmap_io_space(cpu, b, 4)?;
        mm_unmap_io_space(cpu, c, 1)?;
        Ok(())
    })
    .unwrap();
    m.system_ptes().release(hog, free - 2);
    assert_eq!(m.system_ptes().free(), free);
}

#[test]
fn bad_arguments_and_bad_unmaps() {
    let m = boot("xp-professional", 512 * MB);
    assert_eq!(MemoryCachingType::from_raw(6), None, "MmMaximumCacheType is invalid");
    assert_eq!(MemoryCachingType::from_raw(0x100), Some(MemoryCachingType::NonCached), "only the low byte counts");
    let nc = MemoryCachingType::NonCached;
    m.run(0, |cpu| {
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0, nc), None);
        // Issue 9: ranges no PTE can hold, or that wrap, fail instead of panicking.
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(1 << 32), 0x1000, nc), None, "above 4 GB without PAE");
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(u64::MAX - 0xFFF), 0x2000, nc), None, "wraps");
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), u64::MAX, nc), None, "wraps");
        Ok(())
    })
    .unwrap();
    let x64 = boot("ws03sp1-enterprise-x64", 512 * MB);
    x64.run(0, |cpu| {
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(1 << 60), 0x1000, nc), None, "beyond the PFN field");
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(u64::MAX), 1, nc), None);
        Ok(())
    })
    .unwrap();

    // Issue 9 item 6: bad unmaps are SYSTEM_PTE_MISUSE (0xDA) with the tracked-PTE
    // subcodes: 3 for an address that is not a mapping, 2 for the wrong size.
    let mut at = 0;
    let b = m
        .run(0, |cpu| {
            let va = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, nc).unwrap();
            at = va.get() + 0x5000;
            mm_unmap_io_space(cpu, Va::new(at), 0x1000)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, [3, 0, 0, at]));
    let m = boot("xp-professional", 512 * MB);
    let b = m
        .run(0, |cpu| {
            let va = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, nc).unwrap();
            mm_unmap_io_space(cpu, va, 0x3000)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, [2, 0, 1, 3]));
    let m = boot("xp-professional", 512 * MB);
    let b = m
        .run(0, |cpu| {
            let va = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, nc).unwrap();
            at = va.get();
            mm_unmap_io_space(cpu, va, 0x1000)?;
            mm_unmap_io_space(cpu, va, 0x1000)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (BugCheckCode::SYSTEM_PTE_MISUSE, [3, 0, 0, at]), "a double unmap");
}

#[test]
fn a_register_access_after_unmapping_is_a_page_fault() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let mut at = 0;
    let b = m
        .run(0, |cpu| {
            let va = mm_map_io_space(cpu, PhysAddr::new(NIC_CSR), 0x1000, MemoryCachingType::NonCached).unwrap();
            mm_unmap_io_space(cpu, va, 0x1000)?;
            at = va.get();
            read_register_ulong(cpu, va)
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA);
    assert_eq!(b.parameters[0], at);
}

#[test]
fn a_full_port_space_refuses_new_devices() {
    let m = boot("xp-professional", 512 * MB);
    let err = m.hal().add_device(&DeviceSpec::new("huge").block("ports", 0x8000, Space::Port)).unwrap_err();
    assert!(matches!(err, HalError::NoRoom { space: Space::Port, .. }));
}

/// Host budget (io_space module docs): a mapping of gigabytes of undecoded
/// addresses — ~12 GB from physical 0 on a 512 MB x64 machine, one host mapping per
/// 64 KB of floating bus — fails with NULL before anything is mapped, instead of
/// running for minutes or exhausting the host's mappings; the system PTEs are
/// given back. 64 MB of floating bus (the budget) still maps.
#[test]
fn mm_map_io_space_fails_a_mapping_beyond_the_host_budget() {
    let m = boot("ws03sp1-enterprise-x64", 512 * MB);
    let free = m.system_ptes().free();
    m.run(0, |cpu| {
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(0), 12 * GB, MemoryCachingType::NonCached), None);
        assert_eq!(mm_map_io_space(cpu, PhysAddr::new(0), 20 * GB, MemoryCachingType::Cached), None);
        assert_eq!(m.system_ptes().free(), free);
        let undecoded = PhysAddr::new(0x40_0000_0000);
        let va = mm_map_io_space(cpu, undecoded, 64 * MB, MemoryCachingType::NonCached).unwrap();
        assert_eq!(read_register_ulong(cpu, Va::new(va.get() + 64 * MB - 4))?, 0xFFFF_FFFF);
        mm_unmap_io_space(cpu, va, 64 * MB)?;
        assert_eq!(mm_map_io_space(cpu, undecoded, 64 * MB + 0x1_0000, MemoryCachingType::NonCached), None);
        Ok(())
    })
    .unwrap();
    assert_eq!(m.system_ptes().free(), free);
}
