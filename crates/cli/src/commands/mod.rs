//! One module per subcommand.

pub mod boot;
pub mod layout;
pub mod machines;
pub mod run;
