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
//! A gzip segment of at most [`WHOLE_LIMIT`] bytes is compressed in one
//! buffer by libdeflate (about 1.5x zlib's speed, and smaller, at the same
//! level); a larger one (a segment holding one big file) is streamed through
//! zlib, so memory stays bounded whatever the files. Which one a segment
//! gets depends only on its length. libdeflate's CPU-specific code computes
//! checksums and match lengths, never choices, so its bytes are the same on
//! every CPU (a test compares them under an emulated CPU without SSE4 or
//! AVX).
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
pub const SEGMENT_VERSION: u32 = 5;
/// The initrd's gzip level (libdeflate's). LinuxKit uses gzip's default,
/// 6. libdeflate's 4 is smaller than zlib's 4 and faster; its 3 costs
/// about 5% less CPU than its 4 for 0.5% more bytes, which took the bench
/// image's cold build under 0.25x LinuxKit's (`cargo xtask bench
/// assemble`, docs/performance.md).
pub const GZIP_LEVEL: u32 = 3;
/// zlib's level for a segment past [`WHOLE_LIMIT`] (one big file: in the
/// bench image containerd's 48 MB binary, 8% of a cold build's CPU at
/// zlib-rs's level 4). zlib-rs's 2 is its fast matcher: 0.44 s instead of 0.78 s for
/// that binary, 17.8 MB instead of 16.7 MB (libdeflate's 4, whole: 16.4).
pub const STREAM_LEVEL: u32 = 2;
/// Uncompressed bytes after which a unit is cut at the next entry boundary.
/// Small enough that the whole-buffer compressors' buffers stay far below
/// the memory goal and the last segments do not leave a core idle for long;
/// deflate's 32 KiB window makes the cuts cost nothing in size.
pub const SEGMENT_TARGET: u64 = 4 << 20;
/// The largest gzip segment compressed in one buffer (libdeflate); larger
/// ones are streamed (zlib). The input buffer and the output buffer each
/// hold at most about this much, per compressor. Large enough for most of
/// the big files an image has (runc, containerd's shims and `ctr`, the
/// largest kernel modules: a segment ends with the entry that crossed
/// [`SEGMENT_TARGET`], so a big file makes a big segment), small enough that
/// two compressors' buffers stay under 100 MiB.
pub const WHOLE_LIMIT: usize = 24 << 20;
const BLOCK: usize = 1 << 20;

/// How an initrd is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// gzip level [`GZIP_LEVEL`] by libdeflate, or [`STREAM_LEVEL`] by
    /// flate2 + zlib-rs for a segment past [`WHOLE_LIMIT`].
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

/// The scratch name of a unit file or segment being written: renamed when
/// whole, removed by a later build's prune if its writer was killed.
const SCRATCH: &str = ".slipway-";

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

    /// Removes what killed builds left (their scratch files), then the
    /// least recently used files until the total is under the cap.
    pub fn prune(&self) -> io::Result<()> {
        slipway_scratch::reap(&self.dir, SCRATCH);
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

/// What one compressor keeps from one segment to the next: libdeflate's
/// state and its whole-buffer input and output, grown to the largest
/// segment and reused. Memory is then bounded by the number of compressors,
/// not by how the allocator reuses (and zeroes) freed buffers: allocated
/// afresh for each segment, they took the peak from 43 to 113 MiB.
#[derive(Default)]
struct Scratch {
    deflate: Option<libdeflater::Compressor>,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// At most one compressor per slot at once, each with its slot's scratch.
struct Slots {
    free: Mutex<Vec<Scratch>>,
    cv: Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new((0..n).map(|_| Scratch::default()).collect()),
            cv: Condvar::new(),
        }
    }

    fn take(&self) -> Scratch {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = free.pop() {
                return s;
            }
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, scratch: Scratch) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.push(scratch);
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
fn compress(
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    path: &Path,
    c: Compression,
    scratch: &mut Scratch,
) -> io::Result<()> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    match c {
        Compression::None => {
            let mut w = file;
            for b in rx {
                w.write_all(&b)?;
            }
            w.flush()
        }
        Compression::Gzip => gzip(rx, file, scratch),
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

/// gzip of the blocks from `rx`: in one buffer by libdeflate up to
/// [`WHOLE_LIMIT`] bytes, streamed through zlib (at [`STREAM_LEVEL`]) past it.
fn gzip(
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    mut file: impl Write,
    scratch: &mut Scratch,
) -> io::Result<()> {
    scratch.input.clear();
    let mut blocks = rx.into_iter();
    while let Some(b) = blocks.next() {
        if scratch.input.len() + b.len() > WHOLE_LIMIT {
            let level = flate2::Compression::new(STREAM_LEVEL);
            let mut w = flate2::write::GzEncoder::new(file, level);
            w.write_all(&scratch.input)?;
            w.write_all(&b)?;
            for b in blocks {
                w.write_all(&b)?;
            }
            return w.finish()?.flush();
        }
        if scratch.input.capacity() < WHOLE_LIMIT {
            // Once per slot; pages no segment fills are never touched.
            scratch
                .input
                .reserve_exact(WHOLE_LIMIT - scratch.input.len());
        }
        scratch.input.extend_from_slice(&b);
    }
    let Scratch {
        deflate,
        input,
        output,
    } = scratch;
    let n = gzip_into(deflate, input, output)?;
    file.write_all(output.get(..n).unwrap_or_default())?;
    file.flush()
}

/// libdeflate's gzip of `data` at [`GZIP_LEVEL`] into `out` (grown to the
/// bound when smaller); returns its length.
fn gzip_into(
    deflate: &mut Option<libdeflater::Compressor>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<usize> {
    let c = match deflate {
        Some(c) => c,
        None => {
            let level = libdeflater::CompressionLvl::new(GZIP_LEVEL as i32)
                .map_err(|e| io::Error::other(format!("libdeflate level: {e:?}")))?;
            deflate.insert(libdeflater::Compressor::new(level))
        }
    };
    let bound = c.gzip_compress_bound(data.len());
    if out.len() < bound {
        *out = vec![0u8; bound];
    }
    // Exactly the bound, whatever the buffer kept from a larger segment.
    let room = out
        .get_mut(..bound)
        .ok_or_else(|| io::Error::other("libdeflate's output buffer"))?;
    c.gzip_compress(data, room)
        .map_err(|e| io::Error::other(format!("libdeflate: {e}")))
}

/// libdeflate's gzip of `data` at [`GZIP_LEVEL`], as a gzip segment within
/// [`WHOLE_LIMIT`] is compressed.
pub fn gzip_whole(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = gzip_into(&mut None, data, &mut out)?;
    out.truncate(n);
    Ok(out)
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
        let mut scratch = self.slots.take();
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let path = self.dir.join(format!("{}.{}", self.stem, self.done.len()));
        let p = path.clone();
        let c = self.compression;
        let slots = Arc::clone(self.slots);
        let thread = std::thread::spawn(move || {
            let r = compress(rx, &p, c, &mut scratch);
            slots.give(scratch);
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
            let finished = open.cpio.finish().and_then(|mut w| {
                w.flush()?;
                w.tx = None;
                Ok(())
            });
            // Joined by `finish` even when this failed: a compressor still
            // running could otherwise write its file after the caller
            // removed the parts.
            self.done.push((open.thread, open.path));
            finished?;
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
        "{}{}",
        slipway_scratch::prefix(SCRATCH),
        dest.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
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
            let joined = join_parts(&parts, &tmp);
            // Gone whether or not the unit's file was written (a full disk).
            for p in &parts {
                let _ = fs::remove_file(p);
            }
            joined?;
            parts.len()
        }
    };
    guard
        .persist(dest)
        .map_err(|e| io_at("renaming", dest)(e.error))?;
    Ok(segments)
}

/// Concatenates a unit's compressed parts into its file `tmp`.
fn join_parts(parts: &[PathBuf], tmp: &Path) -> Result<(), FormatError> {
    let mut out = BufWriter::new(File::create(tmp).map_err(io_at("creating", tmp))?);
    for p in parts {
        let mut f = File::open(p).map_err(io_at("reading", p))?;
        io::copy(&mut f, &mut out).map_err(io_at("writing", tmp))?;
    }
    out.flush().map_err(io_at("writing", tmp))
}

/// Writes every unit (in parallel, from the cache when it has them) and
/// returns each unit's file, in order, with a report.
pub fn build_units(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    writer: Writer,
    cache: &SegmentCache,
) -> Result<Vec<(PathBuf, UnitReport)>, FormatError> {
    build_units_into(units, blobs, writer, cache, &mut |_| Ok(()))
}

/// What each unit's slot holds once a worker is done with it.
type Done = Option<Result<(PathBuf, UnitReport), FormatError>>;

/// [`build_units`], also handing each unit's file to `sink` in order as
/// soon as it and every unit before it are done, on the calling thread:
/// an output can be written (and reach the disk) while later units are
/// still being encoded. A failing `sink` stops the feeding, not the units.
#[allow(
    clippy::disallowed_methods,
    reason = "a unit's report says how long it took, and a cached unit is touched for the cache's least-recently-used order; no output byte depends on either"
)]
pub fn build_units_into(
    units: &[&Unit],
    blobs: &dyn BlobSource,
    writer: Writer,
    cache: &SegmentCache,
    sink: &mut dyn FnMut(&Path) -> Result<(), FormatError>,
) -> Result<Vec<(PathBuf, UnitReport)>, FormatError> {
    fs::create_dir_all(&cache.dir).map_err(io_at("creating", &cache.dir))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = Arc::new(Slots::new(cores));
    let results: Mutex<Vec<Done>> = Mutex::new(units.iter().map(|_| None).collect());
    let ready = Condvar::new();
    let next = AtomicUsize::new(0);
    let mut sunk: Result<(), FormatError> = Ok(());
    std::thread::scope(|scope| {
        for _ in 0..cores.min(units.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(unit) = units.get(i) else { break };
                    let result = build_unit(unit, blobs, writer, cache, &slots);
                    let mut done = results.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = done.get_mut(i) {
                        *slot = Some(result);
                    }
                    ready.notify_all();
                }
            });
        }
        // The calling thread feeds the sink in order while the workers run.
        for i in 0..units.len() {
            let mut done = results.lock().unwrap_or_else(|p| p.into_inner());
            while done.get(i).is_some_and(Option::is_none) {
                done = ready.wait(done).unwrap_or_else(|p| p.into_inner());
            }
            let Some(Some(Ok((path, _)))) = done.get(i) else {
                break;
            };
            let path = path.clone();
            drop(done);
            sunk = sink(&path);
            if sunk.is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    for r in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        match r {
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
    sunk?;
    let _ = cache.prune();
    Ok(out)
}

/// One unit's file: from the cache, or written now.
#[allow(
    clippy::disallowed_methods,
    reason = "a unit's report says how long it took, and a cached unit is touched for the cache's least-recently-used order; no output byte depends on either"
)]
fn build_unit(
    unit: &Unit,
    blobs: &dyn BlobSource,
    writer: Writer,
    cache: &SegmentCache,
    slots: &Arc<Slots>,
) -> Result<(PathBuf, UnitReport), FormatError> {
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
        write_unit(unit, blobs, writer, &path, slots)
            .map(|s| (s, false))
            .map_err(lift)
    };
    result
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
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Compressible bytes that are not one repeated pattern.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 16);
        let mut x: u32 = 1;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let word =
                ["initrd ", "segment ", "module ", "kernel ", "deflate\n"][(x >> 16) as usize % 5];
            out.extend_from_slice(word.as_bytes());
            out.extend_from_slice(format!("{} ", (x >> 8) % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// [`gzip`] of `data` sent in 1 MiB blocks, with fresh scratch.
    fn gzip_blocks(data: &[u8]) -> Vec<u8> {
        gzip_blocks_with(data, &mut Scratch::default())
    }

    /// [`gzip`] of `data` sent in 1 MiB blocks, with `scratch`.
    fn gzip_blocks_with(data: &[u8], scratch: &mut Scratch) -> Vec<u8> {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let owned = data.to_vec();
        let sender = std::thread::spawn(move || {
            for b in owned.chunks(BLOCK) {
                tx.send(b.to_vec()).unwrap();
            }
        });
        let mut out = Vec::new();
        gzip(rx, &mut out, scratch).unwrap();
        sender.join().unwrap();
        out
    }

    /// GNU gzip's reading of `gz`, as an oracle independent of both encoders.
    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let gz = gz.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn a_segment_within_the_limit_is_libdeflates_whole_buffer() {
        let data = text(3 << 20);
        let gz = gzip_blocks(&data);
        assert_eq!(gz, gzip_whole(&data).unwrap());
        assert_eq!(gunzip(&gz), data);
        // Smaller than zlib's stream at the same level.
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        z.write_all(&data).unwrap();
        assert!(gz.len() < z.finish().unwrap().len());
    }

    #[test]
    fn a_segment_past_the_limit_is_streamed() {
        let data = text(WHOLE_LIMIT + (3 << 20) / 2);
        let gz = gzip_blocks(&data);
        let mut z =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(STREAM_LEVEL));
        z.write_all(&data).unwrap();
        assert_eq!(gz, z.finish().unwrap());
        assert_eq!(gunzip(&gz), data);
        // Exactly at the limit is still one buffer.
        let at = &data[..WHOLE_LIMIT];
        assert_eq!(gzip_blocks(at), gzip_whole(at).unwrap());
    }

    /// A compressor's buffers, kept from a larger segment, change no byte.
    #[test]
    fn reused_scratch_gives_the_same_bytes() {
        let big = text(WHOLE_LIMIT);
        let small = text(100_000);
        let mut scratch = Scratch::default();
        assert_eq!(
            gzip_blocks_with(&big, &mut scratch),
            gzip_whole(&big).unwrap()
        );
        assert_eq!(
            gzip_blocks_with(&small, &mut scratch),
            gzip_whole(&small).unwrap()
        );
        assert_eq!(gunzip(&gzip_blocks_with(&small, &mut scratch)), small);
    }
}
