//! Errors of package builds.

use std::path::PathBuf;

/// What can go wrong loading or building a package.
#[derive(Debug, thiserror::Error)]
pub enum PkgError {
    /// `build.yml` has problems; `rendered` is one `file:line:column:
    /// error: ...` line per problem (with its hint); `sources` and
    /// `diagnostics` let a front end show each with its snippet.
    #[error("{rendered}")]
    Definition {
        rendered: String,
        count: usize,
        sources: Box<slipway_config::SourceMap>,
        diagnostics: slipway_config::Diagnostics,
    },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", dir.display())]
    Package { dir: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] slipway_oci::StoreError),
    #[error(transparent)]
    Registry(#[from] slipway_oci::RegistryError),
    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),
    #[error(
        "{} ({}) is not in the cache at {}{}; build it with: slipway pkg build {}",
        reference,
        platform,
        cache.display(),
        crate::tag::epoch_note(epoch.as_deref()),
        dir.display()
    )]
    NotBuilt {
        reference: String,
        platform: String,
        dir: PathBuf,
        cache: PathBuf,
        /// `SOURCE_DATE_EPOCH` when it was part of the tag.
        epoch: Option<String>,
    },
    /// A problem with something `build.yml` names, where it is named.
    #[error("{location}: error")]
    At {
        location: String,
        #[source]
        source: Box<crate::deb::DebError>,
    },
    #[error("missing shared libraries in the image:\n{}", missing.join("\n"))]
    MissingLibraries { missing: Vec<String> },
    /// A step found its input unusable: there is no underlying error, the
    /// message says what is wrong.
    #[error("{step}: {message}")]
    Step { step: &'static str, message: String },
    /// A step could not read a file of the image it works on.
    #[error("{step}: reading {path}")]
    Read {
        step: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing or compressing the package's layer failed.
    #[error("layer: {what}")]
    Layer {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An image's config, manifest or index could not be serialised.
    #[error("image: {what}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A program a step runs could not be started.
    #[error("{step}: cannot run {program}")]
    Spawn {
        step: &'static str,
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A program a step runs failed; `output` is the end of what it said.
    #[error("{step}: {what} failed ({status}){}", if output.is_empty() { String::new() } else { format!(":\n{output}") })]
    Failed {
        step: &'static str,
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    /// A blob of the OCI layout `docker buildx` wrote is not named by a digest.
    #[error("docker")]
    BlobName {
        #[source]
        source: slipway_reference::DigestError,
    },
}

impl PkgError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> PkgError {
        let path = path.into();
        move |source| PkgError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn step(step: &'static str, message: impl Into<String>) -> PkgError {
        PkgError::Step {
            step,
            message: message.into(),
        }
    }

    pub(crate) fn read(
        step: &'static str,
        path: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> PkgError {
        let path = path.into();
        move |source| PkgError::Read { step, path, source }
    }
}
