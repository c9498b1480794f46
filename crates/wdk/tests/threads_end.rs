//! No host thread outlives its run (`ntmem_wdk::sched`): a system thread blocked in a
//! wait when the run ends is ended through its escape hatch and joined — by
//! `end_threads`, or by the machine's drop when a run forgot to. One test in its own
//! binary, so the process's thread count is this test's alone.

use std::path::Path;

use ntmem_kernel::Machine;
use ntmem_machine::MachineConfig;
use ntmem_wdk::loader::Driver;

/// `crates/cli/tests/drivers/thread_queue.c` built with `flags`: its system thread
/// waits for requests; with `-DUNLOAD_LEAVES_THREAD` its unload leaves it waiting.
fn build(out: &Path, flags: &[&str]) -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = here.join("../cli/tests/drivers/thread_queue.c");
    let include = here.join("../../include");
    let image = out.join("thread_queue.sys");
    let toolchain = ntmem_toolchain::Toolchain::find().expect("clang 19 and lld-link (see README)");
    let mut all = vec![format!("-I{}", include.display())];
    all.extend(flags.iter().map(|f| f.to_string()));
    toolchain
        .build(&[source], &ntmem_wdk::exports::import_libraries(), &all, &out.join("work"), &image)
        .expect("build the C driver");
    std::fs::read(&image).expect("read the image")
}

/// The host threads of this process.
fn host_threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("procfs").count()
}

/// Boots a machine, loads `image`, runs DriverEntry and the settle point after it
/// (the system thread starts and blocks).
fn start(image: &[u8]) -> (Machine, Driver) {
    let machine = Machine::boot(MachineConfig::default().build().expect("profile")).expect("boot");
    let mut driver = Driver::load(&machine, "thread_queue.sys", image).expect("load");
    assert_eq!(driver.driver_entry(&machine, 0).expect("no bugcheck"), 0);
    driver.finish_entry(&machine);
    ntmem_wdk::ke_dispatcher::settle(&machine, 0, 0).expect("no bugcheck");
    (machine, driver)
}

#[test]
fn every_host_thread_of_a_run_ends_with_the_run() {
    let dir = std::env::temp_dir().join(format!("ntmem-threads-end-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let image = build(&dir, &["-DUNLOAD_LEAVES_THREAD"]);
    let before = host_threads();

    // The run ends its threads: the one its unload left waiting is ended and joined.
    let (machine, mut driver) = start(&image);
    assert_eq!(host_threads(), before + 1, "the system thread has a host thread while it waits");
    assert!(driver.unload(&machine, 0).expect("no bugcheck"));
    let image_range = driver.image().map(|i| (i.host_base(), i.host_base() + i.size(&machine))).expect("loaded");
    let left = ntmem_wdk::sched::threads_at_unload(&machine, image_range.0, image_range.1).expect("no 0xCE");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].routine, Some("KeWaitForMultipleObjects"));
    ntmem_wdk::sched::end_threads(&machine);
    assert_eq!(host_threads(), before, "end_threads joined it");
    assert_eq!(machine.scheduler().alive(), vec![]);
    driver.unload_image(&machine);
    drop(driver);
    drop(machine);

    // A run that forgets: the machine's drop ends the thread still blocked.
    let (machine, driver) = start(&image);
    assert_eq!(host_threads(), before + 1);
    drop(driver);
    drop(machine);
    assert_eq!(host_threads(), before, "the machine's drop joined it");

    // A machine moved (to the heap) while its thread waits: the thread, whose stack
    // holds the old address, never runs again; the run stops instead.
    let polling = build(&dir.join("poll"), &["-DPOLL_MS=10"]);
    let (machine, driver) = start(&polling);
    let machine = Box::new(machine);
    let stop = ntmem_wdk::ke_dispatcher::settle(&machine, 0, 50).expect_err("the thread cannot resume");
    assert!(stop.to_string().contains("moved"), "{stop}");
    drop(driver);
    drop(machine);
    assert_eq!(host_threads(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
