//! IRP stack locations: IRPs drivers allocate, passing an IRP down a device stack,
//! and completing it back up (learn.microsoft.com "IoAllocateIrp", "IoInitializeIrp",
//! "IoReuseIrp", "IoFreeIrp", "IoMakeAssociatedIrp", "IoSizeOfIrp", "IofCallDriver",
//! "IoSetCompletionRoutine", "IoMarkIrpPending", "IofCompleteRequest",
//! "Completing IRPs", "Constraints on Completion Routines", "Bug Check 0x35
//! NO_MORE_IRP_STACK_LOCATIONS", "Bug Check 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS").
//!
//! An IRP of `n` stack locations is `IoSizeOfIrp(n)` = 0xD0 + n·0x48 bytes; the
//! locations follow the IRP, the **last** one belongs to the highest driver.
//! `CurrentLocation` counts from `n` (the top driver's location) down to 1 (the
//! lowest's); `n + 1` means no driver owns one yet (a new IRP, or one completed back
//! to its allocator). `Tail.Overlay.CurrentStackLocation` points at location
//! `CurrentLocation` (one past the last when it is `n + 1`).
//!
//! * [`call_driver`] is `IofCallDriver`'s part: `CurrentLocation` minus one — below 1
//!   is NO_MORE_IRP_STACK_LOCATIONS (0x35: IRP, 0, 0, 0) —, the stack pointer moved to
//!   the next lower location, its `DeviceObject` set; the caller then calls the
//!   target driver's dispatch routine for that location's `MajorFunction`.
//! * [`complete`] is `IofCompleteRequest`'s: it refuses an IRP that is not
//!   outstanding, not an IRP, or whose every location has completed already
//!   (MULTIPLE_IRP_COMPLETE_REQUESTS, 0x44: IRP, 0, 0, 0), then walks up: for each
//!   location from the current one, `PendingReturned` takes the location's
//!   `SL_PENDING_RETURNED`, the IRP moves to the location above, and the location's
//!   completion routine — set by the driver above with `IoSetCompletionRoutine` — is
//!   due if its `Control` asks for this outcome (`SL_INVOKE_ON_SUCCESS` for
//!   `NT_SUCCESS(IoStatus.Status)`, `SL_INVOKE_ON_ERROR` otherwise,
//!   `SL_INVOKE_ON_CANCEL` when `Irp->Cancel`). A due routine is returned to the
//!   caller (driver code runs at the C boundary, not here) with the device object of
//!   the location it now stands at (NULL above the top location); the caller runs it
//!   and goes on with [`resume`] unless it returned `STATUS_MORE_PROCESSING_REQUIRED`,
//!   which stops the walk (the IRP is the routine's driver's again). Without a due
//!   routine, a pending return is passed up: the location above gets
//!   `SL_PENDING_RETURNED`, as `IoMarkIrpPending` would have set it. The completed
//!   location's `Control`, `CompletionRoutine` and `Context` are cleared.
//! * Once the top location has completed, [`final_completion`] is the I/O manager's
//!   own part, by who made the IRP ([`super::IrpOrigin`]): a caller's request copies
//!   buffered output back, frees the system buffer and MDLs and keeps the status for
//!   the caller ([`super::irp::finish_request`]); an IRP built by an
//!   `IoBuild*Request` routine gets the same buffer handling, its status copied to
//!   `UserIosb`, its `UserEvent` signalled (by the caller: [`Final::Signal`]) and is
//!   freed; an associated IRP is freed and counts down its master's
//!   `AssociatedIrp.IrpCount`, the master completing when that reaches zero. An IRP
//!   from `IoAllocateIrp` that no completion routine claimed reaches the I/O manager
//!   with no thread (`Tail.Overlay.Thread` NULL) to complete it in: Windows'
//!   completion APC for it touches the NULL thread at raised IRQL; ntmem stops with
//!   IRQL_NOT_LESS_OR_EQUAL (0x0A: 0, DISPATCH_LEVEL, 0 (read), 0 — the address of
//!   the touch and of the code are Windows' internals, given as 0).
//!
//! Allocated IRPs are in nonpaged pool, tag "Irp ", as the I/O manager's own; quota
//! is not charged (`IRP_QUOTA_CHARGED` is set as asked). Every IRP has a record in the
//! I/O manager from its allocation until it is freed, which is how a second
//! completion, or a completion of something that is not an outstanding IRP, is told.

use ntmem_machine::Va;

use super::device::{at, read_bytes, write_bytes, DeviceObject};
use super::irp::{
    self, Irp, IrpFlags, IO_TYPE_IRP, IRP_SIZE, IRP_TAG, OFF_ALLOCATION_FLAGS, OFF_CANCEL, OFF_CANCEL_ROUTINE,
    OFF_CURRENT_LOCATION, OFF_CURRENT_STACK, OFF_ORIGINAL_FILE, OFF_PENDING_RETURNED, OFF_SIZE, OFF_STACK_COUNT,
    OFF_SYSTEM_BUFFER, OFF_THREAD, OFF_THREAD_LIST, OFF_USER_EVENT, OFF_USER_IOSB, STACK_LOCATION_SIZE,
};
use super::{IrpOrigin, IrpRecord};
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::{self, NtStatus, PoolType};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::vf::{IoViolation, VerifierFlags};

/// `SL_PENDING_RETURNED` in a stack location's `Control` (`IoMarkIrpPending`).
pub const SL_PENDING_RETURNED: u8 = 0x01;
/// `SL_INVOKE_ON_CANCEL`.
pub const SL_INVOKE_ON_CANCEL: u8 = 0x20;
/// `SL_INVOKE_ON_SUCCESS`.
pub const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
/// `SL_INVOKE_ON_ERROR`.
pub const SL_INVOKE_ON_ERROR: u8 = 0x80;

/// Stack location fields (x64): `Control`, `DeviceObject`, `CompletionRoutine`,
/// `Context`.
const SL_CONTROL: u64 = 0x03;
const SL_DEVICE: u64 = 0x28;
const SL_COMPLETION_ROUTINE: u64 = 0x38;
const SL_CONTEXT: u64 = 0x40;
const _: () = assert!(SL_CONTEXT + 8 == STACK_LOCATION_SIZE);

impl NtStatus {
    /// `STATUS_MORE_PROCESSING_REQUIRED`: a completion routine keeps the IRP.
    pub const MORE_PROCESSING_REQUIRED: NtStatus = NtStatus(0xC000_0016);

    /// `NT_SUCCESS(Status)`: the status is not negative.
    pub fn is_success(self) -> bool {
        (self.0 as i32) >= 0
    }
}

bitflags::bitflags! {
    /// `IRP.AllocationFlags` (wdm.h).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AllocationFlags: u8 {
        /// `IRP_QUOTA_CHARGED`.
        const QUOTA_CHARGED = 0x01;
        /// `IRP_ALLOCATED_MUST_SUCCEED`.
        const ALLOCATED_MUST_SUCCEED = 0x02;
        /// `IRP_ALLOCATED_FIXED_SIZE`.
        const ALLOCATED_FIXED_SIZE = 0x04;
        /// `IRP_LOOKASIDE_ALLOCATION`.
        const LOOKASIDE_ALLOCATION = 0x08;
    }
}

/// The driver routine `IofCallDriver` goes on to: the major function of the new
/// current location, and the target device's `DriverObject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTarget {
    /// The location's `MajorFunction` (any byte the driver put there).
    pub major: u8,
    /// `DeviceObject->DriverObject` (0: none, a PDO whose bus driver ntmem does not
    /// model).
    pub driver: u64,
}

/// A completion routine due: `CompletionRoutine(DeviceObject, Irp, Context)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletionCall {
    /// The routine (`PIO_COMPLETION_ROUTINE`), as the driver stored it.
    pub routine: u64,
    /// The device of the location the IRP now stands at (0 above the top one).
    pub device: u64,
    /// The `Context` the driver gave.
    pub context: u64,
}

/// What the I/O manager's final completion leaves for its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Final {
    /// Nothing: the IRP is done.
    Done,
    /// A threaded IRP's `UserIosb` was written: signal its `UserEvent`, as
    /// `KeSetEvent`.
    Signal {
        /// `UserEvent` (0: none).
        event: u64,
        /// `UserIosb` (0: none), written already.
        iosb: u64,
    },
    /// The last associated IRP of this master completed: complete the master.
    Master(Irp),
    /// A `PoRequestPowerIrp` IRP completed: call its requester's routine, then
    /// [`super::power::free_requested`].
    PowerRequested(Irp, super::power::PowerCompletion),
}

/// Where completing an IRP stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// A completion routine is due: run it, then [`resume`] unless it returned
    /// `STATUS_MORE_PROCESSING_REQUIRED`.
    Routine(CompletionCall),
    /// Every location completed and the I/O manager's part done.
    Finished(Final),
}

fn u64_at(cpu: &Cpu<'_>, va: Va) -> Result<u64, BugCheck> {
    Ok(u64::from_le_bytes(read_bytes(cpu, va)?))
}

fn put_u64(cpu: &Cpu<'_>, va: Va, v: u64) -> Result<(), BugCheck> {
    write_bytes(cpu, va, &v.to_le_bytes())
}

/// (`StackCount`, `CurrentLocation`), both `CHAR`.
fn locations(cpu: &Cpu<'_>, irp: Irp) -> Result<(i16, i16), BugCheck> {
    let [count, current] = read_bytes::<2>(cpu, at(irp.0, OFF_STACK_COUNT))?;
    Ok((i16::from(count as i8), i16::from(current as i8)))
}

/// Whether the stack location at `location` is marked pending
/// (`SL_PENDING_RETURNED` in its `Control`: `IoMarkIrpPending`).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a location outside the address space.
pub(crate) fn marked_pending(cpu: &Cpu<'_>, location: Va) -> Result<bool, BugCheck> {
    let [control] = read_bytes::<1>(cpu, at(location, SL_CONTROL))?;
    Ok(control & SL_PENDING_RETURNED != 0)
}

/// `IoInitializeIrp`'s work: zeroes `packet_size` bytes, then `Type`, `Size`,
/// `StackCount` `stack_size`, `CurrentLocation` `stack_size + 1`, an empty
/// `ThreadListEntry`, `CurrentStackLocation` one past the last location.
pub(crate) fn initialize(cpu: &Cpu<'_>, irp: Irp, packet_size: u64, stack_size: u8) -> Result<(), BugCheck> {
    let zero = vec![0u8; usize::try_from(packet_size).unwrap_or(0)];
    write_bytes(cpu, irp.0, &zero)?;
    write_bytes(cpu, irp.0, &IO_TYPE_IRP.to_le_bytes())?;
    write_bytes(cpu, at(irp.0, OFF_SIZE), &u16::try_from(packet_size).unwrap_or(u16::MAX).to_le_bytes())?;
    write_bytes(cpu, at(irp.0, OFF_STACK_COUNT), &[stack_size, stack_size.wrapping_add(1)])?;
    let list = irp.0.get() + OFF_THREAD_LIST;
    put_u64(cpu, Va::new(list), list)?;
    put_u64(cpu, Va::new(list + 8), list)?;
    let end = irp.0.get() + IRP_SIZE + u64::from(stack_size) * STACK_LOCATION_SIZE;
    put_u64(cpu, at(irp.0, OFF_CURRENT_STACK), end)
}

fn record(cpu: &Cpu<'_>, irp: Irp, origin: IrpOrigin) {
    let r = IrpRecord { process: None, system_buffer_len: 0, completed: None, origin, pending_returned: false };
    cpu.machine().io().irps().insert(irp.0.get(), r);
}

/// `IoInitializeIrp(Irp, PacketSize, StackSize)` on memory the driver allocated:
/// see [`initialize`]; the IRP is the driver's from then on (as from `IoAllocateIrp`).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for memory outside the address space.
pub fn io_initialize_irp(cpu: &Cpu<'_>, irp: Irp, packet_size: u16, stack_size: u8) -> Result<(), BugCheck> {
    initialize(cpu, irp, u64::from(packet_size), stack_size)?;
    let known = cpu.machine().io().irps().contains_key(&irp.0.get());
    if !known {
        record(cpu, irp, IrpOrigin::Allocated);
    }
    Ok(())
}

/// `IoAllocateIrp(StackSize, ChargeQuota)`: an initialized IRP of `stack_size`
/// locations from nonpaged pool, `AllocationFlags` `IRP_ALLOCATED_FIXED_SIZE` (and
/// `IRP_QUOTA_CHARGED` if asked). `Ok(None)` (NULL): no pool, or a negative
/// `StackSize` (ntmem's choice; Windows sizes the IRP from the CCHAR as given).
/// Under I/O verification the IRP comes from special pool (research note
/// `dma-verifier-views.md` §3.7), so a touch after `IoFreeIrp` is
/// DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL (0xD5).
///
/// # Errors
/// A bugcheck from the pool.
pub fn io_allocate_irp(cpu: &Cpu<'_>, stack_size: i8, charge_quota: bool) -> Result<Option<Irp>, BugCheck> {
    let Ok(count) = u8::try_from(stack_size) else { return Ok(None) };
    let size = irp::io_size_of_irp(count);
    let allocate = if cpu.machine().verifier().contains(VerifierFlags::IO_VERIFICATION) {
        pool::allocate_special
    } else {
        pool::allocate
    };
    let Some(block) = allocate(cpu, PoolType::NonPagedPool, size, IRP_TAG)? else { return Ok(None) };
    let irp = Irp(block);
    initialize(cpu, irp, size, count)?;
    let mut flags = AllocationFlags::ALLOCATED_FIXED_SIZE;
    flags.set(AllocationFlags::QUOTA_CHARGED, charge_quota);
    write_bytes(cpu, at(block, OFF_ALLOCATION_FLAGS), &[flags.bits()])?;
    record(cpu, irp, IrpOrigin::Allocated);
    Ok(Some(irp))
}

/// `IoReuseIrp(Irp, Iostatus)`: initialized again for as many locations as it has,
/// `AllocationFlags` kept, `IoStatus.Status` = `status`.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for memory outside the address space.
pub fn io_reuse_irp(cpu: &Cpu<'_>, irp: Irp, status: NtStatus) -> Result<(), BugCheck> {
    let [size0, size1] = read_bytes::<2>(cpu, at(irp.0, OFF_SIZE))?;
    let [count] = read_bytes::<1>(cpu, at(irp.0, OFF_STACK_COUNT))?;
    let [flags] = read_bytes::<1>(cpu, at(irp.0, OFF_ALLOCATION_FLAGS))?;
    initialize(cpu, irp, u64::from(u16::from_le_bytes([size0, size1])), count)?;
    write_bytes(cpu, at(irp.0, OFF_ALLOCATION_FLAGS), &[flags])?;
    irp.set_io_status(cpu, status, 0)?;
    if let Some(r) = cpu.machine().io().irps().get_mut(&irp.0.get()) {
        r.completed = None;
    }
    Ok(())
}

/// `IoFreeIrp(Irp)`, the driver's call (`caller`: the address in its code, 0 if
/// unknown): frees an IRP. Something that is not an IRP (`Type` is not IO_TYPE_IRP —
/// an IRP freed before has `Type` 0) is MULTIPLE_IRP_COMPLETE_REQUESTS (0x44:
/// address, 0, 0, 0), as Windows checks.
///
/// Under I/O verification (Microsoft, "Bug Check 0xC9"): a non-IRP is 0xC9/0x01 (the
/// object) instead; an IRP the I/O manager associated with a thread (built by
/// `IoBuildDeviceIoControlRequest` / `IoBuildSynchronousFsdRequest`, freed by the
/// I/O manager at its completion) is 0xC9/0x02 (the IRP); an IRP still in use —
/// a driver below holds a stack location of it (sent with `IoCallDriver`, not yet
/// completed back) — is WDM DRIVER ERROR 0x20B (caller, IRP, the holder's device).
/// Windows' free kernel frees all three without looking, and so does ntmem without
/// the option (the later touch of the freed IRP is the symptom).
///
/// # Errors
/// As above; PAGE_FAULT_IN_NONPAGED_AREA (0x50) for memory outside the address
/// space; a bugcheck from the pool.
pub fn io_free_irp(cpu: &Cpu<'_>, irp: Irp, caller: u64) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let verified = m.verifier().contains(VerifierFlags::IO_VERIFICATION);
    let is_irp = u16::from_le_bytes(read_bytes(cpu, irp.0)?) == IO_TYPE_IRP;
    if !is_irp && verified {
        return Err(IoViolation::FreedNonIrp { object: irp.0.get() }.stop(m));
    }
    if is_irp && verified {
        let origin = m.io().irps().get(&irp.0.get()).map(|r| r.origin);
        if origin == Some(IrpOrigin::Built) {
            return Err(IoViolation::FreedThreadedIrp { irp: irp.0.get() }.stop(m));
        }
        let (count, current) = locations(cpu, irp)?;
        if (1..=count).contains(&current) {
            let device = u64_at(cpu, at(irp.current_stack_location(cpu)?, SL_DEVICE))?;
            return Err(IoViolation::FreedIrpInUse { caller, irp: irp.0.get(), device }.stop(m));
        }
    }
    free_irp(cpu, irp)
}

/// Frees an IRP the I/O manager is done with (its own final completion, or the
/// driver's `IoFreeIrp` once checked): 0x44 for one that is not an IRP any more.
pub(crate) fn free_irp(cpu: &Cpu<'_>, irp: Irp) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if u16::from_le_bytes(read_bytes(cpu, irp.0)?) != IO_TYPE_IRP {
        return Err(m.bugcheck(BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS, [irp.0.get(), 0, 0, 0]));
    }
    m.io().irps().remove(&irp.0.get());
    write_bytes(cpu, irp.0, &0u16.to_le_bytes())?;
    pool::free(cpu, irp.0, None)
}

/// `IoMakeAssociatedIrp(Irp, StackSize)`: a new IRP of `stack_size` locations
/// associated with `master` (`IRP_ASSOCIATED_IRP`, `AssociatedIrp.MasterIrp`), in
/// the master's thread and file. The driver sets the master's
/// `AssociatedIrp.IrpCount`. `Ok(None)` (NULL): no pool.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a master outside the address space; a
/// bugcheck from the pool.
pub fn io_make_associated_irp(cpu: &Cpu<'_>, master: Irp, stack_size: i8) -> Result<Option<Irp>, BugCheck> {
    let thread = u64_at(cpu, at(master.0, OFF_THREAD))?;
    let file = u64_at(cpu, at(master.0, OFF_ORIGINAL_FILE))?;
    let Some(irp) = io_allocate_irp(cpu, stack_size, false)? else { return Ok(None) };
    write_bytes(cpu, at(irp.0, irp::OFF_FLAGS), &IrpFlags::ASSOCIATED_IRP.bits().to_le_bytes())?;
    put_u64(cpu, at(irp.0, OFF_SYSTEM_BUFFER), master.0.get())?;
    put_u64(cpu, at(irp.0, OFF_THREAD), thread)?;
    put_u64(cpu, at(irp.0, OFF_ORIGINAL_FILE), file)?;
    record(cpu, irp, IrpOrigin::Associated);
    Ok(Some(irp))
}

/// `IofCallDriver(DeviceObject, Irp)`, up to the call of the driver's routine (see
/// the module documentation).
///
/// Under I/O verification, a call above DISPATCH_LEVEL is 0xC9/0x10 (the IRQL;
/// Microsoft, "Bug Check 0xC9"); Windows' free kernel does not check.
///
/// # Errors
/// NO_MORE_IRP_STACK_LOCATIONS (0x35: IRP, 0, 0, 0); 0xC9/0x10 as above;
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an IRP or device outside the address space.
pub fn call_driver(cpu: &Cpu<'_>, device: DeviceObject, irp: Irp) -> Result<CallTarget, BugCheck> {
    let m = cpu.machine();
    if cpu.irql() > Irql::DISPATCH && m.verifier().contains(VerifierFlags::IO_VERIFICATION) {
        return Err(IoViolation::CalledAboveDispatch { irql: cpu.irql() }.stop(m));
    }
    let (_, current) = locations(cpu, irp)?;
    let next = current - 1;
    write_bytes(cpu, at(irp.0, OFF_CURRENT_LOCATION), &[next as u8])?;
    if next <= 0 {
        let p = [irp.0.get(), 0, 0, 0];
        return Err(cpu.machine().bugcheck(BugCheckCode::NO_MORE_IRP_STACK_LOCATIONS, p));
    }
    let stack = irp.current_stack_location(cpu)?.get().wrapping_sub(STACK_LOCATION_SIZE);
    put_u64(cpu, at(irp.0, OFF_CURRENT_STACK), stack)?;
    put_u64(cpu, Va::new(stack + SL_DEVICE), device.0.get())?;
    let [major] = read_bytes::<1>(cpu, Va::new(stack))?;
    Ok(CallTarget { major, driver: device.driver(cpu)? })
}

/// `IofCompleteRequest(Irp, PriorityBoost)`: checks the IRP may be completed, then
/// walks up its stack ([`resume`]).
///
/// Under Driver Verifier's I/O verification (Microsoft, "Bug Check 0xC9"), the
/// I/O manager's checks stop the machine with DRIVER_VERIFIER_IOMANAGER_VIOLATION:
/// a call above DISPATCH_LEVEL is 0x0E (IRQL, IRP, 0); `IoStatus.Status`
/// STATUS_PENDING or -1 is 0x06 (the status, the IRP, 0); a cancel routine still
/// set is 0x07 (the routine, the IRP, 0) — the driver must clear it
/// (`IoSetCancelRoutine(Irp, NULL)`) before it completes. Without the option
/// Windows' free kernel checks none of them (the status reaches the caller as it
/// is; a cancel routine left set may run on a completed IRP), and neither does
/// ntmem.
///
/// # Errors
/// MULTIPLE_IRP_COMPLETE_REQUESTS (0x44: IRP, 0, 0, 0) for an IRP that is not
/// outstanding, not an IRP, or completed past its top location; 0xC9 as above;
/// bugchecks of the walk.
pub fn complete(cpu: &Cpu<'_>, irp: Irp) -> Result<Completion, BugCheck> {
    let m = cpu.machine();
    let twice = || m.bugcheck(BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS, [irp.0.get(), 0, 0, 0]);
    let outstanding = m.io().irps().get(&irp.0.get()).is_some_and(|r| r.completed.is_none());
    if !outstanding {
        return Err(twice());
    }
    let (count, current) = locations(cpu, irp)?;
    if u16::from_le_bytes(read_bytes(cpu, irp.0)?) != IO_TYPE_IRP || current > count + 1 {
        return Err(twice());
    }
    if m.verifier().contains(VerifierFlags::IO_VERIFICATION) {
        verify_completion(cpu, irp)?;
    }
    resume(cpu, irp)
}

/// I/O verification's checks of an `IoCompleteRequest` (see [`complete`]).
fn verify_completion(cpu: &Cpu<'_>, irp: Irp) -> Result<(), BugCheck> {
    let m = cpu.machine();
    let at_irp = irp.0.get();
    if cpu.irql() > Irql::DISPATCH {
        return Err(IoViolation::CompletedAboveDispatch { irql: cpu.irql(), irp: at_irp }.stop(m));
    }
    let (status, _) = irp.io_status(cpu)?;
    if status == NtStatus::PENDING || status.0 == u32::MAX {
        return Err(IoViolation::CompletedPending { status: status.0, irp: at_irp }.stop(m));
    }
    let routine = u64_at(cpu, at(irp.0, OFF_CANCEL_ROUTINE))?;
    if routine != 0 {
        return Err(IoViolation::CompletedWithCancelRoutine { routine, irp: at_irp }.stop(m));
    }
    Ok(())
}

/// Goes on walking up `irp`'s stack after a completion routine returned (anything
/// but `STATUS_MORE_PROCESSING_REQUIRED`).
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for an IRP whose stack is outside the address
/// space; bugchecks of the final completion.
pub fn resume(cpu: &Cpu<'_>, irp: Irp) -> Result<Completion, BugCheck> {
    loop {
        let (count, current) = locations(cpu, irp)?;
        if current > count {
            return Ok(Completion::Finished(final_completion(cpu, irp)?));
        }
        let location = irp.current_stack_location(cpu)?;
        let [control] = read_bytes::<1>(cpu, at(location, SL_CONTROL))?;
        let pending = control & SL_PENDING_RETURNED;
        write_bytes(cpu, at(irp.0, OFF_PENDING_RETURNED), &[pending])?;
        let above = current + 1;
        write_bytes(cpu, at(irp.0, OFF_CURRENT_LOCATION), &[above as u8])?;
        let next = location.get() + STACK_LOCATION_SIZE;
        put_u64(cpu, at(irp.0, OFF_CURRENT_STACK), next)?;
        let routine = u64_at(cpu, at(location, SL_COMPLETION_ROUTINE))?;
        let context = u64_at(cpu, at(location, SL_CONTEXT))?;
        write_bytes(cpu, at(location, SL_CONTROL), &[0])?;
        put_u64(cpu, at(location, SL_COMPLETION_ROUTINE), 0)?;
        put_u64(cpu, at(location, SL_CONTEXT), 0)?;
        let (status, _) = irp.io_status(cpu)?;
        let [cancel] = read_bytes::<1>(cpu, at(irp.0, OFF_CANCEL))?;
        let invoke = (status.is_success() && control & SL_INVOKE_ON_SUCCESS != 0)
            || (!status.is_success() && control & SL_INVOKE_ON_ERROR != 0)
            || (cancel != 0 && control & SL_INVOKE_ON_CANCEL != 0);
        if invoke {
            let device = if above > count { 0 } else { u64_at(cpu, Va::new(next + SL_DEVICE))? };
            return Ok(Completion::Routine(CompletionCall { routine, device, context }));
        }
        if pending != 0 && above <= count {
            let [c] = read_bytes::<1>(cpu, Va::new(next + SL_CONTROL))?;
            write_bytes(cpu, Va::new(next + SL_CONTROL), &[c | SL_PENDING_RETURNED])?;
        }
    }
}

/// The I/O manager's part once the top location has completed (see the module
/// documentation).
///
/// # Errors
/// 0x0A for an allocated IRP with no thread; bugchecks from the copies and the pool.
pub fn final_completion(cpu: &Cpu<'_>, irp: Irp) -> Result<Final, BugCheck> {
    let m = cpu.machine();
    let record = m.io().irps().get(&irp.0.get()).map(|r| (r.origin, r.process.clone(), r.system_buffer_len));
    let Some((origin, process, system_len)) = record else {
        return Err(m.bugcheck(BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS, [irp.0.get(), 0, 0, 0]));
    };
    let thread = u64_at(cpu, at(irp.0, OFF_THREAD))?;
    match origin {
        IrpOrigin::Request => {
            let done = irp::finish_request(cpu, irp, process.as_ref(), system_len)?;
            let [pending] = read_bytes::<1>(cpu, at(irp.0, OFF_PENDING_RETURNED))?;
            if let Some(r) = m.io().irps().get_mut(&irp.0.get()) {
                r.completed = Some(done);
                r.pending_returned = pending != 0;
            }
            pool::free(cpu, irp.0, Some(IRP_TAG))?;
            Ok(Final::Done)
        }
        IrpOrigin::Allocated if thread == 0 => Err(m.bugcheck(BugCheckCode::IRQL_NOT_LESS_OR_EQUAL, [0, 2, 0, 0])),
        IrpOrigin::Allocated | IrpOrigin::Built => {
            let (status, information) = irp::finish_request(cpu, irp, None, system_len)?;
            let iosb = u64_at(cpu, at(irp.0, OFF_USER_IOSB))?;
            let event = u64_at(cpu, at(irp.0, OFF_USER_EVENT))?;
            if iosb != 0 {
                write_bytes(cpu, Va::new(iosb), &status.0.to_le_bytes())?;
                put_u64(cpu, Va::new(iosb + 8), information)?;
            }
            free_irp(cpu, irp)?;
            Ok(Final::Signal { event, iosb })
        }
        IrpOrigin::PowerRequest(completion) => {
            irp::finish_request(cpu, irp, None, 0)?;
            Ok(Final::PowerRequested(irp, completion))
        }
        IrpOrigin::Associated => {
            irp::finish_request(cpu, irp, None, 0)?;
            let master = Irp(Va::new(u64_at(cpu, at(irp.0, OFF_SYSTEM_BUFFER))?));
            free_irp(cpu, irp)?;
            let count = i32::from_le_bytes(read_bytes(cpu, at(master.0, OFF_SYSTEM_BUFFER))?).wrapping_sub(1);
            write_bytes(cpu, at(master.0, OFF_SYSTEM_BUFFER), &count.to_le_bytes())?;
            Ok(if count == 0 { Final::Master(master) } else { Final::Done })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::device::{io_create_device, NewDevice};
    use crate::machine::Machine;
    use ntmem_machine::{BootOptions, MachineConfig};

    fn machine() -> Machine {
        let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
        config.ram = 512 << 20;
        config.boot = BootOptions::parse("").unwrap();
        Machine::boot(config.build().unwrap()).unwrap()
    }

    fn device(cpu: &Cpu<'_>) -> DeviceObject {
        let new = NewDevice { driver: 0, extension_size: 0, device_type: 0x22, characteristics: 0, exclusive: false };
        io_create_device(cpu, new).unwrap().unwrap()
    }

    #[test]
    fn an_allocated_irp_has_its_locations_after_it_and_none_current() {
        let m = machine();
        m.run(0, |cpu| {
            let irp = io_allocate_irp(cpu, 3, true)?.expect("pool");
            let [ty0, ty1, s0, s1] = read_bytes::<4>(cpu, irp.0)?;
            assert_eq!((u16::from_le_bytes([ty0, ty1]), u16::from_le_bytes([s0, s1])), (6, 0xD0 + 3 * 0x48));
            assert_eq!(locations(cpu, irp)?, (3, 4));
            assert_eq!(irp.current_stack_location(cpu)?.get(), irp.0.get() + 0xD0 + 3 * 0x48);
            let [flags] = read_bytes::<1>(cpu, at(irp.0, OFF_ALLOCATION_FLAGS))?;
            assert_eq!(flags, 0x05, "IRP_ALLOCATED_FIXED_SIZE | IRP_QUOTA_CHARGED");
            let list = irp.0.get() + OFF_THREAD_LIST;
            assert_eq!((u64_at(cpu, Va::new(list))?, u64_at(cpu, Va::new(list + 8))?), (list, list), "empty list");
            assert_eq!(io_allocate_irp(cpu, -1, false)?, None, "a negative StackSize");
            io_free_irp(cpu, irp, 0)
        })
        .unwrap();
    }

    #[test]
    fn calling_down_moves_one_location_and_none_left_is_0x35() {
        let m = machine();
        let b = m
            .run(0, |cpu| {
                let d = device(cpu);
                let irp = io_allocate_irp(cpu, 1, false)?.expect("pool");
                let target = call_driver(cpu, d, irp)?;
                assert_eq!(target, CallTarget { major: 0, driver: 0 });
                assert_eq!(locations(cpu, irp)?, (1, 1));
                let location = irp.current_stack_location(cpu)?;
                assert_eq!(location.get(), irp.0.get() + 0xD0);
                assert_eq!(u64_at(cpu, at(location, SL_DEVICE))?, d.0.get(), "the location's DeviceObject");
                call_driver(cpu, d, irp).map(drop)
            })
            .unwrap_err();
        assert_eq!(b.code, BugCheckCode::NO_MORE_IRP_STACK_LOCATIONS);
        assert_eq!((b.parameters[1], b.parameters[2], b.parameters[3]), (0, 0, 0));
    }

    /// A location whose routine asks for (`control`) is invoked for (`status`,
    /// `cancel`) or not.
    fn invoked(control: u8, status: u32, cancel: bool) -> bool {
        let m = machine();
        m.run(0, |cpu| {
            let d = device(cpu);
            let irp = io_allocate_irp(cpu, 1, false)?.expect("pool");
            let next = Va::new(irp.0.get() + 0xD0);
            put_u64(cpu, at(next, SL_COMPLETION_ROUTINE), 0x1234)?;
            write_bytes(cpu, at(next, SL_CONTROL), &[control])?;
            call_driver(cpu, d, irp)?;
            write_bytes(cpu, at(irp.0, OFF_CANCEL), &[u8::from(cancel)])?;
            irp.set_io_status(cpu, NtStatus(status), 0)?;
            let step = complete(cpu, irp)?;
            assert_eq!(u64_at(cpu, at(next, SL_COMPLETION_ROUTINE))?, 0, "the completed location is cleared");
            Ok(matches!(step, Completion::Routine(_)))
        })
        .unwrap_or(false)
    }

    #[test]
    fn a_completion_routine_runs_for_the_outcomes_it_asked_for() {
        assert!(invoked(SL_INVOKE_ON_SUCCESS, 0, false));
        assert!(invoked(SL_INVOKE_ON_SUCCESS, 0x0000_0103, false), "STATUS_PENDING is a success");
        assert!(!invoked(SL_INVOKE_ON_SUCCESS, 0xC000_0120, true), "cancelled: an error");
        assert!(invoked(SL_INVOKE_ON_ERROR, 0x8000_0005, false), "a warning is not NT_SUCCESS");
        assert!(invoked(SL_INVOKE_ON_CANCEL, 0, true), "cancelled, whatever the status");
        assert!(!invoked(SL_INVOKE_ON_CANCEL, 0xC000_0001, false));
    }

    #[test]
    fn a_pending_return_climbs_the_stack_without_completion_routines() {
        let m = machine();
        let b = m.run(0, |cpu| {
            let d = device(cpu);
            let irp = io_allocate_irp(cpu, 3, false)?.expect("pool");
            for _ in 0..3 {
                call_driver(cpu, d, irp)?;
            }
            // The lowest driver marks it pending; the top location carries a routine.
            let lowest = irp.current_stack_location(cpu)?;
            write_bytes(cpu, at(lowest, SL_CONTROL), &[SL_PENDING_RETURNED])?;
            let top = Va::new(irp.0.get() + 0xD0 + 2 * 0x48);
            put_u64(cpu, at(top, SL_COMPLETION_ROUTINE), 0x1234)?;
            put_u64(cpu, at(top, SL_CONTEXT), 0x5678)?;
            write_bytes(cpu, at(top, SL_CONTROL), &[SL_INVOKE_ON_ERROR])?;
            irp.set_io_status(cpu, NtStatus(0xC000_0001), 0)?;
            let step = complete(cpu, irp)?;
            assert_eq!(step, Completion::Routine(CompletionCall { routine: 0x1234, device: 0, context: 0x5678 }));
            let [pending] = read_bytes::<1>(cpu, at(irp.0, OFF_PENDING_RETURNED))?;
            assert_eq!(pending, 1, "PendingReturned passed up two locations");
            assert_eq!(locations(cpu, irp)?, (3, 4));
            // The routine returned STATUS_MORE_PROCESSING_REQUIRED: the IRP is the
            // allocator's again, to free — once.
            io_free_irp(cpu, irp, 0)?;
            io_free_irp(cpu, irp, 0).map(|()| irp)
        });
        let b = b.unwrap_err();
        assert_eq!(b.code, BugCheckCode::MULTIPLE_IRP_COMPLETE_REQUESTS);
        assert_eq!(b.parameters[1..], [0, 0, 0]);
    }
}
