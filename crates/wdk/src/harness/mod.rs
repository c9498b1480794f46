//! The Rust driver harness (issue 5 item 7): boots a machine, loads a Rust
//! driver, runs its `DriverEntry`, a scenario and its unload, and returns a
//! [`Report`] a `#[test]` asserts on — each step's NTSTATUS, Information and
//! output, the PoolMon rows of the driver's tags, leaks, and the bugcheck.
//!
//! ```no_run
//! use ntmem_wdk::harness::{Harness, Step};
//! # use ntmem_wdk::harness::{DriverEntryArgs, RustDriver};
//! # struct MyDriver;
//! # impl RustDriver for MyDriver {
//! #     fn driver_entry(&mut self, _: &mut DriverEntryArgs<'_>) -> i32 { 0 }
//! # }
//! let report = Harness::boot_default().unwrap().run("mydrv.sys", &mut MyDriver, &[Step::ioctl(0x222000, b"hi", 16)]);
//! assert!(report.bugcheck.is_none());
//! assert_eq!(report.steps[0].status, Some(0));
//! ```
//!
//! * [`driver`]: the [`RustDriver`] trait and what it receives.
//! * [`fuzz`]: the bodies of the fuzz targets in `fuzz/`.
//! * [`scenario`]: the scenario schema (TOML, the same as `ntmem run --scenario`),
//!   and [`Step`]'s Rust builders.
//! * [`steps`]: running steps against any [`steps::Target`] — a Rust driver here,
//!   a C driver from [`crate::loader`] in the CLI.
//!
//! Everything runs on processor 0, as the CLI's driver host does.

pub mod driver;
pub mod fuzz;
pub mod scenario;
pub mod steps;

use std::cell::RefCell;

use ntmem_kernel::ex::pool::{NtStatus as KStatus, PoolMonRow, PoolTag};
use ntmem_kernel::io::request::{IoCall, IoOutcome};
use ntmem_kernel::io::returns::{check_return, Caller};
use ntmem_kernel::io::{device, DeviceObject, Dispatch, Irp, MajorFunction};
use ntmem_kernel::{BootError, BugCheck, Cpu, Machine};
use ntmem_machine::{find_edition, parse_size, BootOptions, MachineConfig, MachineProfile};

pub use driver::{tag, DriverEntryArgs, IrpView, Registrations, RustDriver};
pub use scenario::{Action, Protection, RegistryValue, Scenario, Step};
pub use steps::StepResult;

use crate::context;
use crate::loader::{set_parameters, RegistryPath};
use crate::seh::ThreadKind;
use crate::types::{registry_path, service_name, DriverObject, NtStatus, OwnedUnicode, UnicodeString};

/// Why the harness could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The scenario file is invalid (the message names the line and the key).
    #[error("{0}")]
    Scenario(String),
    /// The machine described is invalid (unknown edition, bad size or option).
    #[error("invalid machine: {0}")]
    Machine(String),
    /// The machine could not boot on this host.
    #[error(transparent)]
    Boot(#[from] BootError),
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// What `DriverEntry` returned (None: it bugchecked).
    pub driver_entry_status: Option<NtStatus>,
    /// Each step's result, in order (up to the bugcheck, if any).
    pub steps: Vec<StepResult>,
    /// Whether the driver's unload routine ran (by a step or at the end).
    pub unloaded: bool,
    /// PoolMon rows of the tags whose counters moved during the run.
    pub pool: Vec<PoolMonRow>,
    /// Whether leaks were checked (no bugcheck, and the driver could unload).
    pub leaks_checked: bool,
    /// Rows with allocations never freed.
    pub leaks: Vec<PoolMonRow>,
    /// The bugcheck that stopped the machine, blaming the driver.
    pub bugcheck: Option<BugCheck>,
    /// Why the driver could not be given its service key and `Parameters` values
    /// (then `DriverEntry` did not run).
    pub load_error: Option<String>,
}

impl Report {
    /// The leaked tags as text (`"Leak"`), for assertions.
    pub fn leaked_tags(&self) -> Vec<String> {
        self.leaks.iter().map(|r| r.tag.to_string()).collect()
    }

    /// The pool row of `tag` (text, e.g. `"Test"`), if it moved.
    pub fn pool_row(&self, tag: &str) -> Option<&PoolMonRow> {
        self.pool.iter().find(|r| r.tag.to_string() == tag)
    }

    /// Whether the driver loaded, ran every step as expected and unloaded without leaks.
    pub fn clean(&self) -> bool {
        self.bugcheck.is_none()
            && self.load_error.is_none()
            && self.driver_entry_status.is_some_and(|s| s >= 0)
            && self.steps.iter().all(|s| s.ok)
            && self.leaks_checked
            && self.leaks.is_empty()
    }
}

/// A booted machine that runs Rust drivers.
#[derive(Debug)]
pub struct Harness {
    machine: Machine,
    /// The values of the driver's `Parameters` key (a scenario's `[registry]`).
    parameters: Vec<ntmem_kernel::cm::Value>,
}

impl Harness {
    /// Boots the default machine (ws03sp1-enterprise-x64, 8 GB, 2 processors).
    ///
    /// # Errors
    /// [`HarnessError::Boot`].
    pub fn boot_default() -> Result<Harness, HarnessError> {
        Harness::boot(MachineConfig::default().build().map_err(|e| HarnessError::Machine(e.to_string()))?)
    }

    /// Boots `profile`.
    ///
    /// # Errors
    /// [`HarnessError::Boot`].
    pub fn boot(profile: MachineProfile) -> Result<Harness, HarnessError> {
        Ok(Harness { machine: Machine::boot(profile)?, parameters: Vec::new() })
    }

    /// The values the `Parameters` subkey of the driver's service key holds when
    /// `DriverEntry` runs, as a scenario's `[registry]` table gives them to a C
    /// driver under `ntmem run`.
    pub fn set_parameters(&mut self, values: &[RegistryValue]) {
        self.parameters = values.iter().map(RegistryValue::to_value).collect();
    }

    /// Parses scenario `text` (named `file` in messages) and boots the machine it
    /// describes (`machine`, `ram`, `boot`, `processors`, `verifier`); returns the
    /// harness and the steps.
    ///
    /// # Errors
    /// [`HarnessError`].
    pub fn from_scenario(file: &str, text: &str) -> Result<(Harness, Vec<Step>), HarnessError> {
        let (s, steps) = scenario::parse(file, text).map_err(HarnessError::Scenario)?;
        let bad = |e: String| HarnessError::Machine(e);
        let mut config = MachineConfig::default();
        if let Some(name) = &s.machine {
            config.edition = find_edition(name).map_err(|e| bad(e.to_string()))?;
        }
        config.ram = match &s.ram {
            Some(ram) => parse_size(ram).map_err(|e| bad(e.to_string()))?,
            None => config.ram.min(config.edition.max_physical_memory),
        };
        if let Some(boot) = &s.boot {
            config.boot = BootOptions::parse(boot).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(n) = s.processors {
            config.processors = n;
        }
        let mut harness = Harness::boot(config.build().map_err(|e| bad(e.to_string()))?)?;
        harness.set_parameters(&s.parameters);
        let spec = scenario::VerifierSpec {
            options: s.verifier,
            drivers: s.verify_drivers,
            faults: s.faults.unwrap_or_default(),
            special_pool_tag: s.special_pool_tag,
            pool_tag_overruns: s.pool_tag_overruns.map(|v| v != 0),
            systematic_exclude: s.systematic_exclude,
        };
        spec.apply(&harness.machine).map_err(bad)?;
        Ok((harness, steps))
    }

    /// The machine (for assertions after a run: pool usage, `stopped()` …).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Loads `driver` as `name` (the service name and the name a bugcheck
    /// blames), calls its `DriverEntry`, runs `steps`, calls its unload routine
    /// unless a step did, and reports. A bugcheck ends the run and the machine.
    pub fn run<D: RustDriver>(&self, name: &str, driver: &mut D, steps: &[Step]) -> Report {
        let machine = &self.machine;
        // The service key, RegistryPath and Parameters values come before the pool is
        // measured, as the loader makes them for a C driver (no driver's pool).
        let path = RegistryPath::allocate(machine, service_name(name));
        let before = machine.pool().snapshot();
        let mut loaded = Loaded::new(name, driver);
        let mut report = Report {
            driver: name.to_string(),
            driver_entry_status: None,
            steps: Vec::new(),
            unloaded: false,
            pool: Vec::new(),
            leaks_checked: false,
            leaks: Vec::new(),
            bugcheck: None,
            load_error: None,
        };
        let path = match path {
            Ok(Some(path)) => path,
            Ok(None) => {
                report.load_error = Some("no paged pool for RegistryPath".to_string());
                return report;
            }
            Err(b) => {
                report.bugcheck = Some(b);
                return report;
            }
        };
        if let Err(e) = set_parameters(machine, name, &self.parameters) {
            report.load_error = Some(e);
            return report;
        }
        loaded.registry_path_unicode = path.unicode();
        match loaded.driver_entry(machine) {
            Err(b) => report.bugcheck = Some(b),
            Ok(status) => {
                report.driver_entry_status = Some(status);
                if status >= 0 {
                    let key = loaded.key();
                    if let Err(b) = machine.run(0, |c| device::finish_initializing(c, key)) {
                        report.bugcheck = Some(b);
                    }
                }
                if status >= 0 && report.bugcheck.is_none() {
                    let (results, by_step, stop) = steps::run(&mut loaded, machine, steps);
                    report.steps = results;
                    report.bugcheck = stop.map(|b| loaded.blame(b));
                    report.unloaded = by_step && loaded.registered.unload;
                    if report.bugcheck.is_none() && !by_step {
                        match steps::Target::unload(&mut loaded, machine, 0) {
                            Ok(called) => report.unloaded = called,
                            Err(b) => report.bugcheck = Some(b),
                        }
                    }
                }
            }
        }
        crate::sched::end_threads(machine);
        report.pool = driver_rows(&before, &machine.pool().snapshot());
        report.leaks_checked = report.bugcheck.is_none() && loaded.registered.unload;
        if report.leaks_checked {
            report.leaks = report.pool.iter().filter(|r| r.diff != 0).copied().collect();
        }
        report
    }
}

/// Whether `tag` is one the system allocates under on a driver's behalf rather than
/// one the driver chose: the I/O manager's IRPs (`Irp `), system buffers (`IoSB`),
/// device objects (`Devi`, IoCreateDevice), file objects (`File`, one per open) and
/// MDLs (`Mdl `, direct I/O and
/// IoAllocateMdl), the PnP manager's resource lists (`PnpR`), work items (`IoWk`), thread
/// objects (`Thre`), and the processes, events and
/// buffers of ntmem's scenario (`Proc`, `Even`, `Scen`). PoolMon shows them as any tag; a
/// report shows them apart from the driver's own.
pub fn allocated_by_system(tag: PoolTag) -> bool {
    use ntmem_kernel::io::{device::DEVICE_TAG, file::FILE_TAG, irp, pnp::RESOURCE_LIST_TAG};
    use ntmem_kernel::mm::{mdl::MDL_TAG, process::PROCESS_TAG};
    [
        irp::IRP_TAG,
        irp::SYSTEM_BUFFER_TAG,
        DEVICE_TAG,
        FILE_TAG,
        MDL_TAG,
        RESOURCE_LIST_TAG,
        PROCESS_TAG,
        steps::SCENARIO_TAG,
        crate::io_workitem::WORK_ITEM_TAG,
        crate::ps::THREAD_TAG,
        crate::ex_event::EVENT_TAG,
    ]
    .contains(&tag)
}

/// The rows whose counters moved between `before` and `after`, as differences
/// (PoolMon's columns, Per Alloc = Bytes / Diff).
pub fn driver_rows(before: &[PoolMonRow], after: &[PoolMonRow]) -> Vec<PoolMonRow> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.tag == a.tag && b.pool_type == a.pool_type);
            let (allocs, frees, bytes) = b.map_or((0, 0, 0), |b| (b.allocs, b.frees, b.bytes));
            let row = PoolMonRow {
                allocs: a.allocs - allocs,
                frees: a.frees - frees,
                diff: (a.allocs - allocs).wrapping_sub(a.frees - frees),
                bytes: a.bytes.wrapping_sub(bytes),
                ..*a
            };
            let row = PoolMonRow { per_alloc: row.bytes.checked_div(row.diff).unwrap_or(0), ..row };
            (row.allocs != 0 || row.frees != 0).then_some(row)
        })
        .collect()
}

/// A Rust driver loaded on the machine: its `DRIVER_OBJECT` and registrations.
struct Loaded<'d, D: RustDriver> {
    name: String,
    driver: RefCell<&'d mut D>,
    object: Box<DriverObject>,
    registry_path: String,
    registry_path_unicode: *mut UnicodeString,
    registered: Registrations,
    _texts: Box<OwnedUnicode>,
}

impl<'d, D: RustDriver> Loaded<'d, D> {
    fn new(name: &str, driver: &'d mut D) -> Self {
        let service = service_name(name);
        let mut driver_name = Box::new(OwnedUnicode::new(&format!("\\Driver\\{service}")));
        let object = Box::new(DriverObject::new(driver_name.as_unicode_string(), std::ptr::null_mut(), None));
        Loaded {
            name: name.to_string(),
            driver: RefCell::new(driver),
            object,
            registry_path: registry_path(service),
            registry_path_unicode: std::ptr::null_mut(),
            registered: Registrations::default(),
            _texts: driver_name,
        }
    }

    /// The key the I/O manager files the driver's devices under.
    fn key(&self) -> u64 {
        std::ptr::from_ref::<DriverObject>(&self.object) as u64
    }

    fn blame(&self, mut b: BugCheck) -> BugCheck {
        b.driver = Some(self.name.clone());
        b
    }

    /// Runs driver code `f`, the driver's `routine`, on processor `cpu` in a system
    /// thread, under the machine's watchdog.
    fn call<R>(
        &self,
        machine: &Machine,
        cpu: u32,
        routine: &'static str,
        f: impl FnOnce() -> R,
    ) -> Result<R, BugCheck> {
        context::call_driver(machine, cpu, ThreadKind::System, |c| {
            let entry = c.irql();
            let r = context::enter(c, routine, f);
            check_return(c, Caller::Worker, 0, None, entry)?;
            crate::ps::check_worker_return(c, 0)?;
            Ok(r)
        })
        .map_err(|b| self.blame(b))
    }

    fn driver_entry(&mut self, machine: &Machine) -> Result<NtStatus, BugCheck> {
        let object: *mut DriverObject = &mut *self.object;
        let mut registered = Registrations::default();
        let status = {
            let mut args = DriverEntryArgs {
                driver_object: object,
                registry_path: &self.registry_path,
                registry_path_unicode: self.registry_path_unicode,
                registered: &mut registered,
            };
            let driver = &self.driver;
            self.call(machine, 0, "DriverEntry", || driver.borrow_mut().driver_entry(&mut args))
        };
        self.registered = registered;
        status
    }
}

impl<D: RustDriver> Dispatch for Loaded<'_, D> {
    fn dispatch(
        &self,
        cpu: &Cpu<'_>,
        major: MajorFunction,
        device: DeviceObject,
        irp: Irp,
    ) -> Result<Option<KStatus>, BugCheck> {
        if !self.registered.majors.contains(&major) {
            return Ok(None);
        }
        let view = IrpView::read(cpu, major, device, irp)?;
        let entry = cpu.irql();
        let status = context::enter(cpu, major.dispatch_routine(), || self.driver.borrow_mut().dispatch(&view));
        check_return(cpu, Caller::Service, 0, Some(crate::context::host_ptr(cpu, Some(device.0)) as u64), entry)?;
        Ok(Some(KStatus(status as u32)))
    }
}

impl<D: RustDriver> steps::Target for Loaded<'_, D> {
    fn devices(&self, machine: &Machine) -> Vec<DeviceObject> {
        machine.io().devices_of(self.key())
    }

    fn send(&self, machine: &Machine, cpu: u32, call: &IoCall) -> Result<IoOutcome, BugCheck> {
        // Dispatch routines run in the requester's thread (0x1E for an unhandled exception).
        context::call_driver(machine, cpu, ThreadKind::Arbitrary, |c| call.send(c, self)).map_err(|b| self.blame(b))
    }

    fn unload(&mut self, machine: &Machine, cpu: u32) -> Result<bool, BugCheck> {
        if !self.registered.unload {
            return Ok(false);
        }
        let object: *mut DriverObject = &mut *self.object;
        let driver = &self.driver;
        self.call(machine, cpu, "DriverUnload", || driver.borrow_mut().unload(object))?;
        Ok(true)
    }
}
