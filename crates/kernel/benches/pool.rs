//! Pool and lookaside benchmarks (issue 3, item 9), side by side in one run with
//! the host's malloc and with mimalloc:
//!
//! (a) tagged allocate/free pairs of random sizes 16–512 bytes;
//! (b) lookaside allocate/free of one size;
//! (c) big allocations of 2–16 pages;
//! (d) two threads (two simulated processors) allocating at once.
//!
//! Each allocator sees the same sizes in the same order: a window of 64 live
//! blocks, each step freeing the oldest and allocating a new one; each measure is
//! the median of nine rounds. Two extra rows put the fills in perspective: (a')
//! ntmem with its fill patterns off, and (a'') the peers doing the same two fills
//! themselves. Run: `cargo bench -p ntmem-kernel --bench pool`. Numbers go to
//! BENCHMARKS.md. `NTMEM_BENCH` picks sections, `NTMEM_BENCH_PAIRS` the pairs per
//! measure, `NTMEM_BENCH_MAX` the largest size of (a), `NTMEM_BENCH_EDITION` another edition (RAM capped at 1 GB; an x86 one,
//! e.g. `xp-professional`, fits under valgrind, which cannot reserve a 64-bit
//! machine's 16 TB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use ntmem_kernel::ex::lookaside::Routines;
use ntmem_kernel::ex::pool::{self, Fill, PoolTag, PoolType};
use ntmem_kernel::Machine;
use ntmem_machine::MachineConfig;

/// Pairs per measure (`NTMEM_BENCH_PAIRS` overrides, e.g. for a run under callgrind).
fn pair_count() -> usize {
    std::env::var("NTMEM_BENCH_PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}
const WINDOW: usize = 64;
/// Each measurement is split into this many rounds; the median round is reported.
const ROUNDS: usize = 9;
const TAG: PoolTag = PoolTag(u32::from_le_bytes(*b"Bnch"));

/// Deterministic sizes (xorshift), in `[lo, hi]`.
fn sizes(n: usize, lo: u64, hi: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + x % (hi - lo + 1)
        })
        .collect()
}

/// Time per allocate/free pair with a sliding window of live blocks.
fn pairs<P>(sizes: &[u64], mut alloc: impl FnMut(u64) -> P, mut free: impl FnMut(P)) -> Duration {
    let mut live = VecDeque::with_capacity(WINDOW);
    for &s in &sizes[..WINDOW] {
        live.push_back(alloc(s));
    }
    let steps = &sizes[WINDOW..];
    let chunk = steps.len().div_ceil(ROUNDS);
    // One untimed round first: the first touches of fresh memory (page faults, the
    // pool committing its pages) are set-up, not the steady state being measured.
    for &s in &steps[..chunk] {
        free(live.pop_front().expect("window"));
        live.push_back(alloc(s));
    }
    let mut rounds: Vec<Duration> = steps
        .chunks(chunk)
        .map(|round| {
            let started = Instant::now();
            for &s in round {
                free(live.pop_front().expect("window"));
                live.push_back(alloc(s));
            }
            started.elapsed() / round.len() as u32
        })
        .collect();
    for p in live {
        free(p);
    }
    median(&mut rounds)
}

/// The median of `times` (the machine is shared: a median of rounds resists the
/// bursts of other work better than one long run).
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The same pattern through a `GlobalAlloc` (the host's malloc or mimalloc).
fn pairs_global(a: &dyn GlobalAlloc, sizes: &[u64]) -> Duration {
    pairs(
        sizes,
        |s| {
            let layout = Layout::from_size_align(s as usize, 16).expect("layout");
            // SAFETY: `layout` has a non-zero size; the block is freed below with it.
            (unsafe { a.alloc(layout) }, layout)
        },
        |(p, layout)| {
            // SAFETY: `p` came from `a.alloc(layout)` and is freed once.
            unsafe { a.dealloc(black_box(p), layout) }
        },
    )
}

/// [`pairs_global`] with the two fills ntmem makes (0xCD over a new block, 0xDD
/// over a freed one), done by the caller: what the peer costs doing ntmem's work.
fn pairs_filled(a: &dyn GlobalAlloc, sizes: &[u64]) -> Duration {
    pairs(
        sizes,
        |s| {
            let layout = Layout::from_size_align(s as usize, 16).expect("layout");
            // SAFETY: `layout` has a non-zero size; the block is freed below with it.
            let p = unsafe { a.alloc(layout) };
            // SAFETY: `p` holds `s` bytes.
            unsafe { std::ptr::write_bytes(p, pool::ALLOCATED_FILL, s as usize) };
            (p, layout)
        },
        |(p, layout)| {
            // SAFETY: `p` came from `a.alloc(layout)`, holds `layout.size()` bytes and
            // is freed once.
            unsafe {
                std::ptr::write_bytes(black_box(p), pool::FREED_FILL, layout.size());
                a.dealloc(p, layout)
            }
        },
    )
}

fn machine(processors: u32) -> Machine {
    let base = std::env::var("NTMEM_BENCH_EDITION")
        .map_or_else(|_| MachineConfig::default(), |e| MachineConfig::for_edition(&e).expect("edition"));
    let config = MachineConfig { processors, ram: base.ram.min(1 << 30), ..base };
    Machine::boot(config.build().expect("profile")).expect("boots")
}

fn ntmem_pairs(m: &Machine, cpu: u32, sizes: &[u64]) -> Duration {
    m.run(cpu, |cpu| {
        Ok(pairs(
            sizes,
            |s| pool::allocate(cpu, PoolType::NonPagedPool, s, TAG).expect("no bugcheck").expect("pool"),
            |va| pool::free(cpu, va, Some(TAG)).expect("no bugcheck"),
        ))
    })
    .expect("no bugcheck")
}

fn row(name: &str, ntmem: Duration, malloc: Duration, mimalloc: Duration) {
    println!(
        "{name:<38} ntmem {ntmem:>8.1?}   malloc {malloc:>8.1?}   mimalloc {mimalloc:>8.1?}   ntmem/mimalloc {:.2}",
        ntmem.as_secs_f64() / mimalloc.as_secs_f64()
    );
}

/// Whether section `name` runs: all of them, or those listed in `NTMEM_BENCH`
/// (e.g. `NTMEM_BENCH=ab`): a, a' (A), a'' (F), b, c, c' (C), d.
fn wanted(name: char) -> bool {
    std::env::var("NTMEM_BENCH").map_or(true, |only| only.contains(name))
}

fn main() {
    // `NTMEM_BENCH_MAX` lowers the largest size, e.g. to 240 so that on an x86
    // machine (8-byte units) every block comes from a processor's cache.
    let max = std::env::var("NTMEM_BENCH_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let small = sizes(pair_count(), 16, max, 0x9E37_79B9_7F4A_7C15);
    let m = machine(2);
    if wanted('a') {
        let ntmem = ntmem_pairs(&m, 0, &small);
        row("(a) pairs, random 16-512 bytes", ntmem, pairs_global(&System, &small), pairs_global(&MiMalloc, &small));
    }
    if wanted('F') {
        let fills = pairs_filled(&MiMalloc, &small);
        let ntmem = ntmem_pairs(&m, 0, &small);
        row("(a'') (a) vs mimalloc + the same fills", ntmem, pairs_filled(&System, &small), fills);
    }
    if wanted('A') {
        m.pool().set_fill(Fill::None);
        let ntmem = ntmem_pairs(&m, 0, &small);
        m.pool().set_fill(Fill::Patterns);
        let (malloc, mimalloc) = (pairs_global(&System, &small), pairs_global(&MiMalloc, &small));
        row("(a') the same, fill patterns off", ntmem, malloc, mimalloc);
    }
    if !wanted('b') {
        return bench_big_and_threads(&m, &small);
    }

    let lookaside = m
        .run(0, |cpu| {
            let head = pool::allocate(cpu, PoolType::NonPagedPool, 0x80, TAG)?.expect("head");
            m.lookasides()
                .initialize(cpu, head, PoolType::NonPagedPool, 1514, TAG, Routines::default())
                .expect("aligned head");
            let mut rounds = Vec::new();
            for _ in 0..ROUNDS {
                let started = Instant::now();
                for _ in 0..pair_count() / ROUNDS {
                    let e = m.lookasides().allocate(cpu, head)?.expect("entry");
                    m.lookasides().free(cpu, black_box(head), e)?;
                }
                rounds.push(started.elapsed() / (pair_count() / ROUNDS) as u32);
            }
            let t = median(&mut rounds);
            m.lookasides().delete(cpu, head)?;
            Ok(t)
        })
        .expect("no bugcheck");
    let one = |a: &dyn GlobalAlloc| {
        let layout = Layout::from_size_align(1514, 16).expect("layout");
        let mut rounds: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..pair_count() / ROUNDS {
                    // SAFETY: a non-zero layout, freed at once with the same layout.
                    unsafe { a.dealloc(black_box(a.alloc(layout)), layout) };
                }
                started.elapsed() / (pair_count() / ROUNDS) as u32
            })
            .collect();
        median(&mut rounds)
    };
    row("(b) lookaside allocate/free, 1514 bytes", lookaside, one(&System), one(&MiMalloc));
    bench_big_and_threads(&m, &small);
}

fn bench_big_and_threads(m: &Machine, small: &[u64]) {
    if wanted('c') {
        let big = sizes(20_000, 2 * 4096, 16 * 4096, 7);
        let (malloc, mimalloc) = (pairs_global(&System, &big), pairs_global(&MiMalloc, &big));
        row("(c) pairs, 2-16 pages", ntmem_pairs(m, 0, &big), malloc, mimalloc);
    }
    if wanted('C') {
        let big = sizes(20_000, 2 * 4096, 16 * 4096, 7);
        m.pool().set_fill(Fill::None);
        let ntmem = ntmem_pairs(m, 0, &big);
        m.pool().set_fill(Fill::Patterns);
        let (malloc, mimalloc) = (pairs_global(&System, &big), pairs_global(&MiMalloc, &big));
        row("(c') the same, fill patterns off", ntmem, malloc, mimalloc);
    }
    if !wanted('d') {
        return;
    }
    let both = |f: &(dyn Fn(usize) -> Duration + Sync)| -> Duration {
        std::thread::scope(|s| {
            let a = s.spawn(|| f(0));
            let b = s.spawn(|| f(1));
            (a.join().expect("thread") + b.join().expect("thread")) / 2
        })
    };
    let two_ntmem = both(&|cpu| ntmem_pairs(m, cpu as u32, small));
    row(
        "(d) two threads, random 16-512 bytes",
        two_ntmem,
        both(&|_| pairs_global(&System, small)),
        both(&|_| pairs_global(&MiMalloc, small)),
    );
}
