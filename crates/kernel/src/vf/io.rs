//! I/O verification (`verifier /flags 0x10`): the I/O manager rules Driver Verifier
//! enforces, as values (research note `dma-verifier-views.md` §3.7; Microsoft, "Bug
//! Check 0xC9: DRIVER_VERIFIER_IOMANAGER_VIOLATION", "I/O Verification", "Enhanced
//! I/O Verification").
//!
//! Two kinds, as the 0xC9 page sorts them:
//!
//! * [`IoViolation`]: a stop, DRIVER_VERIFIER_IOMANAGER_VIOLATION with the page's
//!   parameters — the bug check table's subcodes (0x01–0x10), and the fatal
//!   "WDM DRIVER ERROR" codes (0x2xx), whose crash-dump parameters are the code, the
//!   address in the driver's code where the error was seen, the IRP and the device.
//! * [`WdmError`]: a non-fatal "WDM DRIVER ERROR" (0x23D, 0x23E, 0x312, …). Windows
//!   halts for one only when a kernel debugger is attached, and the debugger may go
//!   on; ntmem runs without one, so it records the error ([`super::Verifier::wdm_error`])
//!   and the report lists it as a warning.
//!
//! The I/O manager ([`crate::io`]) decides when a rule is broken; this module says
//! what Windows reports for it.

use crate::{BugCheck, BugCheckCode, Irql, Machine};

/// A broken rule that stops the machine with DRIVER_VERIFIER_IOMANAGER_VIOLATION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoViolation {
    /// 0x01: `IoFreeIrp` of an object whose `Type` is not IO_TYPE_IRP.
    FreedNonIrp {
        /// The object.
        object: u64,
    },
    /// 0x02: `IoFreeIrp` of an IRP still associated with a thread (one built by
    /// `IoBuildDeviceIoControlRequest` or `IoBuildSynchronousFsdRequest`, which the
    /// I/O manager frees itself at completion).
    FreedThreadedIrp {
        /// The IRP.
        irp: u64,
    },
    /// 0x05: the IRQL changed during a dispatch routine.
    IrqlChanged {
        /// The device object the routine was called for.
        device: u64,
        /// The IRQL before the call.
        before: Irql,
        /// The IRQL after it.
        after: Irql,
    },
    /// 0x06: `IoCompleteRequest` with `IoStatus.Status` STATUS_PENDING (or -1).
    CompletedPending {
        /// The status.
        status: u32,
        /// The IRP.
        irp: u64,
    },
    /// 0x07: `IoCompleteRequest` while the IRP's cancel routine is still set.
    CompletedWithCancelRoutine {
        /// The cancel routine.
        routine: u64,
        /// The IRP.
        irp: u64,
    },
    /// 0x08: `IoBuildAsynchronousFsdRequest` given a buffer it cannot use.
    BadFsdBuffer {
        /// The target device.
        device: u64,
        /// The major function.
        major: u64,
        /// The status of the exception the buffer raised.
        status: u32,
    },
    /// 0x09: `IoBuildDeviceIoControlRequest` given a buffer it cannot use.
    BadIoctlBuffer {
        /// The target device.
        device: u64,
        /// The I/O control code.
        code: u32,
        /// The status of the exception the buffer raised.
        status: u32,
    },
    /// 0x0C: the IRP's I/O status block lies on a stack that has unwound past it
    /// (a local of a routine that returned before the IRP completed).
    IosbOnUnwoundStack {
        /// The I/O status block.
        iosb: u64,
    },
    /// 0x0D: the IRP's user event lies on a stack that has unwound past it.
    EventOnUnwoundStack {
        /// The event.
        event: u64,
    },
    /// 0x0E: `IoCompleteRequest` above DISPATCH_LEVEL.
    CompletedAboveDispatch {
        /// The caller's IRQL.
        irql: Irql,
        /// The IRP.
        irp: u64,
    },
    /// 0x10: `IoCallDriver` above DISPATCH_LEVEL.
    CalledAboveDispatch {
        /// The caller's IRQL.
        irql: Irql,
    },
    /// WDM DRIVER ERROR 0x20B (fatal): `IoFreeIrp` of an IRP still in use — sent down
    /// a stack with `IoCallDriver` and not completed back.
    FreedIrpInUse {
        /// The address in the driver's code that called `IoFreeIrp` (0: unknown).
        caller: u64,
        /// The IRP.
        irp: u64,
        /// The device whose driver holds it.
        device: u64,
    },
}

impl IoViolation {
    /// The bug check's four parameters (Microsoft, "Bug Check 0xC9").
    pub fn parameters(self) -> [u64; 4] {
        let i = |irql: Irql| u64::from(irql.0);
        match self {
            IoViolation::FreedNonIrp { object } => [0x01, object, 0, 0],
            IoViolation::FreedThreadedIrp { irp } => [0x02, irp, 0, 0],
            IoViolation::IrqlChanged { device, before, after } => [0x05, device, i(before), i(after)],
            IoViolation::CompletedPending { status, irp } => [0x06, u64::from(status), irp, 0],
            IoViolation::CompletedWithCancelRoutine { routine, irp } => [0x07, routine, irp, 0],
            IoViolation::BadFsdBuffer { device, major, status } => [0x08, device, major, u64::from(status)],
            IoViolation::BadIoctlBuffer { device, code, status } => [0x09, device, u64::from(code), u64::from(status)],
            IoViolation::IosbOnUnwoundStack { iosb } => [0x0C, iosb, 0, 0],
            IoViolation::EventOnUnwoundStack { event } => [0x0D, event, 0, 0],
            IoViolation::CompletedAboveDispatch { irql, irp } => [0x0E, i(irql), irp, 0],
            IoViolation::CalledAboveDispatch { irql } => [0x10, i(irql), 0, 0],
            IoViolation::FreedIrpInUse { caller, irp, device } => [0x20B, caller, irp, device],
        }
    }

    /// The stop it is on `machine`.
    pub fn stop(self, machine: &Machine) -> BugCheck {
        machine.bugcheck(BugCheckCode::DRIVER_VERIFIER_IOMANAGER_VIOLATION, self.parameters())
    }
}

/// A non-fatal WDM DRIVER ERROR (the second table of the 0xC9 page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WdmError {
    /// The I/O error code (0x23D, …).
    pub code: u32,
    /// The IRP.
    pub irp: u64,
    /// The device object the driver was called for (0: none).
    pub device: u64,
}

impl WdmError {
    /// 0x23D: a dispatch routine returned STATUS_PENDING without `IoMarkIrpPending`
    /// (the same text as 0x24C, from Enhanced I/O Verification's check that "the
    /// driver returns STATUS_PENDING if and only if it has called IoMarkIrpPending").
    pub const PENDING_NOT_MARKED: u32 = 0x23D;
    /// 0x23E: a dispatch routine marked the IRP pending but did not return
    /// STATUS_PENDING.
    pub const MARKED_NOT_PENDING: u32 = 0x23E;
    /// 0x312: `IoStatus.Information` larger than the output part of the system
    /// buffer.
    pub const INFORMATION_TOO_LARGE: u32 = 0x312;

    /// What the 0xC9 page says the code means.
    pub fn meaning(self) -> &'static str {
        match self.code {
            WdmError::PENDING_NOT_MARKED => {
                "A driver has returned STATUS_PENDING but did not mark the IRP pending via a call to IoMarkIrpPending"
            }
            WdmError::MARKED_NOT_PENDING => "A driver has marked an IRP pending but didn't return STATUS_PENDING",
            WdmError::INFORMATION_TOO_LARGE => {
                "The IRP's IoStatus.Information is greater than the output section of the system buffer"
            }
            _ => "An I/O verification error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_0xc9_page() {
        let irp = 0xFFFF_A000_0000_1000;
        assert_eq!(IoViolation::FreedThreadedIrp { irp }.parameters(), [0x02, irp, 0, 0]);
        assert_eq!(IoViolation::CompletedWithCancelRoutine { routine: 0x10, irp }.parameters(), [0x07, 0x10, irp, 0]);
        let v = IoViolation::BadIoctlBuffer { device: 0x20, code: 0x22_2000, status: 0xC000_0005 };
        assert_eq!(v.parameters(), [0x09, 0x20, 0x22_2000, 0xC000_0005]);
        assert_eq!(IoViolation::CalledAboveDispatch { irql: Irql(3) }.parameters(), [0x10, 3, 0, 0]);
        let v = IoViolation::FreedIrpInUse { caller: 0x30, irp, device: 0x40 };
        assert_eq!(v.parameters(), [0x20B, 0x30, irp, 0x40]);
    }
}
