//! IRPs the I/O manager builds for a driver to send (learn.microsoft.com
//! "IoBuildDeviceIoControlRequest", "IoBuildSynchronousFsdRequest",
//! "IoBuildAsynchronousFsdRequest").
//!
//! Each is an IRP with the target device's `StackSize` locations, its last one — the
//! target's — filled as the *next* location (the caller sends it with
//! `IoCallDriver`), `RequestorMode` KernelMode, and the caller's buffers prepared as
//! the I/O manager prepares a kernel caller's ([`super::request`]): for a device
//! control by its transfer type (a system buffer of max(input, output) bytes for
//! METHOD_BUFFERED, copied back at completion; input buffered and an MDL over the
//! output, locked in kernel mode, for the direct methods; the raw pointers for
//! METHOD_NEITHER); for a read or write by the device's `DO_BUFFERED_IO` /
//! `DO_DIRECT_IO`. `UserEvent` and `UserIosb` are the caller's: the I/O manager's
//! final completion copies `IoStatus` to the I/O status block, signals the event and
//! frees the IRP ([`super::stack::final_completion`]). `Tail.Overlay.Thread` stays
//! NULL (ntmem has no thread objects here), and the IRP is not queued to a thread.
//!
//! A buffer that cannot be prepared (no pool, an input that cannot be read, an output
//! that cannot be locked) makes the routine return NULL with nothing allocated,
//! where Windows returns NULL for no pool and raises for a bad buffer. Under Driver
//! Verifier's I/O verification a bad buffer stops the machine, as Microsoft's "Bug
//! Check 0xC9" page lists: DRIVER_VERIFIER_IOMANAGER_VIOLATION 0x09 (device, I/O
//! control code, the exception's status) for `IoBuildDeviceIoControlRequest`, 0x08
//! (device, major function, status) for `IoBuildAsynchronousFsdRequest` (the page
//! names no code for the synchronous builder, which returns NULL).

use ntmem_machine::Va;

use super::request::{IoCall, IoRequest, Ioctl};
use super::{DeviceObject, Irp, MajorFunction};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::vf::{IoViolation, VerifierFlags};

/// What a builder returns for `built`: the IRP, NULL, or — under I/O verification,
/// for a buffer that raised (anything but no pool) — the stop `violation` makes of
/// the exception's status.
fn verified(
    cpu: &Cpu<'_>,
    built: Result<Irp, NtStatus>,
    violation: Option<impl FnOnce(u32) -> IoViolation>,
) -> Result<Option<Irp>, BugCheck> {
    let m = cpu.machine();
    match (built, violation) {
        (Ok(irp), _) => Ok(Some(irp)),
        (Err(status), Some(violation))
            if status != NtStatus::INSUFFICIENT_RESOURCES && m.verifier().contains(VerifierFlags::IO_VERIFICATION) =>
        {
            Err(violation(status.0).stop(m))
        }
        (Err(_), _) => Ok(None),
    }
}

/// `IRP_MJ_FLUSH_BUFFERS`, `IRP_MJ_SHUTDOWN`, `IRP_MJ_POWER`, `IRP_MJ_PNP`: the other
/// major functions the FSD routines build (without buffers).
const BUFFERLESS: [u8; 4] = [0x09, 0x10, 0x16, 0x1B];

/// `IoBuildDeviceIoControlRequest(IoControlCode, DeviceObject, InputBuffer,
/// InputBufferLength, OutputBuffer, OutputBufferLength, InternalDeviceIoControl,
/// Event, IoStatusBlock)`; `Ok(None)` is NULL.
///
/// # Errors
/// 0xC9/0x09 as above; bugchecks from the pool, the copies and MmProbeAndLockPages.
pub fn io_build_device_io_control_request(
    cpu: &Cpu<'_>,
    device: DeviceObject,
    ioctl: Ioctl,
    internal: bool,
    event: u64,
    iosb: u64,
) -> Result<Option<Irp>, BugCheck> {
    let (request, major) = if internal {
        (IoRequest::InternalDeviceControl(ioctl), MajorFunction::InternalDeviceControl)
    } else {
        (IoRequest::DeviceControl(ioctl), MajorFunction::DeviceControl)
    };
    let built = IoCall::new(device, request).build_for_driver(cpu, major as u8, event, iosb)?;
    let violation = |status| IoViolation::BadIoctlBuffer { device: device.0.get(), code: ioctl.code, status };
    verified(cpu, built, Some(violation))
}

/// `IoBuildSynchronousFsdRequest` (with `event`) and `IoBuildAsynchronousFsdRequest`
/// (`event` 0): IRP_MJ_READ or IRP_MJ_WRITE of `length` bytes at `buffer` from byte
/// `offset`, or one of IRP_MJ_FLUSH_BUFFERS, IRP_MJ_SHUTDOWN, IRP_MJ_POWER,
/// IRP_MJ_PNP without buffers. `Ok(None)` is NULL (also for another major function,
/// ntmem's choice).
///
/// # Errors
/// 0xC9/0x08 as above (asynchronous: `event` 0); as
/// [`io_build_device_io_control_request`].
#[allow(clippy::too_many_arguments)]
pub fn io_build_fsd_request(
    cpu: &Cpu<'_>,
    major: u32,
    device: DeviceObject,
    buffer: Va,
    length: u32,
    offset: i64,
    event: u64,
    iosb: u64,
) -> Result<Option<Irp>, BugCheck> {
    let request = match u8::try_from(major) {
        Ok(0x03) => IoRequest::Read { buffer, length, offset },
        Ok(0x04) => IoRequest::Write { buffer, length, offset },
        Ok(m) if BUFFERLESS.contains(&m) => IoRequest::Cleanup,
        _ => return Ok(None),
    };
    let built = IoCall::new(device, request).build_for_driver(cpu, major as u8, event, iosb)?;
    let violation = |status| IoViolation::BadFsdBuffer { device: device.0.get(), major: u64::from(major), status };
    verified(cpu, built, (event == 0).then_some(violation))
}
