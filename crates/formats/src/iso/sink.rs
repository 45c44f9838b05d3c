//! A whole root filesystem from slipway's entry stream: each file's data is
//! written as it arrives, the tree at [`IsoWriter::finish`].

use std::io::{self, Read, Seek, Write};

use slipway_assemble::{EntrySink, Header, Kind};

use super::{Device, IsoError, IsoWriter, Meta};

fn meta(h: &Header) -> Result<Meta, IsoError> {
    let id = |what: &'static str, value: u64| {
        u32::try_from(value).map_err(|_| IsoError::IdTooLarge {
            path: h.path.clone(),
            what,
            value,
        })
    };
    Ok(Meta {
        mode: h.mode & 0o7777,
        uid: id("uid", h.uid)?,
        gid: id("gid", h.gid)?,
        mtime: h.mtime,
    })
}

impl<W: Write + Seek> IsoWriter<W> {
    fn put_entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> Result<(), IsoError> {
        let path = header.path.as_str();
        let m = meta(header)?;
        match &header.kind {
            Kind::File { size } => {
                self.add_file(path, m, content, *size)?;
                for link in links {
                    self.add_hard_link(&link.path, path)?;
                }
            }
            Kind::Dir => self.add_dir(path, m)?,
            Kind::Symlink { target } => self.add_symlink(path, m, target)?,
            Kind::Link { target } => self.add_hard_link(path, target)?,
            Kind::Char { major, minor } => {
                self.add_device(path, m, Device::Char, *major, *minor)?
            }
            Kind::Block { major, minor } => {
                self.add_device(path, m, Device::Block, *major, *minor)?
            }
            Kind::Fifo => self.add_fifo(path, m)?,
        }
        Ok(())
    }
}

/// Entries in stream order; a hard-link group shares its file's extent.
/// Extended attributes (PAX `SCHILY.xattr.*`) are not written: Linux reads
/// none from ISO 9660.
impl<W: Write + Seek> EntrySink for IsoWriter<W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        self.put_entry(header, links, content)
            .map_err(IsoError::into_io)
    }
}
