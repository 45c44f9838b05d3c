//! An onboot, onshutdown or service bundle: the image's root filesystem
//! (or a shared one), `config.json` and `runtime.json`.

use slipway_contract::bundle;

use crate::blobs::BlobSource;
use crate::entry::EntrySink;
use crate::error::Result;
use crate::flatten::{Filters, Plan};

use super::{ImageInput, dir, file, prefix_dirs};

#[derive(Debug, Clone)]
pub(super) struct BundleUnit {
    pub(super) dir: String,
    pub(super) image: ImageInput,
    pub(super) readonly: bool,
    /// The directory holding the image when an earlier bundle extracted it.
    pub(super) shared_root: Option<String>,
    pub(super) config: String,
    pub(super) runtime: String,
}

/// Streams bundle `b` at its directory.
pub(super) fn write_bundle(
    b: &BundleUnit,
    location: &str,
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let source = b.image.name.as_str();
    let loc = location;
    let extract = if b.readonly {
        bundle::ROOTFS
    } else {
        bundle::LOWER
    };
    match &b.shared_root {
        None => {
            let root = format!("{}/{extract}", b.dir);
            prefix_dirs(&root, source, loc, sink)?;
            let src = b.image.layers(store);
            let filters = Filters {
                resolv_symlink: None,
            };
            Plan::build(&src, Some(filters))?.emit(&src, &format!("{root}/"), source, loc, sink)?;
        }
        Some(_) => prefix_dirs(&b.dir, source, loc, sink)?,
    }
    file(
        &format!("{}/{}", b.dir, bundle::CONFIG_JSON),
        b.config.as_bytes(),
        source,
        loc,
        sink,
    )?;
    if !b.readonly {
        dir(&format!("{}/{}", b.dir, bundle::TMP), source, loc, sink)?;
        dir(&format!("{}/{}", b.dir, bundle::ROOTFS), source, loc, sink)?;
    } else if b.shared_root.is_some() {
        dir(&format!("{}/{}", b.dir, bundle::ROOTFS), source, loc, sink)?;
    }
    file(
        &format!("{}/{}", b.dir, bundle::RUNTIME_JSON),
        b.runtime.as_bytes(),
        source,
        loc,
        sink,
    )
}
