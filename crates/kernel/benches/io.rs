//! MDL and I/O benchmarks (issue 4, item 8):
//!
//! (a) a driver's work on a 64 KB user buffer: IoAllocateMdl, MmProbeAndLockPages
//!     (UserMode, IoWriteAccess), MmGetSystemAddressForMdlSafe (a real system
//!     mapping of the same frames), MmUnmapLockedPages, MmUnlockPages, IoFreeMdl —
//!     inside the process (KeStackAttachProcess), on a simulated processor;
//! (b) an IOCTL round trip from a user process through the I/O manager for each
//!     transfer type, to a Rust driver that upper-cases 16 bytes of input into the
//!     output and completes the IRP — from the process that is current, and (for
//!     METHOD_BUFFERED) alternating between two processes (issue 12 item 7).
//!
//! Each figure is the median of eleven rounds, per operation. Run:
//! `cargo bench -p ntmem-kernel --bench io`. Numbers go to BENCHMARKS.md. (The
//! contiguous-search benchmark of item 8 is in `benches/foundation.rs`.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use ntmem_kernel::ex::pool::NtStatus;
use ntmem_kernel::io::device::{io_create_device, DeviceFlags, NewDevice};
use ntmem_kernel::io::irp::io_complete_request;
use ntmem_kernel::io::request::{IoCall, IoRequest, Ioctl};
use ntmem_kernel::io::{ctl_code, DeviceObject, Dispatch, Irp, MajorFunction, TransferMethod};
use ntmem_kernel::mm::mdl::{self, LockOperation, Mdl, PagePriority, ProcessorMode};
use ntmem_kernel::mm::process::{
    ke_stack_attach_process, ke_unstack_detach_process, nt_allocate_virtual_memory, ps_create_process, AllocationType,
    PageProtection,
};
use ntmem_kernel::{BugCheck, Cpu, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};

const ROUNDS: usize = 11;
const FILE_DEVICE_UNKNOWN: u32 = 0x22;
const BOTH: AllocationType = AllocationType::RESERVE.union(AllocationType::COMMIT);

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").expect("edition");
    config.ram = 1 << 30;
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

/// A minimal driver: reads the input, upper-cases it into the output by the
/// route the transfer type gives it, completes the IRP.
struct Upcase;

impl Dispatch for Upcase {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        _: MajorFunction,
        _: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck> {
        let m = cpu.machine();
        let (out_len, in_len, code, type3) = irp.device_io_control(cpu)?;
        let method = TransferMethod::of(code);
        let system = irp.system_buffer(cpu)?;
        let mut data = [0u8; 16];
        let n = (in_len as usize).min(16);
        let src = if method == TransferMethod::Neither { type3 } else { system };
        m.space().read(Va::new(src), &mut data[..n]).expect("input readable");
        data.make_ascii_uppercase();
        let n = n.min(out_len as usize);
        let dst = match method {
            TransferMethod::Buffered => system,
            TransferMethod::InDirect | TransferMethod::OutDirect => {
                let mdl = Mdl(Va::new(irp.mdl_address(cpu)?));
                mdl::mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.expect("mapped").get()
            }
            TransferMethod::Neither => irp.user_buffer(cpu)?,
        };
        m.space().write(Va::new(dst), &data[..n]).expect("output writable");
        irp.set_io_status(cpu, NtStatus::SUCCESS, n as u64)?;
        io_complete_request(cpu, irp)?;
        Ok(Some(NtStatus::SUCCESS))
    }
}

fn lock_and_map(m: &Machine) -> Duration {
    m.run(0, |cpu| {
        let p = ps_create_process(cpu, "bench.exe")?.expect("process");
        let (va, _) =
            nt_allocate_virtual_memory(cpu, &p, None, 64 << 10, BOTH, PageProtection::ReadWrite).expect("64 KB");
        p.write(cpu, va, &[1u8; 64 << 10]).expect("touch");
        let state = ke_stack_attach_process(cpu, &p).expect("attach");
        let t = measure(2000, || {
            let run = || -> Result<(), BugCheck> {
                let mdl = mdl::io_allocate_mdl(cpu, va, 64 << 10)?.expect("MDL");
                mdl::mm_probe_and_lock_pages(cpu, mdl, ProcessorMode::UserMode, LockOperation::IoWriteAccess)?
                    .expect("locks");
                let sys = mdl::mm_get_system_address_for_mdl_safe(cpu, mdl, PagePriority::Normal)?.expect("maps");
                black_box(sys);
                mdl::mm_unmap_locked_pages(cpu, sys, mdl)?;
                mdl::mm_unlock_pages(cpu, mdl)?;
                mdl::io_free_mdl(cpu, mdl)
            };
            run().expect("no bugcheck");
        });
        ke_unstack_detach_process(cpu, state).expect("detach");
        Ok(t)
    })
    .expect("runs")
}

/// A caller's process with its input and output buffers.
struct Caller {
    process: std::sync::Arc<ntmem_kernel::mm::process::Process>,
    input: Va,
    output: Va,
}

fn caller(cpu: &Cpu<'_>, name: &str) -> Result<Caller, BugCheck> {
    let process = ps_create_process(cpu, name)?.expect("process");
    let (input, _) =
        nt_allocate_virtual_memory(cpu, &process, None, 4096, BOTH, PageProtection::ReadWrite).expect("input");
    let (output, _) =
        nt_allocate_virtual_memory(cpu, &process, None, 4096, BOTH, PageProtection::ReadWrite).expect("output");
    process.write(cpu, input, b"round trip, 16 b").expect("input");
    Ok(Caller { process, input, output })
}

/// One IOCTL round trip's median time, the requests coming from `processes`
/// callers in turn (1: always the same process, which stays current; 2: each
/// request from the other process, a switch both ways).
fn ioctl_round_trip(m: &Machine, method: TransferMethod, processes: usize) -> Duration {
    m.run(0, |cpu| {
        let new = NewDevice {
            driver: 0x1234_0000,
            extension_size: 0,
            device_type: FILE_DEVICE_UNKNOWN,
            characteristics: 0,
            exclusive: false,
        };
        let d = io_create_device(cpu, new)?.expect("device");
        d.set_flags(cpu, DeviceFlags::empty())?;
        let callers: Vec<Caller> =
            (0..processes).map(|i| caller(cpu, &format!("bench{i}.exe"))).collect::<Result<_, _>>()?;
        let code = ctl_code(FILE_DEVICE_UNKNOWN, 0x800 + method as u32, method, 0);
        let calls: Vec<IoCall> = callers
            .iter()
            .map(|c| {
                let request = IoRequest::DeviceControl(Ioctl {
                    code,
                    input: c.input,
                    input_length: 16,
                    output: c.output,
                    output_length: 16,
                });
                IoCall::new(d, request).from_process(&c.process)
            })
            .collect();
        let mut next = 0;
        let t = measure(2000, || {
            let out = calls[next % calls.len()].send(cpu, &Upcase).expect("no bugcheck");
            next += 1;
            assert_eq!(out.status, NtStatus::SUCCESS);
        });
        for c in &callers {
            let mut back = [0u8; 16];
            c.process.read(cpu, c.output, &mut back).expect("output");
            assert_eq!(&back, b"ROUND TRIP, 16 B");
        }
        Ok(t)
    })
    .expect("runs")
}

fn main() {
    let m = boot();
    println!("64 KB user buffer: allocate MDL, probe+lock, map, unmap, unlock, free: {:>9.2?}", lock_and_map(&m));
    for (name, method) in [
        ("METHOD_BUFFERED  ", TransferMethod::Buffered),
        ("METHOD_IN_DIRECT ", TransferMethod::InDirect),
        ("METHOD_OUT_DIRECT", TransferMethod::OutDirect),
        ("METHOD_NEITHER   ", TransferMethod::Neither),
    ] {
        println!("IOCTL round trip, {name}, same process:                  {:>9.2?}", ioctl_round_trip(&m, method, 1));
    }
    println!(
        "IOCTL round trip, METHOD_BUFFERED  , alternating two processes: {:>9.2?}",
        ioctl_round_trip(&m, TransferMethod::Buffered, 2)
    );
}
