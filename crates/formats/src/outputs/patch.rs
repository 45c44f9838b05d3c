//! A file written as if it were new, over an older file's bytes.
//!
//! What is already there is read and compared, and only the pages that
//! differ are written: a rebuild that changes a few bytes of a large
//! output dirties a few pages, so the sync before its rename has almost
//! nothing to wait for. The older bytes never show through: whatever the
//! writer leaves unwritten reads as zeros, exactly as in a new file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// The unit of comparison: a page, what a write dirties at the least.
const PAGE: u64 = 4096;

/// How much of the older bytes is read at once when looking for stale
/// data in what the writer skipped.
const SCAN: usize = 1 << 20;

/// A file being written from offset 0 as if it were empty, holding
/// `old` bytes of something else to begin with.
#[derive(Debug)]
pub(crate) struct PatchFile<'f> {
    file: &'f File,
    pos: u64,
    /// The length a new file would have now.
    len: u64,
    /// The older bytes left in `[0, old)`; none beyond it.
    old: u64,
    /// The ranges of `[0, old)` written since (start → end, disjoint,
    /// not touching).
    written: BTreeMap<u64, u64>,
    buf: Vec<u8>,
    /// Bytes that went to the file (the rest were already there).
    changed: u64,
}

impl<'f> PatchFile<'f> {
    /// `file`, whose first `old` bytes are an earlier version of what is
    /// about to be written (0: an empty file, written as is).
    pub(crate) fn over(file: &'f File, old: u64) -> Self {
        PatchFile {
            file,
            pos: 0,
            len: 0,
            old,
            written: BTreeMap::new(),
            buf: Vec::new(),
            changed: 0,
        }
    }

    /// The file underneath (to sync, not to write).
    pub(crate) fn file(&self) -> &'f File {
        self.file
    }

    /// Sets the length as [`File::set_len`] would on a new file: what a
    /// shorter length cuts off is gone, what a longer one adds is zeros.
    pub(crate) fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len < self.len.max(self.old) {
            // What is cut off, older bytes or written ones, must not come
            // back if the file grows again.
            self.file.set_len(len)?;
            self.old = self.old.min(len);
            self.clip_written(len);
        }
        self.len = len;
        Ok(())
    }

    /// Makes the file what a new file written the same way would be:
    /// older bytes the writer did not cover are zeroed, the length set.
    /// Returns how many bytes were written to the file in all.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        let end = self.old.min(self.len);
        let mut at = 0;
        let gaps: Vec<(u64, u64)> = self
            .written
            .range(..end)
            .map(|(&s, &e)| (s, e))
            .chain(std::iter::once((end, end)))
            .filter_map(|(s, e)| {
                let gap = (at < s.min(end)).then_some((at, s.min(end)));
                at = at.max(e);
                gap
            })
            .collect();
        for (start, stop) in gaps {
            self.zero(start, stop)?;
        }
        if self.file.metadata()?.len() != self.len {
            self.file.set_len(self.len)?;
        }
        Ok(self.changed)
    }

    /// Writes `data` at `at`, leaving the pages that already hold it.
    fn patch(&mut self, at: u64, data: &[u8]) -> io::Result<()> {
        self.buf.resize(data.len(), 0);
        self.file.read_exact_at(&mut self.buf, at)?;
        let mut i = 0;
        while i < data.len() {
            // From `i` to the next page boundary of the file.
            let step = (PAGE - (at + i as u64) % PAGE) as usize;
            let j = (i + step).min(data.len());
            if data[i..j] == self.buf[i..j] {
                i = j;
                continue;
            }
            // A run of differing pages, written at once.
            let mut k = j;
            while k < data.len() {
                let next = (k + PAGE as usize).min(data.len());
                if data[k..next] == self.buf[k..next] {
                    break;
                }
                k = next;
            }
            self.file.write_all_at(&data[i..k], at + i as u64)?;
            self.changed += (k - i) as u64;
            i = k;
        }
        Ok(())
    }

    /// Makes `[start, stop)` of the older bytes read as zeros: holes are
    /// skipped, data pages that are not all zeros are punched out (or
    /// overwritten where the file system cannot punch).
    fn zero(&mut self, start: u64, stop: u64) -> io::Result<()> {
        let mut at = start;
        while at < stop {
            let Some((data, hole)) = self.data_extent(at)? else {
                return Ok(());
            };
            let (from, to) = (data.max(at), hole.min(stop));
            let mut off = from;
            while off < to {
                let n = (to - off).min(SCAN as u64) as usize;
                self.buf.resize(n, 0);
                self.file.read_exact_at(&mut self.buf, off)?;
                if self.buf.iter().any(|&b| b != 0) {
                    self.clear(off, off + n as u64)?;
                }
                off += n as u64;
            }
            at = to.max(at + 1);
        }
        Ok(())
    }

    /// The data extent at or after `at` (start, end), `None` past the last.
    fn data_extent(&self, at: u64) -> io::Result<Option<(u64, u64)>> {
        use nix::errno::Errno;
        use nix::unistd::{Whence, lseek};
        let offset = i64::try_from(at).map_err(io::Error::other)?;
        let data = match lseek(self.file, offset, Whence::SeekData) {
            Ok(d) => d,
            Err(Errno::ENXIO) => return Ok(None),
            // No SEEK_DATA here: all of it may be data.
            Err(Errno::EINVAL) => return Ok(Some((at, u64::MAX))),
            Err(e) => return Err(e.into()),
        };
        let hole = lseek(self.file, data, Whence::SeekHole).map_err(io::Error::from)?;
        Ok(Some((data as u64, hole as u64)))
    }

    fn clear(&mut self, start: u64, stop: u64) -> io::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let (off, len) = (start as i64, (stop - start) as i64);
        if fallocate(self.file, flags, off, len).is_err() {
            let zeros = vec![0u8; (stop - start) as usize];
            self.file.write_all_at(&zeros, start)?;
        }
        self.changed += stop - start;
        Ok(())
    }

    /// Records `[start, stop)` as written, merging with its neighbours.
    fn mark(&mut self, mut start: u64, mut stop: u64) {
        // Sequential writers extend the last range: the common case.
        if let Some((&s, e)) = self.written.range_mut(..=start).next_back()
            && *e >= start
        {
            if *e >= stop {
                return;
            }
            start = s;
            stop = stop.max(*e);
        }
        let overlapping: Vec<u64> = self.written.range(start..=stop).map(|(&s, _)| s).collect();
        for s in overlapping {
            if let Some(e) = self.written.remove(&s) {
                stop = stop.max(e);
            }
        }
        self.written.insert(start, stop);
    }

    fn clip_written(&mut self, len: u64) {
        self.written.retain(|&s, _| s < len);
        for e in self.written.values_mut() {
            *e = (*e).min(len);
        }
    }
}

impl Write for PatchFile<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let at = self.pos;
        let end = at
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("write past the largest offset"))?;
        let split = self.old.clamp(at, end);
        if split > at {
            let n = (split - at) as usize;
            self.patch(at, &data[..n])?;
            self.mark(at, split);
        }
        if end > split {
            let n = (split - at) as usize;
            self.file.write_all_at(&data[n..], split)?;
            self.changed += end - split;
        }
        self.pos = end;
        self.len = self.len.max(end);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for PatchFile<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = pos
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A writer's steps, replayed on a new file and over older bytes.
    #[derive(Clone, Debug)]
    enum Step {
        Write(u64, Vec<u8>),
        SetLen(u64),
    }

    fn fresh(steps: &[Step]) -> Vec<u8> {
        let f = tempfile::tempfile().unwrap();
        let mut g = &f;
        for s in steps {
            match s {
                Step::Write(at, d) => {
                    g.seek(SeekFrom::Start(*at)).unwrap();
                    g.write_all(d).unwrap();
                }
                Step::SetLen(n) => f.set_len(*n).unwrap(),
            }
        }
        std::fs::read(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))
        .unwrap()
    }

    fn patched(old: &[u8], steps: &[Step]) -> (Vec<u8>, u64) {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(old, 0).unwrap();
        let mut p = PatchFile::over(&f, old.len() as u64);
        for s in steps {
            match s {
                Step::Write(at, d) => {
                    p.seek(SeekFrom::Start(*at)).unwrap();
                    p.write_all(d).unwrap();
                }
                Step::SetLen(n) => p.set_len(*n).unwrap(),
            }
        }
        let changed = p.finish().unwrap();
        let bytes = std::fs::read(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))
        .unwrap();
        (bytes, changed)
    }

    /// A small deterministic generator (xorshift), for data and steps.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            // Mostly zeros and repeats, so pages match often.
            (0..n)
                .map(|i| {
                    if i % 7 == 0 {
                        (self.next() % 3) as u8
                    } else {
                        0
                    }
                })
                .collect()
        }
    }

    #[test]
    fn the_result_is_what_a_new_file_would_hold_whatever_was_there() {
        let mut rng = Rng(0x5eed);
        for case in 0..300 {
            let old_len = rng.below(64 << 10) as usize;
            let old = rng.bytes(old_len);
            let mut steps = Vec::new();
            for _ in 0..rng.below(12) {
                if rng.below(6) == 0 {
                    steps.push(Step::SetLen(rng.below(80 << 10)));
                } else {
                    let at = rng.below(80 << 10);
                    let n = rng.below(20 << 10) as usize;
                    steps.push(Step::Write(at, rng.bytes(n)));
                }
            }
            let (got, want) = (patched(&old, &steps).0, fresh(&steps));
            let shape: Vec<(u64, usize)> = steps
                .iter()
                .map(|s| match s {
                    Step::Write(at, d) => (*at, d.len()),
                    Step::SetLen(n) => (*n, usize::MAX),
                })
                .collect();
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                got == want,
                "case {case}: old {old_len}, steps {shape:?}: lengths {} and {}, first difference at {first:?}",
                got.len(),
                want.len()
            );
        }
    }

    #[test]
    fn rewriting_the_same_bytes_writes_nothing_and_a_change_writes_its_page() {
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let steps = vec![Step::Write(0, data.clone())];
        let (got, changed) = patched(&data, &steps);
        assert_eq!((got.len(), changed), (data.len(), 0));

        let mut edited = data.clone();
        edited[300_000] ^= 1;
        let (got, changed) = patched(&data, &[Step::Write(0, edited.clone())]);
        assert_eq!(got, edited);
        assert_eq!(changed, PAGE);
    }

    #[test]
    fn older_bytes_the_writer_skips_read_as_zeros() {
        let old = vec![0xaa; 3 * PAGE as usize];
        // A sparse writer: the head and the tail, a hole between.
        let steps = vec![
            Step::Write(0, vec![1; 10]),
            Step::Write(2 * PAGE + 5, vec![2; 10]),
            Step::SetLen(3 * PAGE),
        ];
        let (got, _) = patched(&old, &steps);
        assert_eq!(got, fresh(&steps));
        assert!(got[10..2 * PAGE as usize + 5].iter().all(|&b| b == 0));
    }
}
