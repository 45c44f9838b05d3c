//! What can go wrong writing outputs.

use std::io;
use std::path::{Path, PathBuf};

use slipway_assemble::AssembleError;

use crate::cpio::TooLarge;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error("{0}")]
    TooLarge(TooLarge),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{unit}")]
    Unit {
        unit: String,
        #[source]
        source: Box<FormatError>,
    },
    #[error(
        "the {format} format needs a `kernel:` with an image; use --format tar for an image without one"
    )]
    NoKernel { format: String },
    #[error("the {a} and {b} formats both write {}; ask for one of them", file.display())]
    Clash {
        a: &'static str,
        b: &'static str,
        file: PathBuf,
    },
    #[error("the {format} format needs the boot loader files (isolinux, the EFI stub)")]
    NoBootLoader { format: &'static str },
    #[error("{format}")]
    Boot {
        format: &'static str,
        #[source]
        source: crate::boot::BootError,
    },
    #[error("the {format} format: {reason}")]
    Refused {
        format: &'static str,
        reason: String,
    },
}

/// Turns an I/O error into [`FormatError::Io`] naming `what` was done to `path`.
pub(crate) fn io_at(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> FormatError + use<> {
    let path = path.to_path_buf();
    move |source| FormatError::Io { what, path, source }
}
