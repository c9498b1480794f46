//! `ntmem layout`: the virtual address-space layout, like seed 000 Figure 1, with
//! real addresses and sizes.

use std::path::PathBuf;

use ntmem_machine::{format_size, Layout};

use crate::options::MachineFlags;
use crate::output;
use crate::Failure;

/// Flags of `ntmem layout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    machine: MachineFlags,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also draw the layout as an SVG figure into FILE (box heights grow with log2 of size; gaps drawn).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct RegionRow {
    name: &'static str,
    kind: String,
    start: u64,
    end: u64,
    size: u64,
}

#[derive(serde::Serialize)]
struct Report {
    machine: &'static str,
    arch: &'static str,
    boot: String,
    user_start: u64,
    user_end: u64,
    user_probe_address: u64,
    system_start: u64,
    system_end: u64,
    relocation: u64,
    regions: Vec<RegionRow>,
}

fn report(layout: &Layout, machine: &'static str, arch: &'static str, boot: String, relocation: u64) -> Report {
    Report {
        machine,
        arch,
        boot,
        user_start: layout.user_start.get(),
        user_end: layout.user_end.get(),
        user_probe_address: layout.user_probe_address.get(),
        system_start: layout.system_start.get(),
        system_end: layout.system_end.get(),
        relocation,
        regions: layout
            .regions
            .iter()
            .map(|r| RegionRow {
                name: r.name,
                kind: format!("{:?}", r.kind),
                start: r.start.get(),
                end: r.end().get(),
                size: r.size,
            })
            .collect(),
    }
}

/// Runs the command.
///
/// # Errors
/// Bad flags, an invalid machine, or an SVG file that cannot be written.
pub fn main(args: &Args) -> Result<(), Failure> {
    let profile = args.machine.profile()?;
    let machine = super::boot::boot(profile.clone())?;
    let relocation = machine.machine.space().relocation();
    let r = report(&profile.layout, profile.edition.key, profile.arch.name(), profile.boot.to_string(), relocation);
    if let Some(path) = &args.svg {
        let title =
            format!("{} {} {}", profile.edition.os, profile.edition.edition, profile.boot).trim_end().to_string();
        let digits = if profile.arch == ntmem_machine::Arch::X86 { 8 } else { 16 };
        std::fs::write(path, crate::svg::layout_figure(&title, &profile.layout, digits).svg())
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    if args.json {
        return super::print_json(&r);
    }
    let mut out = format!("{} ({}) {}\n", profile.edition.os, profile.edition.edition, profile.boot);
    out += &format!(
        "MmHighestUserAddress {:#x}, MmUserProbeAddress {:#x}, MmSystemRangeStart {:#x}\n",
        r.user_end, r.user_probe_address, r.system_start
    );
    out += &format!("{:>18}  {:>18}  {:>9}  region\n", "start", "end", "size");
    for region in r.regions.iter().rev() {
        let (start, end) = (region.start, region.end);
        out += &format!("{start:#18x}  {end:#18x}  {:>9}  {}\n", format_size(end - start + 1), region.name);
    }
    if relocation == 0 {
        out += "\nThe simulated address space sits at these addresses in the host process.\n";
    } else {
        out += &format!("\nRelocated: another mapping holds these addresses in the host; driver pointers are simulated address + {relocation:#x}.\n");
    }
    output::emit(&out)
}
