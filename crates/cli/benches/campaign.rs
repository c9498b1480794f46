//! Systematic low resources simulation's cost (issue 14): `ntmem run DRIVER --verifier
//! systematic_low_resources` on a driver with 50 allocation sites (each checked and
//! freed), so the campaign makes 51 runs, each on a fresh machine. Reports the wall
//! time of the whole campaign and per injected site, median of 5, in this process
//! (`--jobs 1`) and over two child processes (`--jobs 2`), and checks that every site
//! was found and handled.
//!
//! Run: `cargo bench -p ntmem --bench campaign`. Numbers go to BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

const SITES: usize = 50;

fn main() {
    let exe = env!("CARGO_BIN_EXE_ntmem");
    let dir = std::env::temp_dir().join(format!("ntmem-campaign-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut c = String::from("#include <ntddk.h>\n\nNTSTATUS DriverEntry(PDRIVER_OBJECT D, PUNICODE_STRING R)\n{\n    PVOID p;\n    UNREFERENCED_PARAMETER(D);\n    UNREFERENCED_PARAMETER(R);\n");
    for i in 0..SITES {
        let _ = writeln!(c, "    p = ExAllocatePoolWithTag(NonPagedPoolNx, {}, 'etiS');\n    if (p == NULL)\n        return STATUS_INSUFFICIENT_RESOURCES;\n    ExFreePoolWithTag(p, 'etiS');", 16 + i);
    }
    c.push_str("    return STATUS_SUCCESS;\n}\n");
    let source = dir.join("sites50.c");
    std::fs::write(&source, c).expect("write the driver");
    let run = |jobs: &str| {
        let started = Instant::now();
        let out = Command::new(exe)
            .args(["run", source.to_str().expect("UTF-8 path"), "--verifier", "systematic_low_resources", "--json"])
            .args(["--jobs", jobs])
            .output()
            .expect("ntmem runs");
        let took = started.elapsed();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let sites = v["systematic"]["sites"].as_array().expect("sites").len();
        assert_eq!((sites, v["exit"].as_u64()), (SITES, Some(0)), "{v}");
        took
    };
    run("1"); // builds the driver into the cache
    println!("ntmem run (50 allocation sites) --verifier systematic_low_resources: {} runs, median of 5", SITES + 1);
    for jobs in ["1", "2"] {
        let mut times: Vec<Duration> = (0..5).map(|_| run(jobs)).collect();
        times.sort();
        let median = times[times.len() / 2];
        println!("  --jobs {jobs}: whole campaign {median:>10.2?}, per injected site {:>10.2?}", median / SITES as u32);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
