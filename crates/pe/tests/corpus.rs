//! Replays the fuzz target's seed corpus (`fuzz/corpus/image`: real clang-19/lld-link driver
//! images and raw unwind data) through the fuzz entry point, then a deterministic sweep of
//! single-byte corruptions and truncations of each seed: every input must end in a result,
//! never a panic. `cargo fuzz run image` in `crates/pe/fuzz` explores further.

use std::path::PathBuf;

use ntmem_pe::{check_untrusted_image, DriverImage, ImageError};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/image");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn the_seed_images_are_what_their_names_say() {
    let seeds = seeds();
    let seed = |name: &str| &seeds.iter().find(|(n, _)| n == name).unwrap().1;
    for name in ["seh_frames.sys", "init_page_seh.sys"] {
        let image = DriverImage::parse(seed(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!image.functions.entries().is_empty() && !image.relocations.is_empty(), "{name}");
    }
    assert!(matches!(DriverImage::parse(seed("by_ordinal.sys")), Err(ImageError::ImportByOrdinal { .. })));
}

#[test]
fn seeds_and_their_corruptions_never_panic() {
    for (name, seed) in seeds() {
        check_untrusted_image(&seed);
        let mut input = seed.clone();
        for i in 0..seed.len() {
            // Every header byte, and a spread of the rest (the stride is prime).
            if i >= 0x400 && i % 7 != 0 {
                continue;
            }
            for value in [0x00, 0xFF, seed[i] ^ 0x80, seed[i].wrapping_add(1)] {
                input[i] = value;
                check_untrusted_image(&input);
            }
            input[i] = seed[i];
        }
        for len in (0..seed.len()).step_by(61) {
            check_untrusted_image(&seed[..len]);
        }
        eprintln!("{name}: {} bytes swept", seed.len());
    }
}
