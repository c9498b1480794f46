//! `ntmem build`: a C driver to a Windows x64 PE image (`.sys`), built by clang ≥ 19
//! and lld-link against ntmem's headers and import libraries (see
//! `crate::driver_host::image`).

use std::path::PathBuf;

use ntmem_machine::{find_edition, DEFAULT_EDITION};

use crate::driver_host::image::{build_image, target_defines, ImageRequest};
use crate::output;
use crate::Failure;

/// Flags of `ntmem build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The driver: .c files or a directory of them.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// The image to write.
    #[arg(short, long, value_name = "FILE.sys")]
    out: PathBuf,
    /// An include directory for the driver's own headers (repeatable).
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// A preprocessor definition, NAME or NAME=VALUE (repeatable).
    #[arg(short = 'D', value_name = "NAME[=VALUE]")]
    define: Vec<String>,
    /// The machine the driver is for (`ntmem machines`): its release sets
    /// NTDDI_VERSION and _WIN32_WINNT, an IA-64 edition the page size; default
    /// the default machine.
    #[arg(long, value_name = "NAME")]
    machine: Option<String>,
    /// Print the result as JSON (`image`, `cached`, `key`).
    #[arg(long)]
    json: bool,
}

/// Runs the command.
///
/// # Errors
/// Exit status 2: bad input, a missing toolchain, or a driver that does not build.
pub fn main(args: &Args) -> Result<(), Failure> {
    let edition = find_edition(args.machine.as_deref().unwrap_or(DEFAULT_EDITION)).map_err(Failure::usage)?;
    // The driver's own -D wins over the machine's definition of the same name.
    let name = |d: &str| d.split('=').next().unwrap_or_default().to_string();
    let own: Vec<String> = args.define.iter().map(|d| name(d)).collect();
    let mut defines: Vec<String> = target_defines(edition).into_iter().filter(|d| !own.contains(&name(d))).collect();
    defines.extend(args.define.iter().cloned());
    let request =
        ImageRequest { sources: args.sources.clone(), out: args.out.clone(), includes: args.include.clone(), defines };
    let built = build_image(&request)?;
    if args.json {
        return super::print_json(&built);
    }
    let how = if built.cached { " (unchanged: from the cache)" } else { "" };
    output::emit(&format!("{}{how}\n", built.image.display()))
}
