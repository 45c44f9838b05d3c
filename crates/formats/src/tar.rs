//! Units as tar: assemble's entries through slipway-tar's writer, which
//! holds the header format and its determinism rules.

use std::io::{self, Read, Write};

use slipway_assemble::{EntrySink, Header, Kind};

pub use slipway_tar::end_of_archive as finish;

/// The tar writer's view of an entry.
pub fn tar_entry(h: &Header) -> slipway_tar::Entry<'_> {
    let kind = match &h.kind {
        Kind::File { size } => slipway_tar::Kind::File { size: *size },
        Kind::Dir => slipway_tar::Kind::Dir,
        Kind::Symlink { target } => slipway_tar::Kind::Symlink { target },
        Kind::Link { target } => slipway_tar::Kind::Link { target },
        Kind::Char { major, minor } => slipway_tar::Kind::Char {
            major: *major,
            minor: *minor,
        },
        Kind::Block { major, minor } => slipway_tar::Kind::Block {
            major: *major,
            minor: *minor,
        },
        Kind::Fifo => slipway_tar::Kind::Fifo,
    };
    slipway_tar::Entry {
        path: &h.path,
        kind,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime,
        pax: &h.pax,
    }
}

/// Writes entries as tar, without the end-of-archive marker (so segments
/// concatenate); [`finish`] writes the marker.
#[derive(Debug)]
pub struct TarWriter<W: Write>(slipway_tar::TarWriter<W>);

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter(slipway_tar::TarWriter::new(out))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.0.written()
    }

    pub fn into_inner(self) -> W {
        self.0.into_inner()
    }
}

impl<W: Write> EntrySink for TarWriter<W> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        self.0.append(&tar_entry(header), content)?;
        for link in links {
            self.0.append(&tar_entry(link), &mut io::empty())?;
        }
        Ok(())
    }
}
