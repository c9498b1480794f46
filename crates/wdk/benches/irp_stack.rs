//! `cargo bench -p ntmem-wdk --bench irp_stack` (issue 12 item 7): IRP throughput
//! through a three-device stack of a C driver (`irp_stack/stack3.c`: top over
//! middle over bottom, each upper device forwarding with a completion routine).
//! Requests are METHOD_BUFFERED IOCTLs from one user process, sent to the top
//! device through the I/O manager, in two mixes:
//!
//! - **all at once**: the bottom completes every request in its dispatch routine;
//! - **mixed**: of every eight requests six complete at once, one is pended and
//!   completed from a DPC (the DPC runs when the caller's thread settles, as when
//!   the processor drops below DISPATCH_LEVEL), one is pended with a cancel routine
//!   and cancelled by the caller (`IoCancelIrp`, as `CancelIo` does).
//!
//! Each request's final status, Information and output are checked, and after the
//! run no IRP is outstanding, no driver-allocated IRP is left and every pool tag's
//! outstanding count is what it was before the first request — no IRP, MDL or pool
//! leaked. Beside them, in the same run, the round trip to a device of the same
//! driver that is in no stack (a request to any device of a stack goes to its top,
//! as `IoGetAttachedDevice` finds it). `NTMEM_BENCH_IRPS` overrides the request count.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntmem_kernel::ex::pool::{NtStatus, PoolMonRow};
use ntmem_kernel::io::request::{IoCall, IoRequest, Ioctl};
use ntmem_kernel::io::{ctl_code, DeviceObject, TransferMethod};
use ntmem_kernel::mm::process::{
    nt_allocate_virtual_memory, ps_create_process, AllocationType, PageProtection, Process,
};
use ntmem_kernel::Machine;
use ntmem_machine::{MachineConfig, Va};
use ntmem_wdk::loader::Driver;

const FILE_DEVICE_UNKNOWN: u32 = 0x22;
const NOW: u32 = 0x800;
const DPC: u32 = 0x801;
const HOLD: u32 = 0x802;
const STATUS_CANCELLED: NtStatus = NtStatus(0xC000_0120);
const STACK_OUTPUT: u64 = 0x53_5441_4b33;

fn code(function: u32) -> u32 {
    ctl_code(FILE_DEVICE_UNKNOWN, function, TransferMethod::Buffered, 0)
}

/// The pool tags with blocks outstanding, and how many.
fn outstanding(m: &Machine) -> Vec<(String, u64)> {
    let rows: Vec<PoolMonRow> = m.pool().snapshot();
    rows.into_iter().filter(|r| r.diff != 0).map(|r| (format!("{} {:?}", r.tag, r.pool_type), r.diff)).collect()
}

struct Bench<'a> {
    machine: &'a Machine,
    driver: &'a Driver,
    process: Arc<Process>,
    output: Va,
    input: Va,
}

impl Bench<'_> {
    fn call(&self, device: DeviceObject, function: u32) -> IoCall {
        let request = IoRequest::DeviceControl(Ioctl {
            code: code(function),
            input: self.input,
            input_length: 8,
            output: self.output,
            output_length: 8,
        });
        IoCall::new(device, request).from_process(&self.process)
    }

    /// Sends `call`, finishing it as its kind says; panics on a wrong outcome.
    fn one(&self, call: &IoCall, function: u32) {
        let m = self.machine;
        let out = ntmem_wdk::io::send(self.driver, m, 0, call).expect("no bugcheck");
        let (status, information) = match (function, out.pending) {
            (NOW, None) => (out.status, out.information),
            (DPC, Some(irp)) => {
                ntmem_wdk::ke_dispatcher::settle(m, 0, 0).expect("the DPC runs");
                m.io().take_completion(irp).expect("completed by the DPC")
            }
            (HOLD, Some(irp)) => {
                assert!(ntmem_wdk::io_cancel::cancel(m, 0, irp).expect("no bugcheck"), "cancel routine called");
                let done = m.io().take_completion(irp).expect("completed by the cancel routine");
                assert_eq!(done, (STATUS_CANCELLED, 0));
                return;
            }
            (f, p) => panic!("request {f:#x}: returned {:?}, pending {p:?}", out.returned),
        };
        assert_eq!((status, information), (NtStatus::SUCCESS, 8), "request {function:#x}");
    }

    /// The time per request of `count` requests to `device`, `kind(i)` choosing each.
    fn run(&self, device: DeviceObject, count: u32, kind: impl Fn(u32) -> u32) -> Duration {
        let calls = [NOW, DPC, HOLD].map(|f| self.call(device, f));
        let started = Instant::now();
        for i in 0..count {
            let f = kind(i);
            self.one(&calls[(f - NOW) as usize], f);
        }
        let per = started.elapsed() / count;
        let mut back = [0u8; 8];
        let read = self.machine.run(0, |cpu| Ok(self.process.read(cpu, self.output, &mut back)));
        assert_eq!(read, Ok(Ok(())), "the output buffer is readable");
        assert_eq!(u64::from_le_bytes(back), STACK_OUTPUT, "the bottom's output reached the caller");
        per
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let count = std::env::var("NTMEM_BENCH_IRPS").ok().and_then(|v| v.parse().ok());
    let count: u32 = count.unwrap_or(if benching { 100_000 } else { 800 });

    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ntmem-irp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let image = dir.join("stack3.sys");
    let flags = ["-O2".to_string(), format!("-I{}", here.join("../../include").display())];
    let sources = [here.join("benches/irp_stack/stack3.c")];
    let libraries = ntmem_wdk::exports::import_libraries();
    toolchain.build(&sources, &libraries, &flags, &dir.join("work"), &image).expect("build the C driver");
    let bytes = std::fs::read(&image).expect("read the image");

    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");
    let mut driver = Driver::load(&machine, "stack3.sys", &bytes).expect("load the C driver");
    assert_eq!(driver.driver_entry(&machine, 0).expect("no bugcheck"), 0, "DriverEntry succeeds");
    ntmem_wdk::io::finish_driver_entry(&driver, &machine, 0).expect("no bugcheck");
    let devices = ntmem_wdk::io::devices(&driver, &machine);
    let (top, alone) = (devices[2], devices[3]);

    let both = AllocationType::RESERVE.union(AllocationType::COMMIT);
    let (process, input, output) = machine
        .run(0, |cpu| {
            let p = ps_create_process(cpu, "bench.exe")?.expect("process");
            let (input, _) =
                nt_allocate_virtual_memory(cpu, &p, None, 4096, both, PageProtection::ReadWrite).expect("in");
            let (output, _) =
                nt_allocate_virtual_memory(cpu, &p, None, 4096, both, PageProtection::ReadWrite).expect("out");
            Ok((p, input, output))
        })
        .expect("a user process");
    let bench = Bench { machine: &machine, driver: &driver, process, output, input };

    println!("irp_stack: {count} METHOD_BUFFERED IOCTLs from one process, machine {summary}");
    let before = outstanding(&machine);
    let single = bench.run(alone, count, |_| NOW);
    let all_now = bench.run(top, count, |_| NOW);
    let mixed = bench.run(top, count, |i| match i % 8 {
        6 => DPC,
        7 => HOLD,
        _ => NOW,
    });
    let rate = |d: Duration| 1e9 / d.as_nanos().max(1) as f64;
    println!("  one device, completed at once            {single:>9.2?} per IRP   {:>10.0} IRPs/s", rate(single));
    println!("  three devices, completed at once         {all_now:>9.2?} per IRP   {:>10.0} IRPs/s", rate(all_now));
    println!("  three devices, 1/8 via DPC, 1/8 cancelled {mixed:>8.2?} per IRP   {:>10.0} IRPs/s", rate(mixed));

    assert!(machine.io().outstanding().is_empty(), "no request left pending");
    assert!(machine.io().driver_irps().is_empty(), "no driver IRP left");
    assert_eq!(outstanding(&machine), before, "no pool, IRP or MDL leaked by the requests");
    assert!(driver.unload(&machine, 0).expect("no bugcheck"), "the driver unloads");
    println!("  after {} requests: no IRP pending, no pool block left by them", 3 * u64::from(count));
    let _ = std::fs::remove_dir_all(&dir);
}
