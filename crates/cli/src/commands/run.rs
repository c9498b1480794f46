//! `ntmem run`: the main job — build a C driver, run it on a simulated machine,
//! report (see `crate::driver_host`).
//!
//! Without a driver, `run` runs the demo drivers of `drivers/` with their
//! scenarios, one after another, each on a fresh machine the flags describe.
//!
//! Exit status: 0 clean; 1 `DriverEntry` failed or the driver leaked pool; 2 a
//! usage or build error; 3 the machine bugchecked; 4 a driver routine did not return
//! below DISPATCH_LEVEL within `--timeout`; 5 an internal error of ntmem (a bug);
//! 74 standard output could not be written (the `--report` file, if asked for, is
//! written first).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ntmem_kernel::ke::watchdog::WatchdogLimits;
use ntmem_kernel::vf::VerifierFlags;

use crate::driver_host::campaign::{self, Runs, SiteResult};
use crate::driver_host::scenario::VerifierSpec;
use crate::driver_host::{self, PoolLogQuery, PoolSort, Report, Request};
use crate::options::MachineFlags;
use crate::output;
use crate::Failure;

/// Flags of `ntmem run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A driver: .c files, a directory of them, or a Windows x64 image (.sys).
    driver: Vec<PathBuf>,
    #[command(flatten)]
    machine: MachineFlags,
    /// A scenario file (TOML): machine, verifier and the steps to run (see the README).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Driver Verifier options, comma-separated, by name or /flags number: special_pool (0x1), irql (0x2), low_resources (0x4), pool_tracking (0x8), io (0x10), deadlock (0x20), dma (0x80), security (0x100), misc (0x800), ddi (0x20000), systematic_low_resources (0x40000), or standard (0x209bb); e.g. special_pool,irql or 0x9. Overrides the scenario's.
    #[arg(long, value_name = "FLAGS")]
    verifier: Option<String>,
    /// The drivers Driver Verifier checks (verifier /driver), comma-separated image names; default: every driver. Overrides the scenario's verify_drivers.
    #[arg(long, value_name = "NAMES")]
    verify_driver: Option<String>,
    /// Low resources simulation: the chance, in 10,000, that a call fails (verifier /faults; default 600). Overrides the scenario's [faults].
    #[arg(long, value_name = "N")]
    fault_probability: Option<u32>,
    /// Low resources simulation: the seed of its random sequence, to repeat or vary a run. Overrides the scenario's [faults].
    #[arg(long, value_name = "N")]
    fault_seed: Option<u64>,
    /// Low resources simulation: only calls made in the context of these processes fail (image names, comma-separated, e.g. app.exe; the System process is System; verifier /faults' App list). Overrides the scenario's [faults] processes.
    #[arg(long, value_name = "NAMES")]
    fault_processes: Option<String>,
    /// Special pool for the allocations of one pool tag, as GFlags' `/k +spp Tag` (no Verifier needed): a tag with ? and * wildcards ("Fat*"; "*" for all), or a block size below the page size ("0x30": x64 requests of 17-32 bytes).
    #[arg(long, value_name = "TAG")]
    special_pool_tag: Option<String>,
    /// With --special-pool-tag: 1 (default) puts each block at its page's end, so overruns fault (Verify End); 0 at its start, so underruns fault (Verify Start). GFlags' PoolTagOverruns.
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1))]
    pool_tag_overruns: Option<u8>,
    /// Systematic low resources simulation, record only ("what-if", /faultssystematic recordboottime): one run that fails nothing and lists every allocation site reached, with its stack id.
    #[arg(long)]
    systematic_record: bool,
    /// Systematic low resources simulation: stack ids (0x hex or decimal, comma-separated) never failed (/faultssystematic excludestack). Overrides the scenario's systematic_exclude.
    #[arg(long, value_name = "IDS")]
    systematic_exclude: Option<String>,
    /// Systematic low resources simulation: run the campaign's runs N at a time, each in a child process. The report is the same whatever N.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: u32,
    /// One run of a systematic campaign, failing only this stack id; prints its result as JSON (what --jobs runs in each child process).
    #[arg(long, value_name = "ID", hide = true)]
    systematic_target: Option<String>,
    /// Pool tracking's log of the last 0x10000 allocate/free operations, as WinDbg's `!verifier 0x80` shows it, in the report (text and JSON): the most recent N entries, or `all`. Needs a Verifier option (pool_tracking records the stacks).
    #[arg(long, value_name = "N|all")]
    verifier_log: Option<String>,
    /// As --verifier-log, only the log's entries for the pool block containing ADDRESS (`!verifier 0x80 Address`).
    #[arg(long, value_name = "ADDRESS")]
    verifier_log_address: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The PoolMon column the report's pool tables are sorted by (counters largest first).
    #[arg(long, value_enum, default_value_t = PoolSort::Tag)]
    sort: PoolSort,
    /// Also write the JSON report to FILE, after the run: what the driver does to
    /// standard output (writes, closes, fills it) cannot garble or lose it.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Seconds a driver routine may run below DISPATCH_LEVEL before ntmem stops it (exit 4). Default: 10.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// The DPC watchdog period: seconds at DISPATCH_LEVEL or above before DPC_WATCHDOG_VIOLATION (0x133). Default: 20.
    #[arg(long, value_name = "SECONDS")]
    dpc_watchdog: Option<f64>,
}

/// Runs the command.
///
/// # Errors
/// Bad flags, an invalid machine, a driver that does not build (2); a driver that
/// failed or leaked (1); a bugcheck (3).
pub fn main(args: &Args) -> Result<(), Failure> {
    if args.driver.is_empty() {
        return demos(args);
    }
    let request = request(args, args.driver.clone(), args.scenario.clone())?;
    let options = request.verifier.check().map_err(Failure::usage)?;
    if let Some(id) = &args.systematic_target {
        let id = driver_host::scenario::parse_stack_id(id).map_err(Failure::usage)?;
        return super::print_json(&campaign::site_run(&request, id)?);
    }
    if args.systematic_record {
        return record(args, &request);
    }
    if options.contains(VerifierFlags::SYSTEMATIC_LOW_RESOURCES_SIMULATION) {
        return systematic(args, &request);
    }
    let mut report = driver_host::run(request)?;
    report.sort = args.sort;
    if let Some(path) = &args.report {
        output::write_report(path, &report)?;
    }
    if args.json {
        super::print_json(&report)?;
    } else {
        output::emit(&report.text())?;
    }
    match report.exit() {
        0 => Ok(()),
        status => Err(Failure::with_status(status, report.verdict())),
    }
}

/// `--systematic-record`: one run, failing nothing, listing the sites reached.
fn record(args: &Args, request: &Request) -> Result<(), Failure> {
    let mut request = request.clone();
    request.verifier.options.push("systematic_low_resources".to_string());
    let recording = campaign::record(&request)?;
    let exit = recording.baseline.exit();
    let json = || serde_json::json!({ "exit": exit, "driver": recording.driver, "systematic_record": recording.sites, "baseline": recording.baseline });
    if let Some(path) = &args.report {
        output::write_report(path, &json())?;
    }
    if args.json {
        super::print_json(&json())?;
    } else {
        output::emit(&recording.text())?;
    }
    match exit {
        0 => Ok(()),
        status => Err(Failure::with_status(status, recording.baseline.verdict())),
    }
}

/// One site's run in a child process: this binary again, with the same arguments and
/// `--systematic-target ID`.
fn child_run(id: u64) -> Result<SiteResult, Failure> {
    let exe =
        std::env::current_exe().map_err(|e| Failure::usage(format!("--jobs: cannot find the ntmem binary: {e}")))?;
    let out = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--systematic-target")
        .arg(format!("{id:#x}"))
        .output()
        .map_err(|e| Failure::usage(format!("--jobs: cannot start a child run: {e}")))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        let err = String::from_utf8_lossy(&out.stderr);
        Failure::usage(format!("--jobs: the run of stack {id:#x} did not report ({e}): {err}"))
    })
}

/// `--verifier systematic_low_resources`: the campaign, one run per allocation site.
fn systematic(args: &Args, request: &Request) -> Result<(), Failure> {
    let runs =
        if args.jobs > 1 { Runs::Children { jobs: args.jobs as usize, child: &child_run } } else { Runs::InProcess };
    let campaign = campaign::systematic(request, &runs)?;
    if let Some(path) = &args.report {
        output::write_report(path, &campaign_json(&campaign))?;
    }
    if args.json {
        super::print_json(&campaign_json(&campaign))?;
    } else {
        output::emit(&campaign.text())?;
    }
    match campaign.exit() {
        0 => Ok(()),
        status => Err(Failure::with_status(status, campaign.verdict())),
    }
}

/// The campaign as one JSON object: `exit`, `systematic` (the sites), `baseline`.
fn campaign_json(c: &campaign::Campaign) -> serde_json::Value {
    serde_json::json!({
        "exit": c.exit(),
        "driver": c.driver,
        "systematic": { "sites": c.sites, "excluded": c.excluded, "cut_short": c.cut_short, "verdict": c.verdict() },
        "baseline": c.baseline,
    })
}

/// The demo drivers and their scenarios, in `drivers/`: a NIC-style driver with a
/// receive lookaside list, the IOCTL driver of seed §9's three transfer types, and
/// a driver that allocates contiguous memory below 4 GB.
const DEMOS: &[(&str, Option<&str>)] = &[
    ("nic.c", Some("nic.toml")),
    ("ioctl.c", Some("ioctl.toml")),
    ("contig.c", None),
    ("wdlock.c", Some("wdlock.toml")),
];

fn demos(args: &Args) -> Result<(), Failure> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers");
    if !dir.is_dir() {
        return Err(Failure::usage("no driver given, and the demo drivers (drivers/ in the source tree) are not here"));
    }
    let mut reports = Vec::new();
    // A failed write to standard output does not stop the demos: the --report
    // file is still written, then the failure is returned.
    let mut printed = Ok(());
    for (driver, scenario) in DEMOS {
        if !args.json {
            printed = printed
                .and(output::emit(&format!("==================== demo: drivers/{driver} ====================\n")));
        }
        let report = run_one(args, vec![dir.join(driver)], scenario.map(|s| dir.join(s)))?;
        if !args.json {
            printed = printed.and(output::emit(&format!("{}\n", report.text())));
        }
        reports.push(report);
    }
    let exit = reports.iter().map(Report::exit).max().unwrap_or(0);
    let all = serde_json::json!({ "exit": exit, "demos": reports });
    if let Some(path) = &args.report {
        output::write_report(path, &all)?;
    }
    printed?;
    if args.json {
        super::print_json(&all)?;
    }
    match exit {
        0 => Ok(()),
        status => Err(Failure::with_status(status, "a demo driver did not run cleanly".to_string())),
    }
}

/// Runs one driver with an optional scenario; command-line flags override the file.
fn run_one(args: &Args, driver: Vec<PathBuf>, scenario: Option<PathBuf>) -> Result<Report, Failure> {
    let mut report = driver_host::run(request(args, driver, scenario)?)?;
    report.sort = args.sort;
    Ok(report)
}

/// What to run for one driver with an optional scenario; command-line flags override
/// the file.
fn request(args: &Args, driver: Vec<PathBuf>, scenario: Option<PathBuf>) -> Result<Request, Failure> {
    let mut flags = args.machine.clone();
    let (mut verifier, mut steps, mut relocate, mut devices) =
        (VerifierSpec::default(), Vec::new(), Vec::new(), Vec::new());
    let mut parameters = Vec::new();
    let mut timeout = None;
    if let Some(path) = &scenario {
        let (scenario, parsed) = driver_host::scenario::load(path).map_err(Failure::usage)?;
        flags.machine = flags.machine.or(scenario.machine);
        flags.ram = flags.ram.or(scenario.ram);
        flags.boot = flags.boot.or(scenario.boot);
        flags.processors = flags.processors.or(scenario.processors);
        timeout = scenario.timeout;
        verifier = VerifierSpec {
            options: scenario.verifier,
            drivers: scenario.verify_drivers,
            faults: scenario.faults.unwrap_or_default(),
            special_pool_tag: scenario.special_pool_tag,
            pool_tag_overruns: scenario.pool_tag_overruns.map(|v| v != 0),
            systematic_exclude: scenario.systematic_exclude,
        };
        relocate = scenario.relocate;
        devices = scenario.devices;
        parameters = scenario.parameters;
        steps = parsed;
    }
    let list = |v: &str| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if let Some(v) = &args.verifier {
        verifier.options = list(v);
    }
    if let Some(v) = &args.verify_driver {
        verifier.drivers = list(v);
    }
    if let Some(v) = &args.systematic_exclude {
        verifier.systematic_exclude = list(v);
    }
    verifier.special_pool_tag = args.special_pool_tag.clone().or(verifier.special_pool_tag);
    verifier.pool_tag_overruns = args.pool_tag_overruns.map(|v| v != 0).or(verifier.pool_tag_overruns);
    verifier.faults.probability = args.fault_probability.or(verifier.faults.probability);
    verifier.faults.seed = args.fault_seed.or(verifier.faults.seed);
    if let Some(v) = &args.fault_processes {
        verifier.faults.processes = list(v);
    }
    let profile = flags.profile()?;
    let mut watchdog = WatchdogLimits::default();
    if let Some(t) = args.timeout.or(timeout) {
        watchdog.timeout = seconds(t, "--timeout")?;
    }
    if let Some(t) = args.dpc_watchdog {
        watchdog.dpc_period = seconds(t, "--dpc-watchdog")?;
    }
    let number = |t: &str, what: &str| {
        driver_host::scenario::parse_stack_id(t).map_err(|_| Failure::usage(format!("{what}: {t:?} is not a number")))
    };
    let pool_log = match (&args.verifier_log_address, &args.verifier_log) {
        (Some(a), _) => Some(PoolLogQuery::Address(number(a, "--verifier-log-address")?)),
        (None, Some(n)) if n == "all" => Some(PoolLogQuery::Latest(usize::MAX)),
        (None, Some(n)) => Some(PoolLogQuery::Latest(number(n, "--verifier-log")? as usize)),
        (None, None) => None,
    };
    Ok(Request {
        driver,
        profile,
        steps,
        verifier,
        relocate,
        devices,
        parameters,
        json: args.json,
        watchdog,
        systematic: None,
        pool_log,
    })
}

/// A positive number of seconds, at most a day.
fn seconds(value: f64, what: &str) -> Result<Duration, Failure> {
    if !(value > 0.0 && value <= 86_400.0) {
        return Err(Failure::usage(format!("{what}: {value} is not a number of seconds from 0 to 86400")));
    }
    Ok(Duration::from_secs_f64(value))
}
