//! `ntmem run`: the main job — build a C driver, run it on a simulated machine,
//! report (see `crate::driver_host`).
//!
//! Without a driver, `run` boots the machine the flags describe and prints its
//! summary (until the demo drivers exist).
//!
//! Exit status: 0 clean; 1 `DriverEntry` failed or the driver leaked pool; 2 a
//! usage or build error; 3 the machine bugchecked.

use std::path::PathBuf;

use crate::driver_host::{self, Request};
use crate::options::MachineFlags;
use crate::Failure;

/// Flags of `ntmem run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A driver: .c files, a directory of them, or a .so built against include/.
    driver: Vec<PathBuf>,
    #[command(flatten)]
    machine: MachineFlags,
    /// A scenario file (TOML): machine, verifier and the steps to run (see the README).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Driver Verifier options, comma-separated (recorded; overrides the scenario's).
    #[arg(long, value_name = "FLAGS")]
    verifier: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
///
/// # Errors
/// Bad flags, an invalid machine, a driver that does not build (2); a driver that
/// failed or leaked (1); a bugcheck (3).
pub fn main(args: &Args) -> Result<(), Failure> {
    if args.driver.is_empty() {
        let booted = super::boot::boot(args.machine.profile()?)?;
        if !args.json {
            println!("ntmem run: no driver given — booted the machine and stopped.\n");
        }
        super::boot::print(&booted, args.json);
        return Ok(());
    }
    let mut flags = args.machine.clone();
    let (mut verifier, mut steps) = (Vec::new(), Vec::new());
    if let Some(path) = &args.scenario {
        let (scenario, parsed) = driver_host::scenario::load(path).map_err(Failure::usage)?;
        // Command-line flags override the file.
        flags.machine = flags.machine.or(scenario.machine);
        flags.ram = flags.ram.or(scenario.ram);
        flags.boot = flags.boot.or(scenario.boot);
        flags.processors = flags.processors.or(scenario.processors);
        verifier = scenario.verifier;
        steps = parsed;
    }
    if let Some(v) = &args.verifier {
        verifier = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    }
    let profile = flags.profile()?;
    let request = Request { driver: args.driver.clone(), profile, steps, verifier, json: args.json };
    let report = driver_host::run(request)?;
    if args.json {
        super::print_json(&report);
    } else {
        print!("{}", report.text());
    }
    match report.exit() {
        0 => Ok(()),
        status => Err(Failure::with_status(status, report.verdict())),
    }
}
