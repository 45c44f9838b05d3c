//! One module per subcommand.

pub mod build;
pub mod cache;
pub mod completions;
pub mod pkg;
pub mod resolve;
pub mod run;
pub mod validate;
