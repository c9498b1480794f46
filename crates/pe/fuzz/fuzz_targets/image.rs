//! Fuzzes `ntmem_pe::check_untrusted_image`: PE parsing, layout, relocation, unwind info,
//! scope tables and virtual unwinding on arbitrary bytes. Seeds in `corpus/image` are real
//! clang-19/lld-link driver images; `crates/pe/tests/corpus.rs` replays them under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ntmem_pe::check_untrusted_image(data));
