//! The WDK boundary's fences (issue 9 items 3 and 4): a panic inside a routine stops
//! the machine with an internal-error halt naming the routine (never an abort, never a
//! second report, on x64 and x86 kernel stacks); driver code that never returns ends
//! by the watchdog.

use std::time::Duration;

use ntmem_kernel::ke::watchdog::WatchdogLimits;
use ntmem_kernel::{BugCheck, BugCheckCode, Halt, Machine};
use ntmem_machine::{BootOptions, MachineConfig};
use ntmem_wdk::context::{self, kernel};
use ntmem_wdk::ke::{KeGetCurrentIrql, KfRaiseIrql};

fn boot(edition: &str) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = 512 << 20;
    config.processors = 1;
    config.boot = BootOptions::parse("").unwrap();
    Machine::boot(config.build().unwrap()).unwrap()
}

/// A routine whose kernel code panics, as a routine with a bug in ntmem would (named
/// like the WDK routines, whose names the fence reports).
#[allow(non_snake_case)]
fn NtmemBrokenRoutine() -> u32 {
    kernel(|_cpu| -> Result<u32, BugCheck> { panic!("index out of bounds: the len is 0 but the index is 7") })
}

fn panic_in_a_routine(edition: &str) {
    let m = boot(edition);
    let r = m.run_driver(0, |cpu| Ok(context::enter(cpu, "DriverEntry", NtmemBrokenRoutine)));
    let b = context::leave(r).expect_err("the machine stopped");
    assert_eq!(
        b.halt.as_deref(),
        Some(&Halt::Internal {
            routine: "NtmemBrokenRoutine".to_string(),
            message: "index out of bounds: the len is 0 but the index is 7".to_string(),
        }),
        "{b}"
    );
    assert_eq!(b.code, BugCheckCode(0));
    // The stop is recorded once: later runs see the same halt, not a second report.
    assert_eq!(m.stopped(), Some(b));
}

#[test]
fn a_panic_inside_a_routine_is_an_internal_error_halt_naming_it_on_x64() {
    panic_in_a_routine("ws03sp1-enterprise-x64");
}

#[test]
fn a_panic_inside_a_routine_is_an_internal_error_halt_naming_it_on_x86_small_stacks() {
    panic_in_a_routine("xp-professional");
}

fn quick(m: &Machine) {
    m.set_watchdog(WatchdogLimits { timeout: Duration::from_millis(200), dpc_period: Duration::from_millis(200) });
}

#[test]
fn rust_driver_code_looping_at_passive_level_ends_in_a_timeout_naming_the_routine_and_irql() {
    let m = boot("ws03sp1-enterprise-x64");
    quick(&m);
    let r = m.run_driver(0, |cpu| {
        Ok(context::enter(cpu, "IRP_MJ_READ dispatch routine", || -> u8 {
            loop {
                std::hint::black_box(KeGetCurrentIrql());
            }
        }))
    });
    let b: BugCheck = context::leave(r).expect_err("the watchdog stopped it");
    match b.halt.as_deref() {
        Some(Halt::Timeout { routine, irql, ip, limit_ms }) => {
            assert_eq!(routine.as_deref(), Some("IRP_MJ_READ dispatch routine"));
            assert_eq!(irql.0, 0);
            assert_ne!(*ip, 0);
            assert_eq!(*limit_ms, 200);
        }
        other => panic!("not a timeout: {other:?}"),
    }
}

#[test]
fn rust_driver_code_looping_at_dispatch_level_is_0x133() {
    let m = boot("ws03sp1-enterprise-x64");
    quick(&m);
    let r = m.run_driver(0, |cpu| {
        Ok(context::enter(cpu, "DriverEntry", || -> u8 {
            KfRaiseIrql(2);
            loop {
                std::hint::black_box(KeGetCurrentIrql());
            }
        }))
    });
    let b: BugCheck = context::leave(r).expect_err("the watchdog stopped it");
    assert_eq!(b.code, BugCheckCode::DPC_WATCHDOG_VIOLATION, "{b}");
    assert_eq!(b.parameters, [1, 12, 0, 0]);
    assert_eq!(b.halt, None);
}
