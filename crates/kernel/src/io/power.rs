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
//! **Where it differs.** Windows before Vista lets one power IRP at a time through a
//! device stack (`PoStartNextPowerIrp` releases the next) and sends D-IRPs only
//! when a power policy owner asks (`PoRequestPowerIrp`, not exported yet); ntmem
//! sends each request a scenario asks for, one at a time.

use super::device::DeviceObject;
use super::irp::{IrpContents, IrpFlags, Parameters};
use super::{Dispatch, MajorFunction};
use crate::bugcheck::BugCheck;
use crate::ex::pool::NtStatus;
use crate::ke::processor::Cpu;
use crate::mm::mdl::ProcessorMode;

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
    let contents = IrpContents {
        major: MajorFunction::Power,
        minor: request.minor as u8,
        parameters: Parameters::Power {
            system_context: 0,
            kind: state.kind(),
            state: state.value(),
            shutdown: state.action(),
        },
        device,
        mode: ProcessorMode::KernelMode,
        flags: IrpFlags::empty(),
        system_buffer: 0,
        mdl: 0,
        user_buffer: 0,
        file: 0,
    };
    let sent = super::pnp::send_system_irp(cpu, &contents, driver)?;
    Ok(sent.map(|s| PowerOutcome { returned: s.returned, completed: s.completed }))
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
