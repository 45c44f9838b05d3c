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
    #[error("{action} {}: {source}", path.display())]
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
    #[error("{location}: error: {source}")]
    At {
        location: String,
        #[source]
        source: Box<crate::deb::DebError>,
    },
    #[error("missing shared libraries in the image:\n{}", missing.join("\n"))]
    MissingLibraries { missing: Vec<String> },
    #[error("{step}: {message}")]
    Step { step: String, message: String },
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

    pub(crate) fn step(step: impl Into<String>, message: impl Into<String>) -> PkgError {
        PkgError::Step {
            step: step.into(),
            message: message.into(),
        }
    }
}
