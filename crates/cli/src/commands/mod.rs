//! One module per subcommand.

pub mod build;
pub mod completions;
pub mod validate;
