//! What the caller of a driver routine checks when the routine returns (issue 9
//! item 6): the IRQL must be the one the routine was called at.
//!
//! * A routine a system worker thread runs (`DriverEntry` and `DriverUnload`, run by
//!   the I/O manager's load/unload work item; `AddDevice` and `IRP_MJ_PNP`, run by the
//!   PnP manager's): the worker loop finds the IRQL changed after the work item and
//!   stops with WORKER_THREAD_RETURNED_AT_BAD_IRQL (0xE1: address of the worker
//!   routine, IRQL, work item parameter, work item address). ntmem names the driver's
//!   routine (its address, 0 when unknown) and has no work item: (routine, IRQL, 0, 0).
//! * A dispatch routine run in the requester's thread by a system service
//!   (`NtDeviceIoControlFile`, `NtReadFile`, …): the service returns to user mode at
//!   raised IRQL, IRQL_GT_ZERO_AT_SYSTEM_SERVICE (0x4A: address of the system
//!   function, IRQL, 0, 0); ntmem names the dispatch routine (its address).
//!
//! * Under Driver Verifier's I/O verification, a dispatch routine (called through
//!   `IoCallDriver`, either caller) is caught at once: DRIVER_VERIFIER_IOMANAGER_VIOLATION
//!   (0xC9: 0x05, the device object, IRQL before, IRQL after).
//! * Under I/O verification, the status it returned must agree with
//!   `IoMarkIrpPending` ([`check_pending`]: non-fatal WDM DRIVER ERRORs 0x23D, 0x23E).
//!
//! (Microsoft, "Bug Check 0xE1 WORKER_THREAD_RETURNED_AT_BAD_IRQL", "Bug Check 0x4A
//! IRQL_GT_ZERO_AT_SYSTEM_SERVICE", "Bug Check 0xC9 DRIVER_VERIFIER_IOMANAGER_VIOLATION";
//! the static IrqlReturn rule of WDM asks the same.)
//! Windows checks on the way back to user mode or to the worker loop, after the I/O
//! manager's own return path; ntmem checks as soon as the routine returns. A spin
//! lock still held at return shows as the raised IRQL it holds; a lock released
//! without lowering the IRQL is not seen (Windows keeps no owner either).

use ntmem_machine::Va;

use super::Irp;
use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ex::pool::NtStatus;
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::vf::{IoViolation, VerifierFlags, WdmError};

/// Who called the driver routine, which decides the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A system worker thread (loading and unloading drivers, Plug and Play).
    Worker,
    /// A system service in the requester's thread (I/O requests).
    Service,
}

/// Checks that the routine at `routine` (a host address, 0 if unknown), called at
/// `entry`, returned at that IRQL; `device` is the device object a dispatch routine
/// was called for (`None` for other routines).
///
/// # Errors
/// 0xE1, 0x4A or 0xC9 (see the module docs).
pub fn check_return(
    cpu: &Cpu<'_>,
    caller: Caller,
    routine: u64,
    device: Option<u64>,
    entry: Irql,
) -> Result<(), BugCheck> {
    let irql = cpu.irql();
    if irql == entry {
        return Ok(());
    }
    if let Some(device) = device.filter(|_| cpu.machine().verifier().contains(VerifierFlags::IO_VERIFICATION)) {
        return Err(IoViolation::IrqlChanged { device, before: entry, after: irql }.stop(cpu.machine()));
    }
    let code = match caller {
        Caller::Worker => BugCheckCode::WORKER_THREAD_RETURNED_AT_BAD_IRQL,
        Caller::Service => BugCheckCode::IRQL_GT_ZERO_AT_SYSTEM_SERVICE,
    };
    Err(cpu.machine().bugcheck(code, [routine, u64::from(irql.0), 0, 0]))
}

/// Enhanced I/O verification's check of what the dispatch routine called for `irp`
/// at stack location `location` (of `device`) returned: "the driver returns
/// STATUS_PENDING if and only if it has called IoMarkIrpPending" (Microsoft,
/// "Enhanced I/O Verification", part of I/O verification since Windows 7). A
/// STATUS_PENDING without the mark is WDM DRIVER ERROR 0x23D, the mark without
/// STATUS_PENDING 0x23E; both non-fatal ("Bug Check 0xC9", second table), recorded
/// as warnings ([`crate::vf::Verifier::wdm_error`]). The mark is the location's
/// `SL_PENDING_RETURNED` while the IRP is outstanding, `PendingReturned` once the
/// I/O manager completed it. Checked for the IRPs the I/O manager sends (a
/// caller's request, PnP); a dispatch routine reached by a driver's `IoCallDriver`
/// is not checked yet.
///
/// Without the option nothing is checked. Windows' free kernel then leaves a
/// caller that got STATUS_PENDING for an unmarked IRP waiting for a final
/// completion that never signals it; ntmem's caller still sees the completion.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a location outside the address space.
pub fn check_pending(cpu: &Cpu<'_>, irp: Irp, location: Va, device: u64, returned: NtStatus) -> Result<(), BugCheck> {
    let m = cpu.machine();
    if !m.verifier().contains(VerifierFlags::IO_VERIFICATION) {
        return Ok(());
    }
    let record = m.io().irps().get(&irp.0.get()).map(|r| (r.completed.is_some(), r.pending_returned));
    let Some((completed, pending_returned)) = record else { return Ok(()) };
    let marked = if completed { pending_returned } else { super::stack::marked_pending(cpu, location)? };
    let code = match (returned == NtStatus::PENDING, marked) {
        (true, false) => WdmError::PENDING_NOT_MARKED,
        (false, true) => WdmError::MARKED_NOT_PENDING,
        _ => return Ok(()),
    };
    m.vf().wdm_error(WdmError { code, irp: irp.0.get(), device });
    Ok(())
}
