//! IRPs drivers allocate, device stacks and completion, at the C boundary
//! (learn.microsoft.com "IoAllocateIrp", "IoFreeIrp", "IoReuseIrp",
//! "IoInitializeIrp", "IoMakeAssociatedIrp", "IofCallDriver", "IofCompleteRequest",
//! "IoSetCompletionRoutineEx"; kernel side: [`ntmem_kernel::io::stack`]).
//!
//! `IofCallDriver` and `IofCompleteRequest` call driver code — the target's dispatch
//! routine, completion routines — so they alternate: kernel work in
//! [`crate::context::kernel`], then the driver's routine outside it (with the
//! driver's import capture kept), as Windows calls them, in the caller's thread and
//! at its IRQL. The target's routine is `DeviceObject->DriverObject->MajorFunction`
//! of a loaded driver ([`register_driver`]); a driver object that is not one (garbage
//! in `DriverObject`, or a driver gone) is touched as Windows would touch it
//! (`MajorFunction` at +0x70: the wild-touch stop). An empty slot, or a major
//! function past IRP_MJ_MAXIMUM_FUNCTION, completes the IRP with
//! STATUS_INVALID_DEVICE_REQUEST as the I/O manager's default routine does. A PDO has
//! no driver in ntmem (the bus driver is not modelled): it completes the start,
//! stop and removal PnP IRPs and the set-power and query-power IRPs with
//! STATUS_SUCCESS, other PnP and power IRPs with the status they hold, anything
//! else with STATUS_INVALID_DEVICE_REQUEST.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::sync::Mutex;

use ntmem_host::thunk::preserving_capture;
use ntmem_kernel::ex::pool::NtStatus as KStatus;
use ntmem_kernel::io::device::DEVICE_OBJECT_SIZE;
use ntmem_kernel::io::stack::{self, CallTarget, Completion, Final};
use ntmem_kernel::io::{irp, DeviceObject, Irp};
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

use crate::context::{checked, host_ptr, kernel, va_of};
use crate::io_cancel::{checked_irp, routine};
use crate::types::{DriverDispatch, DriverObject, NtStatus, IRP_MJ_MAXIMUM_FUNCTION};

/// `PIO_COMPLETION_ROUTINE`.
type CompletionRoutine = unsafe extern "win64" fn(*mut c_void, *mut c_void, *mut c_void) -> NtStatus;

/// `IRP_MJ_PNP`.
const IRP_MJ_PNP: u8 = 0x1B;
/// `IRP_MJ_POWER`.
const IRP_MJ_POWER: u8 = 0x16;
/// The PnP minors the PDO's stand-in for the bus driver succeeds: START, QUERY_REMOVE,
/// REMOVE, CANCEL_REMOVE, STOP, QUERY_STOP, CANCEL_STOP, SURPRISE_REMOVAL.
const PDO_SUCCEEDS_PNP: [u8; 8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x17];
/// The power minors it succeeds: SET_POWER, QUERY_POWER.
const PDO_SUCCEEDS_POWER: [u8; 2] = [0x02, 0x03];
/// Offset of `DRIVER_OBJECT.MajorFunction` (x64).
const OFF_MAJOR_FUNCTION: u64 = 0x70;
const _: () = assert!(std::mem::offset_of!(DriverObject, major_function) == OFF_MAJOR_FUNCTION as usize);

/// The `DRIVER_OBJECT`s of loaded drivers (host addresses).
static DRIVERS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn drivers() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    DRIVERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records `object` as a loaded driver's `DRIVER_OBJECT`: devices naming it are
/// dispatched through its `MajorFunction` table until [`unregister_driver`].
pub(crate) fn register_driver(object: *const DriverObject) {
    drivers().insert(object as usize);
}

/// Forgets `object` (its driver is dropped).
pub(crate) fn unregister_driver(object: *const DriverObject) {
    drivers().remove(&(object as usize));
}

/// `MajorFunction[major]` of the loaded driver whose `DRIVER_OBJECT` is at `object`:
/// `Ok(None)` for an empty slot or a major past the table; the wild-touch stop for
/// an address that is no loaded driver's object.
pub(crate) fn major_function(cpu: &Cpu<'_>, object: u64, major: u8) -> Result<Option<DriverDispatch>, BugCheck> {
    let live = drivers();
    if !live.contains(&(object as usize)) {
        return Err(ntmem_kernel::trap::wild_touch(cpu, Va::new(object.wrapping_add(OFF_MAJOR_FUNCTION)), false));
    }
    if usize::from(major) > IRP_MJ_MAXIMUM_FUNCTION {
        return Ok(None);
    }
    // SAFETY: `object` is a live `Driver`'s boxed DRIVER_OBJECT (registered at load,
    // unregistered when dropped; the lock is held across the read).
    Ok(unsafe { (*(object as *const DriverObject)).major_function[usize::from(major)] })
}

/// `DriverStartIo` of the loaded driver whose `DRIVER_OBJECT` is at `object` (NULL:
/// none); the wild-touch stop for an address that is no loaded driver's object.
pub(crate) fn driver_start_io(cpu: &Cpu<'_>, object: u64) -> Result<*const c_void, BugCheck> {
    let live = drivers();
    if !live.contains(&(object as usize)) {
        return Err(ntmem_kernel::trap::wild_touch(cpu, Va::new(object.wrapping_add(0x60)), false));
    }
    // SAFETY: as in [`major_function`].
    Ok(unsafe { (*(object as *const DriverObject)).driver_start_io }.cast_const())
}

/// `IofCompleteRequest` (behind the `IoCompleteRequest` macro): the walk up the stack
/// with the completion routines due, then the I/O manager's final completion.
///
/// # Safety
/// `irp` is an IRP the caller owns (checked as memory; the rest as on Windows).
pub unsafe extern "win64" fn IofCompleteRequest(irp: *mut c_void, _boost: i8) {
    complete(irp);
}

/// Completes `irp` (see [`IofCompleteRequest`]).
pub(crate) fn complete(irp: *mut c_void) {
    let mut irp = irp;
    let mut step = kernel(|cpu| {
        checked_irp(cpu, irp)?;
        stack::complete(cpu, Irp(va_of(cpu, irp)))
    });
    loop {
        match step {
            Completion::Routine(call) => {
                // SAFETY: the routine the driver set with IoSetCompletionRoutine(Ex), a
                // PIO_COMPLETION_ROUTINE ([`routine`] refuses what is not image code).
                let r: CompletionRoutine = unsafe { routine(call.routine as *const c_void) };
                let (device, context) = (call.device as *mut c_void, call.context as *mut c_void);
                // SAFETY: called as Windows calls it: the device of the location above,
                // the IRP, the driver's context.
                let status = preserving_capture(|| unsafe { r(device, irp, context) });
                if status as u32 == KStatus::MORE_PROCESSING_REQUIRED.0 {
                    return;
                }
                step = kernel(|cpu| stack::resume(cpu, Irp(va_of(cpu, irp))));
            }
            Completion::Finished(Final::Done) => return,
            Completion::Finished(Final::Signal { event, iosb }) => {
                kernel(|cpu| check_unwound(cpu, iosb, event));
                if event != 0 {
                    // SAFETY: the KEVENT the IRP's builder named (checked by KeSetEvent).
                    unsafe { crate::ke_dispatcher::KeSetEvent(event as *mut c_void, 0, 0) };
                }
                return;
            }
            Completion::Finished(Final::PowerRequested(done, requested)) => {
                crate::pnp::power_requested(done, requested);
                return;
            }
            Completion::Finished(Final::Master(master)) => {
                irp = master.0.get() as *mut c_void;
                step = kernel(|cpu| {
                    checked_irp(cpu, irp)?;
                    stack::complete(cpu, Irp(va_of(cpu, irp)))
                });
            }
        }
    }
}

/// I/O verification's look at a threaded IRP's `UserIosb` and `UserEvent` as its
/// final completion uses them: one below the stack pointer of the driver that
/// completes it, on the same kernel stack, belongs to a frame that has returned —
/// a local of the routine that built the IRP and did not wait for it —, which is
/// DRIVER_VERIFIER_IOMANAGER_VIOLATION 0x0C (the I/O status block) or 0x0D (the
/// event) (Microsoft, "Bug Check 0xC9"). A completion on another stack (a DPC, a
/// timer, another thread) cannot tell and is not checked. Without the option
/// Windows writes the status block and signals the event wherever they point — on
/// a live stack, into whatever frame is there now.
fn check_unwound(cpu: &Cpu<'_>, iosb: u64, event: u64) -> Result<(), BugCheck> {
    if !cpu.machine().verifier().contains(ntmem_kernel::vf::VerifierFlags::IO_VERIFICATION) {
        return Ok(());
    }
    let (Some(stack), Some(frame)) = (ntmem_host::guard::current_stack(), ntmem_host::thunk::driver_frame()) else {
        return Ok(());
    };
    let dead = stack.base as u64..frame.rsp;
    let host = |va: u64| host_ptr(cpu, (va != 0).then(|| Va::new(va))) as u64;
    if dead.contains(&host(iosb)) {
        return Err(ntmem_kernel::vf::IoViolation::IosbOnUnwoundStack { iosb }.stop(cpu.machine()));
    }
    if dead.contains(&host(event)) {
        return Err(ntmem_kernel::vf::IoViolation::EventOnUnwoundStack { event }.stop(cpu.machine()));
    }
    Ok(())
}

/// `IofCallDriver` (behind the `IoCallDriver` macro): the next stack location becomes
/// current and the target device's driver's dispatch routine gets the IRP (see the
/// module docs); returns what it returned.
///
/// # Safety
/// `device` and `irp` are a device object and an IRP (checked as memory).
pub unsafe extern "win64" fn IofCallDriver(device: *mut c_void, irp: *mut c_void) -> NtStatus {
    let (routine, target) = kernel(|cpu| {
        checked(cpu, device, DEVICE_OBJECT_SIZE)?;
        checked_irp(cpu, irp)?;
        let target = stack::call_driver(cpu, DeviceObject(va_of(cpu, device)), Irp(va_of(cpu, irp)))?;
        let routine = if target.driver == 0 { None } else { major_function(cpu, target.driver, target.major)? };
        Ok((routine, target))
    });
    dispatch(device, irp, routine, target)
}

/// Calls the target's dispatch routine `routine` with its device and the IRP, or does
/// what the I/O manager does when there is none.
fn dispatch(device: *mut c_void, irp: *mut c_void, routine: Option<DriverDispatch>, target: CallTarget) -> NtStatus {
    if let Some(routine) = routine {
        // SAFETY: the target driver's PDRIVER_DISPATCH, with its device and the IRP.
        return preserving_capture(|| unsafe { routine(device, irp) });
    }
    complete_unhandled(irp, target)
}

/// Hands an IRP the I/O manager built for `device` (its location current already) to
/// the device's dispatch routine for the location's major function, as the I/O
/// manager sends its own requests.
pub(crate) fn deliver(device: *mut c_void, irp: *mut c_void) -> NtStatus {
    let (routine, target) = kernel(|cpu| {
        let driver = DeviceObject(va_of(cpu, device)).driver(cpu)?;
        let (major, _) = Irp(va_of(cpu, irp)).current_function(cpu)?;
        let target = CallTarget { major, driver };
        let routine = if driver == 0 { None } else { major_function(cpu, driver, major)? };
        Ok((routine, target))
    });
    dispatch(device, irp, routine, target)
}

/// What the I/O manager's default routine (or, for a PDO, ntmem's stand-in for the
/// bus driver) does with an IRP no driver routine takes: see the module docs.
fn complete_unhandled(irp: *mut c_void, target: CallTarget) -> NtStatus {
    let status = kernel(|cpu| {
        let i = Irp(va_of(cpu, irp));
        let status = match (target.driver, target.major) {
            (0, major @ (IRP_MJ_PNP | IRP_MJ_POWER)) => {
                let (_, minor) = i.current_function(cpu)?;
                let succeeds = if major == IRP_MJ_PNP { &PDO_SUCCEEDS_PNP[..] } else { &PDO_SUCCEEDS_POWER[..] };
                if succeeds.contains(&minor) {
                    KStatus::SUCCESS
                } else {
                    i.io_status(cpu)?.0
                }
            }
            _ => KStatus::INVALID_DEVICE_REQUEST,
        };
        let (_, information) = i.io_status(cpu)?;
        let information = if status == KStatus::INVALID_DEVICE_REQUEST { 0 } else { information };
        i.set_io_status(cpu, status, information)?;
        Ok(status)
    });
    complete(irp);
    status.0 as NtStatus
}

/// `IoAllocateIrp`: an IRP of `StackSize` locations, or NULL.
pub extern "win64" fn IoAllocateIrp(stack_size: i8, charge_quota: u8) -> *mut c_void {
    kernel(|cpu| {
        // Driver Verifier fails (low resources simulation) and tracks it as the
        // driver's (research note §3.2, §3.4).
        let ask = crate::vf::Ask::object("IoAllocateIrp", irp::IRP_TAG, ntmem_kernel::ex::pool::PoolKind::Nonpaged);
        let allocate = || stack::io_allocate_irp(cpu, stack_size, charge_quota != 0);
        let irp = crate::vf::allocation(cpu, ask, || None, allocate, |i| i.map(|i| i.0))?;
        Ok(host_ptr(cpu, irp.map(|i| i.0)))
    })
}

/// `IoFreeIrp`: frees an IRP (0x44 for one that is not an IRP any more; I/O
/// verification's checks in [`stack::io_free_irp`]).
///
/// # Safety
/// `irp` is the caller's IRP (checked as memory).
pub unsafe extern "win64" fn IoFreeIrp(irp: *mut c_void) {
    kernel(|cpu| {
        checked(cpu, irp, irp::IRP_SIZE)?;
        stack::io_free_irp(cpu, Irp(va_of(cpu, irp)), crate::vf::caller_address())
    });
}

/// `IoReuseIrp`: the IRP initialized again, `IoStatus.Status` = `Iostatus`.
///
/// # Safety
/// `irp` is the caller's IRP (checked as memory).
pub unsafe extern "win64" fn IoReuseIrp(irp: *mut c_void, status: NtStatus) {
    kernel(|cpu| {
        checked(cpu, irp, irp::IRP_SIZE)?;
        stack::io_reuse_irp(cpu, Irp(va_of(cpu, irp)), KStatus(status as u32))
    });
}

/// `IoInitializeIrp`: initializes `PacketSize` bytes of the caller's memory as an IRP
/// of `StackSize` locations.
///
/// # Safety
/// `irp` is `PacketSize` writable bytes (checked as memory).
pub unsafe extern "win64" fn IoInitializeIrp(irp: *mut c_void, packet_size: u16, stack_size: i8) {
    kernel(|cpu| {
        crate::context::checked_all(cpu, irp, u64::from(packet_size.max(1)))?;
        stack::io_initialize_irp(cpu, Irp(va_of(cpu, irp)), packet_size, stack_size as u8)
    });
}

/// `IoMakeAssociatedIrp`: an IRP associated with `Irp`, or NULL.
///
/// # Safety
/// `irp` is the master IRP (checked as memory).
pub unsafe extern "win64" fn IoMakeAssociatedIrp(irp: *mut c_void, stack_size: i8) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, irp, irp::IRP_SIZE)?;
        let associated = stack::io_make_associated_irp(cpu, Irp(va_of(cpu, irp)), stack_size)?;
        Ok(host_ptr(cpu, associated.map(|i| i.0)))
    })
}

/// `IoSetCompletionRoutineEx`: as the `IoSetCompletionRoutine` macro — the routine,
/// its context and when to invoke it in the next stack location —, and
/// STATUS_SUCCESS. Windows also allocates a context that keeps `DeviceObject`'s
/// driver loaded until the routine has run; ntmem does not (a driver that unloads
/// first has its routine called in an unmapped image, the 0xCE path).
///
/// # Safety
/// `irp` is an IRP the caller owns (checked as memory).
#[allow(clippy::too_many_arguments)]
pub unsafe extern "win64" fn IoSetCompletionRoutineEx(
    _device: *mut c_void,
    irp: *mut c_void,
    completion: *mut c_void,
    context: *mut c_void,
    on_success: u8,
    on_error: u8,
    on_cancel: u8,
) -> NtStatus {
    let next = kernel(|cpu| {
        let p = checked_irp(cpu, irp)?;
        // SAFETY: `p` is a mapped IRP; the field is its own pointer.
        let current = unsafe { p.add(0xB8).cast::<u64>().read_unaligned() };
        let next = current.wrapping_sub(irp::STACK_LOCATION_SIZE) as *mut c_void;
        checked(cpu, next, irp::STACK_LOCATION_SIZE)
    });
    let mut control = 0u8;
    for (on, flag) in [
        (on_success, stack::SL_INVOKE_ON_SUCCESS),
        (on_error, stack::SL_INVOKE_ON_ERROR),
        (on_cancel, stack::SL_INVOKE_ON_CANCEL),
    ] {
        if on != 0 {
            control |= flag;
        }
    }
    // SAFETY: `next` is a mapped stack location (checked): CompletionRoutine 0x38,
    // Context 0x40, Control 0x03.
    unsafe {
        next.add(0x38).cast::<*mut c_void>().write_unaligned(completion);
        next.add(0x40).cast::<*mut c_void>().write_unaligned(context);
        next.add(0x03).write(control);
    }
    0
}

/// `IoBuildDeviceIoControlRequest`: an IRP for `DeviceObject` with the request in its
/// next stack location and the buffers prepared by the code's transfer type, or NULL
/// ([`ntmem_kernel::io::build`]). The final completion writes `*IoStatusBlock`,
/// signals `*Event` and frees the IRP.
///
/// # Safety
/// `device` is a device object (checked as memory); the buffers are the caller's.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "win64" fn IoBuildDeviceIoControlRequest(
    code: u32,
    device: *mut c_void,
    input: *mut c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
    internal: u8,
    event: *mut c_void,
    iosb: *mut c_void,
) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, device, DEVICE_OBJECT_SIZE)?;
        let ioctl = ntmem_kernel::io::request::Ioctl {
            code,
            input: va_of(cpu, input),
            input_length,
            output: va_of(cpu, output),
            output_length,
        };
        let d = DeviceObject(va_of(cpu, device));
        let irp = ntmem_kernel::io::build::io_build_device_io_control_request(
            cpu,
            d,
            ioctl,
            internal != 0,
            event as u64,
            iosb as u64,
        )?;
        Ok(host_ptr(cpu, irp.map(|i| i.0)))
    })
}

/// Both FSD request builders.
fn build_fsd(
    major: u32,
    device: *mut c_void,
    buffer: *mut c_void,
    length: u32,
    offset: *const i64,
    event: *mut c_void,
    iosb: *mut c_void,
) -> *mut c_void {
    kernel(|cpu| {
        checked(cpu, device, DEVICE_OBJECT_SIZE)?;
        let offset = if offset.is_null() {
            0
        } else {
            let p = checked(cpu, offset.cast_mut().cast(), 8)?;
            // SAFETY: 8 mapped bytes (checked).
            unsafe { p.cast::<i64>().read_unaligned() }
        };
        let d = DeviceObject(va_of(cpu, device));
        let buffer = va_of(cpu, buffer);
        let irp = ntmem_kernel::io::build::io_build_fsd_request(
            cpu,
            major,
            d,
            buffer,
            length,
            offset,
            event as u64,
            iosb as u64,
        )?;
        Ok(host_ptr(cpu, irp.map(|i| i.0)))
    })
}

/// `IoBuildSynchronousFsdRequest`: a read, write, flush, shutdown, power or PnP IRP
/// for `DeviceObject` with `Event` and `IoStatusBlock`, or NULL
/// ([`ntmem_kernel::io::build`]).
///
/// # Safety
/// `device` is a device object (checked as memory); the buffer is the caller's.
pub unsafe extern "win64" fn IoBuildSynchronousFsdRequest(
    major: u32,
    device: *mut c_void,
    buffer: *mut c_void,
    length: u32,
    offset: *const i64,
    event: *mut c_void,
    iosb: *mut c_void,
) -> *mut c_void {
    build_fsd(major, device, buffer, length, offset, event, iosb)
}

/// `IoBuildAsynchronousFsdRequest`: as `IoBuildSynchronousFsdRequest` without an
/// event; the caller's completion routine is expected to free the IRP (and return
/// STATUS_MORE_PROCESSING_REQUIRED), as documented. One that reaches the I/O manager
/// is completed as a synchronous one (its status block written, the IRP freed).
///
/// # Safety
/// As `IoBuildSynchronousFsdRequest`.
pub unsafe extern "win64" fn IoBuildAsynchronousFsdRequest(
    major: u32,
    device: *mut c_void,
    buffer: *mut c_void,
    length: u32,
    offset: *const i64,
    iosb: *mut c_void,
) -> *mut c_void {
    build_fsd(major, device, buffer, length, offset, std::ptr::null_mut(), iosb)
}
