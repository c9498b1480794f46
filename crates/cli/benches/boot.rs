//! Boot benchmark (issue 2, item 9): `ntmem boot --ram 1T` must take at most 50 ms
//! and 32 MB of host RSS. Runs the real binary 20 times and reports the median
//! in-process boot time, the median wall time of the whole process, and the peak
//! RSS the process reports (`VmHWM`).
//!
//! Run: `cargo bench -p ntmem --bench boot`. Numbers go to BENCHMARKS.md.

use std::process::Command;
use std::time::{Duration, Instant};

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let exe = env!("CARGO_BIN_EXE_ntmem");
    let (mut boot_us, mut wall, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let started = Instant::now();
        let out = Command::new(exe).args(["boot", "--ram", "1T", "--json"]).output().expect("ntmem runs");
        wall.push(started.elapsed());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        boot_us.push(report["host"]["boot_time_us"].as_u64().expect("boot time"));
        rss.push(report["host"]["peak_rss"].as_u64().expect("peak RSS"));
    }
    let boot = Duration::from_micros(median(boot_us));
    println!("ntmem boot --ram 1T (x64, 1 TB), median of 20 runs:");
    println!("  Machine::boot:             {boot:>10.2?}   (target ≤ 50 ms)");
    println!("  whole process, wall clock: {:>10.2?}", median(wall));
    println!("  peak RSS of the process:   {:>7.1} MB   (target ≤ 32 MB)", median(rss) as f64 / (1 << 20) as f64);
}
