//! Power requests (learn.microsoft.com "IRP_MN_SET_POWER", "IRP_MN_QUERY_POWER",
//! "Handling Power IRPs", "PoSetPowerState", "POWER_STATE union (wdm.h)",
//! "SYSTEM_POWER_STATE", "DEVICE_POWER_STATE", "POWER_ACTION").
//!
//! The power manager's part: [`send`] delivers `IRP_MJ_POWER` with
//! `IRP_MN_SET_POWER` or `IRP_MN_QUERY_POWER` for a system state (an S-IRP) or a
//! device state (a D-IRP) to the top of a device stack, `IoStatus.Status`
//! STATUS_NOT_SUPPORTED, as a kernel-mode request; drivers pass it down
//! (`PoCallDriver`, after `PoStartNextPowerIrp` on the editions before Vista) to the
//! PDO, whose stand-in for the bus driver succeeds set-power and query-power
//! ([`crate::io::stack`]'s caller). `Parameters.Power.ShutdownType` is the
//! `POWER_ACTION` the state implies (sleeping states `PowerActionSleep`, S4
//! `PowerActionHibernate`, S5 `PowerActionShutdown`, otherwise `PowerActionNone`:
//! ntmem's choice for a request no user action started).
//!
//! A driver asks for a power IRP with [`po_request_power_irp`] (`PoRequestPowerIrp`:
//! a D-IRP — set or query a device power state — or a wait/wake IRP): the IRP goes
//! to the top of the target's stack and, once completed, the requester's
//! `PowerCompletion` routine is called with the IRP's I/O status before the IRP is
//! freed.
//!
//! **Where it differs.** Windows before Vista lets one power IRP at a time through a
//! device stack (`PoStartNextPowerIrp` releases the next); ntmem sends each request
//! a scenario or a driver asks for as it comes. The PDO's stand-in for the bus
//! driver does not support wake: a wait/wake IRP that reaches it completes with
//! STATUS_NOT_SUPPORTED.

use super::device::DeviceObject;
use super::irp::{Irp, IrpContents, Parameters};
use super::{Dispatch, IrpOrigin, IrpRecord, MajorFunction};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;

/// `IRP_MN_*` of `IRP_MJ_POWER` that ntmem sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum PowerMinor {
    /// `IRP_MN_SET_POWER` (0x02).
    SetPower = 0x02,
    /// `IRP_MN_QUERY_POWER` (0x03).
    QueryPower = 0x03,
}

/// A power state: `POWER_STATE` with its `POWER_STATE_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    /// `SystemPowerState`: a `SYSTEM_POWER_STATE` (1 `PowerSystemWorking` (S0) … 6
    /// `PowerSystemShutdown` (S5)).
    System(u32),
    /// `DevicePowerState`: a `DEVICE_POWER_STATE` (1 `PowerDeviceD0` … 4
    /// `PowerDeviceD3`).
    Device(u32),
}

/// `PowerSystemWorking`.
pub const POWER_SYSTEM_WORKING: u32 = 1;
/// `PowerSystemHibernate` (S4).
pub const POWER_SYSTEM_HIBERNATE: u32 = 5;
/// `PowerSystemShutdown` (S5).
pub const POWER_SYSTEM_SHUTDOWN: u32 = 6;
/// `PowerDeviceD0`.
pub const POWER_DEVICE_D0: u32 = 1;

impl PowerState {
    /// `POWER_STATE_TYPE`: `SystemPowerState` 0, `DevicePowerState` 1.
    pub fn kind(self) -> u32 {
        match self {
            PowerState::System(_) => 0,
            PowerState::Device(_) => 1,
        }
    }

    /// The `POWER_STATE` value.
    pub fn value(self) -> u32 {
        match self {
            PowerState::System(s) | PowerState::Device(s) => s,
        }
    }

    /// The `POWER_ACTION` a request for this state carries (see the module docs):
    /// `PowerActionNone` 0, `PowerActionSleep` 2, `PowerActionHibernate` 3,
    /// `PowerActionShutdown` 4.
    pub fn action(self) -> u32 {
        match self {
            PowerState::System(s) if (2..POWER_SYSTEM_HIBERNATE).contains(&s) => 2,
            PowerState::System(POWER_SYSTEM_HIBERNATE) => 3,
            PowerState::System(POWER_SYSTEM_SHUTDOWN) => 4,
            _ => 0,
        }
    }
}

/// A power request for a device stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerRequest {
    /// Set or query.
    pub minor: PowerMinor,
    /// The state.
    pub state: PowerState,
}

/// What came back from a power IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerOutcome {
    /// What the dispatch routine returned (`None`: the driver has no `IRP_MJ_POWER`
    /// routine; the IRP was completed as it was, STATUS_NOT_SUPPORTED).
    pub returned: Option<NtStatus>,
    /// The final status if the IRP was completed.
    pub completed: Option<NtStatus>,
    /// The IRP, while it is pending (a driver completes it later: from a worker thread,
    /// or from the callback of a device power IRP it requested).
    pub pending: Option<Irp>,
}

/// The power states a driver recorded for a device with `PoSetPowerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The system state (`PowerSystemWorking` until recorded).
    pub system: u32,
    /// The device state (`PowerDeviceD0` until recorded).
    pub device: u32,
}

/// `PoSetPowerState(DeviceObject, Type, State)`: records `state` for `device` and
/// returns the state of that type recorded before (`PowerSystemWorking` /
/// `PowerDeviceD0` for a device never recorded: ntmem's starting point, its
/// hardware being always on).
pub fn po_set_power_state(cpu: &Cpu<'_>, device: DeviceObject, state: PowerState) -> u32 {
    let mut states = cpu.machine().io().power_states();
    let r = states.entry(device.0.get()).or_insert(Recorded { system: POWER_SYSTEM_WORKING, device: POWER_DEVICE_D0 });
    match state {
        PowerState::System(s) => std::mem::replace(&mut r.system, s),
        PowerState::Device(d) => std::mem::replace(&mut r.device, d),
    }
}

/// The states recorded for `device` ([`po_set_power_state`]), if any.
pub fn recorded(cpu: &Cpu<'_>, device: DeviceObject) -> Option<Recorded> {
    cpu.machine().io().power_states().get(&device.0.get()).copied()
}

/// Sends `IRP_MJ_POWER` / `request` to `device` (the top of its stack) through
/// `driver`, at the caller's IRQL (PASSIVE_LEVEL), as kernel-mode. `Ok(None)`: no
/// pool for the IRP.
///
/// # Errors
/// The bugcheck that stopped the machine (in the driver or the I/O manager).
pub fn send(
    cpu: &Cpu<'_>,
    device: DeviceObject,
    request: PowerRequest,
    driver: &dyn Dispatch,
) -> Result<Option<PowerOutcome>, BugCheck> {
    let state = request.state;
    let parameters =
        Parameters::Power { system_context: 0, kind: state.kind(), state: state.value(), shutdown: state.action() };
    let contents = IrpContents::system(MajorFunction::Power, request.minor as u8, parameters, device);
    let sent = super::pnp::send_system_irp(cpu, &contents, driver)?;
    Ok(sent.map(|s| PowerOutcome { returned: s.returned, completed: s.completed, pending: s.pending }))
}

/// `IRP_MN_WAIT_WAKE`.
pub const IRP_MN_WAIT_WAKE: u8 = 0x00;

/// What the requester of a power IRP asked to be called with when it completes
/// (`PoRequestPowerIrp`'s arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerCompletion {
    /// `CompletionFunction`, a `PREQUEST_POWER_COMPLETE` (0: none).
    pub routine: u64,
    /// `Context`.
    pub context: u64,
    /// `DeviceObject`: the target the requester named (its routine gets it back).
    pub target: u64,
    /// `MinorFunction`.
    pub minor: u8,
    /// `PowerState`.
    pub state: u32,
}

/// `PoRequestPowerIrp(DeviceObject, MinorFunction, PowerState, CompletionFunction,
/// Context, Irp)` (learn.microsoft.com, "PoRequestPowerIrp function (wdm.h)"): an
/// `IRP_MJ_POWER` IRP for the top of `completion.target`'s stack
/// (`IoGetAttachedDevice`), ready for that device's dispatch routine, its status
/// STATUS_NOT_SUPPORTED as every power IRP starts: `IRP_MN_SET_POWER` and
/// `IRP_MN_QUERY_POWER` carry the device power state (`Parameters.Power.Type`
/// `DevicePowerState`: a driver cannot request a system power IRP), `IRP_MN_WAIT_WAKE`
/// the system state (`Parameters.WaitWake.PowerState`). The caller delivers it and
/// the final completion hands back [`super::stack::Final::PowerRequested`]. The inner
/// `Err`: STATUS_INVALID_PARAMETER_2 for any other minor function,
/// STATUS_INSUFFICIENT_RESOURCES without pool for the IRP.
///
/// # Errors
/// PAGE_FAULT_IN_NONPAGED_AREA (0x50) for a target outside the address space.
pub fn po_request_power_irp(
    cpu: &Cpu<'_>,
    completion: PowerCompletion,
) -> Result<Result<(DeviceObject, Irp), NtStatus>, BugCheck> {
    let state = completion.state;
    let parameters = match completion.minor {
        IRP_MN_WAIT_WAKE => Parameters::WaitWake { state },
        m if m == PowerMinor::SetPower as u8 || m == PowerMinor::QueryPower as u8 => {
            Parameters::Power { system_context: 0, kind: PowerState::Device(state).kind(), state, shutdown: 0 }
        }
        _ => return Ok(Err(NtStatus::INVALID_PARAMETER_2)),
    };
    let target = DeviceObject(ntmem_machine::Va::new(completion.target));
    let top = super::pnp::io_get_attached_device(cpu, target)?;
    let contents = IrpContents::system(MajorFunction::Power, completion.minor, parameters, top);
    let Some(irp) = super::irp::build(cpu, &contents)? else { return Ok(Err(NtStatus::INSUFFICIENT_RESOURCES)) };
    irp.set_io_status(cpu, NtStatus::NOT_SUPPORTED, 0)?;
    let record = IrpRecord { origin: IrpOrigin::PowerRequest(completion), ..IrpRecord::request(None, 0) };
    cpu.machine().io().irps().insert(irp.0.get(), record);
    Ok(Ok((top, irp)))
}

/// Frees a `PoRequestPowerIrp` IRP once its requester's routine has run.
///
/// # Errors
/// MULTIPLE_IRP_COMPLETE_REQUESTS (0x44) for one that is not an IRP any more.
pub fn free_requested(cpu: &Cpu<'_>, irp: Irp) -> Result<(), BugCheck> {
    super::stack::free_irp(cpu, irp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_state_carries_the_action_it_implies() {
        assert_eq!(PowerState::System(POWER_SYSTEM_WORKING).action(), 0);
        assert_eq!(PowerState::System(4).action(), 2, "S3: PowerActionSleep");
        assert_eq!(PowerState::System(POWER_SYSTEM_HIBERNATE).action(), 3);
        assert_eq!(PowerState::System(POWER_SYSTEM_SHUTDOWN).action(), 4);
        assert_eq!(PowerState::Device(4).action(), 0);
        assert_eq!((PowerState::Device(4).kind(), PowerState::Device(4).value()), (1, 4));
    }
}
