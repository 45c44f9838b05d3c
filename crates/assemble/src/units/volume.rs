//! A volume: its directories, and its image flattened or as an OCI layout.

use slipway_contract::bundle;

use crate::blobs::BlobSource;
use crate::entry::EntrySink;
use crate::error::Result;
use crate::flatten::{Filters, Plan, RESOLV_SYMLINK};

use super::oci_layout::write_oci_layout;
use super::{ImageInput, dir, prefix_dirs};

/// `LINUXKIT.source` of the directories a volume adds of its own.
const VOLUMES: &str = "linuxkit.volumes";

/// Volume `name`: `lower/` with its image (flattened, or an OCI layout
/// with `oci`), `tmp/` and `merged/`.
pub(super) fn write_volume(
    name: &str,
    image: Option<&ImageInput>,
    oci: bool,
    location: &str,
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    // As LinuxKit tags them: `lower/` and the directories above it come with
    // the image (`empty` without one), `tmp/` and `merged/` from the volume.
    let source = image.as_ref().map_or("empty", |i| i.name.as_str());
    let lower = bundle::volume_lower_dir(name);
    prefix_dirs(&lower, source, location, sink)?;
    if let Some(image) = image {
        if oci {
            write_oci_layout(image, store, &lower, location, sink)?;
        } else {
            let src = image.layers(store);
            let filters = Filters {
                resolv_symlink: Some(RESOLV_SYMLINK.into()),
            };
            Plan::build(&src, Some(filters))?.emit(
                &src,
                &format!("{lower}/"),
                &image.name,
                location,
                sink,
            )?;
        }
    }
    dir(&bundle::volume_tmp_dir(name), VOLUMES, location, sink)?;
    dir(&bundle::volume_merged_dir(name), VOLUMES, location, sink)
}
