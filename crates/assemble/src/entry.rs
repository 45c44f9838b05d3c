//! Filesystem entries and the sink units push them into.

use std::io::{self, Read};

/// LinuxKit's fixed time for generated entries: 2017-04-18T16:30:00Z.
pub const DEFAULT_MTIME: u64 = 1_492_533_000;

/// The PAX record naming where an entry came from (an image reference,
/// `linuxkit.files`, `linuxkit.volumes`).
pub const PAX_SOURCE: &str = "LINUXKIT.source";
/// The PAX record naming the config location (`kernel`, `init[0]`, `onboot[1]`, `files[2]`...).
pub const PAX_LOCATION: &str = "LINUXKIT.location";

/// What kind of filesystem object an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of `size` bytes; its content follows the header.
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// A hard link to the earlier entry `target` (a path in the same output).
    Link {
        target: String,
    },
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl Kind {
    pub fn size(&self) -> u64 {
        match self {
            Kind::File { size } => *size,
            _ => 0,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self, Kind::Dir)
    }
}

/// One entry: everything but its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Relative, no leading `/` or trailing `/` (kernel.tar entries keep their
    /// names verbatim, e.g. `./lib/modules/...`, as LinuxKit does).
    pub path: String,
    pub kind: Kind,
    /// Permission bits, with set-uid, set-gid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Extra PAX records, sorted by key: `LINUXKIT.*` and extended attributes
    /// (`SCHILY.xattr.*`).
    pub pax: Vec<(String, Vec<u8>)>,
    /// Made by the build (a bundle's JSON, a `files:` entry, a filtered or
    /// touched entry...) rather than taken from an image: its `mtime` is the
    /// build's time for generated entries (`SOURCE_DATE_EPOCH`).
    pub generated: bool,
}

impl Header {
    /// A generated entry: owner root, LinuxKit's fixed time, no records.
    pub fn new(path: impl Into<String>, kind: Kind, mode: u32) -> Header {
        Header {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            pax: Vec::new(),
            generated: true,
        }
    }

    /// Sets a PAX record, keeping the records sorted by key.
    pub fn set_pax(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self.pax.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => self.pax[i].1 = value,
            Err(i) => self.pax.insert(i, (key.to_string(), value)),
        }
    }

    /// The value of PAX record `key`, if set.
    pub fn pax(&self, key: &str) -> Option<&[u8]> {
        self.pax
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `LINUXKIT.source` and `LINUXKIT.location`.
    pub fn with_origin(mut self, source: &str, location: &str) -> Header {
        self.set_pax(PAX_SOURCE, source);
        self.set_pax(PAX_LOCATION, location);
        self
    }
}

/// Where a unit pushes its entries: a writer of some format.
///
/// A regular file with other names (a hard-link group) arrives as one call:
/// `header` is the file, `links` the other names (each [`Kind::Link`] to
/// `header.path`), so a writer can keep the group together and give it one
/// inode. `content` yields exactly `header.kind.size()` bytes.
pub trait EntrySink {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()>;
}

/// A sink that collects headers and content hashes: for tests and listings.
#[derive(Debug, Default)]
pub struct Collect {
    pub entries: Vec<(Header, Vec<u8>)>,
    /// Keep at most this many content bytes per entry (the rest is read and dropped).
    pub keep: usize,
}

impl Collect {
    pub fn keeping(keep: usize) -> Collect {
        Collect {
            entries: Vec::new(),
            keep,
        }
    }
}

impl EntrySink for Collect {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        let mut kept = Vec::new();
        content.take(self.keep as u64).read_to_end(&mut kept)?;
        io::copy(content, &mut io::sink())?;
        self.entries.push((header.clone(), kept));
        for link in links {
            self.entries.push((link.clone(), Vec::new()));
        }
        Ok(())
    }
}
