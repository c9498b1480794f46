//! `io`: the I/O manager, as far as drivers' buffers go (issue 4 item 5; seed 000
//! §9; learn.microsoft.com "Methods for Accessing Data Buffers", "Defining I/O
//! Control Codes", IRP / IO_STACK_LOCATION / DEVICE_OBJECT (wdm.h)).
//!
//! * [`device`]: device objects (`IoCreateDevice` / `IoDeleteDevice`), byte-exact
//!   in nonpaged pool with their device extension, `DO_BUFFERED_IO` /
//!   `DO_DIRECT_IO` read from the object's `Flags` as the driver left them.
//! * [`irp`]: IRPs, byte-exact in nonpaged pool in the
//!   **x64 layout** whatever the simulated architecture (the drivers ntmem builds
//!   are 64-bit host code, as for [`crate::mm::mdl`]); `IoCompleteRequest`.
//! * [`request`]: what a caller issues — `NtDeviceIoControlFile`, `NtReadFile`,
//!   `NtWriteFile` from a user process, or an internal device control from kernel
//!   code — and how the I/O manager delivers each transfer type: buffered (a
//!   system buffer, copied in and out), direct (an MDL over the caller's buffer,
//!   locked), neither (the caller's raw pointers, in the caller's context).
//! * [`pnp`]: PDOs, `IoAttachDeviceToDeviceStack` / `IoDetachDevice`, and
//!   `IRP_MJ_PNP` start-device (with the raw and translated `CM_RESOURCE_LIST`s)
//!   and remove-device.
//! * [`power`]: `IRP_MJ_POWER` set-power and query-power requests, and the power
//!   states drivers record (`PoSetPowerState`).
//! * [`returns`]: the IRQL a driver routine must return at (0xE1, 0x4A).
//! * [`symlink`]: symbolic links (`IoCreateSymbolicLink` / `IoDeleteSymbolicLink`).
//! * [`file`]: opening a device by name (through symbolic links), file objects,
//!   IRP_MJ_CREATE / IRP_MJ_CLEANUP / IRP_MJ_CLOSE.
//! * [`stack`]: IRPs drivers allocate (`IoAllocateIrp`, …), `IoCallDriver` down a
//!   device stack and `IoCompleteRequest` back up it, with completion routines.
//! * [`build`]: `IoBuildDeviceIoControlRequest` and the FSD request builders.
//!
//! The driver's dispatch routines are reached through [`Dispatch`]: the WDK
//! boundary implements it over a C `DRIVER_OBJECT.MajorFunction` table, tests over
//! Rust closures. A request goes to the top of its device's stack; the dispatch
//! routine runs on the calling processor, in the caller's process context, and
//! completes the IRP or returns `STATUS_PENDING` and completes it later (from a DPC,
//! a timer, another request).
//!
//! Pointers stored in the structures (MdlAddress, SystemBuffer, DeviceObject, …)
//! are simulated virtual addresses, which are the host's when the layout is not
//! relocated (DESIGN.md decision 2), as for MDLs.
//!
//! Locking: the device list and the IRP table have a lock each, never held while
//! driver code or another kernel routine runs.

pub mod build;
pub mod device;
pub mod file;
pub mod irp;
pub mod pnp;
pub mod power;
pub mod request;
pub mod returns;
pub mod stack;
pub mod symlink;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ntmem_machine::Va;

use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::mm::process::Process;

pub use device::DeviceObject;
pub use irp::Irp;

impl NtStatus {
    /// `STATUS_PENDING`.
    pub const PENDING: NtStatus = NtStatus(0x0000_0103);
    /// `STATUS_INVALID_DEVICE_REQUEST`: what a major function with no dispatch
    /// routine completes with.
    pub const INVALID_DEVICE_REQUEST: NtStatus = NtStatus(0xC000_0010);

    /// `NT_ERROR(Status)`: the severity is "error".
    pub fn is_error(self) -> bool {
        self.0 >> 30 == 3
    }
}

/// `IRP_MJ_*`: the major functions the I/O manager sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum MajorFunction {
    /// `IRP_MJ_CREATE` (0x00).
    Create = 0x00,
    /// `IRP_MJ_CLOSE` (0x02).
    Close = 0x02,
    /// `IRP_MJ_READ` (0x03).
    Read = 0x03,
    /// `IRP_MJ_WRITE` (0x04).
    Write = 0x04,
    /// `IRP_MJ_DEVICE_CONTROL` (0x0E).
    DeviceControl = 0x0E,
    /// `IRP_MJ_INTERNAL_DEVICE_CONTROL` (0x0F): kernel-mode callers only.
    InternalDeviceControl = 0x0F,
    /// `IRP_MJ_CLEANUP` (0x12).
    Cleanup = 0x12,
    /// `IRP_MJ_POWER` (0x16): power requests ([`power`]).
    Power = 0x16,
    /// `IRP_MJ_PNP` (0x1B): Plug and Play requests ([`pnp`]).
    Pnp = 0x1B,
}

impl MajorFunction {
    /// The name of the driver routine that handles it, for reports ("IRP_MJ_READ
    /// dispatch routine").
    pub fn dispatch_routine(self) -> &'static str {
        match self {
            MajorFunction::Create => "IRP_MJ_CREATE dispatch routine",
            MajorFunction::Close => "IRP_MJ_CLOSE dispatch routine",
            MajorFunction::Read => "IRP_MJ_READ dispatch routine",
            MajorFunction::Write => "IRP_MJ_WRITE dispatch routine",
            MajorFunction::DeviceControl => "IRP_MJ_DEVICE_CONTROL dispatch routine",
            MajorFunction::InternalDeviceControl => "IRP_MJ_INTERNAL_DEVICE_CONTROL dispatch routine",
            MajorFunction::Cleanup => "IRP_MJ_CLEANUP dispatch routine",
            MajorFunction::Power => "IRP_MJ_POWER dispatch routine",
            MajorFunction::Pnp => "IRP_MJ_PNP dispatch routine",
        }
    }
}

/// `METHOD_*`: the transfer type, the low two bits of an I/O control code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u32)]
pub enum TransferMethod {
    /// `METHOD_BUFFERED` (0): one system buffer of max(input, output) bytes.
    Buffered = 0,
    /// `METHOD_IN_DIRECT` (1): input buffered; the output buffer locked for read.
    InDirect = 1,
    /// `METHOD_OUT_DIRECT` (2): input buffered; the output buffer locked for write.
    OutDirect = 2,
    /// `METHOD_NEITHER` (3): the caller's raw pointers.
    Neither = 3,
}

impl TransferMethod {
    /// The method of control code `code` (`METHOD_FROM_CTL_CODE`).
    pub fn of(code: u32) -> TransferMethod {
        match code & 3 {
            0 => TransferMethod::Buffered,
            1 => TransferMethod::InDirect,
            2 => TransferMethod::OutDirect,
            _ => TransferMethod::Neither,
        }
    }
}

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
pub const fn ctl_code(device_type: u32, function: u32, method: TransferMethod, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method as u32
}

/// A driver's dispatch routines (`DRIVER_OBJECT.MajorFunction`).
pub trait Dispatch {
    /// Calls the driver's routine for `major` with `device` and `irp`, on `cpu`,
    /// and returns what it returned; `Ok(None)` when the driver has none (the I/O
    /// manager then completes the IRP with `STATUS_INVALID_DEVICE_REQUEST`).
    ///
    /// # Errors
    /// The bugcheck that stopped the machine while the driver ran.
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        device: DeviceObject,
        irp: Irp,
    ) -> Result<Option<NtStatus>, BugCheck>;
}

/// Who made an IRP, which decides what the I/O manager's final completion does
/// with it ([`stack::final_completion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IrpOrigin {
    /// The I/O manager, for a request a caller issued ([`request::IoCall`], PnP): the
    /// record keeps the final status until the caller takes it.
    Request,
    /// `IoAllocateIrp` or `IoInitializeIrp`: the driver's, freed by `IoFreeIrp`.
    Allocated,
    /// `IoBuildDeviceIoControlRequest` / `IoBuildSynchronousFsdRequest` /
    /// `IoBuildAsynchronousFsdRequest`: a threaded IRP whose final completion copies
    /// the status to `UserIosb`, signals `UserEvent` and frees it.
    Built,
    /// `IoMakeAssociatedIrp`: its final completion frees it and counts down its
    /// master's `IrpCount`.
    Associated,
    /// `PoRequestPowerIrp`: its final completion calls the requester's routine, then
    /// frees it ([`power::po_request_power_irp`]).
    PowerRequest(power::PowerCompletion),
}

/// What the I/O manager remembers of an IRP, from its allocation until it is freed
/// (for the IRPs it sent: until the caller took its status).
#[derive(Debug)]
pub(crate) struct IrpRecord {
    /// The caller's process (None: a kernel caller).
    pub process: Option<Arc<Process>>,
    /// Bytes of the system buffer (0: none).
    pub system_buffer_len: u64,
    /// Set by `IoCompleteRequest`: the I/O status block the caller gets.
    pub completed: Option<(NtStatus, u64)>,
    /// Who made it.
    pub origin: IrpOrigin,
    /// `PendingReturned` when the I/O manager's final completion ran: whether the
    /// top driver marked it pending (I/O verification compares it with what the
    /// dispatch routine returned, [`returns::check_pending`]).
    pub pending_returned: bool,
}

impl IrpRecord {
    /// The record of an IRP a caller's request made.
    pub(crate) fn request(process: Option<Arc<Process>>, system_buffer_len: u64) -> IrpRecord {
        IrpRecord { process, system_buffer_len, completed: None, origin: IrpOrigin::Request, pending_returned: false }
    }
}

/// A device on the machine and the driver that created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRecord {
    pub object: DeviceObject,
    /// The `DRIVER_OBJECT`'s address as the driver sees it.
    pub driver: u64,
}

/// The machine's I/O manager state: devices and IRPs in flight.
#[derive(Debug, Default)]
pub struct IoManager {
    devices: Mutex<Vec<DeviceRecord>>,
    /// Named devices, by upcased name.
    device_names: Mutex<BTreeMap<String, DeviceObject>>,
    /// Files open on devices ([`file`]).
    files: Mutex<Vec<file::OpenFile>>,
    irps: Mutex<BTreeMap<u64, IrpRecord>>,
    symbolic_links: Mutex<symlink::SymbolicLinks>,
    /// The system-wide cancel spin lock (`IoAcquireCancelSpinLock`).
    cancel_lock: std::sync::atomic::AtomicUsize,
    /// Power states drivers recorded with `PoSetPowerState`, by device.
    power_states: Mutex<BTreeMap<u64, power::Recorded>>,
}

impl IoManager {
    pub(crate) fn devices(&self) -> MutexGuard<'_, Vec<DeviceRecord>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `va` is an IRP a driver allocated (`IoAllocateIrp`) and has not freed.
    pub fn is_allocated_irp(&self, va: u64) -> bool {
        self.irps().get(&va).is_some_and(|r| r.origin == IrpOrigin::Allocated)
    }

    pub(crate) fn irps(&self) -> MutexGuard<'_, BTreeMap<u64, IrpRecord>> {
        self.irps.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn device_names(&self) -> MutexGuard<'_, BTreeMap<String, DeviceObject>> {
        self.device_names.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn files(&self) -> MutexGuard<'_, Vec<file::OpenFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open file whose object is at `file`, if it is open.
    pub fn open_file(&self, file: Va) -> Option<file::OpenFile> {
        self.files().iter().find(|f| f.file.0 == file).cloned()
    }

    /// The device whose name is `path` or its first components (compared without
    /// case), and the rest of the path after the device's name.
    pub(crate) fn device_by_path(&self, path: &str) -> Option<(DeviceObject, String)> {
        let names = self.device_names();
        let ends = path.match_indices('\\').map(|(i, _)| i).skip(1).chain([path.len()]);
        ends.filter_map(|end| names.get(&file::upcased(&path[..end])).map(|&d| (d, path[end..].to_string()))).last()
    }

    /// How many files are open on `device`.
    pub fn open_count(&self, device: DeviceObject) -> usize {
        self.files().iter().filter(|f| f.device == device).count()
    }

    pub(crate) fn power_states(&self) -> MutexGuard<'_, BTreeMap<u64, power::Recorded>> {
        self.power_states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object namespace's symbolic links.
    pub fn symbolic_links(&self) -> MutexGuard<'_, symlink::SymbolicLinks> {
        self.symbolic_links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The system-wide cancel spin lock (`IoAcquireCancelSpinLock`,
    /// `IoReleaseCancelSpinLock`), a `KSPIN_LOCK` word.
    pub fn cancel_lock(&self) -> &std::sync::atomic::AtomicUsize {
        &self.cancel_lock
    }

    /// After a dispatch returned, or later for an IRP left pending: the IRP's final
    /// status and Information if it was completed (its record is dropped then),
    /// `None` while it is pending.
    pub fn take_completion(&self, irp: Irp) -> Option<(NtStatus, u64)> {
        let mut irps = self.irps();
        let done = irps.get(&irp.0.get()).and_then(|r| r.completed);
        if done.is_some() {
            irps.remove(&irp.0.get());
        }
        done
    }

    /// Whether `irp`, sent by the I/O manager, has been completed (and its status not
    /// yet taken: [`IoManager::take_completion`]).
    pub fn irps_done(&self, irp: Irp) -> bool {
        self.irps().get(&irp.0.get()).is_some_and(|r| r.completed.is_some())
    }

    /// The devices `driver` (its `DRIVER_OBJECT`'s address) created, oldest first.
    pub fn devices_of(&self, driver: u64) -> Vec<DeviceObject> {
        self.devices().iter().filter(|d| d.driver == driver).map(|d| d.object).collect()
    }

    /// IRPs sent and not completed (a driver returned `STATUS_PENDING`).
    pub fn outstanding(&self) -> Vec<Irp> {
        let irps = self.irps();
        let sent = irps.iter().filter(|(_, r)| r.completed.is_none() && r.origin == IrpOrigin::Request);
        sent.map(|(&a, _)| Irp(Va::new(a))).collect()
    }

    /// IRPs drivers allocated or built and have not freed (nor completed back to the
    /// I/O manager), oldest address first.
    pub fn driver_irps(&self) -> Vec<Irp> {
        let irps = self.irps();
        irps.iter().filter(|(_, r)| r.origin != IrpOrigin::Request).map(|(&a, _)| Irp(Va::new(a))).collect()
    }
}
