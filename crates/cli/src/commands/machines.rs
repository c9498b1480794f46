//! `ntmem machines`: every profile, from seed 000 Table 1 plus Vista and Windows 8.

use ntmem_machine::{format_size, EDITIONS};

use crate::output;
use crate::Failure;

/// Flags of `ntmem machines`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    name: &'static str,
    os: &'static str,
    edition: &'static str,
    arch: &'static str,
    page_size: u64,
    virtual_address_space: u64,
    max_physical_memory: u64,
    pae_required_above_4g: bool,
    supports_3gb: bool,
}

/// Runs the command.
///
/// # Errors
/// Never; the signature matches the other commands.
pub fn main(args: &Args) -> Result<(), Failure> {
    let rows: Vec<Row> = EDITIONS
        .iter()
        .map(|e| Row {
            name: e.key,
            os: e.os,
            edition: e.edition,
            arch: e.arch.name(),
            page_size: e.arch.page_shift().page_size(),
            virtual_address_space: e.virtual_address_space,
            max_physical_memory: e.max_physical_memory,
            pae_required_above_4g: e.pae_required_above_4g,
            supports_3gb: e.supports_3gb,
        })
        .collect();
    if args.json {
        return super::print_json(&serde_json::json!({ "machines": rows }));
    }
    let mut out =
        format!("{:<26} {:<26} {:<28} {:<5} {:>7} {:>9}  notes\n", "NAME", "OS", "EDITION", "ARCH", "VA", "MAX RAM");
    for r in &rows {
        let mut notes = Vec::new();
        if r.pae_required_above_4g {
            notes.push("PAE above 4 GB");
        }
        if r.supports_3gb {
            notes.push("/3GB");
        }
        out += &format!(
            "{:<26} {:<26} {:<28} {:<5} {:>7} {:>9}  {}\n",
            r.name,
            r.os,
            r.edition,
            r.arch,
            format_size(r.virtual_address_space),
            format_size(r.max_physical_memory),
            notes.join(", ")
        );
    }
    output::emit(&out)
}
