//! `cargo bench -p ntmem-wdk --bench ke` (issue 11): dispatcher operations from a C
//! driver image, each beside the nearest host primitive, in one run:
//!
//! - an uncontended `KeAcquireSpinLock` + `KeReleaseSpinLock` pair (IRQL raised to
//!   DISPATCH_LEVEL and back) — next to `pthread_spin_lock` + `pthread_spin_unlock`;
//! - `KeSetEvent` + a satisfied `KeWaitForSingleObject` on a synchronization event —
//!   next to a futex wake + a futex wait that finds the word changed (returns at once);
//! - a timer expiring through its DPC (`KeSetTimer` 1 ms ahead, a wait on the timer:
//!   simulated time moves to the due time, the DPC runs at DISPATCH_LEVEL) — next to
//!   a host timer expiring (`timerfd` armed 1 µs ahead, read until it fires).
//!
//! The driver is `ke/ke_ops.c` (`LOOPS` operations per DriverEntry call); each round
//! times one call. `NTMEM_BENCH_LOOPS` and `NTMEM_BENCH_ROUNDS` override the defaults.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ntmem_kernel::Machine;
use ntmem_machine::MachineConfig;
use ntmem_wdk::loader::Driver;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median ns per operation of `f` (which does `loops` operations) over `rounds`
/// calls, after one warm-up call.
fn time(loops: u32, rounds: u32, mut f: impl FnMut()) -> f64 {
    f();
    let mut ns: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / f64::from(loops)
        })
        .collect();
    median(&mut ns)
}

fn pthread_spin(loops: u32) {
    let mut lock: libc::pthread_spinlock_t = 0;
    // SAFETY: a local spin lock, initialised before use and destroyed after.
    unsafe {
        libc::pthread_spin_init(&mut lock, libc::PTHREAD_PROCESS_PRIVATE);
        for _ in 0..loops {
            libc::pthread_spin_lock(std::hint::black_box(&mut lock));
            libc::pthread_spin_unlock(&mut lock);
        }
        libc::pthread_spin_destroy(&mut lock);
    }
}

fn futex(word: &AtomicU32, op: libc::c_int, value: u32) {
    // SAFETY: FUTEX_WAKE / FUTEX_WAIT on a live, aligned u32; no timeout.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), op | libc::FUTEX_PRIVATE_FLAG, value, std::ptr::null::<u8>());
    }
}

fn futex_wake_wait(loops: u32) {
    let word = AtomicU32::new(0);
    for i in 0..loops {
        word.store(i + 1, Ordering::Release);
        futex(&word, libc::FUTEX_WAKE, 1);
        // The word is not `i`: the wait returns at once (EAGAIN), as a satisfied wait.
        futex(&word, libc::FUTEX_WAIT, i);
    }
}

fn timerfd_expiry(loops: u32) {
    // SAFETY: a timer fd created, armed, read and closed here.
    unsafe {
        let fd = libc::timerfd_create(libc::CLOCK_MONOTONIC, 0);
        assert!(fd >= 0, "timerfd_create");
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: 0, tv_nsec: 1000 },
        };
        let mut expirations = 0u64;
        for _ in 0..loops {
            libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut());
            libc::read(fd, std::ptr::addr_of_mut!(expirations).cast(), 8);
        }
        libc::close(fd);
    }
}

/// One benchmark: the driver's `OP`, its name, the host primitive's name and loop.
type Operation = (u32, &'static str, &'static str, fn(u32));

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let loops = env_or("NTMEM_BENCH_LOOPS", if benching { 100_000 } else { 100 });
    let rounds = env_or("NTMEM_BENCH_ROUNDS", if benching { 11 } else { 1 });

    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ntmem-ke-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");
    println!("ke: dispatcher operations from a C driver, {loops} per call x {rounds} rounds, machine {summary}");

    let ops: [Operation; 3] = [
        (1, "KeAcquireSpinLock + KeReleaseSpinLock", "pthread_spin_lock + unlock", pthread_spin),
        (2, "KeSetEvent + satisfied KeWaitForSingleObject", "futex wake + wait (word changed)", futex_wake_wait),
        (3, "timer 1 ms ahead expiring through its DPC", "timerfd 1 us ahead, read", timerfd_expiry),
    ];
    for (op, name, host_name, host) in ops {
        let flags = vec![
            "-O2".to_string(),
            format!("-DOP={op}"),
            format!("-DLOOPS={loops}"),
            format!("-I{}", here.join("../../include").display()),
        ];
        let image = dir.join(format!("ke_ops{op}.sys"));
        toolchain
            .build(
                &[here.join("benches/ke/ke_ops.c")],
                &ntmem_wdk::exports::import_libraries(),
                &flags,
                &dir.join(format!("work{op}")),
                &image,
            )
            .expect("build the C driver");
        let bytes = std::fs::read(&image).expect("read the image");
        let mut driver = Driver::load(&machine, &format!("ke_ops{op}.sys"), &bytes).expect("load the C driver");
        let ntmem = time(loops, rounds, || {
            assert_eq!(driver.driver_entry(&machine, 0).expect("no bugcheck"), 0, "every operation succeeded");
        });
        let host_ns = time(loops, rounds, || host(loops));
        println!("  {name:<46} {ntmem:>9.1} ns   {host_name:<34} {host_ns:>9.1} ns   ratio {:>6.2}", ntmem / host_ns);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
