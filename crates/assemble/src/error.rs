//! What can go wrong assembling an image.

use std::path::PathBuf;

use slipway_oci::StoreError;

/// An assembly error: names the image, the layer and the path where it can.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("{image}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error("{image}: layer {layer}: {message}")]
    Layer {
        image: String,
        layer: String,
        message: String,
    },
    #[error("{image}: layer {layer}: reading the layer")]
    LayerIo {
        image: String,
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{image}: layer {layer}: inflates to more than {limit} bytes \
         (--max-layer-size, default 16G)"
    )]
    LayerTooLarge {
        image: String,
        layer: String,
        limit: u64,
    },
    #[error("{image}: layer {layer}: entry `{path}`")]
    Entry {
        image: String,
        layer: String,
        path: String,
        #[source]
        problem: EntryProblem,
    },
    #[error("{image}: the image config is not valid JSON")]
    ImageConfig {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{image}: {message}")]
    Image { image: String, message: String },
    #[error("{location}: {message}")]
    Config { location: String, message: String },
    #[error("{location}: reading {}", path.display())]
    Source {
        location: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the output")]
    Sink(#[source] std::io::Error),
}

pub type Result<T, E = AssembleError> = std::result::Result<T, E>;

/// What is wrong with one entry of a layer.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("the name is not valid UTF-8")]
    NotUtf8,
    #[error("the name or link target holds a NUL byte")]
    Nul,
    #[error("a symbolic link with an empty target")]
    EmptySymlink,
    #[error("bad {field}")]
    Header {
        field: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("too many levels of symbolic links in its parent directories")]
    SymlinkLoop,
    #[error("hard link to the root directory")]
    LinkToRoot,
    #[error("hard link to the directory `{0}`")]
    LinkToDir(String),
    #[error("hard link to `{0}`, which is not in the image")]
    LinkMissing(String),
    #[error("not a file")]
    NotAFile,
    #[error("changed between passes")]
    Changed,
}
