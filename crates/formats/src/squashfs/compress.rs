//! Block compression for squashfs: the codecs the kernel reads, and a pool
//! of threads that compresses blocks in parallel and hands them back in the
//! order they were given, so the image's bytes do not depend on timing.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A squashfs compressor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// zlib streams (squashfs calls it gzip), built into every kernel that
    /// has squashfs.
    Gzip,
    /// zstd frames (`CONFIG_SQUASHFS_ZSTD`, set in Debian's kernels).
    Zstd,
    /// xz streams with a dictionary of one block and a CRC32 check, the
    /// kernel decoder's limits (`CONFIG_SQUASHFS_XZ`).
    Xz,
}

impl Compressor {
    /// The superblock's compression id.
    pub(crate) fn id(self) -> u16 {
        match self {
            Compressor::Gzip => 1,
            Compressor::Xz => 4,
            Compressor::Zstd => 6,
        }
    }

    /// mksquashfs's default level for this compressor.
    pub fn default_level(self) -> u32 {
        match self {
            Compressor::Gzip => 9,
            Compressor::Zstd => 15,
            Compressor::Xz => 6,
        }
    }

    /// The names `mksquashfs -comp` uses.
    pub fn parse(s: &str) -> Option<Compressor> {
        match s {
            "gzip" => Some(Compressor::Gzip),
            "zstd" => Some(Compressor::Zstd),
            "xz" => Some(Compressor::Xz),
            _ => None,
        }
    }
}

/// A compressor with its settings; each thread makes its own [`Engine`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Codec {
    pub kind: Compressor,
    pub level: u32,
    /// The xz dictionary: the kernel allocates one block's worth.
    pub dict: u32,
}

/// A block as it goes in the image.
#[derive(Debug)]
pub(crate) enum Block {
    Compressed(Vec<u8>),
    /// Compression did not make it smaller.
    Stored(Vec<u8>),
    /// All zeros: nothing is written (a hole, for data blocks).
    Sparse,
}

/// One thread's compressor state, reused across blocks.
pub(crate) struct Engine {
    codec: Codec,
    zlib: Option<flate2::Compress>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("codec", &self.codec)
            .finish()
    }
}

impl Engine {
    pub fn new(codec: Codec) -> io::Result<Engine> {
        let mut e = Engine {
            codec,
            zlib: None,
            zstd: None,
        };
        match codec.kind {
            Compressor::Gzip => {
                e.zlib = Some(flate2::Compress::new(
                    flate2::Compression::new(codec.level.min(9)),
                    true,
                ));
            }
            Compressor::Zstd => {
                // One thread, fixed parameters: the same bytes on every CPU.
                e.zstd = Some(zstd::bulk::Compressor::new(codec.level as i32)?);
            }
            Compressor::Xz => {}
        }
        Ok(e)
    }

    /// Compresses `data`, or keeps it as it is when that is not smaller.
    pub fn block(&mut self, data: Vec<u8>, sparse: bool) -> io::Result<Block> {
        if sparse && data.iter().all(|&b| b == 0) {
            return Ok(Block::Sparse);
        }
        let packed = self.compress(&data)?;
        Ok(if packed.len() < data.len() {
            Block::Compressed(packed)
        } else {
            Block::Stored(data)
        })
    }

    fn compress(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self.codec.kind {
            Compressor::Gzip => {
                let z = self
                    .zlib
                    .as_mut()
                    .ok_or_else(|| io::Error::other("no zlib state"))?;
                z.reset();
                let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
                loop {
                    let consumed = z.total_in() as usize;
                    let status = z
                        .compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Finish)
                        .map_err(io::Error::other)?;
                    if status == flate2::Status::StreamEnd {
                        return Ok(out);
                    }
                    out.reserve(out.capacity().max(4096));
                }
            }
            Compressor::Zstd => self
                .zstd
                .as_mut()
                .ok_or_else(|| io::Error::other("no zstd state"))?
                .compress(data),
            Compressor::Xz => {
                let mut opts = liblzma::stream::LzmaOptions::new_preset(self.codec.level.min(9))
                    .map_err(io::Error::other)?;
                opts.dict_size(self.codec.dict);
                let mut filters = liblzma::stream::Filters::new();
                filters.lzma2(&opts);
                let mut s = liblzma::stream::Stream::new_stream_encoder(
                    &filters,
                    liblzma::stream::Check::Crc32,
                )
                .map_err(io::Error::other)?;
                let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 128);
                loop {
                    let consumed = s.total_in() as usize;
                    let status = s
                        .process_vec(&data[consumed..], &mut out, liblzma::stream::Action::Finish)
                        .map_err(io::Error::other)?;
                    if status == liblzma::stream::Status::StreamEnd {
                        return Ok(out);
                    }
                    out.reserve(out.capacity().max(4096));
                }
            }
        }
    }
}

struct Job {
    data: Vec<u8>,
    sparse: bool,
    reply: SyncSender<io::Result<Block>>,
}

enum Pending {
    Ready(io::Result<Block>),
    Waiting(Receiver<io::Result<Block>>),
}

/// Compresses blocks on `threads` threads (on the caller's thread when
/// `threads` is 0 or 1) and returns them in submission order, each with the
/// tag it was given.
pub(crate) struct Pool<T> {
    engine: Engine,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    queue: VecDeque<(T, Pending)>,
    /// Blocks in flight before [`Pool::submit`] waits for the oldest.
    depth: usize,
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers.len())
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl<T> Pool<T> {
    pub fn new(codec: Codec, threads: usize) -> io::Result<Pool<T>> {
        let mut pool = Pool {
            engine: Engine::new(codec)?,
            jobs: None,
            workers: Vec::new(),
            queue: VecDeque::new(),
            depth: 2 * threads.max(1),
        };
        if threads > 1 {
            let (tx, rx) = sync_channel::<Job>(threads);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..threads {
                let rx = Arc::clone(&rx);
                let mut engine = Engine::new(codec)?;
                pool.workers.push(std::thread::spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // The receiver is gone only when the writer was dropped.
                        let _ = job.reply.send(engine.block(job.data, job.sparse));
                    }
                }));
            }
            pool.jobs = Some(tx);
        }
        Ok(pool)
    }

    /// Compresses `data` (a zero block becomes [`Block::Sparse`] when
    /// `sparse`); returns the blocks that are done, oldest first, once more
    /// than the pool's depth are in flight.
    pub fn submit(
        &mut self,
        tag: T,
        data: Vec<u8>,
        sparse: bool,
        done: &mut dyn FnMut(T, Block) -> io::Result<()>,
    ) -> io::Result<()> {
        let pending = match &self.jobs {
            Some(jobs) => {
                let (reply, rx) = sync_channel(1);
                jobs.send(Job {
                    data,
                    sparse,
                    reply,
                })
                .map_err(|_| io::Error::other("a compression thread stopped"))?;
                Pending::Waiting(rx)
            }
            None => Pending::Ready(self.engine.block(data, sparse)),
        };
        self.queue.push_back((tag, pending));
        while self.queue.len() > self.depth {
            self.next(done)?;
        }
        Ok(())
    }

    fn next(&mut self, done: &mut dyn FnMut(T, Block) -> io::Result<()>) -> io::Result<()> {
        if let Some((tag, pending)) = self.queue.pop_front() {
            let block = match pending {
                Pending::Ready(b) => b?,
                Pending::Waiting(rx) => rx
                    .recv()
                    .map_err(|_| io::Error::other("a compression thread stopped"))??,
            };
            done(tag, block)?;
        }
        Ok(())
    }

    /// Waits for every block in flight.
    pub fn flush(&mut self, done: &mut dyn FnMut(T, Block) -> io::Result<()>) -> io::Result<()> {
        while !self.queue.is_empty() {
            self.next(done)?;
        }
        Ok(())
    }

    /// The caller thread's engine, for metadata blocks.
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Writes `block` to `out`; returns the size word of a data block.
pub(crate) fn write_block(out: &mut dyn Write, block: &Block) -> io::Result<(u64, u32)> {
    const UNCOMPRESSED: u32 = 1 << 24;
    match block {
        Block::Compressed(b) => {
            out.write_all(b)?;
            Ok((b.len() as u64, b.len() as u32))
        }
        Block::Stored(b) => {
            out.write_all(b)?;
            Ok((b.len() as u64, b.len() as u32 | UNCOMPRESSED))
        }
        Block::Sparse => Ok((0, 0)),
    }
}
