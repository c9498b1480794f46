//! I/O request packets (learn.microsoft.com "IRP structure (wdm.h)",
//! "IO_STACK_LOCATION structure (wdm.h)", "IoCompleteRequest").
//!
//! An IRP lives in nonpaged pool (tag "Irp "), in the **x64 layout**: the IRP
//! itself is 0xD0 bytes and its stack locations (0x48 bytes each, as many as the
//! target device's `StackSize`) follow it ([`super::stack`]).
//!
//! | IRP field                               | offset |
//! |-----------------------------------------|--------|
//! | `Type` (6, IO_TYPE_IRP) / `Size`        | 0x00 / 0x02 |
//! | `MdlAddress`                            | 0x08 |
//! | `Flags` (`IRP_*`)                       | 0x10 |
//! | `AssociatedIrp.SystemBuffer`            | 0x18 |
//! | `IoStatus.Status` / `.Information`      | 0x30 / 0x38 |
//! | `RequestorMode`                         | 0x40 |
//! | `PendingReturned`                       | 0x41 |
//! | `StackCount` / `CurrentLocation`        | 0x42 / 0x43 |
//! | `Cancel` / `AllocationFlags`            | 0x44 / 0x47 |
//! | `UserIosb` / `UserEvent`                | 0x48 / 0x50 |
//! | `CancelRoutine`                         | 0x68 |
//! | `UserBuffer`                            | 0x70 |
//! | `Tail.Overlay.Thread`                   | 0x98 |
//! | `Tail.Overlay.CurrentStackLocation`     | 0xB8 |
//! | `Tail.Overlay.OriginalFileObject`       | 0xC0 |
//!
//! | IO_STACK_LOCATION field                                  | offset |
//! |----------------------------------------------------------|--------|
//! | `MajorFunction` / `MinorFunction` / `Flags` / `Control`   | 0x00 – 0x03 |
//! | `Parameters.DeviceIoControl.OutputBufferLength`          | 0x08 |
//! | `Parameters.DeviceIoControl.InputBufferLength`           | 0x10 |
//! | `Parameters.DeviceIoControl.IoControlCode`               | 0x18 |
//! | `Parameters.DeviceIoControl.Type3InputBuffer`            | 0x20 |
//! | `Parameters.Read/Write.Length` / `.Key` / `.Flags`       | 0x08 / 0x10 / 0x14 |
//! | `Parameters.Read/Write.ByteOffset`                       | 0x18 |
//! | `Parameters.StartDevice.AllocatedResources` / `…Translated` | 0x08 / 0x10 |
//! | `Parameters.Power.SystemContext` / `.Type` / `.State` / `.ShutdownType` | 0x08 / 0x10 / 0x18 / 0x20 |
//! | `DeviceObject` / `FileObject`                            | 0x28 / 0x30 |
//! | `CompletionRoutine` / `Context`                          | 0x38 / 0x40 |
//!
//! (`POINTER_ALIGNMENT` puts each ULONG after the first on an 8-byte boundary on
//! 64-bit.) As IoCallDriver leaves it for the top device, `CurrentLocation` is
//! `StackCount` and `CurrentStackLocation` points at the last stack location. `FileObject` and
//! `OriginalFileObject` are the file a request came through ([`super::file`]), NULL
//! for requests sent to a device without an open; `Tail.Overlay.Thread` and
//! `UserIosb` are NULL: there are no thread objects yet.
//!
//! Once every stack location has completed ([`super::stack`]), [`finish_request`]
//! does what Windows' final completion does for a request a caller issued: for a buffered input operation that did not fail
//! (`!NT_ERROR`), copies `IoStatus.Information` bytes of the system buffer back to
//! `UserBuffer` in the caller's context (at most the system buffer's length — where
//! Windows copies whatever `Information` says); a copy that faults (the caller
//! freed or re-protected its buffer) makes the caller's status
//! `STATUS_ACCESS_VIOLATION`; frees the system buffer (`IRP_DEALLOCATE_BUFFER`);
//! unlocks and frees every MDL on `MdlAddress`; the IRP is freed. Completing an IRP
//! twice stops the machine with MULTIPLE_IRP_COMPLETE_REQUESTS (0x44: IRP, 0, 0, 0).

use ntmem_machine::Va;

use super::device::{at, read_bytes, write_bytes, DeviceObject};
use super::MajorFunction;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolTag, PoolType};
use crate::ke::processor::Cpu;
use crate::mm::mdl::{self, Mdl, MdlFlags, ProcessorMode};

/// `sizeof(IRP)` on x64.
pub const IRP_SIZE: u64 = 0xD0;
/// `sizeof(IO_STACK_LOCATION)` on x64.
pub const STACK_LOCATION_SIZE: u64 = 0x48;
/// Pool tag of IRPs ("Irp ").
pub const IRP_TAG: PoolTag = PoolTag::new(*b"Irp ");
/// Pool tag of system buffers (ntmem's choice).
pub const SYSTEM_BUFFER_TAG: PoolTag = PoolTag::new(*b"IoSB");
/// `IO_TYPE_IRP`.
pub const IO_TYPE_IRP: u16 = 6;

pub(crate) const OFF_SIZE: u64 = 0x02;
pub(crate) const OFF_MDL: u64 = 0x08;
pub(crate) const OFF_FLAGS: u64 = 0x10;
pub(crate) const OFF_SYSTEM_BUFFER: u64 = 0x18;
pub(crate) const OFF_THREAD_LIST: u64 = 0x20;
pub(crate) const OFF_STATUS: u64 = 0x30;
pub(crate) const OFF_INFORMATION: u64 = 0x38;
pub(crate) const OFF_REQUESTOR_MODE: u64 = 0x40;
pub(crate) const OFF_PENDING_RETURNED: u64 = 0x41;
pub(crate) const OFF_STACK_COUNT: u64 = 0x42;
pub(crate) const OFF_CURRENT_LOCATION: u64 = 0x43;
pub(crate) const OFF_CANCEL: u64 = 0x44;
pub(crate) const OFF_ALLOCATION_FLAGS: u64 = 0x47;
pub(crate) const OFF_USER_IOSB: u64 = 0x48;
pub(crate) const OFF_USER_EVENT: u64 = 0x50;
/// `CancelRoutine`.
pub const OFF_CANCEL_ROUTINE: u64 = 0x68;
pub(crate) const OFF_USER_BUFFER: u64 = 0x70;
pub(crate) const OFF_THREAD: u64 = 0x98;
pub(crate) const OFF_CURRENT_STACK: u64 = 0xB8;
pub(crate) const OFF_ORIGINAL_FILE: u64 = 0xC0;

// Every field written lies inside the x64 IRP (include/ntmem/io.h asserts the C
// side: IoStatus at 0x30, UserBuffer at 0x70, CurrentStackLocation at 0xB8, size 0xD0).
const _: () = assert!(OFF_STATUS == 0x30 && OFF_USER_BUFFER == 0x70 && OFF_CURRENT_STACK + 8 <= IRP_SIZE);

bitflags::bitflags! {
    /// `IRP.Flags` (`IRP_*`, wdm.h), the ones the I/O manager sets here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IrpFlags: u32 {
        /// `IRP_NOCACHE`.
        const NOCACHE = 0x0001;
        /// `IRP_PAGING_IO`.
        const PAGING_IO = 0x0002;
        /// `IRP_SYNCHRONOUS_API`.
        const SYNCHRONOUS_API = 0x0004;
        /// `IRP_ASSOCIATED_IRP`.
        const ASSOCIATED_IRP = 0x0008;
        /// `IRP_BUFFERED_IO`: `SystemBuffer` is a system buffer.
        const BUFFERED_IO = 0x0010;
        /// `IRP_DEALLOCATE_BUFFER`: completion frees the system buffer.
        const DEALLOCATE_BUFFER = 0x0020;
        /// `IRP_INPUT_OPERATION`: completion copies the system buffer back.
        const INPUT_OPERATION = 0x0040;
        /// `IRP_CREATE_OPERATION`.
        const CREATE_OPERATION = 0x0080;
        /// `IRP_READ_OPERATION`.
        const READ_OPERATION = 0x0100;
        /// `IRP_WRITE_OPERATION`.
        const WRITE_OPERATION = 0x0200;
        /// `IRP_CLOSE_OPERATION`.
        const CLOSE_OPERATION = 0x0400;
    }
}

/// An IRP: its address (`PIRP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irp(pub Va);

/// `Parameters` of the stack location, the forms ntmem sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parameters {
    /// `Parameters.DeviceIoControl` (device and internal device control).
    DeviceIoControl {
        /// `OutputBufferLength`.
        output_length: u32,
        /// `InputBufferLength`.
        input_length: u32,
        /// `IoControlCode`.
        code: u32,
        /// `Type3InputBuffer`: the caller's input pointer (METHOD_NEITHER).
        type3_input: u64,
    },
    /// `Parameters.Read` / `Parameters.Write`.
    ReadWrite {
        /// `Length`.
        length: u32,
        /// `Key`.
        key: u32,
        /// `ByteOffset`.
        byte_offset: i64,
    },
    /// `Parameters.StartDevice` (IRP_MN_START_DEVICE).
    StartDevice {
        /// `AllocatedResources` (a `PCM_RESOURCE_LIST`).
        raw: u64,
        /// `AllocatedResourcesTranslated`.
        translated: u64,
    },
    /// `Parameters.Create` (IRP_MJ_CREATE): `SecurityContext` (0x00) is NULL in
    /// ntmem (no security model), `Options` 0x08, `FileAttributes` 0x10 (0),
    /// `ShareAccess` 0x12, `EaLength` 0x18 (0).
    Create {
        /// `Options`: CreateDisposition << 24 | CreateOptions.
        options: u32,
        /// `ShareAccess`.
        share_access: u16,
    },
    /// `Parameters.Power` (IRP_MN_SET_POWER, IRP_MN_QUERY_POWER): `SystemContext`
    /// 0x08, `Type` 0x10, `State` 0x18, `ShutdownType` 0x20.
    Power {
        /// `SystemContext` (the power manager's; 0 in ntmem).
        system_context: u32,
        /// `Type`: `SystemPowerState` (0) or `DevicePowerState` (1).
        kind: u32,
        /// `State`: a `SYSTEM_POWER_STATE` or `DEVICE_POWER_STATE`.
        state: u32,
        /// `ShutdownType`: the `POWER_ACTION`.
        shutdown: u32,
    },
    /// `Parameters.WaitWake` (IRP_MN_WAIT_WAKE): `PowerState` 0x08, the deepest
    /// system state the device may wake the system from.
    WaitWake {
        /// `PowerState`: a `SYSTEM_POWER_STATE`.
        state: u32,
    },
    /// No parameters (IRP_MN_REMOVE_DEVICE, IRP_MJ_CLEANUP, IRP_MJ_CLOSE).
    None,
}

/// What the I/O manager puts in a new IRP.
#[derive(Clone, Copy, Debug)]
pub struct IrpContents {
    /// The stack location's `MajorFunction`.
    pub major: MajorFunction,
    /// Its `MinorFunction` (`IRP_MN_*`; 0 where there is none).
    pub minor: u8,
    /// Its `Parameters`.
    pub parameters: Parameters,
    /// Its `DeviceObject`.
    pub device: DeviceObject,
    /// `RequestorMode`.
    pub mode: ProcessorMode,
    /// `Flags`.
    pub flags: IrpFlags,
    /// `AssociatedIrp.SystemBuffer` (0: none).
    pub system_buffer: u64,
    /// `MdlAddress` (0: none).
    pub mdl: u64,
    /// `UserBuffer`.
    pub user_buffer: u64,
    /// The stack location's `FileObject` and `Tail.Overlay.OriginalFileObject` (0:
    /// none).
    pub file: u64,
}

impl IrpContents {
    /// A request the kernel itself sends (the PnP and power managers): kernel mode,
    /// no flags, no buffers, no MDL, no file object.
    pub fn system(major: MajorFunction, minor: u8, parameters: Parameters, device: DeviceObject) -> IrpContents {
        IrpContents {
            major,
            minor,
            parameters,
            device,
            mode: ProcessorMode::KernelMode,
            flags: IrpFlags::empty(),
            system_buffer: 0,
            mdl: 0,
            user_buffer: 0,
            file: 0,
        }
    }
}

fn u64_at(cpu: &Cpu<'_>, va: Va) -> Result<u64, BugCheck> {
    Ok(u64::from_le_bytes(read_bytes(cpu, va)?))
}

impl Irp {
    /// The current stack location (`IoGetCurrentIrpStackLocation`).
    ///
    /// # Errors
    /// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an IRP outside the address space.
    pub fn current_stack_location(self, cpu: &Cpu<'_>) -> Result<Va, BugCheck> {
        Ok(Va::new(u64_at(cpu, at(self.0, OFF_CURRENT_STACK))?))
    }

    /// The current stack location's `MajorFunction` and `MinorFunction`.
    ///
    /// # Errors
    /// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a location outside the address space.
    pub fn current_function(self, cpu: &Cpu<'_>) -> Result<(u8, u8), BugCheck> {
        let [major, minor] = super::device::read_bytes::<2>(cpu, self.current_stack_location(cpu)?)?;
        Ok((major, minor))
    }

    /// `MdlAddress` (0: none).
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn mdl_address(self, cpu: &Cpu<'_>) -> Result<u64, BugCheck> {
        u64_at(cpu, at(self.0, OFF_MDL))
    }

    /// Sets `MdlAddress`.
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn set_mdl_address(self, cpu: &Cpu<'_>, mdl: u64) -> Result<(), BugCheck> {
        write_bytes(cpu, at(self.0, OFF_MDL), &mdl.to_le_bytes())
    }

    /// `Flags`.
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn flags(self, cpu: &Cpu<'_>) -> Result<IrpFlags, BugCheck> {
        Ok(IrpFlags::from_bits_retain(u32::from_le_bytes(read_bytes(cpu, at(self.0, OFF_FLAGS))?)))
    }

    /// `AssociatedIrp.SystemBuffer`.
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn system_buffer(self, cpu: &Cpu<'_>) -> Result<u64, BugCheck> {
        u64_at(cpu, at(self.0, OFF_SYSTEM_BUFFER))
    }

    /// `UserBuffer`.
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn user_buffer(self, cpu: &Cpu<'_>) -> Result<u64, BugCheck> {
        u64_at(cpu, at(self.0, OFF_USER_BUFFER))
    }

    /// `IoStatus`: (`Status`, `Information`).
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn io_status(self, cpu: &Cpu<'_>) -> Result<(NtStatus, u64), BugCheck> {
        let status = u32::from_le_bytes(read_bytes(cpu, at(self.0, OFF_STATUS))?);
        Ok((NtStatus(status), u64_at(cpu, at(self.0, OFF_INFORMATION))?))
    }

    /// Sets `IoStatus` (what a driver does before completing).
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn set_io_status(self, cpu: &Cpu<'_>, status: NtStatus, information: u64) -> Result<(), BugCheck> {
        write_bytes(cpu, at(self.0, OFF_STATUS), &u64::from(status.0).to_le_bytes())?;
        write_bytes(cpu, at(self.0, OFF_INFORMATION), &information.to_le_bytes())
    }

    /// Steps back above the current location (`CurrentLocation` + 1, the stack
    /// pointer one location up) so that it becomes the *next* location, and sets
    /// `UserEvent` and `UserIosb`: an IRP as `IoBuild*Request` hands it over.
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn make_next(self, cpu: &Cpu<'_>, event: u64, iosb: u64) -> Result<(), BugCheck> {
        let [current] = read_bytes::<1>(cpu, at(self.0, OFF_CURRENT_LOCATION))?;
        let stack = self.current_stack_location(cpu)?.get() + STACK_LOCATION_SIZE;
        write_bytes(cpu, at(self.0, OFF_CURRENT_LOCATION), &[current.wrapping_add(1)])?;
        write_bytes(cpu, at(self.0, OFF_CURRENT_STACK), &stack.to_le_bytes())?;
        write_bytes(cpu, at(self.0, OFF_USER_IOSB), &iosb.to_le_bytes())?;
        write_bytes(cpu, at(self.0, OFF_USER_EVENT), &event.to_le_bytes())
    }

    /// The stack location's `Parameters.DeviceIoControl` as
    /// (OutputBufferLength, InputBufferLength, IoControlCode, Type3InputBuffer).
    ///
    /// # Errors
    /// As [`Irp::current_stack_location`].
    pub fn device_io_control(self, cpu: &Cpu<'_>) -> Result<(u32, u32, u32, u64), BugCheck> {
        let s = self.current_stack_location(cpu)?;
        let u32_at = |o| read_bytes(cpu, at(s, o)).map(u32::from_le_bytes);
        Ok((u32_at(0x08)?, u32_at(0x10)?, u32_at(0x18)?, u64_at(cpu, at(s, 0x20))?))
    }
}

/// `IoSizeOfIrp(StackSize)`: the bytes of an IRP with `stack_size` stack locations.
pub const fn io_size_of_irp(stack_size: u8) -> u64 {
    IRP_SIZE + stack_size as u64 * STACK_LOCATION_SIZE
}

/// Builds an IRP for `c.device` with as many stack locations as the device's
/// `StackSize` (at least one), as IoAllocateIrp and IoCallDriver leave it for the
/// device's driver: the last stack location current. `Ok(None)`: no pool.
///
/// # Errors
/// A bugcheck from the pool.
pub fn build(cpu: &Cpu<'_>, c: &IrpContents) -> Result<Option<Irp>, BugCheck> {
    let count = c.device.stack_size(cpu)?.clamp(1, 127);
    let Some(irp) = build_blank(cpu, count, c.major as u8)? else { return Ok(None) };
    fill(cpu, irp, c)?;
    Ok(Some(irp))
}

/// An IRP of `count` stack locations from nonpaged pool, as `IoInitializeIrp`
/// leaves it, then made ready for the last location's driver: `CurrentLocation`
/// `count`, the last location's `MajorFunction` `major`. `Ok(None)`: no pool.
pub(crate) fn build_blank(cpu: &Cpu<'_>, count: u8, major: u8) -> Result<Option<Irp>, BugCheck> {
    let size = io_size_of_irp(count);
    let Some(block) = pool::allocate(cpu, PoolType::NonPagedPool, size, IRP_TAG)? else { return Ok(None) };
    let irp = Irp(block);
    super::stack::initialize(cpu, irp, size, count)?;
    let stack = block.get() + IRP_SIZE + u64::from(count - 1) * STACK_LOCATION_SIZE;
    write_bytes(cpu, at(block, OFF_CURRENT_LOCATION), &[count])?;
    write_bytes(cpu, at(block, OFF_CURRENT_STACK), &stack.to_le_bytes())?;
    write_bytes(cpu, Va::new(stack), &[major])?;
    Ok(Some(irp))
}

/// Writes `c` into `irp`'s fields and its current stack location.
fn fill(cpu: &Cpu<'_>, irp: Irp, c: &IrpContents) -> Result<(), BugCheck> {
    let block = irp.0;
    let stack_va = irp.current_stack_location(cpu)?;
    let mut b = vec![0u8; IRP_SIZE as usize];
    cpu.machine().space().read(block, &mut b).map_err(|_| super::device::fault(cpu, block))?;
    let put = |b: &mut [u8], off: u64, v: &[u8]| b[off as usize..off as usize + v.len()].copy_from_slice(v);
    put(&mut b, OFF_MDL, &c.mdl.to_le_bytes());
    put(&mut b, OFF_FLAGS, &c.flags.bits().to_le_bytes());
    put(&mut b, OFF_SYSTEM_BUFFER, &c.system_buffer.to_le_bytes());
    b[OFF_REQUESTOR_MODE as usize] = c.mode as u8;
    put(&mut b, OFF_USER_BUFFER, &c.user_buffer.to_le_bytes());
    put(&mut b, OFF_ORIGINAL_FILE, &c.file.to_le_bytes());
    write_bytes(cpu, block, &b)?;
    let mut b = vec![0u8; STACK_LOCATION_SIZE as usize];
    let stack = 0u64;
    b[stack as usize] = c.major as u8;
    b[stack as usize + 1] = c.minor;
    let p = stack + 8;
    match c.parameters {
        Parameters::DeviceIoControl { output_length, input_length, code, type3_input } => {
            put(&mut b, p, &output_length.to_le_bytes());
            put(&mut b, p + 0x08, &input_length.to_le_bytes());
            put(&mut b, p + 0x10, &code.to_le_bytes());
            put(&mut b, p + 0x18, &type3_input.to_le_bytes());
        }
        Parameters::ReadWrite { length, key, byte_offset } => {
            put(&mut b, p, &length.to_le_bytes());
            put(&mut b, p + 0x08, &key.to_le_bytes());
            put(&mut b, p + 0x10, &byte_offset.to_le_bytes());
        }
        Parameters::StartDevice { raw, translated } => {
            put(&mut b, p, &raw.to_le_bytes());
            put(&mut b, p + 0x08, &translated.to_le_bytes());
        }
        Parameters::Create { options, share_access } => {
            put(&mut b, p + 0x08, &options.to_le_bytes());
            put(&mut b, p + 0x12, &share_access.to_le_bytes());
        }
        Parameters::Power { system_context, kind, state, shutdown } => {
            put(&mut b, p, &system_context.to_le_bytes());
            put(&mut b, p + 0x08, &kind.to_le_bytes());
            put(&mut b, p + 0x10, &state.to_le_bytes());
            put(&mut b, p + 0x18, &shutdown.to_le_bytes());
        }
        Parameters::WaitWake { state } => put(&mut b, p, &state.to_le_bytes()),
        Parameters::None => {}
    }
    put(&mut b, stack + 0x28, &c.device.0.get().to_le_bytes());
    put(&mut b, stack + 0x30, &c.file.to_le_bytes());
    write_bytes(cpu, stack_va, &b)
}

/// Puts `mdl` on `irp` as IoAllocateMdl does when given the IRP: as
/// `MdlAddress` for a primary buffer, at the end of the `Next` chain for a
/// secondary one.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an IRP or MDL outside the address space.
pub fn attach_mdl(cpu: &Cpu<'_>, irp: Irp, new: Mdl, secondary: bool) -> Result<(), BugCheck> {
    let first = irp.mdl_address(cpu)?;
    if !secondary || first == 0 {
        return irp.set_mdl_address(cpu, new.0.get());
    }
    let mut last = first;
    loop {
        let next = u64_at(cpu, Va::new(last))?;
        if next == 0 {
            return write_bytes(cpu, Va::new(last), &new.0.get().to_le_bytes());
        }
        last = next;
    }
}

/// Unlocks (if locked) and frees every MDL on the chain starting at `first`.
pub(crate) fn free_mdl_chain(cpu: &Cpu<'_>, first: u64) -> Result<(), BugCheck> {
    let mut next = first;
    while next != 0 {
        let m = Mdl(Va::new(next));
        let h = mdl::read_header(cpu, m)?;
        if h.flags.contains(MdlFlags::PAGES_LOCKED) {
            mdl::mm_unlock_pages(cpu, m)?;
        }
        mdl::io_free_mdl(cpu, m)?;
        next = h.next;
    }
    Ok(())
}

/// `IoCompleteRequest(Irp, PriorityBoost)` for callers with no completion routines to
/// run: [`super::stack::complete`] until it is done or a completion routine is due
/// (returned; the caller runs it and goes on with [`super::stack::resume`]).
///
/// # Errors
/// As [`super::stack::complete`].
pub fn io_complete_request(cpu: &Cpu<'_>, irp: Irp) -> Result<super::stack::Completion, BugCheck> {
    super::stack::complete(cpu, irp)
}

/// The I/O manager's final completion of a request a caller issued (see the module
/// documentation); `process` and `system_len` are from its record.
pub(crate) fn finish_request(
    cpu: &Cpu<'_>,
    irp: Irp,
    process: Option<&std::sync::Arc<crate::mm::process::Process>>,
    system_len: u64,
) -> Result<(NtStatus, u64), BugCheck> {
    let m = cpu.machine();
    let flags = irp.flags(cpu)?;
    let (mut status, information) = irp.io_status(cpu)?;
    let system = irp.system_buffer(cpu)?;
    let copy_back = flags.contains(IrpFlags::BUFFERED_IO | IrpFlags::INPUT_OPERATION);
    if copy_back && m.verifier().contains(crate::vf::VerifierFlags::IO_VERIFICATION) {
        check_information(cpu, irp, information)?;
    }
    if copy_back && !status.is_error() && system != 0 {
        let len = information.min(system_len);
        let mut data = vec![0u8; len as usize];
        m.space()
            .read(Va::new(system), &mut data)
            .map_err(|_| m.bugcheck(BugCheckCode::PAGE_FAULT_IN_NONPAGED_AREA, [system, 0, 0, 0]))?;
        let user = Va::new(irp.user_buffer(cpu)?);
        let copied = match process {
            Some(p) => p.write(cpu, user, &data),
            None => m.space().write(user, &data).map_err(|_| NtStatus::ACCESS_VIOLATION),
        };
        if let Err(e) = copied {
            status = e;
        }
    }
    if flags.contains(IrpFlags::DEALLOCATE_BUFFER) && system != 0 {
        pool::free(cpu, Va::new(system), Some(SYSTEM_BUFFER_TAG))?;
    }
    free_mdl_chain(cpu, irp.mdl_address(cpu)?)?;
    Ok((status, information))
}

/// I/O verification's look at a buffered request's `IoStatus.Information` as the
/// final completion copies the system buffer back: more than the output part of the
/// buffer (`OutputBufferLength` of a device control, `Length` of a read — the first
/// driver's stack location, +0x08 in both) is the non-fatal WDM DRIVER ERROR 0x312
/// (Microsoft, "Bug Check 0xC9"), recorded as a warning. ntmem copies back at most
/// the system buffer's length whatever it says; Windows copies `Information` bytes.
fn check_information(cpu: &Cpu<'_>, irp: Irp, information: u64) -> Result<(), BugCheck> {
    let [count] = read_bytes::<1>(cpu, at(irp.0, OFF_STACK_COUNT))?;
    let Some(index) = u64::from(count).checked_sub(1) else { return Ok(()) };
    let location = Va::new(irp.0.get() + IRP_SIZE + index * STACK_LOCATION_SIZE);
    let output = u64::from(u32::from_le_bytes(read_bytes(cpu, at(location, 0x08))?));
    if information > output {
        let device = u64::from_le_bytes(read_bytes(cpu, at(location, 0x28))?);
        let code = crate::vf::WdmError::INFORMATION_TOO_LARGE;
        cpu.machine().vf().wdm_error(crate::vf::WdmError { code, irp: irp.0.get(), device });
    }
    Ok(())
}
