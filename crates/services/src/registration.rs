//! Registering with the multiplexer: `<components>/<name>.json`, and the
//! descriptor sets it names, each written to a temporary name beginning
//! with `.` and renamed into place.

use std::io;
use std::path::{Path, PathBuf};

/// Write `data` to `path` atomically (a `.`-name beside it, then rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// One component's registration.
#[derive(Clone, Debug)]
pub struct Component<'a> {
    /// Its name (the file's name without `.json`).
    pub name: &'a str,
    /// The unix socket it serves gRPC on.
    pub socket: &'a Path,
    /// The fully-qualified services it serves.
    pub services: &'a [&'a str],
    /// Its serialized `FileDescriptorSet`, written to this path and named
    /// in the registration.
    pub descriptors: Option<(&'a Path, &'a [u8])>,
}

impl Component<'_> {
    /// Write the descriptors, then the registration; returns the
    /// registration's path.
    pub fn register(&self, components: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(components)?;
        if let Some((path, data)) = self.descriptors {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_atomic(path, data)?;
        }
        // A struct, for the fields in the documented order.
        #[derive(serde::Serialize)]
        struct Registration<'a> {
            name: &'a str,
            socket: &'a Path,
            services: &'a [&'a str],
            #[serde(skip_serializing_if = "Option::is_none")]
            descriptors: Option<&'a Path>,
        }
        let json = Registration {
            name: self.name,
            socket: self.socket,
            services: self.services,
            descriptors: self.descriptors.map(|(path, _)| path),
        };
        let file = components.join(format!("{}.json", self.name));
        let mut text = serde_json::to_vec_pretty(&json).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomic(&file, &text)?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_file() {
        let dir = tempfile::tempdir().unwrap();
        let components = dir.path().join("components");
        let descriptors = dir.path().join("services.binpb");
        let file = Component {
            name: "services",
            socket: Path::new("/run/slipway/services.sock"),
            services: &["slipway.services.v1.Power", "slipway.services.v1.Services"],
            descriptors: Some((&descriptors, b"\x0a\x00")),
        }
        .register(&components)
        .unwrap();
        assert_eq!(file, components.join("services.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "services",
                "socket": "/run/slipway/services.sock",
                "services": ["slipway.services.v1.Power", "slipway.services.v1.Services"],
                "descriptors": descriptors,
            })
        );
        assert_eq!(std::fs::read(&descriptors).unwrap(), b"\x0a\x00");
        // Only the two files: no temporary left behind.
        assert_eq!(std::fs::read_dir(&components).unwrap().count(), 1);
    }
}
