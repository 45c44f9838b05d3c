//! What can go wrong assembling an image.

use std::path::PathBuf;

use slipway_oci::StoreError;

/// An assembly error: names the image, the layer and the path where it can.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("{image}: {source}")]
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
    #[error("{image}: layer {layer}: reading the layer: {source}")]
    LayerIo {
        image: String,
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{image}: layer {layer}: entry `{path}`: {message}")]
    Entry {
        image: String,
        layer: String,
        path: String,
        message: String,
    },
    #[error("{image}: the image config is not valid JSON: {source}")]
    ImageConfig {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{image}: {message}")]
    Image { image: String, message: String },
    #[error("{location}: {message}")]
    Config { location: String, message: String },
    #[error("{location}: reading {}: {source}", path.display())]
    Source {
        location: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the output: {0}")]
    Sink(#[source] std::io::Error),
}

pub type Result<T, E = AssembleError> = std::result::Result<T, E>;
