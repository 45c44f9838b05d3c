//! One module per subcommand; none uses another (what they share is in
//! `context`, `progress`, `config_input` and `report`).

pub mod build;
pub mod cache;
pub mod completions;
pub mod control_bridge;
pub mod ctl;
pub mod pkg;
pub mod report;
pub mod run;
pub mod schema;
pub mod timeline;
pub mod validate;
