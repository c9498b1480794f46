//! `ntmem run`: the main job.
//!
//! The driver host (building and loading a driver, running its scenario) is issue
//! 5's; until it lands, `run` boots the machine the flags describe, prints its
//! summary and says that no driver was run.

use std::path::PathBuf;

use crate::options::MachineFlags;
use crate::Failure;

/// Flags of `ntmem run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A driver: .c files, a directory of them, or a .so (not yet supported).
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
/// Bad flags, an invalid machine, or a driver given (not supported yet).
pub fn main(args: &Args) -> Result<(), Failure> {
    if !args.driver.is_empty() {
        return Err(Failure::usage(
            "running drivers is not implemented yet (the driver host is coming); `ntmem run` without a driver boots the machine",
        ));
    }
    let booted = super::boot::boot(args.machine.profile()?)?;
    if !args.json {
        println!("ntmem run: no driver host yet — booted the machine and stopped.\n");
    }
    super::boot::print(&booted, args.json);
    Ok(())
}
