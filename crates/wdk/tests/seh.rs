//! Structured exceptions for Rust driver code running on a machine (issue 4 item 2):
//! `try_except` catches routines' raises and faults on user addresses below
//! DISPATCH_LEVEL; without a frame the same fault is the trap's bugcheck.

use ntmem_kernel::{BugCheckCode, Irql, Machine};
use ntmem_machine::{BootOptions, MachineConfig, Va};
use ntmem_wdk::context;
use ntmem_wdk::seh::{self, catch, try_except, STATUS_ACCESS_VIOLATION, STATUS_QUOTA_EXCEEDED};

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 512 << 20;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

/// Writes through the host address of the unmapped user address 0x10000.
fn touch_user(m: &Machine) {
    let va = Va::new(0x10000);
    assert!(m.profile().layout.is_user(va));
    let p = m.space().host_addr(va) as *mut u32;
    // SAFETY: the address is inside the machine's reservation and unmapped: the
    // write faults and the machine's trap decides what happens.
    unsafe { p.write_volatile(1) };
}

#[test]
fn a_rust_driver_catches_a_user_address_fault_as_access_violation() {
    let m = boot();
    let r = m.run(0, |cpu| Ok(context::enter(cpu, "the test driver", || catch(|| touch_user(&m)))));
    let e = r.unwrap().unwrap_err();
    assert_eq!(e.code, STATUS_ACCESS_VIOLATION);
    assert_eq!(e.parameters, vec![1, 0x10000]);
    assert!(m.stopped().is_none());
}

#[test]
fn a_rust_driver_catches_a_raised_status() {
    let m = boot();
    let r = m.run(0, |_| Ok(try_except(|| seh::raise_status(STATUS_QUOTA_EXCEEDED))));
    assert_eq!(r.unwrap(), Err::<(), _>(STATUS_QUOTA_EXCEEDED));
}

#[test]
fn without_a_frame_the_fault_is_0x8e_and_at_dispatch_level_it_is_not_caught() {
    let m = boot();
    let b = m
        .run(0, |_| {
            touch_user(&m);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::KERNEL_MODE_EXCEPTION_NOT_HANDLED);

    let m = boot();
    let b = m
        .run(0, |cpu| {
            cpu.raise_irql(Irql::DISPATCH)?;
            Ok(try_except(|| touch_user(&m)))
        })
        .unwrap_err();
    assert_eq!(b.code, BugCheckCode::IRQL_NOT_LESS_OR_EQUAL);
}

#[test]
fn an_unhandled_raise_outside_driver_entry_is_0x1e() {
    let m = boot();
    let b = m.run(0, |_| -> Result<(), _> { seh::raise_status(STATUS_ACCESS_VIOLATION) }).unwrap_err();
    assert_eq!(b.code, BugCheckCode::KMODE_EXCEPTION_NOT_HANDLED);
    assert_eq!(b.parameters, [0xC000_0005, 0, 0, 0]);
}

/// `ExRaiseStatus` called by a host thread with no driver call in progress and no
/// frame (issue 9: it aborted the process through a panic in the host's escape).
/// The test runs itself again as a child process that raises, and judges how that
/// process ended: a message naming the exception and the bugcheck it would have
/// been, and exit status 70 — not an abort (134) or a panic.
#[test]
fn ex_raise_status_on_a_host_thread_ends_the_process_with_a_message_not_an_abort() {
    const CHILD: &str = "NTMEM_TEST_RAISE_ON_HOST_THREAD";
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: what is tested: a raise no frame takes, outside any machine call.
        unsafe { seh::ExRaiseStatus(STATUS_QUOTA_EXCEEDED) };
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ex_raise_status_on_a_host_thread_ends_the_process_with_a_message_not_an_abort"])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(seh::EXIT_UNHANDLED_OUTSIDE_MACHINE), "{err}");
    assert!(err.contains("ntmem: exception 0xc0000044 raised at"), "{err}");
    assert!(err.contains("no machine to stop (in a driver call: *** STOP: 0x0000001e (0xc0000044"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Inside a frame the same raise is an ordinary caught exception.
    // SAFETY: raising inside `catch` is what ExRaiseStatus is for.
    let e = catch(|| unsafe { seh::ExRaiseStatus(STATUS_QUOTA_EXCEEDED) }).unwrap_err();
    assert_eq!(e.code, STATUS_QUOTA_EXCEEDED);
}
