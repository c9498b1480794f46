//! One module per subcommand.

pub mod api;
pub mod boot;
pub mod layout;
pub mod machines;
pub mod run;

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("reports serialise"));
}
