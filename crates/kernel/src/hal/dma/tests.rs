//! DMA adapters: IoGetDmaAdapter's decisions, map registers against a naive model,
//! common buffers, and bounce correctness against a naive reference (the data the
//! device sees and the data the driver gets back).

use ntmem_machine::{find_edition, BootOptions, MachineConfig, Pfn, PhysAddr, Va};
use proptest::prelude::*;

use super::adapter::{configure, Registers, LIMIT_24_BIT, LIMIT_32_BIT, MASTER_CAP, SUBORDINATE_CAP};
use super::description::{DeviceDescription, DmaRefusal, InterfaceType};
use super::transfer::{get_scatter_gather_list, put_scatter_gather_list, read_list, Grant, ListOutcome, ListRequest};
use super::*;
use crate::ex::pool::{self, PoolTag, PoolType};
use crate::mm::frames::FrameRequest;
use crate::mm::mdl::{self, Mdl};
use crate::mm::pfn::PageUse;
use crate::{Cpu, Machine};

const GB: u64 = 1 << 30;
const PAGE: u64 = 4096;

fn boot(edition: &str, ram: u64) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

fn x64() -> &'static ntmem_machine::Edition {
    find_edition("ws03sp1-enterprise-x64").unwrap()
}

/// A 32-bit scatter/gather PCI bus master, as a NIC describes itself.
fn pci_sg32(max: u32) -> DeviceDescription {
    let mut d = DeviceDescription::zeroed(2);
    d.master = true;
    d.scatter_gather = true;
    d.dma32_bit_addresses = true;
    d.interface_type = InterfaceType::Pci;
    d.maximum_length = max;
    d
}

#[test]
fn versions_select_the_table_and_unsupported_ones_are_refused() {
    let mut d = pci_sg32(0x1_0000);
    for (v, ops) in [(0, 1), (1, 1), (2, 2)] {
        d.version = v;
        assert_eq!(configure(x64(), &d, 8 * GB - 1, PAGE).unwrap().operations_version(), ops);
    }
    d.version = 3;
    d.dma_address_width = 32;
    assert_eq!(configure(x64(), &d, 8 * GB - 1, PAGE), Err(DmaRefusal::UnsupportedVersion(3)));
    d.version = 2;
    // Version 2 is Windows XP's; Windows 2000 refuses it.
    let w2k = find_edition("w2k-professional").unwrap();
    assert_eq!(configure(w2k, &d, GB - 1, PAGE), Err(DmaRefusal::UnsupportedVersion(2)));
}

/// Version 3 is Windows 8's: a table of version 3 there; a master's reach is its
/// `DmaAddressWidth` alone (the address flags are ignored), 0 or above 64 refused;
/// a subordinate device with a request line goes to that line's controller, else
/// to its ISA channel.
#[test]
fn version_3_is_windows_8s_and_reads_the_address_width_and_request_line() {
    let win8 = find_edition("win8-x64").unwrap();
    let mut d = pci_sg32(0x1_0000);
    d.version = 3;
    d.dma_address_width = 36;
    d.dma64_bit_addresses = true;
    let c = configure(win8, &d, 128 * GB - 1, PAGE).unwrap();
    assert_eq!((c.operations_version(), c.limit, c.bounces), (3, (1 << 36) - 1, true));
    assert!(!configure(win8, &d, 32 * GB - 1, PAGE).unwrap().bounces);
    for bad in [0, 65] {
        d.dma_address_width = bad;
        assert_eq!(configure(win8, &d, GB - 1, PAGE), Err(DmaRefusal::BadAddressWidth(bad)));
    }
    let vista = find_edition("vista-x64").unwrap();
    assert_eq!(configure(vista, &d, GB - 1, PAGE), Err(DmaRefusal::UnsupportedVersion(3)));
    let mut s = DeviceDescription::zeroed(3);
    s.dma_request_line = 0x1000;
    s.dma_channel = 0x1000;
    s.maximum_length = 0x2000;
    let c = configure(win8, &s, 8 * GB - 1, PAGE).unwrap();
    assert_eq!(
        (c.channel, c.limit, c.map_registers, c.boundary),
        (Some(super::controller::Channel::RequestLine(0x1000)), LIMIT_32_BIT, 3, 0)
    );
    s.dma_request_line = 0;
    assert_eq!(configure(win8, &s, 8 * GB - 1, PAGE), Err(DmaRefusal::BadChannel(0x1000)));
    s.dma_channel = 6;
    s.maximum_length = 0x2_0000;
    let c = configure(win8, &s, 8 * GB - 1, PAGE).unwrap();
    assert_eq!((c.limit, c.boundary, c.map_registers), (LIMIT_24_BIT, 0x2_0000, 2 * SUBORDINATE_CAP));
}

/// The controller's count register: a device request moves at most what is left
/// (whole words on a word channel), ReadDmaCounter falls with it, terminal count
/// stops a single-mode channel and hands back the completion routine once; an
/// auto-initialize channel reloads and goes on.
#[test]
fn the_system_dma_controller_counts_down_and_auto_initializes() {
    use super::controller::{Channel, Completion, Program, SystemDma};
    let m = boot("ws03sp1-enterprise-x64", GB);
    let mut c = SystemDma::default();
    let done = Completion { adapter: 1, routine: 2, context: 3, device: 4 };
    let program = |count, auto_initialize| Program {
        base: LogicalAddress::new(0x10_0000),
        count,
        to_device: false,
        auto_initialize,
        device_offset: 0,
    };
    let ch = Channel::Isa(5);
    assert!(c.device_moves(&m, ch, None, &[1]).is_err(), "not programmed");
    c.program(ch, 1, program(0x101, false), Some(done));
    let mv = c.device_moves(&m, ch, Some(0x81), &[0x5A]).unwrap();
    assert_eq!((mv.moved.bytes, mv.moved.left, mv.terminal_count, mv.completion), (0x80, 0x81, false, None));
    assert_eq!((c.counter(ch, 1), c.counter(ch, 2)), (0x81, 0), "another adapter's channel reads 0");
    assert!(c.running(ch));
    let mv = c.device_moves(&m, ch, None, &[0x5A]).unwrap();
    assert_eq!((mv.moved.bytes, mv.terminal_count, mv.completion), (0x80, false, None), "whole words");
    c.program(ch, 1, program(0x100, false), Some(done));
    let mv = c.device_moves(&m, ch, None, &[0x5A]).unwrap();
    assert_eq!((mv.terminal_count, mv.completion, c.counter(ch, 1)), (true, Some(done), 0));
    assert!(!c.running(ch) && c.device_moves(&m, ch, None, &[1]).is_err(), "stopped at terminal count");
    let isa1 = Channel::Isa(1);
    c.program(isa1, 1, program(0x10, true), None);
    for _ in 0..3 {
        let mv = c.device_moves(&m, isa1, None, &[7]).unwrap();
        assert_eq!((mv.moved.bytes, mv.terminal_count, mv.moved.left), (0x10, true, 0x10), "reloaded");
    }
    let mut byte = [0u8; 1];
    device_access(&m, LogicalAddress::new(0x10_000F), &mut byte, false);
    assert_eq!(byte, [7], "the device's bytes reached RAM");
    assert_eq!(c.moved().len(), 6);
    assert_eq!(Channel::Isa(6).controller_and_number(), (1, 2));
}

#[test]
fn a_32_bit_sg_master_bounces_only_when_ram_lies_above_4_gb() {
    let d = pci_sg32(0x1_0000);
    let big = configure(x64(), &d, 8 * GB - 1, PAGE).unwrap();
    assert_eq!((big.limit, big.bounces), (LIMIT_32_BIT, true));
    // 64 KB: 16 pages, plus one for an unaligned start.
    assert_eq!(big.map_registers, 17);
    let small = configure(x64(), &d, 3 * GB - 1, PAGE).unwrap();
    assert!(!small.bounces);
    let mut d64 = d;
    d64.dma64_bit_addresses = true;
    let c = configure(x64(), &d64, 8 * GB - 1, PAGE).unwrap();
    assert_eq!((c.limit, c.bounces), (u64::MAX, false));
    // A PCI S/G master is 32-bit whatever it says; a non-S/G master without flags is 24-bit.
    let mut plain = d;
    plain.dma32_bit_addresses = false;
    assert_eq!(configure(x64(), &plain, 8 * GB - 1, PAGE).unwrap().limit, LIMIT_32_BIT);
    plain.scatter_gather = false;
    let c = configure(x64(), &plain, 8 * GB - 1, PAGE).unwrap();
    assert_eq!((c.limit, c.bounces), (LIMIT_24_BIT, true));
    // Huge transfers are capped; MaximumLength is masked to 31 bits first.
    let mut huge = d;
    huge.maximum_length = u32::MAX;
    assert_eq!(configure(x64(), &huge, 8 * GB - 1, PAGE).unwrap().map_registers, MASTER_CAP);
}

#[test]
fn system_dma_is_24_bit_in_64_kb_windows_and_channel_4_is_refused() {
    let mut d = DeviceDescription::zeroed(1);
    d.interface_type = InterfaceType::Isa;
    d.dma_channel = 4;
    d.maximum_length = 0x10_0000;
    assert_eq!(configure(x64(), &d, GB - 1, PAGE), Err(DmaRefusal::BadChannel(4)));
    d.dma_channel = 8;
    assert_eq!(configure(x64(), &d, GB - 1, PAGE), Err(DmaRefusal::BadChannel(8)));
    d.dma_channel = 1;
    let c = configure(x64(), &d, GB - 1, PAGE).unwrap();
    assert_eq!(
        (c.limit, c.boundary, c.map_registers, c.channel),
        (LIMIT_24_BIT, 0x1_0000, SUBORDINATE_CAP, Some(super::controller::Channel::Isa(1)))
    );
    d.scatter_gather = true;
    assert_eq!(configure(x64(), &d, GB - 1, PAGE).unwrap().map_registers, 1);
}

/// The naive model: registers as a list of owners, runs found by checking every
/// start in turn.
fn naive_allocate(used: &mut [bool], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    (0..used.len()).find(|&s| s + n <= used.len() && used[s..s + n].iter().all(|u| !u)).inspect(|&s| {
        used[s..s + n].iter_mut().for_each(|u| *u = true);
    })
}

proptest! {
    #[test]
    fn map_registers_match_a_naive_model(total in 1u32..40, ops in prop::collection::vec((any::<bool>(), 0u32..12, any::<u16>()), 1..80)) {
        let mut r = Registers::new(total);
        let mut model = vec![false; total as usize];
        let mut held: Vec<(u32, u32)> = Vec::new();
        for (alloc, n, pick) in ops {
            if alloc || held.is_empty() {
                let got = r.allocate(n);
                let want = naive_allocate(&mut model, n as usize).map(|s| s as u32);
                prop_assert_eq!(got, want);
                if let Some(first) = got.filter(|_| n > 0) {
                    held.push((first, n));
                }
            } else {
                let (first, n) = held.swap_remove(usize::from(pick) % held.len());
                prop_assert!(r.free(first, n));
                model[first as usize..(first + n) as usize].iter_mut().for_each(|u| *u = false);
                // A second free of the same run is refused and changes nothing.
                prop_assert!(!r.free(first, n));
            }
            prop_assert_eq!(r.in_use() as usize, model.iter().filter(|&&u| u).count());
            prop_assert!(r.in_use() <= r.total());
        }
    }
}

fn adapter(cpu: &Cpu<'_>, d: &DeviceDescription) -> NewAdapter {
    io_get_dma_adapter(cpu, d).unwrap().unwrap()
}

#[test]
fn io_get_dma_adapter_builds_the_object_with_version_1_and_a_low_map_buffer() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        let mut b = [0u8; 0x18];
        m.space().read(a.object, &mut b).unwrap();
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 1, "Version always reads 1");
        assert_eq!(u16::from_le_bytes([b[2], b[3]]) as u32, 0x10 + DMA_OPERATIONS_V2_SIZE);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), a.operations.get());
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), DMA_OPERATIONS_V2_SIZE);
        assert_eq!((a.operations_version, a.map_registers), (2, 17));
        {
            let state = m.hal().dma();
            let ad = state.adapter(a.object).unwrap();
            let mb = ad.map_buffer.unwrap();
            assert!(mb.add(16).addr(m.phys().shift()).get() + PAGE - 1 <= LIMIT_32_BIT);
        }
        put_dma_adapter(cpu, a.object)?;
        assert!(m.hal().dma().adapter(a.object).is_none());
        // An unsupported version is NULL, with the reason kept.
        let r = io_get_dma_adapter(cpu, &DeviceDescription::zeroed(3)).unwrap();
        assert_eq!(r, Err(DmaRefusal::UnsupportedVersion(3)));
        assert_eq!(m.hal().dma().events().last().unwrap().routine, "IoGetDmaAdapter");
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_common_buffer_is_contiguous_page_rounded_in_reach_and_costs_a_map_register() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        let before = m.hal().dma().adapter(a.object).unwrap().registers.in_use();
        let (va, logical) = allocate_common_buffer(cpu, a.object, 5000)?.unwrap();
        let state = m.hal().dma();
        let ad = state.adapter(a.object).unwrap();
        assert_eq!(ad.registers.in_use(), before + 1);
        assert_eq!(ad.common_buffers[0].pages, 2);
        drop(state);
        assert_eq!(logical.get() % PAGE, 0);
        assert!(logical.get() + 2 * PAGE - 1 <= LIMIT_32_BIT);
        for i in 0..2 {
            let pa = contiguous::mm_get_physical_address(cpu, Va::new(va.get() + i * PAGE));
            assert_eq!(pa.get(), logical.get() + i * PAGE);
        }
        free_common_buffer(cpu, a.object, 5000, va)?;
        assert_eq!(m.hal().dma().adapter(a.object).unwrap().registers.in_use(), before);
        // Every register charged: the next common buffer is refused, with the reason.
        let total = m.hal().dma().adapter(a.object).unwrap().registers.total();
        let mut held = Vec::new();
        for _ in 0..total {
            held.push(allocate_common_buffer(cpu, a.object, 1)?.unwrap().0);
        }
        assert_eq!(allocate_common_buffer(cpu, a.object, 1)?, Err(DmaRefusal::NoMapRegisterLeft { total }));
        for va in held {
            free_common_buffer(cpu, a.object, 1, va)?;
        }
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

/// Seed 001: a 1 GB common buffer for a 32-bit device on a machine whose low 4 GB
/// cannot hold 1 GB of contiguous free memory fails, and says why.
#[test]
fn a_1_gb_common_buffer_fails_with_the_largest_run_named() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    // Fragment the low 4 GB: take every 64th page below 4 GB.
    let mut taken = Vec::new();
    for i in (0..(4 * GB / PAGE)).step_by(64) {
        let pa = PhysAddr::new(i * PAGE);
        let req = FrameRequest::new(1, PageUse::Reserved).lowest(pa).highest(PhysAddr::new(pa.get() + PAGE - 1));
        if let Ok(f) = m.phys().allocate(&req) {
            taken.push(f.first());
        }
    }
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        let r = allocate_common_buffer(cpu, a.object, 1 << 30)?;
        let Err(DmaRefusal::NotEnoughContiguousMemory { pages, limit, largest_run }) = r.clone() else {
            panic!("{r:?}")
        };
        assert_eq!((pages, limit), (262_144, LIMIT_32_BIT));
        assert!(largest_run < 64, "{largest_run}");
        let text = r.unwrap_err().to_string();
        assert!(text.contains("not enough physically contiguous memory") && text.contains("below 4 GB"), "{text}");
        // A smaller buffer succeeds.
        let (va, _) = allocate_common_buffer(cpu, a.object, 0x1_0000)
            .map(|r| r.ok())
            .unwrap_or(None)
            .unwrap_or_else(|| allocate_common_buffer(cpu, a.object, 4096).unwrap().unwrap());
        free_common_buffer(cpu, a.object, 0, va)?;
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
    for pfn in taken {
        m.phys().free(pfn, 1).unwrap();
    }
}

/// An MDL in pool describing `pfns` (any frames) as a buffer at `va` (need not be
/// mapped: the DMA routines read only the MDL).
fn mdl_over(cpu: &Cpu<'_>, va: Va, length: u64, pfns: &[Pfn]) -> Mdl {
    let m = cpu.machine();
    let size = mdl::mm_size_of_mdl(m.phys().shift(), va, length);
    let at = pool::allocate(cpu, PoolType::NonPagedPool, size, PoolTag::new(*b"Test")).unwrap().unwrap();
    let mdl = Mdl(at);
    m.space().write(at, &[0u8; 0x30]).unwrap();
    mdl::mm_initialize_mdl(cpu, mdl, va, length).unwrap();
    // Locked, as MmProbeAndLockPages leaves an MDL (DMA checking's 0x0E wants it).
    m.space().write(Va::new(at.get() + 0xA), &mdl::MdlFlags::PAGES_LOCKED.bits().to_le_bytes()).unwrap();
    for (i, p) in pfns.iter().enumerate() {
        m.space().write(Va::new(mdl.pfn_array().get() + 8 * i as u64), &p.get().to_le_bytes()).unwrap();
    }
    mdl
}

fn phys_bytes(m: &Machine, pa: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    device_access(m, LogicalAddress::new(pa), &mut b, false);
    b
}

/// One round: a buffer at byte `offset` spanning frames `pfns`, mapped with a
/// scatter/gather list in `write` direction; checks what the device sees against
/// the naive reference (the buffer's bytes in order) and what the buffer holds
/// after PutScatterGatherList (the device's bytes), and that nothing reaches the
/// buffer before it.
fn round(cpu: &Cpu<'_>, a: &NewAdapter, pfns: &[Pfn], offset: u64, length: u64, write: bool, seed: u8) {
    let m = cpu.machine();
    let limit = m.hal().dma().adapter(a.object).unwrap().config.limit;
    let va = Va::new(0x7_0000_0000 + offset);
    let mdl = mdl_over(cpu, va, length, pfns);
    // The reference buffer: where each byte of the buffer lives physically.
    let byte_pa = |i: u64| pfns[((offset + i) / PAGE) as usize].addr(m.phys().shift()).get() + (offset + i) % PAGE;
    let original: Vec<u8> = (0..length).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect();
    for (i, b) in original.iter().enumerate() {
        device_access(m, LogicalAddress::new(byte_pa(i as u64)), &mut [*b], true);
    }
    let request = ListRequest {
        device: 0,
        routine: 0,
        context: 0,
        mdl,
        current_va: va,
        length: length as u32,
        write,
        buffer: None,
    };
    let ListOutcome::Run(Grant::List { list, .. }) = get_scatter_gather_list(cpu, a.object, request).unwrap() else {
        panic!("not granted")
    };
    let elements = read_list(m, list).unwrap();
    assert_eq!(elements.iter().map(|e| u64::from(e.1)).sum::<u64>(), length);
    for &(l, n) in &elements {
        assert!(l.get() + u64::from(n) - 1 <= limit, "element {l:?}+{n:#x} beyond the device's reach");
    }
    if write {
        // The device reads the elements in order: exactly the buffer.
        let seen: Vec<u8> = elements.iter().flat_map(|&(l, n)| phys_bytes(m, l.get(), n as usize)).collect();
        assert_eq!(seen, original);
    } else {
        // The device writes new data; bounced pages reach the buffer only at the Put.
        let mut at = 0usize;
        let incoming: Vec<u8> = original.iter().map(|b| !b).collect();
        for &(l, n) in &elements {
            device_access(m, l, &mut incoming[at..at + n as usize].to_vec(), true);
            at += n as usize;
        }
        // Byte i's logical address, from the elements in order.
        let logical_of: Vec<u64> =
            elements.iter().flat_map(|&(l, n)| (0..u64::from(n)).map(move |k| l.get() + k)).collect();
        for i in 0..length {
            let now = phys_bytes(m, byte_pa(i), 1)[0];
            let direct = logical_of[i as usize] == byte_pa(i);
            assert_eq!(
                now,
                if direct { incoming[i as usize] } else { original[i as usize] },
                "byte {i} before the flush"
            );
        }
        put_scatter_gather_list(cpu, a.object, list).unwrap();
        let got: Vec<u8> = (0..length).map(|i| phys_bytes(m, byte_pa(i), 1)[0]).collect();
        assert_eq!(got, incoming);
        pool::free(cpu, mdl.0, None).unwrap();
        return;
    }
    put_scatter_gather_list(cpu, a.object, list).unwrap();
    pool::free(cpu, mdl.0, None).unwrap();
}

fn frames(m: &Machine, high: bool, n: usize) -> Vec<Pfn> {
    (0..n)
        .map(|_| {
            let req = FrameRequest::new(1, PageUse::Reserved);
            let req = if high { req.lowest(PhysAddr::new(4 * GB)) } else { req.highest(PhysAddr::new(4 * GB - 1)) };
            m.phys().allocate(&req).unwrap().first()
        })
        .collect()
}

#[test]
fn a_32_bit_device_bounces_pages_above_4_gb_in_both_directions() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let mut pfns = frames(&m, true, 2);
    pfns.insert(1, frames(&m, false, 1)[0]);
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        round(cpu, &a, &pfns, 100, 3 * PAGE - 300, true, 1);
        round(cpu, &a, &pfns, 100, 3 * PAGE - 300, false, 2);
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

#[test]
fn a_64_bit_device_does_not_bounce() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let pfns = frames(&m, true, 2);
    m.run(0, |cpu| {
        let mut d = pci_sg32(0x1_0000);
        d.dma64_bit_addresses = true;
        let a = adapter(cpu, &d);
        assert!(m.hal().dma().adapter(a.object).unwrap().map_buffer.is_none());
        let mdl = mdl_over(cpu, Va::new(0x7_0000_0010), 2 * PAGE - 0x10, &pfns);
        let request = ListRequest {
            device: 0,
            routine: 0,
            context: 0,
            mdl,
            current_va: Va::new(0x7_0000_0010),
            length: (2 * PAGE - 0x10) as u32,
            write: true,
            buffer: None,
        };
        let ListOutcome::Run(Grant::List { list, .. }) = get_scatter_gather_list(cpu, a.object, request)? else {
            panic!()
        };
        let e = read_list(&m, list).unwrap();
        assert_eq!(e[0].0.get(), pfns[0].addr(m.phys().shift()).get() + 0x10);
        assert!(e.iter().all(|x| x.0.get() >= 4 * GB));
        put_scatter_gather_list(cpu, a.object, list)?;
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

#[test]
fn packet_dma_channels_queue_and_map_transfer_bounces_at_the_documented_moments() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let pfns = frames(&m, true, 2);
    m.run(0, |cpu| {
        let mut d = pci_sg32(2 * PAGE as u32);
        d.scatter_gather = false; // software S/G: one run through the registers
        d.dma32_bit_addresses = true;
        let a = adapter(cpu, &d);
        let n = a.map_registers;
        assert_eq!(n, 3);
        let req = transfer::ChannelRequest { device: 1, routine: 2, context: 3, transfer_context: 0 };
        assert_eq!(transfer::allocate_adapter_channel(cpu, a.object, n + 1, req)?, transfer::ChannelOutcome::TooMany);
        let transfer::ChannelOutcome::Run(Grant::Channel { base, .. }) =
            transfer::allocate_adapter_channel(cpu, a.object, n, req)?
        else {
            panic!()
        };
        // A second request waits for the channel.
        assert_eq!(transfer::allocate_adapter_channel(cpu, a.object, 1, req)?, transfer::ChannelOutcome::Queued);
        let va = Va::new(0x7_0000_0000);
        let mdl = mdl_over(cpu, va, 2 * PAGE, &pfns);
        let pa0 = pfns[0].addr(m.phys().shift()).get();
        device_access(&m, LogicalAddress::new(pa0), &mut [0xAB; 8], true);
        // Write to the device: copied at MapTransfer; one run of both pages.
        let (l, len) = transfer::map_transfer(
            cpu,
            a.object,
            mdl,
            base,
            va,
            2 * PAGE as u32,
            true,
            transfer::SystemDmaExtras::default(),
        )
        .map(|x| (x.logical, x.length))?;
        assert_eq!(len as u64, 2 * PAGE);
        assert!(l.get() < 4 * GB);
        assert_eq!(phys_bytes(&m, l.get(), 8), vec![0xAB; 8]);
        transfer::flush_adapter_buffers(cpu, a.object, base, None)?;
        // Read from the device: nothing reaches the buffer until the flush.
        let (l, _) = transfer::map_transfer(
            cpu,
            a.object,
            mdl,
            base,
            va,
            2 * PAGE as u32,
            false,
            transfer::SystemDmaExtras::default(),
        )
        .map(|x| (x.logical, x.length))?;
        device_access(&m, l, &mut [0xCD; 8], true);
        assert_eq!(phys_bytes(&m, pa0, 8), vec![0xAB; 8]);
        transfer::flush_adapter_buffers(cpu, a.object, base, None)?;
        assert_eq!(phys_bytes(&m, pa0, 8), vec![0xCD; 8]);
        // DeallocateObjectKeepRegisters frees the channel: the waiter runs.
        let g =
            transfer::adapter_control_returned(cpu, a.object, base, AllocationAction::DeallocateObjectKeepRegisters)?;
        assert!(g.is_empty(), "the registers are still held: {g:?}");
        let g = transfer::free_map_registers(cpu, a.object, base, n)?;
        assert!(matches!(g[..], [Grant::Channel { request, .. }] if request == req), "{g:?}");
        let Grant::Channel { base: b2, .. } = g[0] else { panic!() };
        transfer::adapter_control_returned(cpu, a.object, b2, AllocationAction::DeallocateObject)?;
        assert_eq!(m.hal().dma().adapter(a.object).unwrap().registers.in_use(), 0);
        pool::free(cpu, mdl.0, None)?;
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Bounce correctness against the naive reference, for random buffers whose pages
    /// lie above or below 4 GB, random offsets and lengths, both directions.
    #[test]
    fn scatter_gather_data_matches_the_reference(
        highs in prop::collection::vec(any::<bool>(), 1..6),
        offset in 0u64..4096,
        cut in 0u64..4096,
        write in any::<bool>(),
        sg in any::<bool>(),
        seed in any::<u8>(),
    ) {
        thread_local! {
            static M: Machine = boot("ws03sp1-enterprise-x64", 8 * GB);
        }
        M.with(|m| {
            let pfns: Vec<Pfn> = highs.iter().map(|&h| frames(m, h, 1)[0]).collect();
            let span = highs.len() as u64 * PAGE - offset;
            let length = (span - cut.min(span - 1)).max(1);
            m.run(0, |cpu| {
                let mut d = pci_sg32(0x1_0000);
                d.scatter_gather = sg;
                let a = adapter(cpu, &d);
                round(cpu, &a, &pfns, offset, length, write, seed);
                put_dma_adapter(cpu, a.object)
            }).unwrap();
            for p in pfns {
                m.phys().free(p, 1).unwrap();
            }
        });
    }
}

#[test]
fn isa_system_dma_stays_below_16_mb_and_inside_64_kb() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let pfns = frames(&m, true, 3);
    m.run(0, |cpu| {
        let mut d = DeviceDescription::zeroed(1);
        d.interface_type = InterfaceType::Isa;
        d.dma_channel = 1;
        d.maximum_length = 0x1_0000;
        let a = adapter(cpu, &d);
        let (va, logical) = allocate_common_buffer(cpu, a.object, 0x8000)?.unwrap();
        assert!(logical.get() + 0x8000 - 1 <= LIMIT_24_BIT);
        assert_eq!(logical.get() / 0x1_0000, (logical.get() + 0x7FFF) / 0x1_0000);
        free_common_buffer(cpu, a.object, 0x8000, va)?;
        round(cpu, &a, &pfns, 0x800, 3 * PAGE - 0x1000, true, 3);
        round(cpu, &a, &pfns, 0x800, 3 * PAGE - 0x1000, false, 4);
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

#[test]
fn build_and_calculate_scatter_gather_lists_use_the_callers_buffer_and_exact_sizes() {
    use super::transfer::{calculate_scatter_gather_list, list_size, STATUS_BUFFER_TOO_SMALL};
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let pfns = frames(&m, true, 3);
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        let va = Va::new(0x7_0000_0000);
        let mdl = mdl_over(cpu, va, 3 * PAGE, &pfns);
        // Exact with the MDL (the bounced pages sit in consecutive registers: one
        // run); one element per page without it.
        assert_eq!(calculate_scatter_gather_list(cpu, a.object, Some(mdl), va, 3 * PAGE as u32)?, Ok((0x28, 3)));
        assert_eq!(calculate_scatter_gather_list(cpu, a.object, None, va, 3 * PAGE as u32)?, Ok((0x58, 3)));
        let too_many = calculate_scatter_gather_list(cpu, a.object, None, va, 64 * PAGE as u32)?;
        assert_eq!(too_many, Err(crate::ex::pool::NtStatus::INSUFFICIENT_RESOURCES));
        let buffer = pool::allocate(cpu, PoolType::NonPagedPool, 0x100, PoolTag::new(*b"Test"))?.unwrap();
        let mut request = ListRequest {
            device: 0,
            routine: 0,
            context: 0,
            mdl,
            current_va: va,
            length: 3 * PAGE as u32,
            write: true,
            buffer: Some((buffer, 0x10)),
        };
        assert_eq!(get_scatter_gather_list(cpu, a.object, request)?, ListOutcome::Status(STATUS_BUFFER_TOO_SMALL));
        request.buffer = Some((buffer, list_size(1) as u32));
        let ListOutcome::Run(Grant::List { list, .. }) = get_scatter_gather_list(cpu, a.object, request)? else {
            panic!()
        };
        assert_eq!(list, buffer, "the list is in the caller's buffer");
        assert_eq!(read_list(&m, list).unwrap().len(), 1);
        put_scatter_gather_list(cpu, a.object, list)?;
        // The caller's buffer is the caller's: still allocated after the Put.
        pool::free(cpu, buffer, None)?;
        pool::free(cpu, mdl.0, None)?;
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
}

#[test]
fn a_null_or_released_adapter_and_a_range_outside_the_mdl_stop_with_0xe6() {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let b = m.run(0, |cpu| allocate_common_buffer(cpu, Va::new(0), 1).map(|_| ())).unwrap_err();
    assert_eq!((b.code, b.parameters[0]), (DRIVER_VERIFIER_DMA_VIOLATION, 0x19));
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1000));
            put_dma_adapter(cpu, a.object)?;
            transfer::free_adapter_channel(cpu, a.object).map(|_| ())
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters[0]), (DRIVER_VERIFIER_DMA_VIOLATION, 0x18));
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    let pfns = frames(&m, true, 1);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1000));
            let mdl = mdl_over(cpu, Va::new(0x7_0000_0000), PAGE, &pfns);
            let req = transfer::ChannelRequest { device: 0, routine: 0, context: 0, transfer_context: 0 };
            let transfer::ChannelOutcome::Run(Grant::Channel { base, .. }) =
                transfer::allocate_adapter_channel(cpu, a.object, 1, req)?
            else {
                panic!()
            };
            transfer::map_transfer(
                cpu,
                a.object,
                mdl,
                base,
                Va::new(0x7_0000_0800),
                PAGE as u32,
                true,
                transfer::SystemDmaExtras::default(),
            )
            .map(|x| (x.logical, x.length))
            .map(|_| ())
        })
        .unwrap_err();
    assert_eq!(b.code, DRIVER_VERIFIER_DMA_VIOLATION);
    assert_eq!((b.parameters[0], b.parameters[1]), (0x1B, 0x7_0000_0800));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// Nothing a driver writes into an MDL makes the DMA routines panic: any header
    /// and any frame numbers end in a list, a mapping, or a bugcheck.
    #[test]
    fn hostile_mdls_end_in_results_or_bugchecks_never_panics(
        start_va in any::<u64>(),
        byte_offset in any::<u32>(),
        byte_count in 0u32..0x10_0000,
        pfns in prop::collection::vec(any::<u64>(), 8),
        current in any::<u64>(),
        length in 0u32..0x10_0000,
        sg in any::<bool>(),
        write in any::<bool>(),
    ) {
        let m = boot("ws03sp1-enterprise-x64", 8 * GB);
        let _ = m.run(0, |cpu| {
            let mut d = pci_sg32(0x1_0000);
            d.scatter_gather = sg;
            let a = adapter(cpu, &d);
            let at = pool::allocate(cpu, PoolType::NonPagedPool, 0x30 + 8 * 8, PoolTag::new(*b"Test"))?.unwrap();
            let mut header = [0u8; 0x30];
            header[0x20..0x28].copy_from_slice(&start_va.to_le_bytes());
            header[0x28..0x2C].copy_from_slice(&byte_count.to_le_bytes());
            header[0x2C..0x30].copy_from_slice(&byte_offset.to_le_bytes());
            m.space().write(at, &header).unwrap();
            for (i, p) in pfns.iter().enumerate() {
                m.space().write(Va::new(at.get() + 0x30 + 8 * i as u64), &p.to_le_bytes()).unwrap();
            }
            let mdl = Mdl(at);
            // Near the MDL's own range half the time, so some requests are inside it.
            let current = if current & 1 == 0 { start_va.wrapping_add(u64::from(byte_offset)) } else { current };
            let request = ListRequest {
                device: 0, routine: 0, context: 0, mdl, current_va: Va::new(current), length, write, buffer: None,
            };
            let _ = transfer::calculate_scatter_gather_list(cpu, a.object, Some(mdl), Va::new(current), length)?;
            if let ListOutcome::Run(Grant::List { list, .. }) = get_scatter_gather_list(cpu, a.object, request)? {
                put_scatter_gather_list(cpu, a.object, list)?;
            }
            Ok(())
        });
    }
}

/// A machine with DMA checking on (`--verifier dma`) and, when `verifier` is false,
/// the same machine without it.
fn boot_verified(verifier: bool) -> Machine {
    let m = boot("ws03sp1-enterprise-x64", 8 * GB);
    if verifier {
        m.set_verifier(crate::vf::VerifierFlags::DMA_CHECKING);
    }
    m
}

/// Runs `f` at DISPATCH_LEVEL with a fresh 32-bit S/G adapter on a verified machine;
/// the 0xE6 parameters it stops with.
fn e6(f: impl FnOnce(&Cpu<'_>, &NewAdapter) -> Result<(), crate::BugCheck>) -> [u64; 4] {
    let m = boot_verified(true);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            cpu.raise_irql(crate::Irql::DISPATCH)?;
            f(cpu, &a)
        })
        .unwrap_err();
    assert_eq!(b.code, DRIVER_VERIFIER_DMA_VIOLATION, "{b:?}");
    b.parameters
}

/// A forgotten flush: a read mapped with MapTransfer, the device writes, the driver
/// frees the registers without FlushAdapterBuffers.
fn forgotten_flush(cpu: &Cpu<'_>, a: &NewAdapter, pfn: Pfn) -> Result<(), crate::BugCheck> {
    let m = cpu.machine();
    let va = Va::new(0x7_0000_0000);
    let mdl = mdl_over(cpu, va, PAGE, &[pfn]);
    let req = transfer::ChannelRequest { device: 0, routine: 0, context: 0, transfer_context: 0 };
    let transfer::ChannelOutcome::Run(Grant::Channel { base, .. }) =
        transfer::allocate_adapter_channel(cpu, a.object, 1, req)?
    else {
        panic!()
    };
    transfer::adapter_control_returned(cpu, a.object, base, AllocationAction::DeallocateObjectKeepRegisters)?;
    let (l, _) =
        transfer::map_transfer(cpu, a.object, mdl, base, va, PAGE as u32, false, transfer::SystemDmaExtras::default())
            .map(|x| (x.logical, x.length))?;
    device_access(m, l, &mut [0xEE; 16], true);
    transfer::free_map_registers(cpu, a.object, base, 1)?;
    Ok(())
}

#[test]
fn a_forgotten_flush_loses_read_data_without_the_verifier_and_is_0xe6_0x10_with_it() {
    let m = boot_verified(false);
    let pfn = frames(&m, true, 1)[0];
    m.run(0, |cpu| {
        let a = adapter(cpu, &pci_sg32(0x1_0000));
        device_access(&m, LogicalAddress::of_phys(pfn.addr(m.phys().shift())), &mut [0u8; 16], true);
        cpu.raise_irql(crate::Irql::DISPATCH)?;
        forgotten_flush(cpu, &a, pfn)?;
        cpu.lower_irql(crate::Irql::PASSIVE)?;
        // The device's bytes went to the bounce page and were never copied back.
        assert_eq!(phys_bytes(&m, pfn.addr(m.phys().shift()).get(), 16), vec![0u8; 16]);
        put_dma_adapter(cpu, a.object)
    })
    .unwrap();
    let m2 = boot_verified(true);
    let pfn = frames(&m2, true, 1)[0];
    drop(m);
    let b = m2
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            cpu.raise_irql(crate::Irql::DISPATCH)?;
            forgotten_flush(cpu, &a, pfn)
        })
        .unwrap_err();
    assert_eq!((b.code, b.parameters), (DRIVER_VERIFIER_DMA_VIOLATION, [0x10, 1, 0, 0]));
}

#[test]
fn dma_checking_stops_with_each_subcode_and_its_parameters() {
    // 0x13: AllocateAdapterChannel below DISPATCH_LEVEL (expected 2, current 0).
    let m = boot_verified(true);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            let req = transfer::ChannelRequest { device: 0, routine: 0, context: 0, transfer_context: 0 };
            transfer::allocate_adapter_channel(cpu, a.object, 1, req).map(|_| ())
        })
        .unwrap_err();
    assert_eq!(b.parameters, [0x13, 1, 2, 0]);
    // 0x0C: more registers at once than the adapter has (required, maximum).
    let req = transfer::ChannelRequest { device: 0, routine: 0, context: 0, transfer_context: 0 };
    assert_eq!(e6(|cpu, a| transfer::allocate_adapter_channel(cpu, a.object, 18, req).map(|_| ())), [0x0C, 18, 17, 0]);
    // 0x0B: a second channel while the first is held.
    assert_eq!(
        e6(|cpu, a| {
            transfer::allocate_adapter_channel(cpu, a.object, 1, req)?;
            transfer::allocate_adapter_channel(cpu, a.object, 1, req).map(|_| ())
        }),
        [0x0B, 1, 0, 0]
    );
    // 0x04: FreeAdapterChannel with no channel held.
    assert_eq!(e6(|cpu, a| transfer::free_adapter_channel(cpu, a.object).map(|_| ())), [0x04, 1, 0, 0]);
    // 0x05: FreeMapRegisters of registers never allocated.
    assert_eq!(e6(|cpu, a| transfer::free_map_registers(cpu, a.object, 0x1234, 3).map(|_| ())), [0x05, 3, 0, 0]);
    // 0x06: a list put back twice (one built, two freed).
    let m = boot_verified(true);
    let pfns = frames(&m, true, 1);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            let mdl = mdl_over(cpu, Va::new(0x7_0000_0000), PAGE, &pfns);
            cpu.raise_irql(crate::Irql::DISPATCH)?;
            let request = ListRequest {
                device: 0,
                routine: 0,
                context: 0,
                mdl,
                current_va: Va::new(0x7_0000_0000),
                length: PAGE as u32,
                write: true,
                buffer: None,
            };
            let ListOutcome::Run(Grant::List { list, .. }) = get_scatter_gather_list(cpu, a.object, request)? else {
                panic!()
            };
            put_scatter_gather_list(cpu, a.object, list)?;
            put_scatter_gather_list(cpu, a.object, list).map(|_| ())
        })
        .unwrap_err();
    assert_eq!(b.parameters, [0x06, 1, 2, 0]);
    // 0x21: a zero-length map.
    assert_eq!(
        e6(|cpu, a| {
            let transfer::ChannelOutcome::Run(Grant::Channel { base, .. }) =
                transfer::allocate_adapter_channel(cpu, a.object, 1, req)?
            else {
                panic!()
            };
            let mdl = mdl_over(cpu, Va::new(0x7_0000_0000), PAGE, &[Pfn::new(0x100)]);
            transfer::map_transfer(
                cpu,
                a.object,
                mdl,
                base,
                Va::new(0x7_0000_0000),
                0,
                true,
                transfer::SystemDmaExtras::default(),
            )
            .map(|x| (x.logical, x.length))
            .map(|_| ())
        }),
        [0x21, 0, 0, 0]
    );
    // 0x07: the adapter released with a common buffer outstanding (adapter, count).
    let m = boot_verified(true);
    let mut object = 0;
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            object = a.object.get();
            allocate_common_buffer(cpu, a.object, 100)?.unwrap();
            put_dma_adapter(cpu, a.object)
        })
        .unwrap_err();
    assert_eq!(b.parameters, [0x07, object, 1, 0]);
    // 0x03: a common buffer freed twice.
    let m = boot_verified(true);
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            let (va, _) = allocate_common_buffer(cpu, a.object, 100)?.unwrap();
            free_common_buffer(cpu, a.object, 100, va)?;
            free_common_buffer(cpu, a.object, 100, va)
        })
        .unwrap_err();
    assert_eq!(b.parameters, [0x03, 1, 0, 0]);
    // 0x09: the adapter released with map registers outstanding (adapter, registers).
    let m = boot_verified(true);
    let mut object = 0;
    let b = m
        .run(0, |cpu| {
            let a = adapter(cpu, &pci_sg32(0x1_0000));
            object = a.object.get();
            cpu.raise_irql(crate::Irql::DISPATCH)?;
            let transfer::ChannelOutcome::Run(Grant::Channel { base, .. }) =
                transfer::allocate_adapter_channel(cpu, a.object, 4, req)?
            else {
                panic!()
            };
            transfer::adapter_control_returned(cpu, a.object, base, AllocationAction::DeallocateObjectKeepRegisters)?;
            put_dma_adapter(cpu, a.object)
        })
        .unwrap_err();
    assert_eq!(b.parameters, [0x09, object, 4, 0]);
}

/// The verifier's shadow: a run framed by "DmaVrfy0" on both sides, 0x0F elsewhere;
/// each kind of damage names itself (0x0F with P2 1, 2, 4 or 5), and a flush's
/// reset makes the shadow clean again.
#[test]
fn a_shadow_frames_each_run_and_names_the_damage() {
    use super::shadow::{Shadow, FILL, TAG};
    let m = boot("ws03sp1-enterprise-x64", GB);
    let config = configure(x64(), &pci_sg32(0x4000), GB - 1, PAGE).unwrap();
    let mut s = Shadow::allocate(&m, &config, 3).unwrap();
    let regs = s.registers().addr(m.phys().shift()).get();
    let (start, len, va) = (regs + 0x100, 0x1000, Va::new(0xAB_0000));
    s.record(&m, start, len, va);
    assert_eq!(s.check(&m), None);
    let poke = |pa: u64, b: u8| {
        device_access(&m, LogicalAddress::new(pa), &mut [b], true);
    };
    let peek = |pa: u64| {
        let mut b = [0u8; 8];
        device_access(&m, LogicalAddress::new(pa), &mut b, false);
        b
    };
    assert_eq!((peek(start - 8), peek(start + len), peek(regs)), (TAG, TAG, [FILL; 8]));
    poke(start + 5, 0x11);
    assert_eq!(s.check(&m), None, "inside the run: the device's own data");
    for (pa, want) in [
        (start - 3, [0x0F, 1, len, va.get()]),
        (start + len + 7, [0x0F, 2, len, va.get()]),
        (regs - 0x800, [0x0F, 4, va.get(), regs - 0x800]),
        (start + len + 0x10, [0x0F, 5, va.get(), start + len + 0x10]),
    ] {
        s.reset(&m);
        s.record(&m, start, len, va);
        poke(pa, 0xEE);
        assert_eq!(s.check(&m), Some(want), "{pa:#x}");
    }
    s.reset(&m);
    assert_eq!((s.check(&m), peek(start - 8)), (None, [FILL; 8]), "no runs, all 0x0F again");
    s.release(&m);
}
