//! One module per subcommand.

pub mod api;
pub mod boot;
pub mod build;
pub mod dma_plan;
pub mod layout;
pub mod machines;
pub mod physmap;
pub mod run;

/// Prints `value` as pretty JSON on standard output.
///
/// # Errors
/// When standard output cannot be written (see [`crate::output`]).
pub fn print_json(value: &impl serde::Serialize) -> Result<(), crate::Failure> {
    crate::output::emit_json(value)
}
