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
//!
//! (Microsoft, "Bug Check 0xE1 WORKER_THREAD_RETURNED_AT_BAD_IRQL", "Bug Check 0x4A
//! IRQL_GT_ZERO_AT_SYSTEM_SERVICE", "Bug Check 0xC9 DRIVER_VERIFIER_IOMANAGER_VIOLATION";
//! the static IrqlReturn rule of WDM asks the same.)
//! Windows checks on the way back to user mode or to the worker loop, after the I/O
//! manager's own return path; ntmem checks as soon as the routine returns. A spin
//! lock still held at return shows as the raised IRQL it holds; a lock released
//! without lowering the IRQL is not seen (Windows keeps no owner either).

use crate::bugcheck::{BugCheck, BugCheckCode};
use crate::ke::irql::Irql;
use crate::ke::processor::Cpu;
use crate::vf::VerifierFlags;

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
        let p = [0x05, device, u64::from(entry.0), u64::from(irql.0)];
        return Err(cpu.machine().bugcheck(BugCheckCode::DRIVER_VERIFIER_IOMANAGER_VIOLATION, p));
    }
    let code = match caller {
        Caller::Worker => BugCheckCode::WORKER_THREAD_RETURNED_AT_BAD_IRQL,
        Caller::Service => BugCheckCode::IRQL_GT_ZERO_AT_SYSTEM_SERVICE,
    };
    Err(cpu.machine().bugcheck(code, [routine, u64::from(irql.0), 0, 0]))
}
