//! `ntmem api`: every routine and variable ntmem exports to drivers, from the one
//! export table (`ntmem_wdk::exports`): its DLL, NT component, kind, the highest
//! IRQL its documentation allows, and where ntmem differs from Windows.

use ntmem_wdk::exports::{Kind, EXPORTS};

use crate::Failure;

/// Flags of `ntmem api`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    name: &'static str,
    dll: &'static str,
    component: &'static str,
    kind: Kind,
    irql: &'static str,
    differs: &'static str,
}

/// Runs the command.
///
/// # Errors
/// When standard output cannot be written.
pub fn main(args: &Args) -> Result<(), Failure> {
    let rows: Vec<Row> = EXPORTS
        .iter()
        .map(|e| Row {
            name: e.name,
            dll: e.dll.file_name(),
            component: e.component(),
            kind: e.kind,
            irql: e.irql.text(),
            differs: e.differs,
        })
        .collect();
    if args.json {
        return super::print_json(&serde_json::json!({ "exports": rows }));
    }
    let mut out =
        format!("{:<40} {:<13} {:<5} {:<8} {:<22} DIFFERS FROM WINDOWS\n", "NAME", "DLL", "PART", "KIND", "IRQL");
    for r in &rows {
        let kind = if r.kind == Kind::Data { "data" } else { "routine" };
        out += &format!("{:<40} {:<13} {:<5} {:<8} {:<22} {}\n", r.name, r.dll, r.component, kind, r.irql, r.differs);
    }
    out += &format!("{} exports\n", rows.len());
    crate::output::emit(&out)
}
