//! Any bytes as a scenario file: a parsed scenario or a message, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ntmem_wdk::harness::fuzz::scenario(data);
});
