//! Any bytes as a program of WDK routine calls with hostile arguments, run by a
//! Rust driver on a fresh simulated machine: a result or a bugcheck report, never
//! a host crash or a hang (the format: `ntmem_wdk::harness::fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ntmem_wdk::harness::fuzz::routines(data);
});
