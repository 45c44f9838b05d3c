//! The boot loader files a bootable image needs, taken from an image (a
//! package built from Debian's binaries) as the build reads every image:
//! from the cache, streamed and digest-checked. Nothing is read from the
//! host.

use std::io::{self, Read};

use slipway_assemble::{EntrySink, Header, Kind};

use super::BootError;

/// One file of the boot loader image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoaderFile {
    /// isolinux's El Torito boot image (Debian's `isolinux`).
    Isolinux,
    /// The isohybrid MBR code (`isolinux`).
    Isohdpfx,
    /// isolinux's core module, which it loads from the ISO (`syslinux-common`).
    Ldlinux,
    /// systemd's EFI stub, the head of every UKI (`systemd-boot-efi`).
    EfiStub,
}

impl LoaderFile {
    pub const ALL: [LoaderFile; 4] = [
        LoaderFile::Isolinux,
        LoaderFile::Isohdpfx,
        LoaderFile::Ldlinux,
        LoaderFile::EfiStub,
    ];

    /// Where the file is in the image: Debian's paths.
    pub fn path(self) -> &'static str {
        match self {
            LoaderFile::Isolinux => "usr/lib/ISOLINUX/isolinux.bin",
            LoaderFile::Isohdpfx => "usr/lib/ISOLINUX/isohdpfx.bin",
            LoaderFile::Ldlinux => "usr/lib/syslinux/modules/bios/ldlinux.c32",
            LoaderFile::EfiStub => "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Larger than any boot loader file: a bigger one is refused rather than
/// held in memory.
const MAX_FILE: u64 = 16 << 20;

/// The boot loader files, as read from an image.
#[derive(Clone, Default)]
pub struct BootLoader {
    /// The image they came from, named in errors.
    pub image: String,
    files: [Option<Vec<u8>>; 4],
}

impl std::fmt::Debug for BootLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<Option<usize>> = self
            .files
            .iter()
            .map(|b| b.as_ref().map(Vec::len))
            .collect();
        f.debug_struct("BootLoader")
            .field("image", &self.image)
            .field("sizes", &sizes)
            .finish()
    }
}

impl BootLoader {
    /// An empty set, for `image`; fill it through [`EntrySink`] (the
    /// image's flattened entries) or [`BootLoader::set`].
    pub fn new(image: impl Into<String>) -> BootLoader {
        BootLoader {
            image: image.into(),
            files: Default::default(),
        }
    }

    pub fn set(&mut self, which: LoaderFile, bytes: Vec<u8>) {
        self.files[which.index()] = Some(bytes);
    }

    /// The file's bytes, or an error naming the image and the path.
    pub fn get(&self, which: LoaderFile) -> Result<&[u8], BootError> {
        self.files[which.index()]
            .as_deref()
            .ok_or_else(|| BootError::LoaderFile {
                image: self.image.clone(),
                path: which.path(),
            })
    }

    fn wanted(path: &str) -> Option<LoaderFile> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        LoaderFile::ALL.into_iter().find(|f| f.path() == path)
    }
}

/// The image's entries: the files named by [`LoaderFile::path`] are kept,
/// the rest read and dropped. A later entry of a path replaces an earlier
/// one, as in the image's filesystem.
impl EntrySink for BootLoader {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        let names = std::iter::once(header).chain(links);
        let wanted: Vec<LoaderFile> = names.filter_map(|h| BootLoader::wanted(&h.path)).collect();
        match &header.kind {
            Kind::File { size } if !wanted.is_empty() => {
                if *size > MAX_FILE {
                    return Err(io::Error::other(format!(
                        "{}: `{}` is {size} bytes, more than a boot loader file may be",
                        self.image, header.path
                    )));
                }
                let mut bytes = Vec::with_capacity(*size as usize);
                content.take(*size).read_to_end(&mut bytes)?;
                for w in wanted {
                    self.set(w, bytes.clone());
                }
            }
            Kind::File { .. } => {
                io::copy(content, &mut io::sink())?;
            }
            Kind::Link { target } => {
                let from = BootLoader::wanted(target).and_then(|t| self.files[t.index()].clone());
                for w in wanted {
                    self.files[w.index()] = from.clone();
                }
            }
            _ => {
                // Anything else at a wanted path hides the file there.
                for w in wanted {
                    self.files[w.index()] = None;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_wanted_files_and_names_what_is_missing() {
        let mut l = BootLoader::new("example/boot:1");
        let file = |path: &str, size: u64| Header::new(path, Kind::File { size }, 0o644);
        l.entry(
            &file("usr/lib/ISOLINUX/isolinux.bin", 3),
            &[],
            &mut &b"iso"[..],
        )
        .unwrap();
        l.entry(&file("usr/share/doc/x", 2), &[], &mut &b"no"[..])
            .unwrap();
        let link = Header::new(
            "usr/lib/ISOLINUX/isohdpfx.bin",
            Kind::Link {
                target: "usr/lib/ISOLINUX/isolinux.bin".into(),
            },
            0o644,
        );
        l.entry(&link, &[], &mut io::empty()).unwrap();
        assert_eq!(l.get(LoaderFile::Isolinux).unwrap(), b"iso");
        assert_eq!(l.get(LoaderFile::Isohdpfx).unwrap(), b"iso");
        let err = l.get(LoaderFile::EfiStub).unwrap_err().to_string();
        assert!(
            err.contains("example/boot:1") && err.contains("linuxx64.efi.stub"),
            "{err}"
        );
        let huge = file("usr/lib/syslinux/modules/bios/ldlinux.c32", MAX_FILE + 1);
        assert!(l.entry(&huge, &[], &mut io::repeat(0)).is_err());
    }
}
