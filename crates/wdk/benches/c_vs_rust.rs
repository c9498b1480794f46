//! `cargo bench -p ntmem-wdk --bench c_vs_rust` (issue 5 item 8): what an
//! `ExAllocatePoolWithTag(NonPagedPool, 64, tag)` / `ExFreePool` pair costs when a
//! C driver calls it, against the same pair called from Rust.
//!
//! (i) C: `c_vs_rust/pool_pairs.c`, built into a Windows x64 image by clang and
//! lld-link against `include/` (`ntmem build`'s flags, `-O2`), loaded into system
//! space by `ntmem_wdk::loader`; each round times one call of its DriverEntry, which
//! runs PAIRS pairs through its import thunks.
//! (ii) Rust: the same loop inside `machine.run` + `context::enter`.
//! Both on one machine (the default profile), rounds alternating; the figure is
//! the median round, in ns per pair. Target: C ≤ 1.2 × Rust.
//!
//! `NTMEM_BENCH_PAIRS` and `NTMEM_BENCH_ROUNDS` override the defaults.

use std::ffi::c_void;
use std::hint::black_box;
use std::path::Path;
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

/// Builds the C driver in `out` with PAIRS pairs; the image's bytes.
fn build_c(out: &Path, pairs: u32) -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = here.join("benches/c_vs_rust/pool_pairs.c");
    let include = here.join("../../include");
    let image = out.join("pool_pairs.sys");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let flags = vec!["-O2".to_string(), format!("-DPAIRS={pairs}"), format!("-I{}", include.display())];
    toolchain
        .build(&[source], &ntmem_wdk::exports::import_libraries(), &flags, &out.join("work"), &image)
        .expect("build the C driver");
    std::fs::read(&image).expect("read the image")
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
    let image = build_c(&dir, pairs);
    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");
    let mut driver = Driver::load(&machine, "pool_pairs.sys", &image).expect("load the C driver");

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
    println!("  C driver (PE image, clang -O2)   {c:8.1} ns/pair (median)");
    println!("  Rust (machine.run + context)     {rust:8.1} ns/pair (median)");
    println!("  ratio C / Rust                   {:8.3} (target <= 1.2)", c / rust);
}
