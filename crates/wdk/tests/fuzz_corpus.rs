//! The fuzz targets without cargo-fuzz (issue 9 item 7): every file of the seed
//! corpora in `fuzz/corpus/` replayed through the same entry functions
//! (`ntmem_wdk::harness::fuzz`), and — `#[ignore]`d, for long runs on the stable
//! toolchain — the same targets over inputs from a seeded generator:
//!
//! ```sh
//! NTMEM_FUZZ_SECONDS=600 cargo test --release -p ntmem-wdk --test fuzz_corpus -- --ignored --nocapture
//! ```
//!
//! A crash kills the process; the input being run is always in
//! `$TMPDIR/ntmem-fuzz-<target>.current` to reproduce it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ntmem_wdk::harness::fuzz;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_scenario_corpus_parses_or_is_rejected_with_a_message() {
    let files = corpus("scenario");
    assert!(files.len() >= 5, "the seed corpus is there");
    let mut parsed = 0;
    for file in &files {
        let data = std::fs::read(file).unwrap();
        match fuzz::scenario(&data) {
            Ok(_) => parsed += 1,
            Err(message) => assert!(message.starts_with("fuzz.toml:"), "{}: {message}", file.display()),
        }
    }
    assert!(parsed > 0 && parsed < files.len(), "the corpus holds good and bad files");
}

#[test]
fn the_routines_corpus_ends_in_results_or_bugchecks_the_same_each_time() {
    let files = corpus("routines");
    assert!(files.len() >= 5, "the seed corpus is there");
    let mut stopped = 0;
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let first = fuzz::routines(&data);
        let again = fuzz::routines(&data);
        let code = |r: &ntmem_wdk::harness::Report| r.bugcheck.as_ref().map(|b| (b.code, b.parameters[0]));
        assert_eq!(code(&first), code(&again), "{}: a run is deterministic", file.display());
        stopped += usize::from(first.bugcheck.is_some());
    }
    assert!(stopped > 0 && stopped < files.len(), "the corpus holds clean runs and bugchecks");
}

/// xorshift64*: inputs from a seed, the same on every machine.
struct Inputs(u64);

impl Inputs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// An input: a corpus file with a few bytes changed or appended, or random bytes.
    fn input(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let r = self.next();
        let mut data = if seeds.is_empty() || r.is_multiple_of(4) {
            Vec::new()
        } else {
            seeds[(r >> 8) as usize % seeds.len()].clone()
        };
        for _ in 0..1 + (r >> 20) % 8 {
            let v = self.next();
            let byte = (v >> 32) as u8;
            match v % 3 {
                0 if !data.is_empty() => {
                    let i = (v >> 8) as usize % data.len();
                    data[i] = byte;
                }
                _ => data.push(byte),
            }
        }
        data
    }
}

/// Runs `target` over generated inputs for `NTMEM_FUZZ_SECONDS` (default 60).
fn soak(target: &str, run: impl Fn(&[u8])) {
    let seconds = std::env::var("NTMEM_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed = std::env::var("NTMEM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6E74_6D65_6D21);
    let seeds: Vec<Vec<u8>> = corpus(target).iter().map(|f| std::fs::read(f).unwrap()).collect();
    let current = std::env::temp_dir().join(format!("ntmem-fuzz-{target}.current"));
    let mut inputs = Inputs(seed);
    let (start, mut executions) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        let data = inputs.input(&seeds);
        std::fs::write(&current, &data).unwrap();
        run(&data);
        executions += 1;
    }
    let _ = std::fs::remove_file(&current);
    println!("{target}: {executions} executions in {:.1} s, seed {seed}", start.elapsed().as_secs_f64());
}

#[test]
#[ignore = "a long run: NTMEM_FUZZ_SECONDS=600 cargo test --release --test fuzz_corpus -- --ignored"]
fn soak_scenario() {
    soak("scenario", |data| drop(fuzz::scenario(data)));
}

#[test]
#[ignore = "a long run: NTMEM_FUZZ_SECONDS=600 cargo test --release --test fuzz_corpus -- --ignored"]
fn soak_routines() {
    soak("routines", |data| drop(fuzz::routines(data)));
}

/// Replays one input: `NTMEM_FUZZ_INPUT=FILE NTMEM_FUZZ_TARGET=routines cargo test
/// --test fuzz_corpus replay -- --ignored --nocapture` (a crash's reproducer).
#[test]
#[ignore = "replays the file NTMEM_FUZZ_INPUT through NTMEM_FUZZ_TARGET (scenario or routines)"]
fn replay() {
    let file = std::env::var("NTMEM_FUZZ_INPUT").expect("NTMEM_FUZZ_INPUT=FILE");
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    match std::env::var("NTMEM_FUZZ_TARGET").as_deref() {
        Ok("scenario") => println!("{:?}", fuzz::scenario(&data)),
        _ => {
            let r = fuzz::routines(&data);
            println!("DriverEntry {:?}, bugcheck {:?}", r.driver_entry_status, r.bugcheck.map(|b| b.to_string()));
        }
    }
}

/// How a program ended: the bugcheck code and its first parameter; `None` when
/// `DriverEntry` returned.
type Outcome = Option<(u32, u64)>;

/// What a program of lookaside calls on wild addresses may end in (see its use).
const WILD_LOOKASIDE: &[Outcome] = &[None, Some((0xC2, 0x42)), Some((0x50, 0xCDCD_CDCD_CDCD_CDC8))];

/// Every reproducer of `fuzz/crashes/routines/` (each once a panic, an abort or a
/// hang of the host) now ends as the program would on Windows: `DriverEntry`
/// returns, or the machine stops with Windows' bugcheck (fuzz/README.md, "Known
/// crashes", says what each file does).
#[test]
fn the_routines_crash_reproducers_end_in_results_or_bugchecks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/crashes/routines");
    // (file, the outcomes allowed: a bugcheck code and its first parameter, or
    // None where DriverEntry returns)
    let expected: [(&str, &[Outcome]); 11] = [
        ("abort-map-io-space-20gb-exhausts-host-mappings", &[None]),
        // Lookaside calls on wild heads and entries that once left a stripe held:
        // which addresses hold memory depends on the relocated layout of the
        // machines booted beside this one, so each may return, stop with BAD_POOL_CALLER
        // 0x42, or follow a garbage link (0x50).
        ("hang-207ccd08", WILD_LOOKASIDE),
        // Each free faults into its __try; where the relocated layout of a machine
        // booted beside others in this process puts memory at 0x80000000, the
        // touches succeed and the free that misses stops in the pool as Windows'
        // does for an address it never gave: BAD_POOL_CALLER 0x42.
        ("hang-lookaside-fault-in-try-twice", &[None, Some((0xC2, 0x42))]),
        // Its bytes now also reach the cancel and dispatcher opcodes (36–39, added after
        // it was found): IoCancelIrp of a wild IRP whose CancelRoutine is no code is
        // an access violation no frame of the Rust fuzzer takes (0x8E).
        (
            "hang-lookaside-fault-under-stripe-a",
            &[None, Some((0xC2, 0x42)), Some((0x50, 0xCDCD_CDCD_CDCD_CDC8)), Some((0x8E, 0xC000_0005))],
        ),
        ("hang-lookaside-fault-under-stripe-b", WILD_LOOKASIDE),
        ("hang-map-io-space-12gb", &[None]),
        ("panic-map-io-space-pfn-beyond-pte", &[None]),
        ("panic-pool-size-max-overflow", &[None]),
        // STATUS_DATATYPE_MISALIGNMENT raised outside any __try in a system thread.
        ("panic-probe-alignment-0", &[Some((0x7E, 0x8000_0002))]),
        // SYSTEM_PTE_MISUSE 3: the base was not mapped by MmMapLockedPages.
        ("panic-unmap-locked-pages-outside-system-ptes", &[Some((0xDA, 3))]),
        // Dispatcher objects at a misaligned address: Rust's alignment check once
        // aborted the process; the fields are now read unaligned, as x64 reads them,
        // and the program goes on to a zero-byte request: BAD_POOL_CALLER 0.
        ("unaligned-dispatcher-object", &[Some((0xC2, 0))]),
    ];
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, expected.map(|(f, _)| f.to_string()), "each reproducer has its expected outcome here");
    for (file, outcome) in expected {
        let report = fuzz::routines(&std::fs::read(dir.join(file)).unwrap());
        let bugcheck = report.bugcheck.as_ref().map(|b| (b.code.0, b.parameters[0]));
        assert!(outcome.contains(&bugcheck), "{file}: {:?}", report.bugcheck.map(|b| b.to_string()));
        if bugcheck.is_none() {
            assert_eq!(report.driver_entry_status, Some(0), "{file}: DriverEntry returns STATUS_SUCCESS");
        }
    }
}
