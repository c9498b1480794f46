//! `ntmem boot`: boots a machine and prints its summary.

use ntmem_kernel::{BootSummary, Machine};

use ntmem_machine::MachineProfile;

use crate::options::MachineFlags;
use crate::output;
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

/// What booting cost the host process.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct HostCost {
    /// Wall-clock time of `Machine::boot`, microseconds.
    pub boot_time_us: u64,
    /// Peak resident set size of the whole `ntmem` process after boot, bytes.
    pub peak_rss: Option<u64>,
}

/// A booted machine and what booting it cost.
pub struct Booted {
    /// The machine.
    pub machine: Machine,
    /// The cost.
    pub cost: HostCost,
}

/// Boots `profile`, timing it.
///
/// # Errors
/// When the host cannot give the machine its memory or address space.
pub fn boot(profile: MachineProfile) -> Result<Booted, Failure> {
    let started = std::time::Instant::now();
    let machine = Machine::boot(profile).map_err(Failure::usage)?;
    let boot_time_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    Ok(Booted { machine, cost: HostCost { boot_time_us, peak_rss: ntmem_host::peak_rss_bytes() } })
}

#[derive(serde::Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a BootSummary,
    host: HostCost,
}

/// Prints a summary and the host cost as text or JSON.
///
/// # Errors
/// When standard output cannot be written.
pub fn print(booted: &Booted, json: bool) -> Result<(), Failure> {
    let summary = booted.machine.summary();
    let cost = booted.cost;
    if json {
        return super::print_json(&Report { summary: &summary, host: cost });
    }
    let rss = cost.peak_rss.map_or("unknown".to_string(), ntmem_machine::format_size);
    output::emit(&format!(
        "{summary}host cost                   booted in {:.2} ms, peak RSS {rss}\n",
        cost.boot_time_us as f64 / 1000.0
    ))
}

/// Runs the command.
///
/// # Errors
/// Bad flags or an invalid machine.
pub fn main(args: &Args) -> Result<(), Failure> {
    print(&boot(args.machine.profile()?)?, args.json)
}
