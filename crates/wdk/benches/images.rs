//! `cargo bench -p ntmem-wdk --bench images` (issue 10): what driver images cost.
//!
//! (i) Exceptions: one hardware fault in a PE driver's `__try`, dispatched by ntmem
//! over the image's `.pdata` and scope table and resumed in its `__except` block
//! (`images/faults.c`, FAULTS per DriverEntry call), against a bare SIGSEGV round trip
//! in the same process: a write to a PROT_NONE page whose handler moves RIP past the
//! write and returns (the kernel's signal delivery and `sigreturn`, nothing else).
//! Target: ntmem ≤ 2 × bare.
//! (ii) Loading: `Driver::load` of a ~100 KB image (`images/large.c`: mapping into
//! system space, relocations, imports bound, DRIVER_OBJECT) and its unload.
//!
//! Rounds alternate (i)'s two sides; the figure is the median round.
//! `NTMEM_BENCH_FAULTS`, `NTMEM_BENCH_LOADS` and `NTMEM_BENCH_ROUNDS` override the defaults.

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Builds `benches/images/<source>` with `defines` into `out`; the image's bytes.
fn build(out: &Path, source: &str, defines: &[String]) -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = here.join("../../include");
    let image = out.join(source.replace(".c", ".sys"));
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let mut flags = vec!["-O2".to_string(), format!("-I{}", include.display())];
    flags.extend(defines.iter().map(|d| format!("-D{d}")));
    let work = out.join(format!("work-{source}"));
    toolchain
        .build(
            &[here.join("benches/images").join(source)],
            &ntmem_wdk::exports::import_libraries(),
            &flags,
            &work,
            &image,
        )
        .expect("build the driver");
    std::fs::read(&image).expect("read the image")
}

/// Where the bare handler resumes: the instruction after the faulting write.
static RESUME: AtomicUsize = AtomicUsize::new(0);

extern "C" fn resume_after_write(_: c_int, _: *mut libc::siginfo_t, context: *mut c_void) {
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes the interrupted thread's ucontext; RIP is moved to the
    // label recorded just before the faulting write.
    unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] = RESUME.load(Ordering::Relaxed) as i64 };
}

/// `n` bare SIGSEGV round trips; ns each. ntmem's handler is put back afterwards.
fn bare_sigsegv(n: u32) -> f64 {
    // SAFETY: a fresh private mapping with no access, unmapped below; sigaction with a
    // handler that only moves RIP to the recorded label, restored before returning.
    unsafe {
        let page =
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(page, libc::MAP_FAILED);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = resume_after_write as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        let mut saved: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, &mut saved), 0);
        let t = Instant::now();
        for _ in 0..n {
            std::arch::asm!(
                "lea {t}, [rip + 2f]",
                "mov qword ptr [{resume}], {t}",
                "mov dword ptr [{page}], 1",
                "2:",
                t = out(reg) _,
                resume = in(reg) RESUME.as_ptr(),
                page = in(reg) page,
            );
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &saved, std::ptr::null_mut()), 0);
        libc::munmap(page, 4096);
        ns
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let faults = env_or("NTMEM_BENCH_FAULTS", if benching { 20_000 } else { 100 });
    let loads = env_or("NTMEM_BENCH_LOADS", if benching { 200 } else { 2 });
    let rounds = env_or("NTMEM_BENCH_ROUNDS", if benching { 11 } else { 1 });

    let dir = std::env::temp_dir().join(format!("ntmem-bench-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let faulting = build(&dir, "faults.c", &[format!("FAULTS={faults}")]);
    let large = build(&dir, "large.c", &[]);
    let profile = MachineConfig::default().build().expect("default profile");
    let summary = format!("{} {} MB", profile.edition.key, profile.ram_installed >> 20);
    let machine = Machine::boot(profile).expect("boot");

    let mut driver = Driver::load(&machine, "faults.sys", &faulting).expect("load the faulting driver");
    assert_eq!(driver.driver_entry(&machine, 0).expect("no bugcheck"), 0, "every fault handled");
    bare_sigsegv(faults);
    let (mut ntmem_ns, mut bare_ns) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let status = driver.driver_entry(&machine, 0).expect("no bugcheck");
        ntmem_ns.push(t.elapsed().as_nanos() as f64 / f64::from(faults));
        assert_eq!(status, 0);
        bare_ns.push(bare_sigsegv(faults));
    }
    drop(driver);

    let mut load_us = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..loads {
            let mut d = Driver::load(&machine, "large.sys", &large).expect("load the large driver");
            d.unload_image(&machine);
        }
        load_us.push(t.elapsed().as_nanos() as f64 / 1000.0 / f64::from(loads));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (ntmem, bare) = (median(&mut ntmem_ns), median(&mut bare_ns));
    println!("images: machine {summary}, {rounds} rounds, median round");
    println!("  fault in __try, dispatched, resumed in __except   {ntmem:9.0} ns ({faults} per round)");
    println!("  bare SIGSEGV round trip (handler moves RIP)       {bare:9.0} ns");
    println!("  ratio ntmem / bare                                {:9.2} (target <= 2)", ntmem / bare);
    println!(
        "  load + unload of a {} KB image                   {:9.1} us ({loads} per round)",
        large.len() / 1024,
        median(&mut load_us)
    );
}
