//! Rust drivers (issue 5 item 7): a driver written in Rust against the same WDK
//! routines C drivers call, under the same names.
//!
//! A Rust driver implements [`RustDriver`]: `driver_entry` receives a
//! [`DriverEntryArgs`] holding a real `PDRIVER_OBJECT` (pass it to
//! [`IoCreateDevice`](crate::io::IoCreateDevice)) and registers the major
//! functions it handles and its unload routine (what a C driver stores in
//! `DriverObject->MajorFunction[...]` and `DriverObject->DriverUnload`);
//! `dispatch` receives an [`IrpView`] of the IRP the I/O manager built.
//!
//! The routines are the `extern "C"` functions of this crate, called directly:
//! [`ExAllocatePoolWithTag`](crate::ex::ExAllocatePoolWithTag),
//! [`ExFreePool`](crate::ex::ExFreePool),
//! [`ExFreePoolWithTag`](crate::ex::ExFreePoolWithTag),
//! [`KeGetCurrentIrql`](crate::ke::KeGetCurrentIrql),
//! [`KfRaiseIrql`](crate::ke::KfRaiseIrql), [`KeLowerIrql`](crate::ke::KeLowerIrql),
//! [`IofCompleteRequest`](crate::io::IofCompleteRequest) are safe to call (they
//! take pointers by value and check them as Windows does: a bad pointer is a
//! bugcheck, not host undefined behaviour). Routines that write through a pointer
//! the driver passes are `unsafe fn`s: `IoCreateDevice`, `IoDeleteDevice`,
//! `KeInitializeSpinLock`, `KeAcquireSpinLockRaiseToDpc`, `KeReleaseSpinLock`,
//! the lookaside-list and MDL routines that take a structure pointer. Reading or
//! writing the memory a routine returned (pool, `SystemBuffer`) is the driver's
//! own `unsafe` pointer access, as in C.
//!
//! Every call into the driver runs on a simulated processor's kernel stack inside
//! `Machine::run`, with [`crate::context::enter`] set, so the routines find their
//! processor. A bugcheck leaves the driver's frames without running their
//! destructors (DESIGN.md, "Leaving driver code on a bugcheck"): keep driver state
//! in `self`, not in guards on the stack, if it must be dropped afterwards.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::NtStatus as KStatus;
use ntmem_kernel::io::{DeviceObject, Irp, MajorFunction};
use ntmem_kernel::{BugCheck, Cpu};
use ntmem_machine::Va;

use crate::context::{host_ptr, kernel};
use crate::types::{DriverObject, NtStatus};

/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as NtStatus;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as NtStatus;
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as NtStatus;
/// `NonPagedPool` (`POOL_TYPE` 0).
pub const NON_PAGED_POOL: u32 = 0;
/// `PagedPool` (`POOL_TYPE` 1).
pub const PAGED_POOL: u32 = 1;
/// `FILE_DEVICE_UNKNOWN`.
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;

/// A pool tag as the C compiler writes `'tseT'`: the bytes `b"Test"` as they
/// appear in memory (and in PoolMon), read as a little-endian `ULONG`.
pub const fn tag(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// A driver written in Rust.
pub trait RustDriver {
    /// `DriverEntry`: create devices, allocate state, register dispatch routines
    /// and the unload routine in `args`. Returns the NTSTATUS the I/O manager sees.
    fn driver_entry(&mut self, args: &mut DriverEntryArgs<'_>) -> NtStatus;

    /// A dispatch routine for a major function registered in `driver_entry`.
    /// Like a C dispatch routine it completes the IRP ([`IrpView::complete`]) and
    /// returns the same status.
    fn dispatch(&mut self, irp: &IrpView) -> NtStatus {
        irp.complete(STATUS_INVALID_DEVICE_REQUEST, 0);
        STATUS_INVALID_DEVICE_REQUEST
    }

    /// `DriverUnload`, called only if `driver_entry` registered it.
    fn unload(&mut self, driver_object: *mut DriverObject) {
        let _ = driver_object;
    }
}

/// What a Rust driver registered in `DriverEntry`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registrations {
    /// The major functions `dispatch` handles.
    pub majors: Vec<MajorFunction>,
    /// Whether it has an unload routine.
    pub unload: bool,
}

/// `DriverEntry`'s arguments.
#[derive(Debug)]
pub struct DriverEntryArgs<'a> {
    /// `DriverObject`: a real `DRIVER_OBJECT`, for `IoCreateDevice`.
    pub driver_object: *mut DriverObject,
    /// `RegistryPath`, as text.
    pub registry_path: &'a str,
    /// `RegistryPath` itself: the `PUNICODE_STRING` a C driver receives, naming the
    /// service key the harness created with its `Parameters` subkey and values
    /// ([`super::Harness::set_parameters`]), for `ZwOpenKey` and
    /// `RtlQueryRegistryValues`.
    pub registry_path_unicode: *mut crate::types::UnicodeString,
    pub(super) registered: &'a mut Registrations,
}

impl DriverEntryArgs<'_> {
    /// `DriverObject->MajorFunction[major] = Dispatch`: `dispatch` handles `major`.
    pub fn set_major_function(&mut self, major: MajorFunction) {
        if !self.registered.majors.contains(&major) {
            self.registered.majors.push(major);
        }
    }

    /// `DriverObject->DriverUnload = Unload`.
    pub fn set_unload(&mut self) {
        self.registered.unload = true;
    }
}

/// The IRP a dispatch routine receives, with its current stack location read
/// out. Pointers are host pointers the driver can use directly (`unsafe`, as in
/// C); `irp` is the `PIRP` for routines that take one.
#[derive(Clone, Copy, Debug)]
pub struct IrpView {
    /// `PIRP`.
    pub irp: *mut c_void,
    /// `PDEVICE_OBJECT` the request was sent to.
    pub device: *mut c_void,
    /// `IoStackLocation->MajorFunction`.
    pub major: MajorFunction,
    /// `Irp->AssociatedIrp.SystemBuffer` (null: none).
    pub system_buffer: *mut u8,
    /// `Irp->UserBuffer` (null: none).
    pub user_buffer: *mut u8,
    /// `Irp->MdlAddress` (null: none).
    pub mdl_address: *mut c_void,
    /// `Parameters.DeviceIoControl.IoControlCode` (0 for reads and writes).
    pub io_control_code: u32,
    /// `Parameters.DeviceIoControl.InputBufferLength`.
    pub input_buffer_length: u32,
    /// `Parameters.DeviceIoControl.OutputBufferLength`, or `Parameters.Read/Write.Length`.
    pub output_buffer_length: u32,
    /// `Parameters.DeviceIoControl.Type3InputBuffer` (METHOD_NEITHER).
    pub type3_input_buffer: *mut u8,
    /// `Parameters.Read/Write.ByteOffset`.
    pub byte_offset: i64,
}

fn host(cpu: &Cpu<'_>, va: u64) -> *mut u8 {
    host_ptr(cpu, (va != 0).then(|| Va::new(va))).cast()
}

impl IrpView {
    /// Reads the IRP at `irp` for `device` (kernel side, before the driver runs).
    pub(super) fn read(
        cpu: &Cpu<'_>,
        major: MajorFunction,
        device: DeviceObject,
        irp: Irp,
    ) -> Result<IrpView, BugCheck> {
        let (out_len, in_len, code, type3) = irp.device_io_control(cpu)?;
        let is_ioctl = matches!(major, MajorFunction::DeviceControl | MajorFunction::InternalDeviceControl);
        let mut byte_offset = 0;
        if !is_ioctl {
            let mut b = [0u8; 8];
            let at = Va::new(irp.current_stack_location(cpu)?.get() + 0x18);
            if cpu.machine().space().read(at, &mut b).is_ok() {
                byte_offset = i64::from_le_bytes(b);
            }
        }
        Ok(IrpView {
            irp: host(cpu, irp.0.get()).cast(),
            device: host(cpu, device.0.get()).cast(),
            major,
            system_buffer: host(cpu, irp.system_buffer(cpu)?),
            user_buffer: host(cpu, irp.user_buffer(cpu)?),
            mdl_address: host(cpu, irp.mdl_address(cpu)?).cast(),
            io_control_code: if is_ioctl { code } else { 0 },
            input_buffer_length: if is_ioctl { in_len } else { 0 },
            output_buffer_length: out_len,
            type3_input_buffer: if is_ioctl { host(cpu, type3) } else { std::ptr::null_mut() },
            byte_offset,
        })
    }

    fn irp(&self, cpu: &Cpu<'_>) -> Irp {
        let addr = self.irp as usize;
        Irp(cpu.machine().space().va_of_host(addr).unwrap_or(Va::new(addr as u64)))
    }

    /// `Irp->IoStatus.Status = status; Irp->IoStatus.Information = information;`
    pub fn set_io_status(&self, status: NtStatus, information: u64) {
        kernel(|cpu| self.irp(cpu).set_io_status(cpu, KStatus(status as u32), information));
    }

    /// Sets `IoStatus` and calls `IoCompleteRequest(Irp, IO_NO_INCREMENT)`.
    pub fn complete(&self, status: NtStatus, information: u64) {
        self.set_io_status(status, information);
        crate::io_stack::complete(self.irp);
    }
}
