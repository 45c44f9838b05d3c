//! LinuxKit's union of the init images' apk databases.

use crate::blobs::BlobSource;
use crate::entry::{EntrySink, Kind};
use crate::error::{AssembleError, Result};
use crate::flatten::Plan;

use super::{ImageInput, file};

/// Where apk keeps its database of installed packages.
pub const APK_DB: &str = "lib/apk/db/installed";

/// LinuxKit's apk database union: when more than one init image has
/// [`APK_DB`], their contents, each followed by an empty line, as one more
/// entry after the init images.
pub(super) fn write_apk_db(
    images: &[ImageInput],
    store: &dyn BlobSource,
    sink: &mut dyn EntrySink,
) -> Result<()> {
    let mut dbs: Vec<Vec<u8>> = Vec::new();
    for image in images {
        let src = image.layers(store);
        let plan = Plan::build(&src, None)?;
        if !plan.contains(APK_DB) {
            continue;
        }
        plan.stream_file(&src, APK_DB, &mut |h, r| {
            if !matches!(h.kind, Kind::File { .. }) {
                return Ok(());
            }
            let mut db = Vec::new();
            r.read_to_end(&mut db).map_err(|e| AssembleError::Image {
                image: image.name.clone(),
                message: format!("reading {APK_DB}: {e}"),
            })?;
            dbs.push(db);
            Ok(())
        })?;
    }
    if dbs.len() < 2 {
        return Ok(());
    }
    let mut union = Vec::new();
    for db in dbs {
        union.extend_from_slice(&db);
        union.extend_from_slice(b"\n\n");
    }
    file(APK_DB, &union, "LINUXKIT.apkinit", "init", sink)
}
