//! Where image bytes go: a seekable file written front to back whose zero
//! blocks become holes, a plain stream, or a bounded region (a partition)
//! of either.

use std::io::{self, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

/// Zero blocks of this size (aligned to the file) are skipped, not written.
pub const BLOCK: usize = 4096;

/// 64 KiB of zeros, compared against (`==` on slices is a `memcmp`) and
/// copied from.
pub(crate) static ZEROS: [u8; 65536] = [0; 65536];

pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// A destination for image bytes that can append zeros cheaply.
pub trait Sink: Write {
    /// Appends `n` zero bytes: a hole where the destination allows it.
    fn zeros(&mut self, n: u64) -> io::Result<()>;
}

/// A seekable output written once, front to back, in which every all-zero
/// 4 KiB block (aligned to the file) is skipped rather than written, so the
/// file stays sparse. It must start empty: skipped blocks read as zeros only
/// because nothing was there.
#[derive(Debug)]
pub struct SparseWriter<W: Write + Seek> {
    inner: W,
    /// Bytes accounted for so far.
    pos: u64,
    /// Where `inner` is positioned: the end of the last write.
    cursor: u64,
    /// The block in progress, from its aligned start up to `pos` (zeros
    /// included): always `pos % BLOCK` bytes long.
    pending: Vec<u8>,
    hasher: Option<Sha256>,
}

impl<W: Write + Seek> SparseWriter<W> {
    /// Fails if `inner` is not empty.
    pub fn new(mut inner: W) -> io::Result<SparseWriter<W>> {
        let end = inner.seek(SeekFrom::End(0))?;
        if end != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a sparse output must start empty, this one holds {end} bytes"),
            ));
        }
        Ok(SparseWriter {
            inner,
            pos: 0,
            cursor: 0,
            pending: Vec::with_capacity(BLOCK),
            hasher: None,
        })
    }

    /// Bytes accounted for so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Skips forward to `offset` (zeros in between).
    pub fn skip_to(&mut self, offset: u64) -> io::Result<()> {
        match offset.checked_sub(self.pos) {
            Some(n) => self.zeros(n),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot go back from {} to {offset}", self.pos),
            )),
        }
    }

    /// Starts hashing what is written from now on: the offset and bytes of
    /// every non-zero block, so the digest is the same however the zeros
    /// were produced. Meant to start and end on block boundaries.
    pub fn start_hash(&mut self) {
        self.hasher = Some(Sha256::new());
    }

    /// The digest since [`start_hash`](Self::start_hash), the block in
    /// progress included.
    pub fn take_hash(&mut self) -> io::Result<[u8; 32]> {
        self.write_pending()?;
        Ok(self
            .hasher
            .take()
            .map(|h| h.finalize().into())
            .unwrap_or([0; 32]))
    }

    /// Writes `data` at `at`, at or after everything written so far except
    /// for the block in progress, which may be written again as it grows.
    fn emit(&mut self, at: u64, data: &[u8]) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(at.to_le_bytes());
            h.update(data);
        }
        if self.cursor != at {
            self.inner.seek(SeekFrom::Start(at))?;
        }
        self.inner.write_all(data)?;
        self.cursor = at + data.len() as u64;
        Ok(())
    }

    /// Writes the block in progress if it holds anything but zeros, and keeps it.
    fn write_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() && !is_zero(&self.pending) {
            let pending = std::mem::take(&mut self.pending);
            let r = self.emit(self.pos - pending.len() as u64, &pending);
            self.pending = pending;
            r?;
        }
        Ok(())
    }

    /// Called when `pos` reaches a block boundary with a block in progress.
    fn complete_pending(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.pending.clear();
        Ok(())
    }

    fn put(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if self.pending.is_empty() && buf.len() >= BLOCK {
                // Aligned: whole blocks straight from `buf`, runs of non-zero
                // ones in one write.
                let whole = buf.len() / BLOCK * BLOCK;
                let mut i = 0;
                while i < whole {
                    if is_zero(&buf[i..i + BLOCK]) {
                        i += BLOCK;
                        continue;
                    }
                    let start = i;
                    while i < whole && !is_zero(&buf[i..i + BLOCK]) {
                        i += BLOCK;
                    }
                    self.emit(self.pos + start as u64, &buf[start..i])?;
                }
                self.pos += whole as u64;
                buf = &buf[whole..];
                continue;
            }
            let n = buf.len().min(BLOCK - self.pending.len());
            self.pending.extend_from_slice(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.pending.len() == BLOCK {
                self.complete_pending()?;
            }
        }
        Ok(())
    }

    /// Flushes, makes the output exactly as long as everything accounted for
    /// (writing its last byte if that was skipped), and returns it.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_pending()?;
        if self.cursor < self.pos {
            self.inner.seek(SeekFrom::Start(self.pos - 1))?;
            self.inner.write_all(&[0])?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek> Write for SparseWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.put(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Seek> Sink for SparseWriter<W> {
    fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        if !self.pending.is_empty() {
            let k = n.min((BLOCK - self.pending.len()) as u64) as usize;
            self.put(&ZEROS[..k])?;
            n -= k as u64;
        }
        if n == 0 {
            return Ok(());
        }
        // Aligned now: skip whole blocks, start the next one with its zeros.
        self.pos += n;
        let rest = (self.pos % BLOCK as u64) as usize;
        self.pending.extend_from_slice(&ZEROS[..rest]);
        Ok(())
    }
}

/// A plain stream: zeros are written out.
#[derive(Debug)]
pub struct DenseWriter<W: Write> {
    inner: W,
    pos: u64,
}

impl<W: Write> DenseWriter<W> {
    pub fn new(inner: W) -> DenseWriter<W> {
        DenseWriter { inner, pos: 0 }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for DenseWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Sink for DenseWriter<W> {
    fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let k = n.min(ZEROS.len() as u64) as usize;
            self.inner.write_all(&ZEROS[..k])?;
            self.pos += k as u64;
            n -= k as u64;
        }
        Ok(())
    }
}

/// A window of `len` bytes of another sink (a partition): writing past its
/// end is an error, and [`pad`](Self::pad) fills what is left with zeros.
pub struct Region<'a> {
    sink: &'a mut dyn Sink,
    len: u64,
    written: u64,
}

impl std::fmt::Debug for Region<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .field("written", &self.written)
            .finish()
    }
}

impl<'a> Region<'a> {
    pub fn new(sink: &'a mut dyn Sink, len: u64) -> Region<'a> {
        Region {
            sink,
            len,
            written: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    fn claim(&mut self, n: u64) -> io::Result<()> {
        if self.written + n > self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "content runs past the end of its {}-byte region (at {} + {n})",
                    self.len, self.written
                ),
            ));
        }
        self.written += n;
        Ok(())
    }

    /// Zeros up to the end of the region.
    pub fn pad(&mut self) -> io::Result<()> {
        self.zeros(self.len - self.written)
    }
}

impl Write for Region<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.claim(buf.len() as u64)?;
        self.sink.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl Sink for Region<'_> {
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        self.claim(n)?;
        self.sink.zeros(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Writes through a SparseWriter into a Cursor and a Vec in parallel;
    /// the bytes must agree and the number of inner writes must show holes.
    struct Counting {
        data: Cursor<Vec<u8>>,
        writes: Vec<(u64, usize)>,
    }
    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes.push((self.data.position(), buf.len()));
            self.data.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Seek for Counting {
        fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
            self.data.seek(p)
        }
    }

    fn run(ops: &[(bool, usize, u8)]) -> (Vec<u8>, Vec<(u64, usize)>) {
        let mut w = SparseWriter::new(Counting {
            data: Cursor::new(Vec::new()),
            writes: Vec::new(),
        })
        .unwrap();
        let mut expect = Vec::new();
        for &(zeros, n, byte) in ops {
            if zeros {
                w.zeros(n as u64).unwrap();
                expect.extend(std::iter::repeat_n(0, n));
            } else {
                w.write_all(&vec![byte; n]).unwrap();
                expect.extend(std::iter::repeat_n(byte, n));
            }
        }
        let c = w.finish().unwrap();
        assert_eq!(c.data.get_ref(), &expect);
        (expect, c.writes)
    }

    #[test]
    fn zero_blocks_are_skipped_and_bytes_kept() {
        let (_, writes) = run(&[(false, 10, 1), (true, 20000, 0), (false, 5000, 2)]);
        // The first block, then the blocks holding the 2s (from 20010).
        assert_eq!(writes[0], (0, BLOCK));
        assert!(writes[1..].iter().all(|&(at, _)| at >= 16384), "{writes:?}");
        let (_, writes) = run(&[(false, 3 * BLOCK, 0), (false, 1, 7), (true, 100_000, 0)]);
        // Written zeros are skipped too; the trailing hole is made by one byte.
        assert_eq!(
            writes,
            vec![(3 * BLOCK as u64, BLOCK), (3 * BLOCK as u64 + 100_000, 1)]
        );
        run(&[
            (false, 4095, 3),
            (false, 2, 4),
            (true, 1, 0),
            (false, 9000, 5),
        ]);
        run(&[
            (true, 1, 0),
            (false, 4096, 1),
            (true, 4095, 0),
            (false, 1, 9),
        ]);
    }

    #[test]
    fn a_sparse_output_must_start_empty() {
        let err = SparseWriter::new(Cursor::new(vec![1u8])).unwrap_err();
        assert!(err.to_string().contains("start empty"), "{err}");
    }

    #[test]
    fn regions_refuse_to_overflow() {
        let mut d = DenseWriter::new(Vec::new());
        let mut r = Region::new(&mut d, 10);
        r.write_all(b"12345").unwrap();
        assert!(r.write_all(b"123456").is_err());
        r.pad().unwrap();
        assert!(r.zeros(1).is_err());
        assert_eq!(d.into_inner(), b"12345\0\0\0\0\0");
    }

    #[test]
    fn hashes_ignore_how_zeros_were_made() {
        let digest = |explicit: bool| {
            let mut w = SparseWriter::new(Cursor::new(Vec::new())).unwrap();
            w.start_hash();
            w.write_all(b"abc").unwrap();
            if explicit {
                w.write_all(&[0; 9000]).unwrap();
            } else {
                w.zeros(9000).unwrap();
            }
            w.write_all(b"xyz").unwrap();
            w.take_hash().unwrap()
        };
        assert_eq!(digest(true), digest(false));
    }
}
