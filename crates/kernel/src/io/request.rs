//! What callers issue, and how the I/O manager hands each transfer type to the
//! driver (seed 000 §9; learn.microsoft.com "Buffer Descriptions for I/O Control
//! Codes", "Using Buffered I/O", "Using Direct I/O", "Using Neither Buffered Nor
//! Direct I/O").
//!
//! An [`IoCall`] is `NtDeviceIoControlFile`, `NtReadFile` or `NtWriteFile` from a
//! user process (RequestorMode UserMode), or an internal device control from
//! kernel code (KernelMode). The I/O manager runs the whole request in the
//! caller's process context, so the dispatch routine runs there too, and the
//! process stays current afterwards as it does when the caller's thread returns to
//! user mode ([`crate::mm::process::ke_switch_process`]):
//!
//! * **METHOD_BUFFERED**, and reads / writes of a DO_BUFFERED_IO device: the
//!   user's buffers are probed (ProbeForRead input, ProbeForWrite output), a
//!   nonpaged system buffer of max(input, output) bytes gets the input, and
//!   `IoCompleteRequest` copies `Information` bytes back to the output buffer.
//! * **METHOD_IN_DIRECT / METHOD_OUT_DIRECT**: the input as above; the output
//!   buffer described by an MDL locked (MmProbeAndLockPages in the requestor's
//!   mode) with IoReadAccess (IN) or IoWriteAccess (OUT). Reads / writes of a
//!   DO_DIRECT_IO device: an MDL over the buffer, IoWriteAccess for a read,
//!   IoReadAccess for a write.
//! * **METHOD_NEITHER**, and reads / writes of a device with neither flag:
//!   `Type3InputBuffer` and `UserBuffer` are the caller's pointers, unprobed.
//!
//! A probe or lock that fails ends the request with its exception code before the
//! driver sees it, as the system service's own exception handler does.
//!
//! [`IoCall::while_in_driver`] lets the caller act on its buffer while the
//! request is in the driver — decommit it or change its protection just before
//! the dispatch routine runs — as another thread of the caller could (seed §9:
//! "another thread might free the buffer or change the access rights").

use std::sync::Arc;

use ntmem_machine::Va;

use super::device::DeviceFlags;
use super::file::FileObject;
use super::irp::{self, IrpContents, IrpFlags, Parameters, SYSTEM_BUFFER_TAG};
use super::{DeviceObject, Dispatch, Irp, IrpRecord, MajorFunction, TransferMethod};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolType};
use crate::ke::processor::Cpu;
use crate::mm::mdl::{self, LockOperation, ProcessorMode};
use crate::mm::probe;
use crate::mm::process::{
    ke_switch_process, nt_free_virtual_memory, nt_protect_virtual_memory, FreeType, PageProtection, Process,
};

/// The buffers of a device control request (`DeviceIoControl`'s arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ioctl {
    /// `IoControlCode`.
    pub code: u32,
    /// The input buffer.
    pub input: Va,
    /// Its length.
    pub input_length: u32,
    /// The output buffer.
    pub output: Va,
    /// Its length.
    pub output_length: u32,
}

/// A request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoRequest {
    /// `IRP_MJ_DEVICE_CONTROL`.
    DeviceControl(Ioctl),
    /// `IRP_MJ_INTERNAL_DEVICE_CONTROL` (meant for kernel-mode callers).
    InternalDeviceControl(Ioctl),
    /// `IRP_MJ_READ` into `buffer`.
    Read {
        /// The caller's buffer.
        buffer: Va,
        /// `Length`.
        length: u32,
        /// `ByteOffset`.
        offset: i64,
    },
    /// `IRP_MJ_WRITE` from `buffer`.
    Write {
        /// The caller's buffer.
        buffer: Va,
        /// `Length`.
        length: u32,
        /// `ByteOffset`.
        offset: i64,
    },
    /// `IRP_MJ_CREATE` of a file object ([`super::file::begin_open`]).
    Create(super::file::OpenRequest),
    /// `IRP_MJ_CLEANUP`: the last handle to the file object closed.
    Cleanup,
    /// `IRP_MJ_CLOSE`: the last reference to the file object gone.
    Close,
}

impl IoRequest {
    /// The major function.
    pub fn major(&self) -> MajorFunction {
        match self {
            IoRequest::DeviceControl(_) => MajorFunction::DeviceControl,
            IoRequest::InternalDeviceControl(_) => MajorFunction::InternalDeviceControl,
            IoRequest::Read { .. } => MajorFunction::Read,
            IoRequest::Write { .. } => MajorFunction::Write,
            IoRequest::Create(_) => MajorFunction::Create,
            IoRequest::Cleanup => MajorFunction::Cleanup,
            IoRequest::Close => MajorFunction::Close,
        }
    }

    /// The caller's buffer a [`BufferAction`] acts on: the output buffer of a
    /// device control (its input buffer when there is no output), the buffer of a
    /// read or write.
    pub fn user_buffer(&self) -> (Va, u32) {
        match *self {
            IoRequest::DeviceControl(c) | IoRequest::InternalDeviceControl(c) => {
                if c.output_length > 0 {
                    (c.output, c.output_length)
                } else {
                    (c.input, c.input_length)
                }
            }
            IoRequest::Read { buffer, length, .. } | IoRequest::Write { buffer, length, .. } => (buffer, length),
            IoRequest::Create(_) | IoRequest::Cleanup | IoRequest::Close => (Va::new(0), 0),
        }
    }
}

/// What the caller does to its buffer while the request is in the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferAction {
    /// Decommits the buffer's pages (`NtFreeVirtualMemory`, MEM_DECOMMIT): the
    /// user addresses stop working; pages an MDL has locked live until unlocked.
    Free,
    /// Changes the buffer's protection (`NtProtectVirtualMemory`).
    Protect(PageProtection),
}

/// The caller's view of the finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoOutcome {
    /// Whether the IRP reached the driver (false: the probe, lock or an
    /// allocation failed first).
    pub reached_driver: bool,
    /// What the dispatch routine returned (or the early failure).
    pub returned: NtStatus,
    /// Whether the driver completed the IRP.
    pub completed: bool,
    /// The caller's I/O status block: `Status`.
    pub status: NtStatus,
    /// The caller's I/O status block: `Information`.
    pub information: u64,
    /// The IRP, while it is pending (the driver returned without completing it):
    /// completed later, or cancelled (`IoCancelIrp`); `IoManager::take_completion`
    /// tells when it is done.
    pub pending: Option<Irp>,
}

impl IoOutcome {
    pub(crate) fn failed(status: NtStatus) -> IoOutcome {
        IoOutcome { reached_driver: false, returned: status, completed: false, status, information: 0, pending: None }
    }
}

/// A request on its way to a device (builder).
#[derive(Clone, Debug)]
pub struct IoCall {
    device: DeviceObject,
    request: IoRequest,
    caller: Option<Arc<Process>>,
    action: Option<BufferAction>,
    file: Option<FileObject>,
}

/// What the I/O manager prepared before building the IRP.
#[derive(Debug, Default)]
struct Prepared {
    flags: u32,
    system_buffer: u64,
    system_buffer_len: u64,
    mdl: u64,
    user_buffer: u64,
    type3_input: u64,
}

impl IoCall {
    /// `request` for `device`, from kernel code (RequestorMode KernelMode) until
    /// [`IoCall::from_process`] says otherwise.
    pub fn new(device: DeviceObject, request: IoRequest) -> IoCall {
        IoCall { device, request, caller: None, action: None, file: None }
    }

    /// Issued by a thread of `process` (RequestorMode UserMode, its context).
    #[must_use]
    pub fn from_process(mut self, process: &Arc<Process>) -> IoCall {
        self.caller = Some(Arc::clone(process));
        self
    }

    /// Through the open file `file`: the stack location's `FileObject` and
    /// `Tail.Overlay.OriginalFileObject`.
    #[must_use]
    pub fn on_file(mut self, file: FileObject) -> IoCall {
        self.file = Some(file);
        self
    }

    /// Acts on the caller's buffer while the request is in the driver.
    #[must_use]
    pub fn while_in_driver(mut self, action: BufferAction) -> IoCall {
        self.action = Some(action);
        self
    }

    fn mode(&self) -> ProcessorMode {
        if self.caller.is_some() {
            ProcessorMode::UserMode
        } else {
            ProcessorMode::KernelMode
        }
    }

    /// Sends the request to `driver` and returns what the caller sees.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine (in the driver or in the I/O
    /// manager).
    pub fn send(&self, cpu: &Cpu<'_>, driver: &dyn Dispatch) -> Result<IoOutcome, BugCheck> {
        // The caller's thread runs in its process and leaves it current when it
        // returns to user mode ([`ke_switch_process`]); a kernel caller runs in
        // whatever process is current.
        if let Some(p) = &self.caller {
            ke_switch_process(cpu, Some(p))?;
        }
        self.send_attached(cpu, driver)
    }

    /// The first half of [`IoCall::send`], for a caller that hands the IRP to the
    /// driver itself (a request a driver makes from driver code, which the WDK
    /// boundary delivers outside the kernel): the buffers prepared and the IRP built
    /// for the top of the device's stack and recorded as the I/O manager's. Inner
    /// `Err`: the outcome of a request that failed before any driver saw it. Then
    /// deliver the IRP and finish with [`IoCall::outcome`].
    ///
    /// # Errors
    /// A bugcheck from the preparation or the pool.
    pub fn build_request(&self, cpu: &Cpu<'_>) -> Result<Result<(DeviceObject, Irp), IoOutcome>, BugCheck> {
        let device = super::pnp::io_get_attached_device(cpu, self.device)?;
        let mut prepared = Prepared::default();
        if let Err(status) = self.prepare(cpu, device, &mut prepared)? {
            self.undo(cpu, &prepared)?;
            return Ok(Err(IoOutcome::failed(status)));
        }
        let contents = self.contents(device, &prepared);
        let Some(irp) = irp::build(cpu, &contents)? else {
            self.undo(cpu, &prepared)?;
            return Ok(Err(IoOutcome::failed(NtStatus::INSUFFICIENT_RESOURCES)));
        };
        let record = IrpRecord::request(self.caller.clone(), prepared.system_buffer_len);
        cpu.machine().io().irps().insert(irp.0.get(), record);
        Ok(Ok((device, irp)))
    }

    /// What the caller sees of `irp` once its dispatch routine returned `returned`:
    /// the final status if it was completed, else the IRP, pending.
    pub fn outcome(cpu: &Cpu<'_>, irp: Irp, returned: NtStatus) -> IoOutcome {
        match cpu.machine().io().take_completion(irp) {
            Some((status, information)) => {
                IoOutcome { reached_driver: true, returned, completed: true, status, information, pending: None }
            }
            None => IoOutcome {
                reached_driver: true,
                returned,
                completed: false,
                status: returned,
                information: 0,
                pending: Some(irp),
            },
        }
    }

    fn send_attached(&self, cpu: &Cpu<'_>, driver: &dyn Dispatch) -> Result<IoOutcome, BugCheck> {
        let (device, irp) = match self.build_request(cpu)? {
            Ok(built) => built,
            Err(failed) => return Ok(failed),
        };
        if let (Some(action), Some(p)) = (self.action, &self.caller) {
            let (va, len) = self.request.user_buffer();
            // The caller's own call: its failure (nothing there) is the caller's business.
            let _ = match action {
                BufferAction::Free => nt_free_virtual_memory(cpu, p, va, u64::from(len), FreeType::Decommit),
                BufferAction::Protect(prot) => nt_protect_virtual_memory(cpu, p, va, u64::from(len), prot).map(drop),
            };
        }
        let returned = match driver.dispatch(cpu, self.request.major(), device, irp)? {
            Some(s) => s,
            None => {
                irp.set_io_status(cpu, NtStatus::INVALID_DEVICE_REQUEST, 0)?;
                irp::io_complete_request(cpu, irp)?;
                NtStatus::INVALID_DEVICE_REQUEST
            }
        };
        Ok(Self::outcome(cpu, irp, returned))
    }

    /// What the IRP for this request holds, once [`IoCall::prepare`] made `prepared`.
    fn contents(&self, device: DeviceObject, prepared: &Prepared) -> IrpContents {
        let parameters = match self.request {
            IoRequest::DeviceControl(c) | IoRequest::InternalDeviceControl(c) => Parameters::DeviceIoControl {
                output_length: c.output_length,
                input_length: c.input_length,
                code: c.code,
                type3_input: prepared.type3_input,
            },
            IoRequest::Read { length, offset, .. } | IoRequest::Write { length, offset, .. } => {
                Parameters::ReadWrite { length, key: 0, byte_offset: offset }
            }
            IoRequest::Create(r) => Parameters::Create { options: r.options, share_access: r.share as u16 },
            IoRequest::Cleanup | IoRequest::Close => Parameters::None,
        };
        IrpContents {
            major: self.request.major(),
            minor: 0,
            parameters,
            device,
            mode: self.mode(),
            flags: IrpFlags::from_bits_retain(prepared.flags),
            system_buffer: prepared.system_buffer,
            mdl: prepared.mdl,
            user_buffer: prepared.user_buffer,
            file: self.file.map_or(0, |f| f.0.get()),
        }
    }

    /// Builds the IRP of this request (a kernel caller's) for its device as an
    /// `IoBuild*Request` routine does (see [`super::build`]): buffers prepared by the
    /// transfer type, the device's location filled as the *next* one (not current
    /// until `IoCallDriver`), `UserEvent` and `UserIosb` set. `major` overrides the
    /// location's `MajorFunction`. Inner `Err`: why not — the status a buffer's
    /// preparation failed with (STATUS_INSUFFICIENT_RESOURCES: no pool).
    pub(crate) fn build_for_driver(
        &self,
        cpu: &Cpu<'_>,
        major: u8,
        event: u64,
        iosb: u64,
    ) -> Result<Result<Irp, NtStatus>, BugCheck> {
        let mut prepared = Prepared::default();
        if let Err(status) = self.prepare(cpu, self.device, &mut prepared)? {
            self.undo(cpu, &prepared)?;
            return Ok(Err(status));
        }
        let contents = self.contents(self.device, &prepared);
        let Some(irp) = irp::build(cpu, &contents)? else {
            self.undo(cpu, &prepared)?;
            return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
        };
        let location = irp.current_stack_location(cpu)?;
        super::device::write_bytes(cpu, location, &[major])?;
        irp.make_next(cpu, event, iosb)?;
        let mut record = IrpRecord::request(None, prepared.system_buffer_len);
        record.origin = super::IrpOrigin::Built;
        cpu.machine().io().irps().insert(irp.0.get(), record);
        Ok(Ok(irp))
    }

    /// Probes, allocates and locks what the transfer type needs. Inner `Err`:
    /// the status the request fails with (what was set up so far is in `p`).
    fn prepare(&self, cpu: &Cpu<'_>, device: DeviceObject, p: &mut Prepared) -> Result<Result<(), NtStatus>, BugCheck> {
        let flags = device.flags(cpu)?;
        match self.request {
            IoRequest::DeviceControl(c) | IoRequest::InternalDeviceControl(c) => {
                p.user_buffer = c.output.get();
                match TransferMethod::of(c.code) {
                    TransferMethod::Buffered => {
                        if let Err(s) = self.probe(cpu, c.input, c.input_length, c.output, c.output_length) {
                            return Ok(Err(s));
                        }
                        let len = c.input_length.max(c.output_length);
                        if let Err(s) = self.system_buffer(cpu, p, len, c.input, c.input_length)? {
                            return Ok(Err(s));
                        }
                        if c.output_length > 0 {
                            p.flags |= IrpFlags::INPUT_OPERATION.bits();
                        }
                    }
                    method @ (TransferMethod::InDirect | TransferMethod::OutDirect) => {
                        if let Err(s) = self.probe(cpu, c.input, c.input_length, Va::new(0), 0) {
                            return Ok(Err(s));
                        }
                        if let Err(s) = self.system_buffer(cpu, p, c.input_length, c.input, c.input_length)? {
                            return Ok(Err(s));
                        }
                        let op = if method == TransferMethod::InDirect {
                            LockOperation::IoReadAccess
                        } else {
                            LockOperation::IoWriteAccess
                        };
                        if let Err(s) = self.lock(cpu, p, c.output, c.output_length, op)? {
                            return Ok(Err(s));
                        }
                    }
                    TransferMethod::Neither => p.type3_input = c.input.get(),
                }
            }
            IoRequest::Create(_) => p.flags |= (IrpFlags::CREATE_OPERATION | IrpFlags::SYNCHRONOUS_API).bits(),
            IoRequest::Close => p.flags |= (IrpFlags::CLOSE_OPERATION | IrpFlags::SYNCHRONOUS_API).bits(),
            IoRequest::Cleanup => {}
            IoRequest::Read { buffer, length, .. } | IoRequest::Write { buffer, length, .. } => {
                let read = matches!(self.request, IoRequest::Read { .. });
                p.flags |= if read { IrpFlags::READ_OPERATION } else { IrpFlags::WRITE_OPERATION }.bits();
                p.user_buffer = buffer.get();
                if flags.contains(DeviceFlags::BUFFERED_IO) {
                    let probed = if read {
                        self.probe(cpu, Va::new(0), 0, buffer, length)
                    } else {
                        self.probe(cpu, buffer, length, Va::new(0), 0)
                    };
                    if let Err(s) = probed {
                        return Ok(Err(s));
                    }
                    let input = if read { 0 } else { length };
                    if let Err(s) = self.system_buffer(cpu, p, length, buffer, input)? {
                        return Ok(Err(s));
                    }
                    if read && length > 0 {
                        p.flags |= IrpFlags::INPUT_OPERATION.bits();
                    }
                } else if flags.contains(DeviceFlags::DIRECT_IO) {
                    let op = if read { LockOperation::IoWriteAccess } else { LockOperation::IoReadAccess };
                    if let Err(s) = self.lock(cpu, p, buffer, length, op)? {
                        return Ok(Err(s));
                    }
                }
            }
        }
        Ok(Ok(()))
    }

    /// ProbeForRead of the input and ProbeForWrite of the output, for user callers.
    fn probe(&self, cpu: &Cpu<'_>, input: Va, in_len: u32, output: Va, out_len: u32) -> Result<(), NtStatus> {
        if self.caller.is_none() {
            return Ok(());
        }
        probe::probe_for_read(cpu, input, u64::from(in_len), 1)?;
        probe::probe_for_write(cpu, output, u64::from(out_len), 1)
    }

    /// A system buffer of `len` bytes with `in_len` bytes of `input` copied in.
    fn system_buffer(
        &self,
        cpu: &Cpu<'_>,
        p: &mut Prepared,
        len: u32,
        input: Va,
        in_len: u32,
    ) -> Result<Result<(), NtStatus>, BugCheck> {
        if len == 0 {
            return Ok(Ok(()));
        }
        let m = cpu.machine();
        let Some(buf) = pool::allocate(cpu, PoolType::NonPagedPool, u64::from(len), SYSTEM_BUFFER_TAG)? else {
            return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
        };
        p.system_buffer = buf.get();
        p.system_buffer_len = u64::from(len);
        p.flags |= (IrpFlags::BUFFERED_IO | IrpFlags::DEALLOCATE_BUFFER).bits();
        if in_len > 0 {
            let mut data = vec![0u8; in_len as usize];
            let read = match &self.caller {
                Some(proc_) => proc_.read(cpu, input, &mut data),
                None => m.space().read(input, &mut data).map_err(|_| NtStatus::ACCESS_VIOLATION),
            };
            if let Err(s) = read {
                return Ok(Err(s));
            }
            m.space()
                .write(buf, &data)
                .map_err(|_| m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [buf.get(), 1, 0, 0]))?;
        }
        Ok(Ok(()))
    }

    /// An MDL over `[va, va + len)` locked for `op` in the requestor's mode.
    fn lock(
        &self,
        cpu: &Cpu<'_>,
        p: &mut Prepared,
        va: Va,
        len: u32,
        op: LockOperation,
    ) -> Result<Result<(), NtStatus>, BugCheck> {
        if len == 0 {
            return Ok(Ok(()));
        }
        let Some(mdl) = mdl::io_allocate_mdl(cpu, va, u64::from(len))? else {
            return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES));
        };
        if let Err(s) = mdl::mm_probe_and_lock_pages(cpu, mdl, self.mode(), op)? {
            mdl::io_free_mdl(cpu, mdl)?;
            return Ok(Err(s));
        }
        p.mdl = mdl.0.get();
        Ok(Ok(()))
    }

    /// Gives back what [`IoCall::prepare`] set up, for a request that failed
    /// before it reached the driver.
    fn undo(&self, cpu: &Cpu<'_>, p: &Prepared) -> Result<(), BugCheck> {
        if p.system_buffer != 0 {
            pool::free(cpu, Va::new(p.system_buffer), Some(SYSTEM_BUFFER_TAG))?;
        }
        if p.mdl != 0 {
            irp::free_mdl_chain(cpu, p.mdl)?;
        }
        Ok(())
    }
}
