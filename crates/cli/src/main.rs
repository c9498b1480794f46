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
    /// The main job: build a C driver (or take a .sys) and run it on a simulated machine.
    ///
    /// Builds the driver into a Windows x64 image, loads it, runs DriverEntry, the
    /// scenario's steps and DriverUnload, and reports the driver's pool use, leaks and
    /// any bugcheck. Without a driver, runs the demo drivers of drivers/ one after
    /// another.
    ///
    /// Exit status: 0 clean; 1 DriverEntry failed, a scenario step failed, or the
    /// driver leaked pool or left a symbolic link; 2 a usage, scenario or build error;
    /// 3 the machine bugchecked; 4 a driver routine did not return below
    /// DISPATCH_LEVEL within --timeout; 5 an internal error of ntmem (a bug); 74
    /// standard output could not be written.
    Run(Box<commands::run::Args>),
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
    /// Will a WinDriver DMA buffer lock of this size work on that machine? (seed 001)
    ///
    /// Boots the machine, optionally fragments its physical memory, then does what
    /// WDC_DMAContigBufLock (--contiguous) or WDC_DMASGBufLock (--sg) does on Windows,
    /// step by step on the model: says which step fails first and why (contiguous
    /// memory in the device's reach, the edition's IoAllocateMdl limit, system PTEs,
    /// nonpaged pool, user address space), and tries each change that might help.
    ///
    /// Exit status: 0 the lock succeeds; 1 it fails (the report says why); 2 a usage
    /// or configuration error; 74 standard output could not be written.
    DmaPlan(commands::dma_plan::Args),
}

/// The version of the JSON every command prints with `--json`: `schema_version` in
/// each object. Raised when a field changes meaning or goes away. 2: `machines`,
/// `api` and `physmap` print an object (`machines`, `exports`, `map`) instead of an
/// array; a run's `leaked_blocks[].routine` may be null.
pub const SCHEMA_VERSION: u32 = 2;

/// A failure the user caused or must fix, with the exit status it earns.
#[derive(Debug)]
pub struct Failure {
    message: String,
    status: u8,
    /// Whether the command's output (the report) is already printed: then `--json`
    /// needs no error object.
    reported: bool,
}

impl Failure {
    /// A usage or configuration error: exit status 2.
    pub fn usage(message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), status: 2, reported: false }
    }

    /// A verdict with its own exit status, after the report was printed (`run`: 1
    /// driver failed, 3 bugcheck).
    pub fn with_status(status: u8, message: impl std::fmt::Display) -> Failure {
        Failure { message: message.to_string(), status, reported: true }
    }
}

/// What `--json` prints for a failure no report describes (bad flags, a scenario
/// or build error): one object CI can always parse.
fn json_error(status: u8, message: &str) {
    let error = serde_json::json!({ "exit": status, "error": message });
    let _ = writeln!(std::io::stdout(), "{}", output::json(&error));
}

fn main() -> ExitCode {
    ntmem_host::default_sigpipe();
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let status = u8::try_from(e.exit_code()).unwrap_or(2);
            if json && e.use_stderr() {
                json_error(status, e.to_string().trim_end());
            }
            e.exit()
        }
    };
    let result = match cli.command {
        Command::Run(args) => commands::run::main(&args),
        Command::Machines(args) => commands::machines::main(&args),
        Command::Layout(args) => commands::layout::main(&args),
        Command::Physmap(args) => commands::physmap::main(&args),
        Command::Boot(args) => commands::boot::main(&args),
        Command::Api(args) => commands::api::main(&args),
        Command::Build(args) => commands::build::main(&args),
        Command::DmaPlan(args) => commands::dma_plan::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json && !f.reported {
                json_error(f.status, &f.message);
            }
            // Standard error may be closed or full too: nothing more to say then.
            let _ = writeln!(std::io::stderr(), "ntmem: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}
