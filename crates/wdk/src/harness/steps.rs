//! Running a scenario's steps against a loaded driver (issue 5 item 4), C or
//! Rust: anything that implements [`Target`] (a [`Driver`] from the loader, or a
//! Rust driver the [`super::Harness`] loaded). `ntmem run` uses it for C drivers.
//!
//! Requests go through the handle a step names (`open` made it: the device named,
//! found by name or symbolic link, with its file object; `close` sends
//! IRP_MJ_CLEANUP and IRP_MJ_CLOSE; handles still open when the scenario ends are
//! closed as their process ends, after its requests still pending are cancelled),
//! else to the first device the driver created. A user request's
//! buffers are allocated in the named process (created on first use) as a program
//! would allocate them (`NtAllocateVirtualMemory`, read-write, one region per
//! buffer), filled, sent through the I/O manager, read back and released; an
//! internal device control uses nonpaged pool (tag "Scen") from kernel code. The
//! output bytes reported are the first `Information` bytes of the caller's output
//! buffer as the caller reads it afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;

use ntmem_kernel::ex::pool::{self, NtStatus, PoolTag, PoolType};
use ntmem_kernel::io::file::{self, FileObject, OpenFile};
use ntmem_kernel::io::power::{PowerOutcome, PowerRequest, PowerState};
use ntmem_kernel::io::request::{BufferAction, IoCall, IoOutcome, IoRequest, Ioctl};
use ntmem_kernel::io::{DeviceObject, Irp};
use ntmem_kernel::mm::process::{
    nt_allocate_virtual_memory, nt_free_virtual_memory, ps_create_process, AllocationType, FreeType, PageProtection,
    Process,
};
use ntmem_kernel::{BugCheck, Machine};
use ntmem_machine::Va;
use serde::Serialize;

use super::scenario::{Action, Protection, Step, MAX_SIMULATED_MS};
use crate::ex_event::UserEvent;
use crate::loader::Driver;
use crate::pnp::PnpEvent;

/// A loaded driver that scenario steps can drive.
pub trait Target {
    /// The devices it created, oldest first (requests go to the first).
    fn devices(&self, machine: &Machine) -> Vec<DeviceObject>;

    /// Sends `call` to it on processor `cpu`; returns what the caller sees.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine, blaming the driver.
    fn send(&self, machine: &Machine, cpu: u32, call: &IoCall) -> Result<IoOutcome, BugCheck>;

    /// Cancels `irp`, a request it left pending (`IoCancelIrp`, from an arbitrary
    /// thread); returns what `IoCancelIrp` returned.
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    fn cancel(&self, machine: &Machine, cpu: u32, irp: Irp) -> Result<bool, BugCheck> {
        crate::io_cancel::cancel(machine, cpu, irp)
    }

    /// Calls its unload routine, if it registered one (returns whether it did).
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    fn unload(&mut self, machine: &Machine, cpu: u32) -> Result<bool, BugCheck>;

    /// Before unloading: sends IRP_MN_REMOVE_DEVICE if the driver was started
    /// through Plug and Play (what happened, or `None`).
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    fn remove(&mut self, _machine: &Machine, _cpu: u32) -> Result<Option<PnpEvent>, BugCheck> {
        Ok(None)
    }

    /// Sends a power IRP to the top of its stack (`None`: it has no device, or no
    /// way to take one).
    ///
    /// # Errors
    /// The bugcheck that stopped the machine.
    fn power(
        &mut self,
        _machine: &Machine,
        _cpu: u32,
        _request: PowerRequest,
    ) -> Result<Option<PowerOutcome>, BugCheck> {
        Ok(None)
    }
}

impl Target for Driver {
    fn devices(&self, machine: &Machine) -> Vec<DeviceObject> {
        crate::io::devices(self, machine)
    }

    fn send(&self, machine: &Machine, cpu: u32, call: &IoCall) -> Result<IoOutcome, BugCheck> {
        crate::io::send(self, machine, cpu, call)
    }

    /// DriverUnload, then the image is unmapped as Windows unloads it
    /// (`MmUnloadSystemImage`): what the driver left behind — a timer, a DPC, a
    /// cancel routine of a request still pending — now points into an unloaded
    /// image (0xCE, 0xD4).
    fn unload(&mut self, machine: &Machine, cpu: u32) -> Result<bool, BugCheck> {
        let called = Driver::unload(self, machine, cpu)?;
        if called {
            self.unload_image(machine);
        }
        Ok(called)
    }

    fn remove(&mut self, machine: &Machine, cpu: u32) -> Result<Option<PnpEvent>, BugCheck> {
        crate::pnp::remove(self, machine, cpu)
    }

    fn power(&mut self, machine: &Machine, cpu: u32, request: PowerRequest) -> Result<Option<PowerOutcome>, BugCheck> {
        crate::pnp::power(self, machine, cpu, request)
    }
}

pub(crate) const SCENARIO_TAG: PoolTag = PoolTag::new(*b"Scen");

/// What one step did.
#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    /// 1-based index.
    pub index: usize,
    /// Line of the step in the scenario file.
    pub line: usize,
    /// `ioctl`, `internal_ioctl`, `read`, `write`, `trim`, `advance_ms`, `unload`,
    /// `open`, `close`.
    pub kind: &'static str,
    /// The I/O control code of an ioctl.
    pub code: Option<u32>,
    /// The final NTSTATUS of a request (the caller's I/O status block).
    pub status: Option<u32>,
    /// `IoStatus.Information`.
    pub information: Option<u64>,
    /// The output bytes, hex.
    pub output: Option<String>,
    /// Whether the IRP reached the driver / was completed.
    pub reached_driver: Option<bool>,
    /// Whether the driver completed the IRP.
    pub completed: Option<bool>,
    /// Whether the step did what was expected.
    pub ok: bool,
    /// Anything else worth saying.
    pub note: Option<String>,
}

impl StepResult {
    fn new(index: usize, step: &Step) -> StepResult {
        let kind = match &step.action {
            Action::Ioctl { internal: false, .. } => "ioctl",
            Action::Ioctl { internal: true, .. } => "internal_ioctl",
            Action::Read { .. } => "read",
            Action::Write { .. } => "write",
            Action::Trim => "trim",
            Action::AdvanceMs(_) => "advance_ms",
            Action::Unload => "unload",
            Action::Open { .. } => "open",
            Action::Close(_) => "close",
            Action::Cancel(_) => "cancel",
            Action::Dma { .. } => "dma",
            Action::Fragment(_) => "fragment",
            Action::CreateEvent { .. } => "event",
            Action::WaitEvent { .. } => "wait",
            Action::ResetEvent(_) => "reset",
            Action::Power(_) => "power",
        };
        StepResult {
            index,
            line: step.line,
            kind,
            code: None,
            status: None,
            information: None,
            output: None,
            reached_driver: None,
            completed: None,
            ok: true,
            note: None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The scenario's processes, by name.
#[derive(Default, Debug)]
struct Processes(BTreeMap<String, Arc<Process>>);

impl Processes {
    /// The process `name`, created on first use. Inner `Err`: the status its
    /// creation failed with (no memory for the process object or its page tables).
    fn get(&mut self, machine: &Machine, name: &str) -> Result<Result<Arc<Process>, NtStatus>, BugCheck> {
        if let Some(p) = self.0.get(name) {
            return Ok(Ok(Arc::clone(p)));
        }
        let p = match machine.run(0, |cpu| ps_create_process(cpu, name))? {
            Ok(p) => p,
            Err(status) => return Ok(Err(status)),
        };
        self.0.insert(name.to_string(), Arc::clone(&p));
        Ok(Ok(p))
    }
}

/// The scenario's open handles, by the name the `open` step gave them.
#[derive(Default, Debug)]
struct Handles(BTreeMap<String, OpenFile>);

/// The scenario's user events, by the name the `event` step gave their handles.
#[derive(Default, Debug)]
struct Events(BTreeMap<String, OpenEvent>);

/// A user event and the process whose handle names it.
#[derive(Debug)]
struct OpenEvent {
    process: Arc<Process>,
    event: UserEvent,
}

impl OpenEvent {
    /// Closes the handle in its process, dropping its reference (the last frees the
    /// event).
    fn close(&self, machine: &Machine) -> Result<(), BugCheck> {
        machine.run(0, |cpu| match cpu.machine().objects().close_from(Some(self.process.id()), self.event.handle) {
            Some(entry) => crate::ob::dereference(cpu, entry.object),
            None => Ok(()),
        })
    }
}

/// A request the driver left pending: what its caller still holds.
#[derive(Debug)]
struct PendingRequest {
    irp: Irp,
    process: Option<Arc<Process>>,
    input: Va,
    output: Va,
    output_len: u32,
    /// The step's `expect_status`, judged when the request completes.
    expect: Option<u32>,
}

/// The pending requests, by the 1-based number of their step.
#[derive(Default, Debug)]
struct Pending(BTreeMap<usize, PendingRequest>);

impl Pending {
    /// Requests completed since they were left pending (by a later step, a cancel):
    /// their steps' results get the final status, Information and output, and the
    /// caller's buffers are released.
    fn settle(&mut self, machine: &Machine, results: &mut [StepResult]) -> Result<(), BugCheck> {
        let done: Vec<usize> = self.0.iter().filter(|(_, p)| machine.io().irps_done(p.irp)).map(|(&n, _)| n).collect();
        for n in done {
            let p = self.0.remove(&n).expect("listed above");
            let Some((status, information)) = machine.io().take_completion(p.irp) else { continue };
            let Some(r) = results.get_mut(n - 1) else { continue };
            r.status = Some(status.0);
            r.information = Some(information);
            r.completed = Some(true);
            let shown = information.min(u64::from(p.output_len));
            r.output = read_back(machine, p.process.as_ref(), p.output, shown)?.map(|b| hex(&b));
            r.note = Some("completed after it was left pending".to_string());
            judge(r, p.expect);
            release(machine, p.process.as_ref(), p.input)?;
            release(machine, p.process.as_ref(), p.output)?;
        }
        Ok(())
    }
}

/// STATUS_INVALID_HANDLE: a step names a handle that is not open.
const INVALID_HANDLE: NtStatus = NtStatus(0xC000_0008);
/// STATUS_TIMEOUT (WAIT_TIMEOUT): a `wait` step's event was not signalled.
const STATUS_TIMEOUT: u32 = 0x102;

/// Runs `steps`; stops at the first bugcheck (returned with the results so far,
/// the last of them the step during which the machine stopped, not ok).
/// `unloaded` says whether a step called DriverUnload.
pub fn run<T: Target + ?Sized>(
    driver: &mut T,
    machine: &Machine,
    steps: &[Step],
) -> (Vec<StepResult>, bool, Option<BugCheck>) {
    let mut results = Vec::new();
    let mut processes = Processes::default();
    let mut handles = Handles::default();
    let mut events = Events::default();
    let mut pending = Pending::default();
    let mut unloaded = false;
    for (i, step) in steps.iter().enumerate() {
        let mut r = StepResult::new(i + 1, step);
        let mut state =
            State { processes: &mut processes, handles: &mut handles, events: &mut events, pending: &mut pending };
        let mut stop = run_one(driver, machine, &mut state, step, &mut unloaded, &mut r).err();
        if let Some(b) = &stop {
            r.ok = false;
            r.note = Some(format!("the machine stopped during this step: {b}"));
        }
        results.push(r);
        if stop.is_none() && !unloaded {
            // The DPCs the step's driver routines queued run now.
            stop = crate::ke_dispatcher::settle(machine, 0, 0).err();
        }
        if stop.is_none() {
            stop = pending.settle(machine, &mut results).err();
        }
        if stop.is_some() {
            return (results, unloaded, stop);
        }
    }
    // A process that ends first cancels its requests still pending (IoCancelThreadIo:
    // IoCancelIrp of each), even after the driver was unloaded — a cancel routine
    // left in the unloaded image is then the stop for a driver unloaded with requests
    // pending (0xD4 at the cancel spin lock's DISPATCH_LEVEL, 0xCE below it) —, then
    // closes its handles (cleanup and close, as the object manager does at its exit);
    // then the processes end.
    let users: Vec<Irp> = pending.0.values().filter(|p| p.process.is_some()).map(|p| p.irp).collect();
    for irp in users {
        let cancelled = driver.cancel(machine, 0, irp).and_then(|_| {
            if !unloaded {
                crate::ke_dispatcher::settle(machine, 0, 0)?;
            }
            pending.settle(machine, &mut results)
        });
        if let Err(b) = cancelled {
            return (results, unloaded, Some(b));
        }
    }
    for open in std::mem::take(&mut handles.0).into_values() {
        if !unloaded {
            if let Err(b) = close(driver, machine, &open) {
                return (results, unloaded, Some(b));
            }
        }
    }
    for open in std::mem::take(&mut events.0).into_values() {
        if let Err(b) = open.close(machine) {
            return (results, unloaded, Some(b));
        }
    }
    for p in processes.0.values() {
        if let Err(b) = machine.run(0, |cpu| ntmem_kernel::mm::process::ps_terminate_process(cpu, p)) {
            return (results, unloaded, Some(b));
        }
    }
    (results, unloaded, None)
}

fn judge(r: &mut StepResult, expect: Option<u32>) {
    let status = r.status.unwrap_or(0);
    r.ok = match expect {
        Some(e) => status == e,
        None => !NtStatus(status).is_error(),
    };
}

/// Runs one step, filling `r`.
/// What the steps keep between them.
struct State<'a> {
    processes: &'a mut Processes,
    handles: &'a mut Handles,
    events: &'a mut Events,
    pending: &'a mut Pending,
}

fn run_one<T: Target + ?Sized>(
    driver: &mut T,
    machine: &Machine,
    state: &mut State<'_>,
    step: &Step,
    unloaded: &mut bool,
    r: &mut StepResult,
) -> Result<(), BugCheck> {
    let State { processes, handles, events, pending } = state;
    // Time, trimming and fragmentation go on without the driver: a timer or DPC it
    // left queued then fires into its unloaded image (0xD4 at DISPATCH_LEVEL).
    let machine_wide = matches!(step.action, Action::Trim | Action::AdvanceMs(_) | Action::Fragment(_));
    if *unloaded && !machine_wide {
        r.ok = false;
        r.note = Some("skipped: the driver was unloaded".to_string());
        return Ok(());
    }
    match &step.action {
        Action::Trim => {
            r.note = Some(match machine.trim() {
                Ok(pages) => format!("{pages} pages written to the paging file"),
                Err(e) => format!("trim failed: {e}"),
            });
        }
        Action::AdvanceMs(ms) if machine.now_ms().saturating_add(*ms) > MAX_SIMULATED_MS => {
            r.ok = false;
            r.note = Some(format!(
                "skipped: simulated time ({} ms) cannot advance by {ms} ms, past the {MAX_SIMULATED_MS} ms a 100-ns LARGE_INTEGER holds",
                machine.now_ms()
            ));
        }
        Action::Fragment(percent) => {
            // The pins stay for the rest of the run (memory other code holds).
            let f = ntmem_kernel::mm::fragment::fragment(machine, *percent);
            r.note = Some(format!(
                "{} pages pinned in 64 KB blocks; largest free run {} pages, {} below 4 GB",
                f.pinned_pages, f.largest_free_run, f.largest_free_run_below_4gb
            ));
        }
        Action::AdvanceMs(ms) => {
            // Timers fire as their times come, their DPCs run.
            crate::ke_dispatcher::settle(machine, 0, *ms)?;
            r.note = Some(format!("simulated time is now {} ms", machine.now_ms()));
        }
        Action::Dma { channel: Some(channel), length, data, .. } => {
            let moved = machine.hal().dma().controller.device_moves(machine, *channel, *length, data);
            match moved {
                Ok(mv) => {
                    let way = if mv.moved.to_device { "to the device from" } else { "from the device to" };
                    let mut note = format!(
                        "{channel} moved {:#x} bytes {way} logical address {:#x}; {:#x} left",
                        mv.moved.bytes,
                        mv.moved.logical.get(),
                        mv.moved.left
                    );
                    if mv.terminal_count {
                        note.push_str(" (terminal count)");
                    }
                    r.note = Some(note);
                    if mv.moved.to_device {
                        r.output = Some(hex(&mv.moved.sample));
                    }
                    if let Some(c) = mv.completion {
                        // The terminal-count interrupt's DPC calls the driver's
                        // DMA completion routine.
                        crate::context::call_driver(machine, 0, crate::seh::ThreadKind::Arbitrary, |cpu| {
                            crate::context::enter(cpu, "DmaCompletionRoutine", || {
                                crate::hal_dma_v3::complete(c, crate::hal_dma_v3::DMA_COMPLETE);
                            });
                            Ok(())
                        })?;
                    }
                }
                Err(e) => {
                    r.ok = false;
                    r.note = Some(e);
                }
            }
        }
        Action::Dma { device, direction, data, .. } => {
            use ntmem_kernel::hal::dma::device_side::{device_transfer, Direction};
            let done = machine.hal().find(device).ok_or_else(|| format!("no device named {device}"));
            match done.and_then(|id| device_transfer(machine, id, *direction, data)) {
                Ok(t) => {
                    let (verb, which) = match direction {
                        Direction::ToDevice => ("read", "from"),
                        Direction::FromDevice => ("wrote", "to"),
                    };
                    let mut note =
                        format!("{device} {verb} {:#x} bytes {which} logical address {:#x}", t.length, t.logical.get());
                    if t.reached != t.logical {
                        note.push_str(&format!(
                            ", reaching {:#x}: the device drives fewer address lines than that needs",
                            t.reached.get()
                        ));
                    }
                    if t.in_ram < t.length as usize {
                        note.push_str(&format!(" ({} of them not RAM)", t.length as usize - t.in_ram));
                    }
                    r.note = Some(note);
                    if *direction == Direction::ToDevice {
                        r.output = Some(hex(&t.read[..t.read.len().min(64)]));
                    }
                }
                Err(e) => {
                    r.ok = false;
                    r.note = Some(e);
                }
            }
        }
        Action::Unload => {
            let removed = driver.remove(machine, 0)?;
            let called = driver.unload(machine, 0)?;
            *unloaded = true;
            let unload = if called { "DriverUnload called" } else { "no DriverUnload registered" };
            r.note = Some(match removed {
                Some(e) => format!("{} {:#010x}, then {unload}", e.step, e.status.unwrap_or(0) as u32),
                None => unload.to_string(),
            });
        }
        Action::Ioctl { .. } | Action::Read { .. } | Action::Write { .. } => {
            let target = match &step.handle {
                Some(h) => match handles.0.get(h) {
                    Some(open) => Some((open.device, Some(open.file))),
                    None => {
                        refused(r, INVALID_HANDLE, format!("no open handle \"{h}\""));
                        judge(r, step.expect_status);
                        return Ok(());
                    }
                },
                None => driver.devices(machine).first().map(|&d| (d, None)),
            };
            let Some((device, file)) = target else {
                r.ok = false;
                r.note = Some("the driver created no device".to_string());
                return Ok(());
            };
            let mut state = State { processes, handles, events, pending };
            request(driver, machine, &mut state, (device, file), step, r)?;
            judge(r, step.expect_status);
        }
        Action::Power(request) => match driver.power(machine, 0, *request)? {
            Some(o) => {
                let status = o.completed.or(o.returned).unwrap_or(ntmem_kernel::ex::pool::NtStatus::PENDING);
                r.status = Some(status.0);
                r.reached_driver = Some(o.returned.is_some());
                r.completed = Some(o.completed.is_some());
                let (kind, n) = match request.state {
                    PowerState::System(s) => ("system state S", s - 1),
                    PowerState::Device(d) => ("device state D", d - 1),
                };
                let minor = match request.minor {
                    ntmem_kernel::io::power::PowerMinor::SetPower => "IRP_MN_SET_POWER",
                    ntmem_kernel::io::power::PowerMinor::QueryPower => "IRP_MN_QUERY_POWER",
                };
                r.note = Some(format!("{minor}, {kind}{n}"));
                judge(r, step.expect_status);
            }
            None => {
                r.ok = false;
                r.note = Some("the driver created no device".to_string());
            }
        },
        Action::Cancel(n) => match pending.0.get(n) {
            Some(p) => {
                let accepted = driver.cancel(machine, 0, p.irp)?;
                let still = !machine.io().irps_done(p.irp);
                r.note = Some(format!(
                    "IoCancelIrp returned {}; step {n}'s request {}",
                    if accepted { "TRUE" } else { "FALSE" },
                    if still { "is still pending" } else { "completed" }
                ));
                r.ok = accepted;
            }
            None => {
                r.ok = false;
                r.note = Some(format!("step {n} has no pending request"));
            }
        },
        Action::Open { name, handle, process, request } => {
            if handles.0.contains_key(handle) {
                r.ok = false;
                r.note = Some(format!("handle \"{handle}\" is open already"));
                return Ok(());
            }
            let p = match processes.get(machine, process)? {
                Ok(p) => p,
                Err(status) => {
                    refused(r, status, format!("the calling process could not be created ({:#010x})", status.0));
                    judge(r, step.expect_status);
                    return Ok(());
                }
            };
            let (device, file) = match machine.run(0, |cpu| file::begin_open(cpu, name, *request))? {
                Ok(opened) => opened,
                Err(status) => {
                    refused(r, status, format!("{name} could not be opened ({:#010x})", status.0));
                    judge(r, step.expect_status);
                    return Ok(());
                }
            };
            let outcome = driver.send(machine, 0, &file::create_call(device, file, *request, Some(&p)))?;
            record(r, &outcome);
            if let Some(open) = machine.run(0, |cpu| file::end_open(cpu, device, file, Some(&p), &outcome))? {
                handles.0.insert(handle.clone(), open);
            }
            judge(r, step.expect_status);
        }
        Action::Close(handle) if events.0.contains_key(handle) => {
            if let Some(open) = events.0.remove(handle) {
                open.close(machine)?;
            }
            r.status = Some(0);
        }
        Action::CreateEvent { handle, process, manual_reset, signalled } => {
            if handles.0.contains_key(handle) || events.0.contains_key(handle) {
                r.ok = false;
                r.note = Some(format!("handle \"{handle}\" is open already"));
                return Ok(());
            }
            let p = match processes.get(machine, process)? {
                Ok(p) => p,
                Err(status) => {
                    refused(r, status, format!("the calling process could not be created ({:#010x})", status.0));
                    judge(r, step.expect_status);
                    return Ok(());
                }
            };
            match machine.run(0, |cpu| crate::ex_event::create(cpu, p.id(), *manual_reset, *signalled))? {
                Ok(event) => {
                    r.status = Some(0);
                    r.note = Some(format!("handle {:#x} in {process}", event.handle));
                    events.0.insert(handle.clone(), OpenEvent { process: p, event });
                }
                Err(status) => refused(r, status, format!("the event could not be created ({:#010x})", status.0)),
            }
            judge(r, step.expect_status);
        }
        Action::WaitEvent { handle, timeout_ms } => match events.0.get(handle) {
            Some(open) => {
                wait(machine, open, *timeout_ms, r)?;
                judge(r, step.expect_status);
            }
            None => refused(r, INVALID_HANDLE, format!("no event handle \"{handle}\"")),
        },
        Action::ResetEvent(handle) => match events.0.get(handle) {
            Some(open) => {
                machine.run(0, |cpu| crate::ex_event::reset(cpu, open.event.object))?;
                r.status = Some(0);
            }
            None => refused(r, INVALID_HANDLE, format!("no event handle \"{handle}\"")),
        },
        Action::Close(handle) => match handles.0.remove(handle) {
            Some(open) => {
                let [cleanup, close] = close(driver, machine, &open)?;
                record(r, &close);
                r.note =
                    Some(format!("IRP_MJ_CLEANUP {:#010x}, IRP_MJ_CLOSE {:#010x}", cleanup.status.0, close.status.0));
                judge(r, step.expect_status);
            }
            None => {
                refused(r, INVALID_HANDLE, format!("no open handle \"{handle}\""));
                judge(r, step.expect_status);
            }
        },
    }
    Ok(())
}

/// `input` with each named handle's value inserted at its offset, as wide as a
/// pointer of the machine; `None` when one names no open event.
fn with_handles(machine: &Machine, events: &Events, input: &[u8], handles: &[(usize, String)]) -> Option<Vec<u8>> {
    let width = machine.profile().arch.pointer_size() as usize;
    let mut bytes = input.to_vec();
    for (offset, name) in handles.iter().rev() {
        let value = events.0.get(name)?.event.handle.to_le_bytes();
        bytes.splice(offset..offset, value[..width].iter().copied());
    }
    Some(bytes)
}

/// `WaitForSingleObject(event, timeout)` from the event's process: simulated time
/// moves to each timer as it comes due (its DPC runs) until the event is signalled
/// (STATUS_WAIT_0; an auto-reset event is reset by the satisfied wait), the timeout
/// passes, or no timer is left that could signal it (STATUS_TIMEOUT, and the note
/// says so — on Windows the program would wait forever).
fn wait(machine: &Machine, open: &OpenEvent, timeout_ms: Option<u64>, r: &mut StepResult) -> Result<(), BugCheck> {
    use crate::ke_dispatcher::UNITS_PER_MS;
    let deadline = timeout_ms.map(|t| machine.now_ms().saturating_add(t));
    loop {
        let object = open.event.object;
        let signalled = machine.run(0, |cpu| crate::ex_event::try_wait(cpu, object))?;
        let now = machine.now_ms();
        if signalled {
            r.status = Some(0);
            r.note = Some(format!("signalled at {now} ms"));
            return Ok(());
        }
        if let Some(d) = deadline.filter(|&d| now >= d) {
            r.status = Some(STATUS_TIMEOUT);
            r.note = Some(format!("not signalled by {d} ms (the timeout)"));
            return Ok(());
        }
        let next = machine.timers().next_due().map(|d| d.div_ceil(UNITS_PER_MS));
        let until = match (next, deadline) {
            (Some(n), Some(d)) => n.min(d),
            (Some(n), None) => n,
            (None, Some(d)) => d,
            (None, None) => {
                r.status = Some(STATUS_TIMEOUT);
                r.note = Some(format!(
                    "not signalled by {now} ms, and no timer is set that could signal it: the program would wait forever"
                ));
                return Ok(());
            }
        };
        crate::ke_dispatcher::settle(machine, 0, until.saturating_sub(now))?;
    }
}

/// Closes `open`'s handle: IRP_MJ_CLEANUP and IRP_MJ_CLOSE, then the file object
/// goes.
fn close<T: Target + ?Sized>(driver: &T, machine: &Machine, open: &OpenFile) -> Result<[IoOutcome; 2], BugCheck> {
    let [cleanup, close] = file::close_calls(open);
    let outcomes = [driver.send(machine, 0, &cleanup)?, driver.send(machine, 0, &close)?];
    machine.run(0, |cpu| file::end_close(cpu, open))?;
    Ok(outcomes)
}

/// What the caller's I/O status block says.
fn record(r: &mut StepResult, outcome: &IoOutcome) {
    r.status = Some(outcome.status.0);
    r.information = Some(outcome.information);
    r.reached_driver = Some(outcome.reached_driver);
    r.completed = Some(outcome.completed);
}

/// A buffer of the caller holding `bytes` (`len` ≥ their length): in its
/// process, or nonpaged pool for kernel callers. Inner `Err`: the caller cannot
/// have it — the status its `NtAllocateVirtualMemory` failed with, or
/// STATUS_INSUFFICIENT_RESOURCES for pool that is not there.
fn allocate(
    machine: &Machine,
    process: Option<&Arc<Process>>,
    bytes: &[u8],
    len: u32,
) -> Result<Result<Va, NtStatus>, BugCheck> {
    if len == 0 {
        return Ok(Ok(Va::new(0)));
    }
    machine.run(0, |cpu| {
        Ok(match process {
            Some(p) => {
                let both = AllocationType::RESERVE | AllocationType::COMMIT;
                nt_allocate_virtual_memory(cpu, p, None, u64::from(len), both, PageProtection::ReadWrite).map(
                    |(va, _)| {
                        let _ = p.write(cpu, va, bytes);
                        va
                    },
                )
            }
            None => match pool::allocate(cpu, PoolType::NonPagedPool, u64::from(len), SCENARIO_TAG)? {
                Some(va) => {
                    let _ = cpu.machine().space().write(va, bytes);
                    Ok(va)
                }
                None => Err(NtStatus::INSUFFICIENT_RESOURCES),
            },
        })
    })
}

/// A request that never reached the I/O manager: the caller could not set it up.
fn refused(r: &mut StepResult, status: NtStatus, why: String) {
    r.status = Some(status.0);
    r.information = Some(0);
    r.reached_driver = Some(false);
    r.completed = Some(false);
    r.note = Some(why);
}

fn cannot_allocate(which: &str, len: u32, status: NtStatus) -> String {
    format!(
        "the caller could not allocate its {len}-byte {which} buffer ({:#010x}); the request was not sent",
        status.0
    )
}

fn release(machine: &Machine, process: Option<&Arc<Process>>, va: Va) -> Result<(), BugCheck> {
    if va.get() == 0 {
        return Ok(());
    }
    machine.run(0, |cpu| {
        match process {
            Some(p) => {
                let _ = nt_free_virtual_memory(cpu, p, va, 0, FreeType::Release);
            }
            None => pool::free(cpu, va, Some(SCENARIO_TAG))?,
        }
        Ok(())
    })
}

fn read_back(machine: &Machine, process: Option<&Arc<Process>>, va: Va, len: u64) -> Result<Option<Vec<u8>>, BugCheck> {
    if va.get() == 0 || len == 0 {
        return Ok(Some(Vec::new()));
    }
    machine.run(0, |cpu| {
        let mut data = vec![0u8; len as usize];
        let ok = match process {
            Some(p) => p.read(cpu, va, &mut data).is_ok(),
            None => cpu.machine().space().read(va, &mut data).is_ok(),
        };
        Ok(ok.then_some(data))
    })
}

fn request<T: Target + ?Sized>(
    driver: &T,
    machine: &Machine,
    state: &mut State<'_>,
    (device, file): (DeviceObject, Option<FileObject>),
    step: &Step,
    r: &mut StepResult,
) -> Result<(), BugCheck> {
    let State { processes, events, pending, .. } = state;
    let (process_name, input, output_len) = match &step.action {
        Action::Ioctl { internal, input, handles, output_len, process, .. } => {
            let Some(input) = with_handles(machine, events, input, handles) else {
                let missing = handles.iter().find(|(_, h)| !events.0.contains_key(h)).map_or("", |(_, h)| h.as_str());
                refused(r, INVALID_HANDLE, format!("the input names \"{missing}\", which is no event handle"));
                return Ok(());
            };
            ((!internal).then_some(process.as_str()), input, *output_len)
        }
        Action::Read { length, process, .. } => (Some(process.as_str()), Vec::new(), *length),
        Action::Write { data, process, .. } => (Some(process.as_str()), data.clone(), 0),
        _ => unreachable!("only requests come here"),
    };
    let process = match process_name {
        None => None,
        Some(name) => match processes.get(machine, name)? {
            Ok(p) => Some(p),
            Err(status) => {
                refused(r, status, format!("the calling process could not be created ({:#010x})", status.0));
                return Ok(());
            }
        },
    };
    let p = process.as_ref();
    let Ok(in_len) = u32::try_from(input.len()) else {
        refused(r, NtStatus::INVALID_PARAMETER, "the input is longer than a ULONG length can say".to_string());
        return Ok(());
    };
    let in_va = match allocate(machine, p, &input, in_len)? {
        Ok(va) => va,
        Err(status) => {
            refused(r, status, cannot_allocate("input", in_len, status));
            return Ok(());
        }
    };
    let out_va = match allocate(machine, p, &[], output_len)? {
        Ok(va) => va,
        Err(status) => {
            release(machine, p, in_va)?;
            refused(r, status, cannot_allocate("output", output_len, status));
            return Ok(());
        }
    };
    let request = match &step.action {
        Action::Ioctl { internal, code, .. } => {
            r.code = Some(*code);
            let c =
                Ioctl { code: *code, input: in_va, input_length: in_len, output: out_va, output_length: output_len };
            if *internal {
                IoRequest::InternalDeviceControl(c)
            } else {
                IoRequest::DeviceControl(c)
            }
        }
        Action::Read { offset, .. } => IoRequest::Read { buffer: out_va, length: output_len, offset: *offset },
        Action::Write { offset, .. } => IoRequest::Write { buffer: in_va, length: in_len, offset: *offset },
        _ => unreachable!("only requests come here"),
    };
    let mut call = IoCall::new(device, request);
    if let Some(p) = p {
        call = call.from_process(p);
    }
    if let Some(f) = file {
        call = call.on_file(f);
    }
    if let Some(action) = step.while_in_driver {
        call = call.while_in_driver(match action {
            None => BufferAction::Free,
            Some(Protection::Readonly) => BufferAction::Protect(PageProtection::ReadOnly),
            Some(Protection::Noaccess) => BufferAction::Protect(PageProtection::NoAccess),
            Some(Protection::Readwrite) => BufferAction::Protect(PageProtection::ReadWrite),
        });
    }
    let outcome: IoOutcome = driver.send(machine, 0, &call)?;
    record(r, &outcome);
    if let Some(irp) = outcome.pending {
        r.note = Some("pending: the driver returned without completing the IRP".to_string());
        let process = p.cloned();
        let expect = step.expect_status;
        pending.0.insert(r.index, PendingRequest { irp, process, input: in_va, output: out_va, output_len, expect });
        return Ok(());
    }
    let shown = outcome.information.min(u64::from(output_len));
    match read_back(machine, p, out_va, shown)? {
        Some(bytes) => r.output = Some(hex(&bytes)),
        None => r.note = Some("the output buffer is no longer readable".to_string()),
    }
    if outcome.completed || !outcome.reached_driver {
        release(machine, p, in_va)?;
        release(machine, p, out_va)?;
    }
    Ok(())
}
