//! `ntmem`: the command line.
//!
//! A thin binary over the library crates: it parses flags, builds a machine
//! profile, boots it, and prints what the user asked for as text or JSON. Exit
//! status: 0 success, 1 a driver failed or leaked (`run`), 2 usage, configuration
//! or build error (clap uses 2 for bad flags too), 3 a bugcheck, 74 standard
//! output could not be written (see [`output`]).

#![forbid(unsafe_code)]

mod commands;
mod driver_host;
mod options;
mod output;
mod svg;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Windows kernel memory manager, as drivers see it, in a Linux process.
#[derive(Debug, Parser)]
#[command(name = "ntmem", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: build a C driver and run it on a simulated machine. Without
    /// a driver, boots the machine and prints its summary.
    Run(commands::run::Args),
    /// List every machine profile (Table 1 editions and Vista).
    Machines(commands::machines::Args),
    /// Show a machine's virtual address-space layout (seed Figure 1).
    Layout(commands::layout::Args),
    /// Show a booted machine's physical address map: RAM by use, holes, device windows.
    Physmap(commands::physmap::Args),
    /// Boot a machine and print its summary.
    Boot(commands::boot::Args),
    /// Build a C driver into a Windows x64 PE image (.sys) with clang >= 19 and lld-link.
    Build(commands::build::Args),
    /// List every routine and variable drivers can import (DLL, IRQL, differences from Windows).
    Api(commands::api::Args),
}

/// A failure the user caused or must fix, with the exit status it earns.
#[derive(Debug)]
pub struct Failure {
    message: String,
    status: u8,
}

impl Failure {
    /// A usage or configuration error: exit status 2.
    pub fn usage(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), status: 2 }
    }

    /// A failure with its own exit status (`run`: 1 driver failed, 3 bugcheck).
    pub fn with_status(status: u8, message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), status }
    }
}

fn main() -> ExitCode {
    ntmem_host::default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::main(&args),
        Command::Machines(args) => commands::machines::main(&args),
        Command::Layout(args) => commands::layout::main(&args),
        Command::Physmap(args) => commands::physmap::main(&args),
        Command::Boot(args) => commands::boot::main(&args),
        Command::Api(args) => commands::api::main(&args),
        Command::Build(args) => commands::build::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // Standard error may be closed or full too: nothing more to say then.
            let _ = writeln!(std::io::stderr(), "ntmem: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}
