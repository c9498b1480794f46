//! `cargo bench -p ntmem-wdk --bench verifier` (issue 14): what an
//! `ExAllocatePoolWithTag(NonPagedPool, 64)` / `ExFreePool` pair from a C driver
//! image costs with each Driver Verifier option on, next to the option off, in one
//! run on one machine. The driver is `c_vs_rust/pool_pairs.c` (PAIRS pairs per
//! DriverEntry call); each round times one call. Low resources simulation runs with
//! probability 0 (every call is drawn, none fails), so the figure is the cost of
//! the hook; systematic simulation fails the loop's one stack once, in the warm-up.
//!
//! `NTMEM_BENCH_PAIRS` and `NTMEM_BENCH_ROUNDS` override the defaults.

use std::path::Path;
use std::time::Instant;

use ntmem_kernel::vf::{FaultSettings, VerifierFlags};
use ntmem_kernel::Machine;
use ntmem_machine::MachineConfig;
use ntmem_wdk::loader::Driver;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median ns per pair over `rounds` calls of DriverEntry, after one warm-up call.
fn time(driver: &mut Driver, machine: &Machine, pairs: u32, rounds: u32) -> f64 {
    let _ = driver.driver_entry(machine, 0).expect("no bugcheck");
    let mut ns: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let status = driver.driver_entry(machine, 0).expect("no bugcheck");
            assert_eq!(status, 0, "every pair allocated");
            t.elapsed().as_nanos() as f64 / f64::from(pairs)
        })
        .collect();
    median(&mut ns)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let pairs = env_or("NTMEM_BENCH_PAIRS", if benching { 100_000 } else { 500 });
    let rounds = env_or("NTMEM_BENCH_ROUNDS", if benching { 11 } else { 1 });

    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ntmem-verifier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let flags =
        vec!["-O2".to_string(), format!("-DPAIRS={pairs}"), format!("-I{}", here.join("../../include").display())];
    let image = dir.join("pool_pairs.sys");
    let source = here.join("benches/c_vs_rust/pool_pairs.c");
    toolchain
        .build(&[source], &ntmem_wdk::exports::import_libraries(), &flags, &dir.join("work"), &image)
        .expect("build the C driver");
    let image = std::fs::read(&image).expect("read the image");

    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");
    let mut driver = Driver::load(&machine, "pool_pairs.sys", &image).expect("load the C driver");
    machine.vf().set_faults(FaultSettings { probability: 0, ..FaultSettings::default() });

    let options: [(&str, VerifierFlags); 7] = [
        ("off", VerifierFlags::empty()),
        ("special_pool", VerifierFlags::SPECIAL_POOL),
        ("irql", VerifierFlags::FORCE_IRQL_CHECKING),
        ("pool_tracking", VerifierFlags::POOL_TRACKING),
        ("low_resources (p = 0)", VerifierFlags::LOW_RESOURCES_SIMULATION),
        ("systematic_low_resources", VerifierFlags::SYSTEMATIC_LOW_RESOURCES_SIMULATION),
        ("standard (0x209bb)", VerifierFlags::STANDARD),
    ];
    println!("verifier: ExAllocatePoolWithTag(NonPagedPool, 64) + ExFreePool from a C driver, {pairs} pairs x {rounds} rounds, machine {summary}");
    let mut off = 0.0;
    for (name, flags) in options {
        machine.set_verifier(flags);
        let ns = time(&mut driver, &machine, pairs, rounds);
        if flags.is_empty() {
            off = ns;
        }
        println!("  {name:<26} {ns:8.1} ns/pair (median)  {:6.2}x off", ns / off);
    }
    machine.set_verifier(VerifierFlags::empty());
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}
