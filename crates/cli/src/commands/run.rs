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
    let profile = args.machine.profile()?;
    let report = driver_host::run(Request { driver: args.driver.clone(), profile, json: args.json })?;
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
