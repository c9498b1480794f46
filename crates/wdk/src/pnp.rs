//! Plug and Play at the C boundary: `IoAttachDeviceToDeviceStack(Safe)`,
//! `IoGetAttachedDeviceReference` and `IoDetachDevice`, and the PnP manager's side of a function driver's life —
//! a PDO for a device of the machine, `AddDevice`, `IRP_MN_START_DEVICE` with the
//! device's raw and translated resource lists, and `IRP_MN_REMOVE_DEVICE` before
//! `DriverUnload` (kernel side: [`ntmem_kernel::io::pnp`]).
//!
//! Before unloading, a removal as Windows sends one (learn.microsoft.com "Removing a
//! Device", "Handling an IRP_MN_SURPRISE_REMOVAL Request"): `IRP_MN_QUERY_REMOVE_DEVICE`,
//! then `IRP_MN_REMOVE_DEVICE` if the stack agreed; if a driver vetoed it,
//! `IRP_MN_CANCEL_REMOVE_DEVICE` — and since the run ends anyway, the device is then
//! pulled: `IRP_MN_SURPRISE_REMOVAL` and `IRP_MN_REMOVE_DEVICE`.
//!
//! Power: `PoCallDriver`, `PoStartNextPowerIrp`, `PoSetPowerState`, and a scenario's
//! power step ([`power`]: `IRP_MJ_POWER` to the top of the stack; kernel side
//! [`ntmem_kernel::io::power`]).
//!
//! What happened is kept in the [`Driver`] ([`PnpState`]) so the driver host can
//! report it. AddDevice and the PnP and power IRPs run at PASSIVE_LEVEL in a system
//! thread, as on Windows.

use std::ffi::c_void;

use ntmem_kernel::ex::pool::NtStatus as KStatus;
use ntmem_kernel::hal::device::DeviceId;
use ntmem_kernel::hal::resources::{CmResourceData, CmResourceList};
use ntmem_kernel::io::pnp::{self, PnpMinor, PnpOutcome, PnpRequest};
use ntmem_kernel::io::power::{self, PowerCompletion, PowerOutcome, PowerRequest, PowerState};
use ntmem_kernel::io::returns::Caller;
use ntmem_kernel::io::DeviceObject;
use ntmem_kernel::ke::workers::{Work, WorkKind};
use ntmem_kernel::{BugCheck, Machine};

use crate::context::{self, host_ptr, kernel, va_of};
use crate::io::CDispatch;
use crate::loader::Driver;
use crate::seh::ThreadKind;
use crate::types::NtStatus;

/// `STATUS_PENDING`.
const STATUS_PENDING: NtStatus = 0x103;
/// `STATUS_NO_SUCH_DEVICE`.
const STATUS_NO_SUCH_DEVICE: i32 = 0xC000_000E_u32 as i32;

/// One thing the PnP manager did to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PnpEvent {
    /// `AddDevice`, or the PnP IRP's minor (`IRP_MN_START_DEVICE`, …).
    pub step: &'static str,
    /// The NTSTATUS it ended with (`None`: nothing was called).
    pub status: Option<i32>,
    /// What was handed over, in a line.
    pub note: String,
}

impl PnpEvent {
    /// Whether the driver failed to bring the device up: AddDevice or
    /// IRP_MN_START_DEVICE ended in an error. The removal's statuses are reported,
    /// not judged: a query-remove's failure is a veto, the driver's answer, and the
    /// PnP manager goes on with a cancel, surprise removal or remove whatever they
    /// return (drivers must not fail those).
    pub fn failed(&self) -> bool {
        let bringing_up = self.step == "AddDevice" || self.step == PnpMinor::StartDevice.name();
        bringing_up && self.status.is_some_and(|s| s < 0)
    }
}

/// The device stack the PnP manager built for a driver.
#[derive(Debug, Default)]
pub struct PnpState {
    device: Option<DeviceId>,
    pdo: Option<DeviceObject>,
    fdo: Option<DeviceObject>,
    started: bool,
    removed: bool,
    events: Vec<PnpEvent>,
}

/// `IoAttachDeviceToDeviceStack`.
pub extern "win64" fn IoAttachDeviceToDeviceStack(source: *mut c_void, target: *mut c_void) -> *mut c_void {
    if source.is_null() || target.is_null() {
        return std::ptr::null_mut();
    }
    kernel(|cpu| {
        let (s, t) = (DeviceObject(va_of(cpu, source)), DeviceObject(va_of(cpu, target)));
        let lower = pnp::io_attach_device_to_device_stack(cpu, s, t)?;
        Ok(host_ptr(cpu, lower.map(|d| d.0)))
    })
}

/// `IoAttachDeviceToDeviceStackSafe` (learn.microsoft.com,
/// "IoAttachDeviceToDeviceStackSafe function (wdm.h)"): as
/// `IoAttachDeviceToDeviceStack`, the device attached to stored at
/// `*AttachedToDeviceObject` (before anything could send `SourceDevice` an IRP);
/// STATUS_SUCCESS, or STATUS_NO_SUCH_DEVICE (and NULL stored) when it cannot attach.
///
/// # Safety
/// `attached_to` is a writable `PDEVICE_OBJECT` (checked as memory).
pub unsafe extern "win64" fn IoAttachDeviceToDeviceStackSafe(
    source: *mut c_void,
    target: *mut c_void,
    attached_to: *mut *mut c_void,
) -> i32 {
    kernel(|cpu| {
        let out = crate::context::checked(cpu, attached_to.cast(), 8)?.cast::<*mut c_void>();
        let lower = if source.is_null() || target.is_null() {
            None
        } else {
            let (s, t) = (DeviceObject(va_of(cpu, source)), DeviceObject(va_of(cpu, target)));
            pnp::io_attach_device_to_device_stack(cpu, s, t)?
        };
        // SAFETY: 8 mapped bytes (checked above), the caller's PDEVICE_OBJECT.
        unsafe { out.write_unaligned(host_ptr(cpu, lower.map(|d| d.0))) };
        Ok(if lower.is_some() { 0 } else { STATUS_NO_SUCH_DEVICE })
    })
}

/// `IoGetAttachedDeviceReference` (learn.microsoft.com,
/// "IoGetAttachedDeviceReference function (wdm.h)"): the highest device of
/// `DeviceObject`'s stack, with a reference for the caller to drop with
/// `ObDereferenceObject` ([`ntmem_kernel::io::device`]).
///
/// # Safety
/// `device` is a device object (checked as memory).
pub unsafe extern "win64" fn IoGetAttachedDeviceReference(device: *mut c_void) -> *mut c_void {
    kernel(|cpu| {
        crate::context::checked(cpu, device, ntmem_kernel::io::device::DEVICE_OBJECT_SIZE)?;
        let top = pnp::io_get_attached_device(cpu, DeviceObject(va_of(cpu, device)))?;
        cpu.machine().objects().reference(ntmem_kernel::io::device::ob_key(cpu, top));
        Ok(host_ptr(cpu, Some(top.0)))
    })
}

/// `IoDetachDevice`.
pub extern "win64" fn IoDetachDevice(target: *mut c_void) {
    if target.is_null() {
        return;
    }
    kernel(|cpu| pnp::io_detach_device(cpu, DeviceObject(va_of(cpu, target))));
}

fn describe(list: &CmResourceList) -> String {
    let parts: Vec<String> = list
        .list
        .iter()
        .flat_map(|f| f.partial_resource_list.partial_descriptors.iter())
        .map(|d| match d.u {
            CmResourceData::Port { start, length } => format!("Port {:#x}+{length:#x}", start.get()),
            CmResourceData::Memory { start, length } => format!("Memory {:#x}+{length:#x}", start.get()),
            CmResourceData::Interrupt { level, vector, .. } => format!("Interrupt level {level} vector {vector:#x}"),
        })
        .collect();
    parts.join(", ")
}

fn blame(driver: &Driver, mut b: BugCheck) -> BugCheck {
    b.driver = Some(driver.name().to_string());
    b
}

/// Sends `request` to the driver's FDO.
fn send(
    driver: &Driver,
    machine: &Machine,
    cpu: u32,
    fdo: DeviceObject,
    request: &PnpRequest,
) -> Result<PnpOutcome, BugCheck> {
    // The PnP manager sends its IRPs from a system worker thread.
    let dispatch = CDispatch { object: driver.object_ptr(), caller: Caller::Worker };
    context::call_driver(machine, cpu, ThreadKind::System, |c| pnp::send(c, fdo, request, &dispatch))
        .map_err(|b| blame(driver, b))
}

/// The bus enumerates `device`: the PnP manager gets a PDO for it. Done before the
/// driver loads (the PDO is the bus driver's, not counted against the driver).
///
/// # Errors
/// The bugcheck that stopped the machine (no pool for the PDO).
pub fn enumerate(driver: &mut Driver, machine: &Machine, cpu: u32, device: DeviceId) -> Result<(), BugCheck> {
    let pdo = machine.run(cpu, pnp::create_pdo)?;
    driver.pnp.device = Some(device);
    driver.pnp.pdo = pdo.ok();
    Ok(())
}

/// After DriverEntry: if the driver set `DriverExtension->AddDevice`, calls it with
/// the PDO, then sends `IRP_MN_START_DEVICE` with the device's raw and translated
/// resource lists to the device AddDevice attached (or else its first device).
/// Returns whether the device started (false also when there is no AddDevice).
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn add_and_start(driver: &mut Driver, machine: &Machine, cpu: u32) -> Result<bool, BugCheck> {
    let (Some(pdo), Some(device)) = (driver.pnp.pdo, driver.pnp.device) else { return Ok(false) };
    if driver.add_device_routine().is_none() {
        return Ok(false);
    }
    let status = driver.add_device(machine, cpu, pdo)?.unwrap_or(0);
    let top = machine.run(cpu, |c| pnp::attached_device(c, pdo))?;
    let fdo = top.or_else(|| crate::io::devices(driver, machine).first().copied());
    let attached = if top.is_some() { "FDO attached above the PDO" } else { "nothing attached to the PDO" };
    let note =
        format!("PDO {:#x} of {}; {attached}", pdo.0.get(), machine.hal().device(device).map_or("?", |d| d.name));
    driver.pnp.events.push(PnpEvent { step: "AddDevice", status: Some(status), note });
    let Some(fdo) = fdo.filter(|_| status >= 0) else { return Ok(false) };
    driver.pnp.fdo = Some(fdo);
    let (Some(raw), Some(translated)) =
        (machine.hal().allocated_resources(device), machine.hal().allocated_resources_translated(device))
    else {
        return Ok(false);
    };
    let note = format!("raw: {}; translated: {}", describe(&raw), describe(&translated));
    let outcome = send(driver, machine, cpu, fdo, &PnpRequest::StartDevice { raw, translated })?;
    let status = outcome.status.0 as i32;
    driver.pnp.events.push(PnpEvent { step: "IRP_MN_START_DEVICE", status: Some(status), note });
    driver.pnp.started = status >= 0;
    Ok(driver.pnp.started)
}

/// Before DriverUnload: the removal (see the module docs) to the FDO, once (nothing
/// when the driver has no FDO from AddDevice). Returns the last event, if any was
/// sent.
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn remove(driver: &mut Driver, machine: &Machine, cpu: u32) -> Result<Option<PnpEvent>, BugCheck> {
    let Some(fdo) = driver.pnp.fdo.filter(|_| !driver.pnp.removed) else { return Ok(None) };
    driver.pnp.removed = true;
    let was = if driver.pnp.started { "the device was started" } else { "the device was not started" };
    let mut sent = |minor: PnpMinor, note: &str| -> Result<PnpEvent, BugCheck> {
        let outcome = send(driver, machine, cpu, fdo, &PnpRequest::Plain(minor))?;
        let event = PnpEvent { step: minor.name(), status: Some(outcome.status.0 as i32), note: note.to_string() };
        driver.pnp.events.push(event.clone());
        Ok(event)
    };
    let query = sent(PnpMinor::QueryRemoveDevice, was)?;
    if query.status.is_some_and(|s| s >= 0) {
        return sent(PnpMinor::RemoveDevice, was).map(Some);
    }
    sent(PnpMinor::CancelRemoveDevice, "the removal was vetoed")?;
    sent(PnpMinor::SurpriseRemoval, "the run ends: the device is pulled")?;
    sent(PnpMinor::RemoveDevice, "after the surprise removal").map(Some)
}

/// A scenario's power step: `IRP_MJ_POWER` / `request` to the top of the driver's
/// stack (its FDO, or else its first device). `None`: the driver has no device.
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn power(
    driver: &mut Driver,
    machine: &Machine,
    cpu: u32,
    request: PowerRequest,
) -> Result<Option<PowerOutcome>, BugCheck> {
    let Some(device) = driver.pnp.fdo.or_else(|| crate::io::devices(driver, machine).first().copied()) else {
        return Ok(None);
    };
    let dispatch = CDispatch { object: driver.object_ptr(), caller: Caller::Worker };
    let top = machine.run(cpu, |c| pnp::io_get_attached_device(c, device))?;
    let sent = context::call_driver(machine, cpu, ThreadKind::System, |c| power::send(c, top, request, &dispatch));
    let Some(mut outcome) = sent.map_err(|b| blame(driver, b))? else {
        return Ok(Some(PowerOutcome {
            returned: None,
            completed: Some(KStatus::INSUFFICIENT_RESOURCES),
            pending: None,
        }));
    };
    if let Some(irp) = outcome.pending {
        // Left pending: what the machine owes it now (a worker thread sending the device
        // power IRP the driver asked for, whose callback completes this one) runs first.
        crate::ke_dispatcher::settle(machine, cpu, 0).map_err(|b| blame(driver, b))?;
        outcome.completed = machine.io().take_completion(irp).map(|(s, _)| s);
        outcome.pending = outcome.completed.is_none().then_some(irp);
    }
    Ok(Some(outcome))
}

/// `PoCallDriver(DeviceObject, Irp)`: passes a power IRP down, as `IoCallDriver`
/// (learn.microsoft.com "PoCallDriver"; before Vista the power manager also holds
/// back the stack's next power IRP until `PoStartNextPowerIrp`: not modelled).
///
/// # Safety
/// As [`crate::io_stack::IofCallDriver`].
pub unsafe extern "win64" fn PoCallDriver(device: *mut c_void, irp: *mut c_void) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe { crate::io_stack::IofCallDriver(device, irp) }
}

/// `PoStartNextPowerIrp(Irp)`: lets the power manager send the stack's next power
/// IRP (Windows before Vista). ntmem sends power IRPs one at a time anyway: nothing
/// to release.
pub extern "win64" fn PoStartNextPowerIrp(_irp: *mut c_void) {}

/// `PoSetPowerState(DeviceObject, Type, State)`: records the device's new system
/// or device power state and returns the one recorded before
/// ([`ntmem_kernel::io::power::po_set_power_state`]). A `Type` other than
/// `SystemPowerState` (0) or `DevicePowerState` (1) records nothing and returns 0.
///
/// # Safety
/// `device` is a device object (checked as memory).
pub unsafe extern "win64" fn PoSetPowerState(device: *mut c_void, kind: u32, state: u32) -> u32 {
    kernel(|cpu| {
        crate::context::checked(cpu, device, ntmem_kernel::io::device::DEVICE_OBJECT_SIZE)?;
        let state = match kind {
            0 => PowerState::System(state),
            1 => PowerState::Device(state),
            _ => return Ok(0),
        };
        Ok(power::po_set_power_state(cpu, DeviceObject(va_of(cpu, device)), state))
    })
}

/// `PREQUEST_POWER_COMPLETE`: `(DeviceObject, MinorFunction, PowerState, Context,
/// IoStatus)`.
type RequestPowerComplete = unsafe extern "win64" fn(*mut c_void, u8, u32, *mut c_void, *mut c_void);

/// `PoRequestPowerIrp(DeviceObject, MinorFunction, PowerState, CompletionFunction,
/// Context, Irp)` (learn.microsoft.com, "PoRequestPowerIrp function (wdm.h)"): builds
/// a power IRP for the top of `device`'s stack
/// ([`ntmem_kernel::io::power::po_request_power_irp`]), stores it in `*irp_out` when
/// given, sends it and returns STATUS_PENDING; STATUS_INVALID_PARAMETER_2 for a minor
/// other than SET_POWER, QUERY_POWER or WAIT_WAKE, STATUS_INSUFFICIENT_RESOURCES
/// without pool. Called at PASSIVE_LEVEL the IRP goes to the driver at once, in the
/// caller's thread; above it (a completion routine at DISPATCH_LEVEL), a system
/// worker thread sends it at PASSIVE_LEVEL, as the power manager does for a stack
/// whose drivers page (DO_POWER_PAGABLE: ntmem treats every stack so). Once the IRP is
/// completed, `completion` (if not NULL) runs with `device`, the minor function, the
/// state, `context` and the IRP's `IoStatus`, and the IRP is freed. Callable at
/// IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `device` is a device object (checked as memory); `completion` the driver's routine.
pub unsafe extern "win64" fn PoRequestPowerIrp(
    device: *mut c_void,
    minor: u8,
    state: u32,
    completion: *mut c_void,
    context: *mut c_void,
    irp_out: *mut *mut c_void,
) -> NtStatus {
    let built = kernel(|cpu| {
        crate::context::checked(cpu, device, ntmem_kernel::io::device::DEVICE_OBJECT_SIZE)?;
        if !irp_out.is_null() {
            crate::context::checked(cpu, irp_out.cast(), 8)?;
        }
        let requested = PowerCompletion {
            routine: completion as u64,
            context: context as u64,
            target: va_of(cpu, device).get(),
            minor,
            state,
        };
        let (top, irp) = match power::po_request_power_irp(cpu, requested)? {
            Ok(built) => built,
            Err(status) => return Ok(Err(status)),
        };
        let (top, irp) = (host_ptr(cpu, Some(top.0)), host_ptr(cpu, Some(irp.0)));
        if !irp_out.is_null() {
            // SAFETY: checked mapped above: the caller's PIRP variable.
            unsafe { irp_out.write_unaligned(irp) };
        }
        if cpu.irql() > ntmem_kernel::ke::irql::Irql::PASSIVE {
            let work =
                Work { kind: WorkKind::PowerIrp, routine: 0, argument1: top as u64, argument2: irp as u64, item: 0 };
            cpu.machine().workers().queue(work);
            return Ok(Ok(None));
        }
        Ok(Ok(Some((top, irp))))
    });
    match built {
        Err(status) => status.0 as NtStatus,
        Ok(now) => {
            if let Some((top, irp)) = now {
                crate::io_stack::deliver(top, irp);
            }
            STATUS_PENDING
        }
    }
}

/// A `PoRequestPowerIrp` IRP's final completion: the requester's routine with the
/// IRP's `IoStatus` (+0x30), then the IRP freed.
pub(crate) fn power_requested(irp: ntmem_kernel::io::Irp, requested: PowerCompletion) {
    let (target, status_block) = kernel(|cpu| {
        Ok((
            host_ptr(cpu, Some(ntmem_machine::Va::new(requested.target))),
            host_ptr(cpu, Some(irp.0)).wrapping_byte_add(0x30),
        ))
    });
    if requested.routine != 0 {
        // SAFETY: the driver's PREQUEST_POWER_COMPLETE ([`routine`] refuses what is not
        // image code).
        let r: RequestPowerComplete = unsafe { crate::io_cancel::routine(requested.routine as *const c_void) };
        let context = requested.context as *mut c_void;
        // SAFETY: called as the power manager calls it, before the IRP is freed.
        ntmem_host::thunk::preserving_capture(|| unsafe {
            r(target, requested.minor, requested.state, context, status_block)
        });
    }
    kernel(|cpu| power::free_requested(cpu, irp));
}

/// The bus forgets the device: deletes the PDO (after the driver is gone).
///
/// # Errors
/// The bugcheck that stopped the machine.
pub fn delete_pdo(driver: &mut Driver, machine: &Machine, cpu: u32) -> Result<(), BugCheck> {
    match driver.pnp.pdo.take() {
        Some(pdo) => machine.run(cpu, |c| pnp::delete_pdo(c, pdo)),
        None => Ok(()),
    }
}

/// What the PnP manager did to the driver so far.
pub fn events(driver: &Driver) -> &[PnpEvent] {
    &driver.pnp.events
}
