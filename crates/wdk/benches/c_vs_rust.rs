//! `cargo bench -p ntmem-wdk --bench c_vs_rust` (issue 5 item 8): what an
//! `ExAllocatePoolWithTag(NonPagedPool, 64, tag)` / `ExFreePool` pair costs when a
//! C driver calls it, against the same pair called from Rust.
//!
//! (i) C: `c_vs_rust/pool_pairs.c`, built with the host's cc against `include/`
//! (the driver host's flags, `-O2`), loaded by `ntmem_wdk::loader`; each round
//! times one call of its DriverEntry, which runs PAIRS pairs.
//! (ii) Rust: the same loop inside `machine.run` + `context::enter`.
//! Both on one machine (the default profile), rounds alternating; the figure is
//! the median round, in ns per pair. Target: C ≤ 1.2 × Rust.
//!
//! `NTMEM_BENCH_PAIRS` and `NTMEM_BENCH_ROUNDS` override the defaults.

use std::ffi::c_void;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ntmem_kernel::Machine;
use ntmem_machine::MachineConfig;
use ntmem_wdk::context;
use ntmem_wdk::ex::{ExAllocatePoolWithTag, ExFreePool};
use ntmem_wdk::loader::Driver;

const NON_PAGED_POOL: u32 = 0;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Builds the C driver into `out` with PAIRS pairs.
fn build_c(out: &Path, pairs: u32) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = here.join("benches/c_vs_rust/pool_pairs.c");
    let include = here.join("../../include");
    let object = out.join("pool_pairs.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-fshort-wchar", "-Werror=implicit-function-declaration"])
        .arg(format!("-DPAIRS={pairs}"))
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&object)
        .arg(source)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
    object
}

/// The Rust loop: PAIRS pairs from Rust code on a simulated processor.
fn rust_pairs(machine: &Machine, pairs: u32) {
    let tag = u32::from_le_bytes(*b"Bnch");
    let r = machine.run(0, |cpu| {
        context::enter(cpu, "the benchmark loop", || {
            for _ in 0..pairs {
                let p: *mut c_void = ExAllocatePoolWithTag(NON_PAGED_POOL, black_box(64), tag);
                assert!(!p.is_null());
                ExFreePool(black_box(p));
            }
        });
        Ok(())
    });
    context::leave(r).expect("no bugcheck");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special: run a short round then.
    let benching = std::env::args().any(|a| a == "--bench");
    let pairs = env_or("NTMEM_BENCH_PAIRS", if benching { 200_000 } else { 1_000 });
    let rounds = env_or("NTMEM_BENCH_ROUNDS", if benching { 21 } else { 1 });

    let dir = std::env::temp_dir().join(format!("ntmem-c-vs-rust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let object = build_c(&dir, pairs);
    let mut driver = Driver::open(&object, "pool_pairs.sys").expect("load the C driver");
    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");

    // Warm up both paths (pool pages, caches, lazy binding).
    assert_eq!(driver.driver_entry(&machine, 0).expect("no bugcheck"), 0);
    rust_pairs(&machine, pairs);

    let (mut c_ns, mut rust_ns) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let status = driver.driver_entry(&machine, 0).expect("no bugcheck");
        c_ns.push(t.elapsed().as_nanos() as f64 / f64::from(pairs));
        assert_eq!(status, 0);
        let t = Instant::now();
        rust_pairs(&machine, pairs);
        rust_ns.push(t.elapsed().as_nanos() as f64 / f64::from(pairs));
    }
    let (c, rust) = (median(&mut c_ns), median(&mut rust_ns));
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);

    println!("c_vs_rust: ExAllocatePoolWithTag(NonPagedPool, 64) + ExFreePool, {pairs} pairs x {rounds} rounds, machine {summary}");
    println!("  C driver (cc -O2, DriverEntry)   {c:8.1} ns/pair (median)");
    println!("  Rust (machine.run + context)     {rust:8.1} ns/pair (median)");
    println!("  ratio C / Rust                   {:8.3} (target <= 1.2)", c / rust);
}
