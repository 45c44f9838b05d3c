//! The registration file the multiplexer reads (docs/control.md), written
//! the way any component can: JSON to a dot-file, then renamed into place.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// This component's name: its registration is `<components>/machine-info.json`.
pub const NAME: &str = "machine-info";

/// The service it serves.
pub const SERVICE: &str = "slipway.machine.v1.Info";

/// Write the registration for `socket`, described by the descriptor set at
/// `descriptors`, into `components`; returns its path.
pub fn write(components: &Path, socket: &Path, descriptors: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(components)?;
    let body = serde_json::json!({
        "name": NAME,
        "socket": socket,
        "services": [SERVICE],
        "descriptors": descriptors,
    });
    let path = components.join(format!("{NAME}.json"));
    let tmp = components.join(format!(".{NAME}.json.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
