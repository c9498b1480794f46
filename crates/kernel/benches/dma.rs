//! DMA benchmarks (issue 13), side by side in one run on the default machine
//! (Windows Server 2003 SP1 Enterprise x64, 8 GB):
//!
//! (a) a GetScatterGatherList / PutScatterGatherList pair for a 64 KB buffer above
//!     4 GB, to the device: with a 64-bit device (no bouncing) and a 32-bit one
//!     (every page copied into the map buffer at Get), and from the device (copied
//!     back at Put); next to a plain 64 KB memcpy, the bounce's physical floor;
//! (b) AllocateCommonBuffer + FreeCommonBuffer of 64 KB.
//!
//! Each figure is the median of eleven rounds, per operation. Run:
//! `cargo bench -p ntmem-kernel --bench dma`. Numbers go to BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ntmem_kernel::hal::dma::transfer::{
    get_scatter_gather_list, put_scatter_gather_list, Grant, ListOutcome, ListRequest,
};
use ntmem_kernel::hal::dma::{self, DeviceDescription, InterfaceType};
use ntmem_kernel::mm::contiguous::{mm_allocate_contiguous_memory_specify_cache, MemoryCachingType};
use ntmem_kernel::mm::mdl::{self, Mdl};
use ntmem_kernel::{Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, PhysAddr, Va};

const ROUNDS: usize = 11;
const LEN: u32 = 0x1_0000;

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").expect("edition");
    config.boot = BootOptions::parse("").expect("boot options");
    Machine::boot(config.build().expect("profile")).expect("boots")
}

/// Median time per call of `f` over [`ROUNDS`] rounds of `per_round` calls.
fn measure(per_round: u32, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed() / per_round
        })
        .collect();
    times.sort();
    times[ROUNDS / 2]
}

fn description(dma64: bool) -> DeviceDescription {
    let mut d = DeviceDescription::zeroed(2);
    d.master = true;
    d.scatter_gather = true;
    d.dma32_bit_addresses = true;
    d.dma64_bit_addresses = dma64;
    d.interface_type = InterfaceType::Pci;
    d.maximum_length = LEN;
    d
}

fn pair(cpu: &Cpu<'_>, adapter: Va, mdl: Mdl, va: Va, write: bool) {
    let request =
        ListRequest { device: 0, routine: 0, context: 0, mdl, current_va: va, length: LEN, write, buffer: None };
    let Ok(ListOutcome::Run(Grant::List { list, .. })) = get_scatter_gather_list(cpu, adapter, request) else {
        panic!("no list")
    };
    put_scatter_gather_list(cpu, adapter, black_box(list)).expect("put");
}

fn main() {
    let m = boot();
    m.run(0, |cpu| {
        let va = mm_allocate_contiguous_memory_specify_cache(
            cpu,
            u64::from(LEN),
            PhysAddr::new(1 << 32),
            PhysAddr::new(u64::MAX),
            PhysAddr::new(0),
            MemoryCachingType::Cached,
        )
        .expect("64 KB above 4 GB");
        let mdl = mdl::io_allocate_mdl(cpu, va, u64::from(LEN))?.expect("MDL");
        mdl::mm_build_mdl_for_nonpaged_pool(cpu, mdl)?;
        let direct = dma::io_get_dma_adapter(cpu, &description(true))?.expect("64-bit adapter").object;
        let bounced = dma::io_get_dma_adapter(cpu, &description(false))?.expect("32-bit adapter").object;

        let no_bounce = measure(1000, || pair(cpu, direct, mdl, va, true));
        let bounce_write = measure(1000, || pair(cpu, bounced, mdl, va, true));
        let bounce_read = measure(1000, || pair(cpu, bounced, mdl, va, false));
        let (src, mut dst) = (vec![0x5Au8; LEN as usize], vec![0u8; LEN as usize]);
        let memcpy = measure(1000, || {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        });
        let common = measure(200, || {
            let (v, _) = dma::allocate_common_buffer(cpu, direct, LEN).expect("run").expect("64 KB");
            dma::free_common_buffer(cpu, direct, LEN, black_box(v)).expect("free");
        });
        println!("64 KB GetScatterGatherList + PutScatterGatherList, 64-bit device (no bounce): {no_bounce:?}");
        println!("64 KB GetScatterGatherList + PutScatterGatherList, 32-bit device, to the device (bounced at Get): {bounce_write:?}");
        println!("64 KB GetScatterGatherList + PutScatterGatherList, 32-bit device, from the device (bounced at Put): {bounce_read:?}");
        println!("64 KB memcpy (the bounce's floor): {memcpy:?}");
        println!("AllocateCommonBuffer + FreeCommonBuffer, 64 KB, 8 GB machine: {common:?}");
        Ok(())
    })
    .expect("bench runs");
}
