//! Segments: each unit written on its own, in parallel, cached, concatenated.
//!
//! A unit becomes one file holding one or more segments: for tar, its
//! entries without the end marker; for an initrd, complete newc archives,
//! each compressed on its own (the kernel unpacks a concatenation of
//! compressed archives as one). A large unit is cut at entry boundaries
//! every [`SEGMENT_TARGET`] uncompressed bytes, each cut compressed on its own
//! thread, so one big unit does not leave a core idle. Cut points depend
//! only on the bytes, never on the machine's core count, and the compressors
//! are single-threaded with fixed parameters, so the output is the same on
//! every machine.
//!
//! Unit files are cached in `<cache>/segments/` under a digest of the unit
//! key, the writer and its options and [`SEGMENT_VERSION`], written to a
//! temporary name and renamed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use slipway_assemble::{AssembleError, BlobSource, EntrySink, Header, Unit};

use crate::cpio::{CpioWriter, TooLarge};
use crate::error::{FormatError, io_at};
use crate::tar::TarWriter;

/// Part of every segment cache key: bump when a writer's bytes change.
pub const SEGMENT_VERSION: u32 = 2;
/// The initrd's gzip level. LinuxKit uses gzip's default, 6; 4 costs a
/// quarter less CPU for a 3% larger initrd on a 500 MB image (measured
/// with `cargo xtask bench assemble`, see docs/performance.md).
pub const GZIP_LEVEL: u32 = 4;
/// Uncompressed bytes after which a unit is cut at the next entry boundary.
pub const SEGMENT_TARGET: u64 = 32 << 20;
const BLOCK: usize = 1 << 20;

/// How an initrd is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// gzip level [`GZIP_LEVEL`] through flate2 + zlib-rs.
    Gzip,
    /// zstd level 3, single-threaded.
    Zstd,
}

impl Compression {
    /// The name `--compress` takes.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--compress` name that is none of slipway's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {0:?}; use gzip, zstd or none")]
pub struct UnknownCompression(pub String);

impl std::str::FromStr for Compression {
    type Err = UnknownCompression;

    /// `gzip` (or `gz`), `zstd` (or `zst`), `none`.
    fn from_str(s: &str) -> Result<Compression, UnknownCompression> {
        match s {
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            _ => Err(UnknownCompression(s.to_string())),
        }
    }
}

/// What a unit is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Tar,
    /// newc cpio for an initrd, `boot/...` left out.
    Initrd(Compression),
}

impl Writer {
    fn id(self) -> String {
        format!("{self:?}")
    }
}

/// Turns a sink error carrying [`TooLarge`] back into its own variant.
fn lift(e: FormatError) -> FormatError {
    if let FormatError::Assemble(AssembleError::Sink(io)) = &e
        && let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<TooLarge>())
    {
        return FormatError::TooLarge(t.clone());
    }
    e
}

/// The segment cache directory, with a size cap.
#[derive(Clone, Debug)]
pub struct SegmentCache {
    pub dir: PathBuf,
    /// Least recently used unit files are removed past this many bytes.
    pub cap: u64,
}

impl SegmentCache {
    /// `<cache>/segments`, capped at 4 GiB.
    pub fn in_store(root: &Path) -> SegmentCache {
        SegmentCache {
            dir: root.join("segments"),
            cap: 4 << 30,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Removes the least recently used files until the total is under the cap.
    pub fn prune(&self) -> io::Result<()> {
        let mut files = Vec::new();
        let mut total = 0u64;
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if !meta.is_file() || e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            total += meta.len();
            let used = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            files.push((used, meta.len(), e.path()));
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.cap {
                break;
            }
            fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}

/// What happened to one unit.
#[derive(Clone, Debug)]
pub struct UnitReport {
    pub title: String,
    pub bytes: u64,
    pub cached: bool,
    pub segments: usize,
    pub time: Duration,
}

/// The cache key of a unit written by `writer`.
pub fn segment_key(unit: &Unit, writer: Writer) -> String {
    let mut h = Sha256::new();
    h.update(SEGMENT_VERSION.to_le_bytes());
    h.update(unit.key().as_bytes());
    h.update(writer.id().as_bytes());
    hex::encode(h.finalize())
}

/// A counting semaphore: at most `n` compressors at once.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn give(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.cv.notify_one();
    }
}

/// Sends bytes in blocks to a compressor thread.
struct ChannelWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        match &self.tx {
            Some(tx) => tx
                .send(block)
                .map_err(|_| io::Error::other("the compressor stopped")),
            None => Ok(()),
        }
    }
}

/// Compresses blocks from `rx` into `path`.
fn compress(rx: std::sync::mpsc::Receiver<Vec<u8>>, path: &Path, c: Compression) -> io::Result<()> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    match c {
        Compression::None => {
            let mut w = file;
            for b in rx {
                w.write_all(&b)?;
            }
            w.flush()
        }
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut w = flate2::write::GzEncoder::new(file, level);
            for b in rx {
                w.write_all(&b)?;
            }
            w.finish()?.flush()
        }
        Compression::Zstd => {
            let mut w = zstd::stream::write::Encoder::new(file, 3)?;
            // The crate is built without zstd's multi-threading: one thread,
            // fixed parameters, the same bytes on every CPU.
            for b in rx {
                w.write_all(&b)?;
            }
            w.finish()?.flush()
        }
    }
}

/// One segment in flight: the writer feeding its compressor.
struct Open {
    cpio: CpioWriter<ChannelWriter>,
    thread: std::thread::JoinHandle<io::Result<()>>,
    path: PathBuf,
}

/// The sink that cuts an initrd unit into segments.
struct Segmenter<'a> {
    compression: Compression,
    dir: &'a Path,
    stem: String,
    slots: &'a Arc<Slots>,
    open: Option<Open>,
    done: Vec<(std::thread::JoinHandle<io::Result<()>>, PathBuf)>,
}

impl Segmenter<'_> {
    fn start(&mut self) {
        self.slots.take();
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let path = self.dir.join(format!("{}.{}", self.stem, self.done.len()));
        let p = path.clone();
        let c = self.compression;
        let slots = Arc::clone(self.slots);
        let thread = std::thread::spawn(move || {
            let r = compress(rx, &p, c);
            slots.give();
            r
        });
        self.open = Some(Open {
            cpio: CpioWriter::new(
                ChannelWriter {
                    tx: Some(tx),
                    buf: Vec::with_capacity(BLOCK),
                },
                true,
            ),
            thread,
            path,
        });
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(open) = self.open.take() {
            let mut w = open.cpio.finish()?;
            w.flush()?;
            w.tx = None;
            self.done.push((open.thread, open.path));
        }
        Ok(())
    }

    /// Closes the last segment and waits for every compressor. Returns
    /// every part file it made, finished or not (for the caller to remove
    /// on failure), and whether all went well.
    /// A unit with no entries (the apk database union when there is
    /// nothing to unite) makes no archive at all.
    fn finish(mut self) -> (Vec<PathBuf>, io::Result<()>) {
        let mut paths: Vec<PathBuf> = self.done.iter().map(|(_, p)| p.clone()).collect();
        if let Some(open) = &self.open {
            paths.push(open.path.clone());
        }
        let mut result = self.close();
        for (thread, _) in self.done {
            let joined = thread
                .join()
                .map_err(|_| io::Error::other("a compressor thread panicked"))
                .and_then(|r| r);
            if result.is_ok() {
                result = joined;
            }
        }
        (paths, result)
    }
}

impl EntrySink for Segmenter<'_> {
    fn entry(
        &mut self,
        header: &Header,
        links: &[Header],
        content: &mut dyn Read,
    ) -> io::Result<()> {
        if self.open.is_none() {
            self.start();
        }
        let full = self
            .open
            .as_ref()
            .is_some_and(|o| o.cpio.written() >= SEGMENT_TARGET);
        if full {
            self.close()?;
            self.start();
        }
        match self.open.as_mut() {
            Some(o) => o.cpio.entry(header, links, content),
            None => Err(io::Error::other("no open segment")),
        }
    }
}

/// Writes one unit's file at `dest` (temporary name, then renamed).
fn write_unit(
    unit: &Unit,
    blobs: &dyn BlobSource,
    writer: Writer,
    dest: &Path,
    slots: &Arc<Slots>,
) -> Result<usize, FormatError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let stem = format!(
        ".{}.tmp{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    );
    let tmp = dir.join(&stem);
    // Removed on drop unless renamed into place: a failed unit leaves nothing.
    let guard = tempfile::TempPath::try_from_path(&tmp).map_err(io_at("creating", &tmp))?;
    let segments = match writer {
        Writer::Tar => {
            let file = File::create(&tmp).map_err(io_at("creating", &tmp))?;
            let mut w = TarWriter::new(BufWriter::new(file));
            unit.write(blobs, &mut w).map_err(FormatError::from)?;
            w.into_inner().flush().map_err(io_at("writing", &tmp))?;
            1
        }
        Writer::Initrd(compression) => {
            let mut seg = Segmenter {
                compression,
                dir,
                stem: stem.clone(),
                slots,
                open: None,
                done: Vec::new(),
            };
            let written = unit.write(blobs, &mut seg);
            let (parts, finished) = seg.finish();
            if written.is_err() || finished.is_err() {
                for p in &parts {
                    let _ = fs::remove_file(p);
                }
            }
            written.map_err(FormatError::from)?;
            finished.map_err(io_at("compressing", &tmp))?;
            let mut out = BufWriter::new(File::create(&tmp).map_err(io_at("creating", &tmp))?);
            for p in &parts {
                let mut f = File::open(p).map_err(io_at("reading", p))?;
                io::copy(&mut f, &mut out).map_err(io_at("writing", &tmp))?;
                let _ = fs::remove_file(p);
            }
            out.flush().map_err(io_at("writing", &tmp))?;
            parts.len()
        }
    };
    guard
        .persist(dest)
        .map_err(|e| io_at("renaming", dest)(e.error))?;
    Ok(segments)
}

/// Writes every unit (in parallel, from the cache when it has them) and
/// returns each unit's file, in order, with a report.
#[allow(
    clippy::disallowed_methods,
    reason = "a unit's report says how long it took, and a cached unit is touched for the cache's least-recently-used order; no output byte depends on either"
)]
pub fn build_units(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    writer: Writer,
    cache: &SegmentCache,
) -> Result<Vec<(PathBuf, UnitReport)>, FormatError> {
    fs::create_dir_all(&cache.dir).map_err(io_at("creating", &cache.dir))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = Arc::new(Slots {
        free: Mutex::new(cores),
        cv: Condvar::new(),
    });
    type Slot = Mutex<Option<Result<(PathBuf, UnitReport), FormatError>>>;
    let results: Vec<Slot> = units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..cores.min(units.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(unit) = units.get(i) else { break };
                    let started = Instant::now();
                    let path = cache.path(&segment_key(unit, writer));
                    let result = if path.is_file() {
                        // Touch it, for the cache's least-recently-used order.
                        let _ = File::options()
                            .append(true)
                            .open(&path)
                            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                        Ok(1).map(|s| (s, true))
                    } else {
                        write_unit(unit, blobs, writer, &path, &slots)
                            .map(|s| (s, false))
                            .map_err(lift)
                    };
                    let result = result
                        .and_then(|(segments, cached)| {
                            let bytes = fs::metadata(&path).map_err(io_at("reading", &path))?.len();
                            Ok((
                                path.clone(),
                                UnitReport {
                                    title: unit.title.clone(),
                                    bytes,
                                    cached,
                                    segments,
                                    time: started.elapsed(),
                                },
                            ))
                        })
                        .map_err(|e| FormatError::Unit {
                            unit: unit.title.clone(),
                            source: Box::new(e),
                        });
                    if let Some(slot) = results.get(i) {
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    }
                }
            });
        }
    });
    let mut out = Vec::new();
    for r in results {
        match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(r) => out.push(r?),
            None => {
                return Err(FormatError::Io {
                    what: "building",
                    path: cache.dir.clone(),
                    source: io::Error::other("a unit was not built"),
                });
            }
        }
    }
    let _ = cache.prune();
    Ok(out)
}

/// Copies the unit files, in order, to `out`.
pub fn concatenate(
    files: &[(PathBuf, UnitReport)],
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    let mut buf = vec![0u8; BLOCK];
    for (path, _) in files {
        let mut f = File::open(path).map_err(io_at("reading", path))?;
        copy_blocks(&mut f, out, &mut buf).map_err(io_at("writing the output after", path))?;
    }
    Ok(())
}

/// `io::copy` with a large buffer: through `dyn Write` it would move 8 KiB
/// per system call, and a warm build is mostly this copy.
pub fn copy_blocks(from: &mut File, out: &mut dyn Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(buf.get(..n).unwrap_or_default())?;
        total += n as u64;
    }
}
