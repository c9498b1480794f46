//! The driver host (issue 5): builds a C driver, loads it, runs it on a
//! simulated machine and reports what happened.
//!
//! * [`build`] / [`image`]: `.c` → clang and lld-link → a Windows x64 `.sys`,
//!   against `include/`; a `.sys` is run as it is.
//! * [`run`]: boots the machine, loads the image into system space, calls
//!   `DriverEntry` on processor 0 (then frees its `INIT` pages), then the
//!   driver's `DriverUnload`, unmaps the image, and compares the pool's PoolMon
//!   counters before and after to find the driver's tags and what it leaked.
//! * [`report`]: the report as text or JSON, and the exit status.
//!
//! Loading and calling into driver code is `ntmem_wdk::loader` (this crate has no
//! `unsafe`).
//! * [`scenario`] / [`steps`]: scenario files and running their steps.
//!
//! Plug and Play (`ntmem_wdk::pnp`): the machine's NIC (`nic0`, seed §8) gets a PDO
//! before the driver loads. If DriverEntry sets `DriverExtension->AddDevice`, the
//! host calls it with that PDO, then sends `IRP_MN_START_DEVICE` with the NIC's raw
//! and translated resource lists to the device AddDevice attached; before
//! `DriverUnload` (at the end, or at an `unload` step) it sends
//! `IRP_MN_REMOVE_DEVICE`. A scenario's `[[relocate]]` tables move register blocks
//! between spaces first. The report lists these steps; one that fails exits 1.
//!
//! Verifier options are set on the machine; those ntmem models act (force IRQL
//! checking trims on every raise), the others are recorded.

pub mod build;
pub mod campaign;
pub mod deadlock;
pub mod image;
pub mod report;

use std::path::PathBuf;

use ntmem_kernel::ex::pool::view::{find_blocks, pool_page_of_stop};
use ntmem_kernel::ex::pool::{PoolMonRow, PoolTag};
use ntmem_kernel::hal::device::{DeviceId, Space};
use ntmem_kernel::ke::watchdog::WatchdogLimits;
use ntmem_kernel::vf::VerifierFlags;
use ntmem_kernel::Machine;
use ntmem_machine::MachineProfile;
use ntmem_wdk::dbg::{self, DebugOutput};
use ntmem_wdk::loader::Driver;
use ntmem_wdk::pnp;
use ntmem_wdk::symbols::{Analysis, Symbolizer};

use ntmem_wdk::harness::driver_rows;
pub use ntmem_wdk::harness::{scenario, steps};
pub use report::{
    InjectedCall, LeakedBlock, PoolLog, PoolLogEntry, PoolSort, Report, StopSymbols, Unload, VerifierState, WdmWarning,
};

use crate::Failure;

/// What to run.
#[derive(Clone, Debug)]
pub struct Request {
    /// The driver: .c files, a directory, or a .sys.
    pub driver: Vec<PathBuf>,
    /// The machine.
    pub profile: MachineProfile,
    /// The scenario's steps (none: just load and unload).
    pub steps: Vec<scenario::Step>,
    /// Driver Verifier: options by name or `/flags` number (see
    /// `VerifierFlags::parse_one`), the drivers verified, fault injection's knobs.
    pub verifier: scenario::VerifierSpec,
    /// Register blocks to move between spaces before the driver starts.
    pub relocate: Vec<scenario::Relocate>,
    /// The scenario's `[[device]]` declarations.
    pub devices: Vec<scenario::DeviceDecl>,
    /// The scenario's `[registry]` values, for the driver's `Parameters` key.
    pub parameters: Vec<scenario::RegistryValue>,
    /// Whether the report will be JSON (then DbgPrint text is kept for it instead
    /// of going to standard output).
    pub json: bool,
    /// How long driver code may run (`--timeout`, `--dpc-watchdog`).
    pub watchdog: WatchdogLimits,
    /// For a run of a systematic campaign ([`campaign`]): what systematic low
    /// resources simulation fails (none: Windows' every new stack).
    pub systematic: Option<ntmem_kernel::vf::Plan>,
    /// Pool tracking's allocate/free log in the report (`!verifier 0x80`), if asked for.
    pub pool_log: Option<PoolLogQuery>,
}

/// What of pool tracking's allocate/free log the report shows, as `!verifier 0x80
/// [Quantity | Address]` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolLogQuery {
    /// The most recent entries, this many.
    Latest(usize),
    /// The entries of the blocks that contain this address.
    Address(u64),
}

/// Builds, loads and runs the driver.
///
/// # Errors
/// Exit status 2: the driver could not be built or loaded, or the machine could
/// not boot.
pub fn run(request: Request) -> Result<Report, Failure> {
    // Checked before building, applied once the machine is up.
    request.verifier.check().map_err(Failure::usage)?;
    let built = build::build(&request.driver, request.profile.edition)?;
    let booted = crate::commands::boot::boot(request.profile)?;
    let machine = &booted.machine;
    let mut driver = Driver::load(machine, &built.name, &built.image).map_err(Failure::usage)?;
    let mut symbolizer = Symbolizer::new();
    if let Some(image) = driver.image() {
        let symbols = built.symbols(image.host_base()).map_err(|e| Failure::usage(format!("{}: {e}", built.name)))?;
        symbolizer.add(symbols);
    }
    let parameters: Vec<_> = request.parameters.iter().map(scenario::RegistryValue::to_value).collect();
    ntmem_wdk::loader::set_parameters(machine, &built.name, &parameters).map_err(Failure::usage)?;
    let verifier = request.verifier.apply(machine).map_err(Failure::usage)?;
    if let Some(plan) = request.systematic {
        machine.vf().plan_systematic(plan);
    }
    machine.set_watchdog(request.watchdog);
    dbg::set_output(if request.json { DebugOutput::Capture } else { DebugOutput::Stdout });
    for r in &request.relocate {
        let id = machine
            .hal()
            .find(&r.device)
            .ok_or_else(|| Failure::usage(format!("relocate: no device {:?}", r.device)))?;
        let space = match r.space {
            scenario::RelocateSpace::Port => Space::Port,
            scenario::RelocateSpace::Memory => Space::Memory,
        };
        machine.hal().relocate(id, r.block, space).map_err(|e| Failure::usage(format!("relocate: {e}")))?;
    }
    for d in &request.devices {
        if let Some(line) = d.dma_request_line {
            machine.hal().dma().controller.declare_line(line, d.dma_ready);
            if d.dma_address_bits.is_none() {
                continue;
            }
        }
        let id =
            machine.hal().find(&d.name).ok_or_else(|| Failure::usage(format!("device: no device {:?}", d.name)))?;
        if let Some(bits) = d.dma_address_bits {
            if !(1..=64).contains(&bits) {
                return Err(Failure::usage(format!("device {:?}: dma_address_bits {bits} is not in 1..=64", d.name)));
            }
            machine.hal().dma().set_address_bits(id, bits);
        }
    }
    let nic = machine.hal().find("nic0").unwrap_or(DeviceId(0));
    pnp::enumerate(&mut driver, machine, 0, nic)
        .map_err(|b| Failure::usage(format!("the PnP manager could not enumerate nic0: {b}")))?;

    let before = machine.pool().snapshot();
    let mut report = Report::new(built.name.clone(), machine.summary());
    report.verifier = verifier.names().into_iter().map(str::to_string).collect();
    match driver.driver_entry(machine, 0) {
        Err(b) => report.bugcheck = Some(b),
        Ok(status) => {
            report.driver_entry_status = Some(status);
            let mut unloaded = false;
            if status >= 0 {
                driver.finish_entry(machine);
                if let Err(b) = ntmem_wdk::ke_dispatcher::settle(machine, 0, 0) {
                    report.bugcheck = Some(b);
                }
                let started = ntmem_wdk::io::finish_driver_entry(&driver, machine, 0)
                    .and_then(|()| pnp::add_and_start(&mut driver, machine, 0));
                if let Err(b) = started {
                    report.bugcheck = Some(b);
                }
            }
            if status >= 0 && report.bugcheck.is_none() {
                let (results, by_step, stop) = steps::run(&mut driver, machine, &request.steps);
                report.steps = results;
                report.bugcheck = stop;
                unloaded = by_step;
                if unloaded {
                    report.unload = if driver.has_unload() { Unload::Called } else { Unload::NotRegistered };
                }
            }
            if status >= 0 && report.bugcheck.is_none() && !unloaded {
                match pnp::remove(&mut driver, machine, 0).and_then(|_| driver.unload(machine, 0)) {
                    Ok(true) => report.unload = Unload::Called,
                    Ok(false) => report.unload = Unload::NotRegistered,
                    Err(b) => {
                        report.unload = Unload::Called;
                        report.bugcheck = Some(b);
                    }
                }
            }
        }
    }
    if report.bugcheck.is_none() && report.unload == Unload::Called {
        // Threads of the driver still alive as its image goes (ntmem_wdk::sched).
        if let Some(image) = driver.image() {
            let start = image.host_base();
            match ntmem_wdk::sched::threads_at_unload(machine, start, start + image.size(machine)) {
                Ok(left) => report.threads_left = left,
                Err(mut b) => {
                    b.driver = Some(driver.name().to_string());
                    report.bugcheck = Some(b);
                }
            }
        }
    }
    report.pool = driver_rows(&before, &machine.pool().snapshot());
    report.pnp = pnp::events(&driver).to_vec();
    report.dma = machine.hal().dma().events().to_vec();
    report.system_dma = machine.hal().dma().controller.moved().to_vec();
    let shift = machine.phys().shift();
    report.dma_adapters = machine.hal().dma().adapters().map(|a| a.view(shift)).collect();
    if report.bugcheck.is_none() {
        if let Err(b) = pnp::delete_pdo(&mut driver, machine, 0) {
            report.bugcheck = Some(b);
        }
    }
    report.leaks_checked = report.bugcheck.is_none() && report.unload != Unload::NotRegistered;
    if report.leaks_checked {
        report.leaks = report.pool.iter().filter(|r| r.diff != 0).copied().collect();
        report.leaked_blocks = leaked_blocks(machine, &symbolizer, driver.name(), &report.leaks);
        report.symbolic_links = machine.io().symbolic_links().all();
        if let Err(b) = driver.verify_unload(machine) {
            report.bugcheck = Some(b);
        }
    }
    if report.bugcheck.as_ref().is_some_and(|b| b.code.0 == 0xC4 && b.parameters[0] == 0x61) {
        // Pool tracking stopped the unload (0xC4/0x61): the allocations its fourth
        // parameter counts, with their stacks, as `!verifier 3` would list them.
        report.leaked_blocks = leaked_blocks(machine, &symbolizer, driver.name(), &[]);
    }
    if !verifier.is_empty() {
        let base = driver.image().map_or(0, |i| i.host_base());
        let mut state = verifier_state(machine, &symbolizer, driver.name(), base);
        state.pool_log = request.pool_log.map(|q| pool_log(machine, &symbolizer, q));
        report.verifier_state = Some(state);
    }
    if request.json {
        report.debug_output = Some(dbg::take_captured());
    }
    report.symbols = report.bugcheck.as_ref().and_then(|b| stop_symbols(&symbolizer, b));
    report.pool_page = report.bugcheck.as_ref().and_then(|b| pool_page_of_stop(machine, b));
    // No thread of the run outlives it (blocked ones leave through their escape hatch).
    ntmem_wdk::sched::end_threads(machine);
    if report.bugcheck.is_none() {
        driver.unload_image(machine);
    }
    drop(driver);
    Ok(report)
}

/// `driver`'s pool blocks never freed: as Driver Verifier tracked them, with their
/// allocation stacks named; without Verifier, the blocks of the leaked tags (`leaks`)
/// found by walking the pool.
fn leaked_blocks(machine: &Machine, symbolizer: &Symbolizer, driver: &str, leaks: &[PoolMonRow]) -> Vec<LeakedBlock> {
    let block = |va: u64, bytes, tag: PoolTag, kind, routine, stack| LeakedBlock {
        address: va,
        address_hex: format!("{va:#x}"),
        bytes,
        tag: tag.to_string(),
        pool: report::kind(kind),
        routine,
        stack,
    };
    let tracked = machine.vf().outstanding(driver);
    if !tracked.is_empty() {
        let site = |b: &ntmem_kernel::vf::TrackedBlock| b.stack.iter().map(|&a| return_site(symbolizer, a)).collect();
        return tracked.iter().map(|b| block(b.va, b.bytes, b.tag, b.kind, Some(b.routine), site(b))).collect();
    }
    leaks
        .iter()
        .flat_map(|r| {
            let found = find_blocks(machine, r.tag, r.pool_type);
            found.into_iter().map(|(va, bytes)| block(va, bytes, r.tag, r.pool_type, None, Vec::new()))
        })
        .collect()
}

/// Return address `a` as `driver!function+0x…`, or in hex.
fn return_site(symbolizer: &Symbolizer, a: u64) -> String {
    symbolizer.describe_return(a).map_or_else(|| format!("{a:#x}"), |f| f.to_string())
}

/// What Driver Verifier counted for `driver`.
fn verifier_state(machine: &Machine, symbolizer: &Symbolizer, driver: &str, module_base: u64) -> VerifierState {
    let vf = machine.vf();
    let named = |calls: Vec<ntmem_kernel::vf::Injection>| -> Vec<InjectedCall> {
        calls
            .iter()
            .filter(|i| i.driver == driver)
            .map(|i| InjectedCall {
                routine: i.routine,
                tag: i.tag.map(|t| t.to_string()),
                site: i.stack.first().map_or_else(|| "?".to_string(), |&a| return_site(symbolizer, a)),
                stack: i.stack.iter().map(|&a| return_site(symbolizer, a)).collect(),
                at_ms: i.at_ms,
                systematic: i.systematic,
                stack_id: i.stack_id,
            })
            .collect()
    };
    let injected = named(vf.injections());
    let faults = vf.flags().contains(VerifierFlags::LOW_RESOURCES_SIMULATION).then(|| vf.fault_settings());
    VerifierState {
        flags: vf.flags().bits(),
        module_base,
        counters: vf.counters(),
        pool: vf.driver_pool(driver),
        faults,
        injected,
        irql_log: vf
            .irql_log()
            .into_iter()
            .map(|t| {
                let caller = if t.caller == 0 { "(ntmem)".to_string() } else { return_site(symbolizer, t.caller) };
                (t, caller)
            })
            .collect(),
        reached: named(vf.reached()),
        pool_log: None,
        deadlock: vf.deadlock_cycle().map(|c| {
            deadlock::DeadlockView::new(&c, symbolizer, |a| machine.kernel_object_at(a).and_then(|o| o.name()))
        }),
        wdm_errors: vf
            .wdm_errors()
            .into_iter()
            .map(|e| WdmWarning { code: e.code, irp: e.irp, device: e.device, meaning: e.meaning() })
            .collect(),
    }
}

/// Pool tracking's log as `query` asks for it, most recent first, stacks named.
fn pool_log(machine: &Machine, symbolizer: &Symbolizer, query: PoolLogQuery) -> PoolLog {
    let log = machine.vf().log();
    let recent = log.iter().rev();
    let picked: Vec<&ntmem_kernel::vf::LogEntry> = match query {
        PoolLogQuery::Latest(n) => recent.take(n).collect(),
        PoolLogQuery::Address(a) => {
            recent.filter(|e| (e.va..e.va.saturating_add(e.bytes.max(1))).contains(&a)).collect()
        }
    };
    let entries = picked
        .into_iter()
        .map(|e| PoolLogEntry {
            operation: if e.allocate { "allocate" } else { "free" },
            address: e.va,
            bytes: e.bytes,
            tag: e.tag.to_string(),
            driver: e.driver.clone(),
            thread: e.thread,
            stack: e.stack.iter().map(|&a| return_site(symbolizer, a)).collect(),
        })
        .collect();
    let address = match query {
        PoolLogQuery::Address(a) => Some(a),
        PoolLogQuery::Latest(_) => None,
    };
    PoolLog { entries_in_log: log.len(), address, entries }
}

/// The stop `b` named from the driver's symbols: at its faulting instruction, or (a
/// stop a routine made) at the driver's call into the routine, the first frame of its
/// stack. `None` when neither is known.
fn stop_symbols(symbolizer: &Symbolizer, b: &ntmem_kernel::BugCheck) -> Option<StopSymbols> {
    let analysis = match b.faulting_ip {
        Some(ip) => Analysis::new(symbolizer, ip, &b.stack),
        None => Analysis::at_call(symbolizer, &b.stack)?,
    };
    Some(StopSymbols { analysis, modules: symbolizer.modules() })
}
