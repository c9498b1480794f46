//! `ntmem boot`: boots a machine and prints its summary.

use ntmem_kernel::{BootSummary, Machine};
use ntmem_machine::MachineProfile;

use crate::options::MachineFlags;
use crate::Failure;

/// Flags of `ntmem boot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    machine: MachineFlags,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Boots `profile`.
///
/// # Errors
/// When the host cannot give the machine its memory or address space.
pub fn boot(profile: MachineProfile) -> Result<Machine, Failure> {
    Machine::boot(profile).map_err(Failure::usage)
}

/// Prints a summary as text or JSON.
pub fn print(summary: &BootSummary, json: bool) {
    if json {
        super::print_json(summary);
    } else {
        print!("{summary}");
    }
}

/// Runs the command.
///
/// # Errors
/// Bad flags or an invalid machine.
pub fn main(args: &Args) -> Result<(), Failure> {
    let machine = boot(args.machine.profile()?)?;
    print(&machine.summary(), args.json);
    Ok(())
}
