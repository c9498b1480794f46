//! Rust drivers on a simulated machine (issue 5 item 7): drivers written against
//! the WDK routines under their names, run by `ntmem_wdk::harness::Harness` with a
//! scenario, asserting each step's result, the driver's pool rows, leaks and exact
//! bugchecks.

use std::ffi::c_void;

use ntmem_kernel::io::{ctl_code, MajorFunction, TransferMethod};
use ntmem_kernel::BugCheckCode;
use ntmem_wdk::ex::{ExAllocatePoolWithTag, ExFreePool, ExFreePoolWithTag};
use ntmem_wdk::harness::driver::{
    FILE_DEVICE_UNKNOWN, NON_PAGED_POOL, STATUS_BUFFER_TOO_SMALL, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_REQUEST,
};
use ntmem_wdk::harness::{tag, DriverEntryArgs, Harness, IrpView, RustDriver, Step};
use ntmem_wdk::io::{IoCreateDevice, IoDeleteDevice};
use ntmem_wdk::types::{DriverObject, NtStatus, STATUS_SUCCESS};

/// `IOCTL_UPCASE`: METHOD_BUFFERED; returns the input upper-cased.
const IOCTL_UPCASE: u32 = ctl_code(FILE_DEVICE_UNKNOWN, 0x800, TransferMethod::Buffered, 0);
/// `IOCTL_COUNT`: METHOD_BUFFERED; returns how many requests the driver served (a ULONG).
const IOCTL_COUNT: u32 = ctl_code(FILE_DEVICE_UNKNOWN, 0x801, TransferMethod::Buffered, 0);
const TAG: u32 = tag(*b"Rdrv");

/// State kept in nonpaged pool, as a C driver keeps it.
#[repr(C)]
struct State {
    requests: u32,
}

/// An IOCTL driver in Rust: one device, its state in pool tagged "Rdrv".
#[derive(Default)]
struct UpcaseDriver {
    device: *mut c_void,
    state: *mut State,
}

impl RustDriver for UpcaseDriver {
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus {
        assert!(args.registry_path.ends_with("\\Services\\upcase"));
        // SAFETY: `driver_object` is the DRIVER_OBJECT the harness gave us; `out` is ours.
        let status = unsafe {
            IoCreateDevice(args.driver_object, 0, std::ptr::null_mut(), FILE_DEVICE_UNKNOWN, 0, 0, &mut self.device)
        };
        if status != STATUS_SUCCESS {
            return status;
        }
        self.state = ExAllocatePoolWithTag(NON_PAGED_POOL, std::mem::size_of::<State>(), TAG).cast();
        if self.state.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: a fresh nonpaged block of the size of State.
        unsafe { self.state.write(State { requests: 0 }) };
        args.set_major_function(MajorFunction::DeviceControl);
        args.set_major_function(MajorFunction::Read);
        args.set_unload();
        STATUS_SUCCESS
    }

    fn dispatch(&mut self, irp: &IrpView) -> NtStatus {
        // SAFETY: our state block, live until unload.
        let state = unsafe { &mut *self.state };
        state.requests += 1;
        let (status, information) = match (irp.major, irp.io_control_code) {
            (MajorFunction::DeviceControl, IOCTL_UPCASE) => {
                let n = irp.input_buffer_length as usize;
                if (irp.output_buffer_length as usize) < n {
                    (STATUS_BUFFER_TOO_SMALL, 0)
                } else {
                    // SAFETY: METHOD_BUFFERED: SystemBuffer holds max(input, output) bytes.
                    let buf = unsafe { std::slice::from_raw_parts_mut(irp.system_buffer, n) };
                    buf.make_ascii_uppercase();
                    (STATUS_SUCCESS, n as u64)
                }
            }
            (MajorFunction::DeviceControl, IOCTL_COUNT) if irp.output_buffer_length >= 4 => {
                // SAFETY: at least 4 bytes of system buffer (checked above).
                unsafe { irp.system_buffer.cast::<u32>().write_unaligned(state.requests) };
                (STATUS_SUCCESS, 4)
            }
            (MajorFunction::Read, _) => {
                // Neither I/O (the device has neither DO_BUFFERED_IO nor DO_DIRECT_IO):
                // UserBuffer is the caller's, and we run in its context.
                let n = irp.output_buffer_length as usize;
                // SAFETY: the caller's committed read-write buffer of `n` bytes.
                unsafe { std::ptr::write_bytes(irp.user_buffer, 0xAB, n) };
                (STATUS_SUCCESS, n as u64)
            }
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        };
        irp.complete(status, information);
        status
    }

    fn unload(&mut self, _driver_object: *mut DriverObject) {
        ExFreePoolWithTag(self.state.cast(), TAG);
        // SAFETY: the device we created.
        unsafe { IoDeleteDevice(self.device) };
    }
}

#[test]
fn a_rust_ioctl_driver_runs_a_buffered_scenario() {
    let harness = Harness::boot_default().unwrap();
    let steps = [
        Step::ioctl(IOCTL_UPCASE, b"hello, ntmem", 16),
        Step::ioctl(IOCTL_UPCASE, b"too long", 2).expect_status(STATUS_BUFFER_TOO_SMALL as u32),
        Step::ioctl(0x0022_2FFC, b"", 0).expect_status(STATUS_INVALID_DEVICE_REQUEST as u32),
        Step::read(4),
        Step::write(b"x").expect_status(STATUS_INVALID_DEVICE_REQUEST as u32),
        Step::advance_ms(10),
        Step::ioctl(IOCTL_COUNT, b"", 4),
    ];
    let report = harness.run("upcase.sys", &mut UpcaseDriver::default(), &steps);
    assert!(report.bugcheck.is_none(), "{:?}", report.bugcheck);
    assert_eq!(report.driver_entry_status, Some(0));
    let s = &report.steps;
    assert_eq!(s.len(), 7);
    assert_eq!((s[0].status, s[0].information), (Some(0), Some(12)));
    assert_eq!(s[0].output.as_deref(), Some(hex(b"HELLO, NTMEM").as_str()));
    assert_eq!(s[1].status, Some(STATUS_BUFFER_TOO_SMALL as u32));
    assert_eq!(s[2].status, Some(STATUS_INVALID_DEVICE_REQUEST as u32));
    assert_eq!(s[3].output.as_deref(), Some("abababab"));
    // IRP_MJ_WRITE is not registered: the I/O manager completes it, the driver never sees it.
    assert_eq!(s[4].status, Some(STATUS_INVALID_DEVICE_REQUEST as u32));
    // Four requests reached the driver before this one, which is the fifth.
    assert_eq!(s[6].output.as_deref(), Some("05000000"));
    assert!(s.iter().all(|s| s.ok));
    assert!(report.unloaded);
    let row = report.pool_row("Rdrv").expect("the driver's tag");
    assert_eq!((row.allocs, row.frees, row.diff), (1, 1, 0));
    assert!(report.leaks_checked && report.leaks.is_empty());
    assert!(report.clean());
}

#[test]
fn the_same_driver_runs_a_toml_scenario() {
    let text = format!(
        "machine = \"ws03sp1-enterprise-x64\"\nram = \"1G\"\nprocessors = 1\n\n\
         [[step]]\nioctl = {{ code = {IOCTL_UPCASE}, input = \"616263\", output_len = 8, process = \"tool.exe\" }}\n\
         [[step]]\ntrim = true\n\
         [[step]]\nunload = true\n\
         [[step]]\nread = {{ length = 1 }}\n"
    );
    let (harness, steps) = Harness::from_scenario("upcase.toml", &text).unwrap();
    assert_eq!(harness.machine().profile().processors, 1);
    let report = harness.run("upcase.sys", &mut UpcaseDriver::default(), &steps);
    assert!(report.bugcheck.is_none());
    assert_eq!(report.steps[0].output.as_deref(), Some("414243"));
    assert_eq!(report.steps[0].line, 5);
    assert_eq!(report.steps[1].kind, "trim");
    assert_eq!(report.steps[2].note.as_deref(), Some("DriverUnload called"));
    // After the unload step, later steps are skipped.
    assert!(!report.steps[3].ok);
    assert!(report.unloaded && report.leaks.is_empty());
}

#[test]
fn an_invalid_scenario_names_the_line_and_the_key() {
    let e = Harness::from_scenario("bad.toml", "[[step]]\nioctl = { code = 1, colour = 2 }\n").unwrap_err();
    assert!(e.to_string().starts_with("bad.toml:2: key `colour`:"), "{e}");
}

/// Frees its block twice in DriverEntry.
struct DoubleFree;

impl RustDriver for DoubleFree {
    fn driver_entry(&mut self, _args: &mut DriverEntryArgs<'_>) -> NtStatus {
        let p = ExAllocatePoolWithTag(NON_PAGED_POOL, 100, tag(*b"Dbl "));
        ExFreePool(p);
        ExFreePool(p);
        STATUS_SUCCESS
    }
}

#[test]
fn a_rust_driver_that_frees_twice_stops_the_machine_with_bad_pool_caller_7() {
    let harness = Harness::boot_default().unwrap();
    let report = harness.run("dblfree.sys", &mut DoubleFree, &[Step::ioctl(IOCTL_UPCASE, b"", 0)]);
    let b = report.bugcheck.as_ref().expect("a bugcheck");
    assert_eq!(b.code, BugCheckCode::BAD_POOL_CALLER);
    assert_eq!(b.code.0, 0xC2);
    assert_eq!(b.parameters[0], 7);
    assert_eq!(b.driver.as_deref(), Some("dblfree.sys"));
    assert_eq!(report.driver_entry_status, None);
    assert!(report.steps.is_empty() && !report.leaks_checked);
    assert!(harness.machine().stopped().is_some());
}

/// Allocates in DriverEntry and never frees.
struct Leaky;

impl RustDriver for Leaky {
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus {
        for _ in 0..3 {
            let _ = ExAllocatePoolWithTag(NON_PAGED_POOL, 256, tag(*b"Leak"));
        }
        args.set_unload();
        STATUS_SUCCESS
    }
}

#[test]
fn a_rust_driver_that_leaks_is_named_by_tag() {
    let harness = Harness::boot_default().unwrap();
    let report = harness.run("leaky.sys", &mut Leaky, &[]);
    assert!(report.bugcheck.is_none());
    assert!(report.unloaded && report.leaks_checked);
    assert_eq!(report.leaked_tags(), vec!["Leak".to_string()]);
    assert_eq!(report.leaks[0].diff, 3);
    assert!(!report.clean());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A call a test driver makes from DriverEntry.
type EntryCall = fn(&mut DriverEntryArgs<'_>);

/// Calls a PASSIVE_LEVEL routine at DISPATCH_LEVEL from DriverEntry.
struct RaisedCall(EntryCall);

impl RustDriver for RaisedCall {
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus {
        ntmem_wdk::ke::KfRaiseIrql(2);
        (self.0)(args);
        STATUS_SUCCESS
    }
}

/// Issue 9 item 6: IoCreateDevice and MmAllocateMappingAddress at DISPATCH_LEVEL
/// stop as running their pageable code there does: 0x0A (routine, 2, 8, routine).
#[test]
fn pageable_routines_at_dispatch_level_stop_with_0x0a() {
    let calls: [(EntryCall, u64); 2] = [
        (
            |args| {
                let mut device = std::ptr::null_mut();
                // SAFETY: the harness's DRIVER_OBJECT and a local out pointer.
                let _ = unsafe {
                    IoCreateDevice(args.driver_object, 0, std::ptr::null_mut(), FILE_DEVICE_UNKNOWN, 0, 0, &mut device)
                };
            },
            IoCreateDevice as *const () as u64,
        ),
        (
            |_| {
                let _ = ntmem_wdk::mdl::MmAllocateMappingAddress(0x1000, tag(*b"Rsvd"));
            },
            ntmem_wdk::mdl::MmAllocateMappingAddress as *const () as u64,
        ),
    ];
    for (call, routine) in calls {
        let harness = Harness::boot_default().unwrap();
        let report = harness.run("raised.sys", &mut RaisedCall(call), &[]);
        let b = report.bugcheck.as_ref().expect("a bugcheck");
        assert_eq!((b.code, b.parameters), (BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [routine, 2, 8, routine]));
    }
}

/// A buffer no machine here can give the caller (4,000,000,000 bytes, issue 9
/// item 5): the request fails with the allocation's status (the process's
/// `NtAllocateVirtualMemory`, or STATUS_INSUFFICIENT_RESOURCES for a kernel
/// caller's pool) without reaching the driver, the step is in the report, and
/// the machine goes on — on x64 and x86. The user buffer's commit is all or
/// nothing: on x64, where user space could hold it but RAM cannot, the commit
/// fails part-way and gives back what it took, so the process is torn down clean.
#[test]
fn a_buffer_the_machine_cannot_provide_fails_the_request_not_the_machine() {
    for machine in ["ws03sp1-enterprise-x64", "xp-professional"] {
        let text = format!("machine = \"{machine}\"\nram = \"512M\"\n");
        let (harness, _) = Harness::from_scenario("huge.toml", &text).unwrap();
        let steps = [
            Step::internal_ioctl(IOCTL_UPCASE, b"hi", 4_000_000_000),
            Step::ioctl(IOCTL_UPCASE, b"hi", 2),
            Step::ioctl(IOCTL_UPCASE, b"hi", 4_000_000_000),
        ];
        let report = harness.run("upcase.sys", &mut UpcaseDriver::default(), &steps);
        assert!(report.bugcheck.is_none(), "{machine}: {:?} {:#?}", report.bugcheck, report.steps);
        assert_eq!(report.steps.len(), steps.len(), "{machine}");
        let kernel = &report.steps[0];
        assert_eq!(kernel.status, Some(STATUS_INSUFFICIENT_RESOURCES as u32), "{machine}: {kernel:?}");
        assert_eq!(report.steps[1].output.as_deref(), Some("4849"), "{machine}");
        let user = &report.steps[2];
        assert!(user.status.is_some_and(|s| s >= 0xC000_0000), "{machine}: {user:?}");
        for s in report.steps.iter().filter(|s| s.index != 2) {
            assert_eq!((s.reached_driver, s.ok), (Some(false), false), "{machine}: {s:?}");
            assert!(s.note.as_deref().unwrap_or("").contains("4000000000-byte output buffer"), "{machine}: {s:?}");
        }
        assert!(report.unloaded && report.leaks.is_empty(), "{machine}: {:?}", report.leaks);
    }
}

/// Frees its state block twice on its first request.
#[derive(Default)]
struct FreesTwiceInDispatch;

impl RustDriver for FreesTwiceInDispatch {
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus {
        let mut device = std::ptr::null_mut();
        // SAFETY: the DRIVER_OBJECT the harness gave us; `device` is ours.
        let status = unsafe {
            IoCreateDevice(args.driver_object, 0, std::ptr::null_mut(), FILE_DEVICE_UNKNOWN, 0, 0, &mut device)
        };
        args.set_major_function(MajorFunction::DeviceControl);
        status
    }

    fn dispatch(&mut self, _irp: &IrpView) -> NtStatus {
        let p = ExAllocatePoolWithTag(NON_PAGED_POOL, 64, tag(*b"Dbl2"));
        ExFreePool(p);
        ExFreePool(p);
        STATUS_SUCCESS
    }
}

#[test]
fn the_step_during_which_the_machine_stops_is_in_the_report() {
    let harness = Harness::boot_default().unwrap();
    let steps = [Step::advance_ms(5), Step::ioctl(IOCTL_UPCASE, b"x", 1), Step::trim()];
    let report = harness.run("dbl2.sys", &mut FreesTwiceInDispatch, &steps);
    let b = report.bugcheck.as_ref().expect("a bugcheck");
    assert_eq!((b.code, b.parameters[0]), (BugCheckCode::BAD_POOL_CALLER, 7));
    assert_eq!(report.steps.len(), 2, "{:?}", report.steps);
    let last = &report.steps[1];
    assert_eq!((last.index, last.kind, last.ok, last.status), (2, "ioctl", false, None));
    assert!(last.note.as_deref().unwrap_or("").starts_with("the machine stopped during this step: "), "{last:?}");
}

#[test]
fn simulated_time_stops_at_what_a_100ns_large_integer_holds() {
    use ntmem_wdk::harness::scenario::MAX_SIMULATED_MS;
    let harness = Harness::boot_default().unwrap();
    let steps = [Step::advance_ms(u64::MAX), Step::advance_ms(MAX_SIMULATED_MS + 1), Step::advance_ms(1000)];
    let report = harness.run("upcase.sys", &mut UpcaseDriver::default(), &steps);
    assert!(report.bugcheck.is_none());
    assert!(!report.steps[0].ok && !report.steps[1].ok && report.steps[2].ok, "{:?}", report.steps);
    assert!(report.steps[0].note.as_deref().unwrap_or("").starts_with("skipped: simulated time"));
    assert_eq!(harness.machine().now_ms(), 1000);
}
