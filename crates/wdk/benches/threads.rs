//! `cargo bench -p ntmem-wdk --bench threads`: what a thread switch costs
//! (`ntmem_wdk::sched`, `ntmem_kernel::ke::sched`) — one block + resume round trip —
//! next to the host's own ways of passing control between two threads, in the same run:
//!
//! (i) driver level: `threads/ping_pong.c`'s DriverEntry and a system thread play
//! ping-pong through two synchronization events (`KeSetEvent`, then
//! `KeWaitForSingleObject` blocks; the other thread resumes): per round trip, two
//! switches, each with its scheduler bookkeeping, watchdog pause and IRQL hand-over;
//! (ii) the scheduler's baton alone (`Scheduler::switch` / `hand_to` between two host
//! threads);
//! (iii) a `Mutex` + `Condvar` ping-pong between two host threads (what the baton is
//! built on);
//! (iv) a `thread::park` / `unpark` ping-pong (a futex each way, no lock).
//!
//! The figure is the median round, per round trip. `NTMEM_BENCH_ROUNDS` overrides the
//! round trips per round.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ntmem_kernel::ke::processor::KernelStack;
use ntmem_kernel::ke::sched::{Role, Scheduler, Wake, REQUESTING};
use ntmem_kernel::Machine;
use ntmem_machine::{MachineConfig, Va};
use ntmem_wdk::loader::Driver;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Builds the C driver with ROUNDS round trips; the image's bytes.
fn build_c(out: &Path, rounds: u32) -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = here.join("benches/threads/ping_pong.c");
    let include = here.join("../../include");
    let image = out.join("ping_pong.sys");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let flags = vec!["-O2".to_string(), format!("-DROUNDS={rounds}"), format!("-I{}", include.display())];
    toolchain
        .build(&[source], &ntmem_wdk::exports::import_libraries(), &flags, &out.join("work"), &image)
        .expect("build the C driver");
    std::fs::read(&image).expect("read the image")
}

/// (i): one machine and one DriverEntry per sample; time per round trip.
fn driver_level(image: &[u8], rounds: u32, samples: usize) -> Duration {
    let times = (0..samples)
        .map(|_| {
            let machine = Machine::boot(MachineConfig::default().build().expect("profile")).expect("boot");
            let mut driver = Driver::load(&machine, "ping_pong.sys", image).expect("load");
            let t = Instant::now();
            let status = driver.driver_entry(&machine, 0).expect("no bugcheck");
            let elapsed = t.elapsed();
            assert_eq!(status, 0);
            ntmem_wdk::sched::end_threads(&machine);
            driver.unload_image(&machine);
            elapsed / rounds
        })
        .collect();
    median(times)
}

/// (ii): the baton between the requesting thread and one other host thread.
fn baton(rounds: u32, samples: usize) -> Duration {
    let s = Arc::new(Scheduler::default());
    let stack = KernelStack { base: Va::new(0x1000), size: 0x6000 };
    let id = s.create(Role::Worker { slot: 0 }, stack, 0);
    let other = Arc::clone(&s);
    let host = std::thread::spawn(move || {
        while other.wait_turn(id) == Wake::Run {
            other.hand_to(REQUESTING);
        }
    });
    s.attach_host(id, host);
    let times = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds {
                s.switch(REQUESTING, id);
            }
            t.elapsed() / rounds
        })
        .collect();
    s.shutdown();
    median(times)
}

/// (iii): two host threads taking turns through a mutex and a condition variable.
fn condvar(rounds: u32, samples: usize) -> Duration {
    let pair = Arc::new((Mutex::new((0u8, false)), Condvar::new()));
    let other = Arc::clone(&pair);
    let host = std::thread::spawn(move || {
        let (lock, cv) = &*other;
        let mut g = lock.lock().unwrap();
        loop {
            while g.0 != 1 && !g.1 {
                g = cv.wait(g).unwrap();
            }
            if g.1 {
                return;
            }
            g.0 = 0;
            cv.notify_all();
        }
    });
    let (lock, cv) = &*pair;
    let times = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds {
                let mut g = lock.lock().unwrap();
                g.0 = 1;
                cv.notify_all();
                while g.0 != 0 {
                    g = cv.wait(g).unwrap();
                }
            }
            t.elapsed() / rounds
        })
        .collect();
    lock.lock().unwrap().1 = true;
    cv.notify_all();
    host.join().unwrap();
    median(times)
}

/// (iv): two host threads taking turns with `park` / `unpark`.
fn park(rounds: u32, samples: usize) -> Duration {
    let turn = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
    let main = std::thread::current();
    let other_turn = Arc::clone(&turn);
    let host = std::thread::spawn(move || loop {
        while !other_turn.0.load(Ordering::Acquire) {
            std::thread::park();
        }
        other_turn.0.store(false, Ordering::Release);
        if other_turn.1.load(Ordering::Acquire) {
            return;
        }
        main.unpark();
    });
    let times = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds {
                turn.0.store(true, Ordering::Release);
                host.thread().unpark();
                while turn.0.load(Ordering::Acquire) {
                    std::thread::park();
                }
            }
            t.elapsed() / rounds
        })
        .collect();
    turn.1.store(true, Ordering::Release);
    turn.0.store(true, Ordering::Release);
    host.thread().unpark();
    host.join().unwrap();
    median(times)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special:
    // run a short round then.
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = env_or("NTMEM_BENCH_ROUNDS", if benching { 20_000 } else { 100 });
    let samples = if benching { 11 } else { 1 };
    let dir = std::env::temp_dir().join(format!("ntmem-bench-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let image = build_c(&dir, rounds);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("thread switch, block + resume round trip ({rounds} per round, median of {samples}):");
    println!(
        "  driver: KeSetEvent + KeWaitForSingleObject with a system thread  {:8.2} µs",
        us(driver_level(&image, rounds, samples))
    );
    println!(
        "  scheduler baton alone (two host threads)                           {:8.2} µs",
        us(baton(rounds, samples))
    );
    println!(
        "  Mutex + Condvar ping-pong (two host threads)                       {:8.2} µs",
        us(condvar(rounds, samples))
    );
    println!(
        "  thread::park / unpark ping-pong (two host threads)                 {:8.2} µs",
        us(park(rounds, samples))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
