//! The LinuxKit YAML language: the model, parsing with positions, validation,
//! merging several files, and the image-label precedence rules.

pub mod decode;
pub mod diag;
pub mod gojson;
pub mod metadata;
pub mod model;
pub mod print;
pub mod schema;
pub mod source;
pub mod yaml;
mod yaml_errors;

#[cfg(test)]
mod arbitrary;
#[cfg(test)]
mod roundtrip;

pub use decode::{Id, PackageRef, StringMap};
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use model::*;
pub use schema::json_schema;
pub use source::{FileId, SourceMap, Sp, Span};
pub mod caps;
pub mod label;
pub mod load;
pub mod merge;
pub mod mounts;
pub mod validate;

pub use load::{Input, LoadError, Loaded, load, load_str, parse_unchecked};
