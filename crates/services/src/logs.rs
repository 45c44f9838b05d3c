//! Logs: a service's `<log dir>/<name>.out.log` (standard output) and
//! `<name>.log` (standard error; a daemon's one log): the last lines of
//! each, then, when following, what is appended to either, across a file's
//! rotation (the init renames it to `<file>.0` at its cap and starts a new
//! one), truncation, and its absence.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_control::services::LogChunk;
use slipway_control::services::log_chunk::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// The largest chunk sent at once.
const CHUNK: usize = 64 * 1024;
/// How often a followed log is looked at. The logs are on tmpfs, where
/// inotify would work too; polling also covers a file that does not exist
/// yet and a rotation, with far less code.
const POLL: Duration = Duration::from_millis(100);

/// What the stream of one Logs call yields.
pub type LogStream = ReceiverStream<Result<LogChunk, Status>>;

/// The log files of `name` in `dir`, standard output's first; names are
/// single path components.
pub fn log_paths(dir: &Path, name: &str) -> Result<[(PathBuf, Stream); 2], Status> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if !plain {
        return Err(Status::invalid_argument(format!(
            "bad service name {name:?}"
        )));
    }
    Ok([
        (dir.join(format!("{name}.out.log")), Stream::Stdout),
        (dir.join(format!("{name}.log")), Stream::Stderr),
    ])
}

/// Stream `files`: the last `tail` lines (all when 0) of each, in order,
/// then with `follow` whatever is appended to any of them, until the
/// receiver is dropped (the call is cancelled) or `stopping` turns true
/// (the manager is stopping: the call ends, so that the server's graceful
/// shutdown does not wait for it).
pub fn stream(
    files: [(PathBuf, Stream); 2],
    tail: u32,
    follow: bool,
    mut stopping: watch::Receiver<bool>,
) -> LogStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let result = tokio::select! {
            r = run(&files, tail, follow, &tx) => r,
            _ = stopping.wait_for(|s| *s) => Ok(()),
        };
        if let Err(Failed::Io(path, e)) = result {
            let _ = tx
                .send(Err(Status::internal(format!("{}: {e}", path.display()))))
                .await;
        }
    });
    ReceiverStream::new(rx)
}

enum Failed {
    /// The receiver went away: the call ended.
    Gone,
    Io(PathBuf, io::Error),
}

/// An I/O error on `path`.
fn on(path: &Path) -> impl Fn(io::Error) -> Failed + '_ {
    move |e| Failed::Io(path.to_owned(), e)
}

type Sender = mpsc::Sender<Result<LogChunk, Status>>;

/// The file being read, and how far.
struct Reading {
    stream: Stream,
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
}

impl Reading {
    fn open(path: &Path, stream: Stream) -> io::Result<Option<Reading>> {
        match File::open(path) {
            Ok(file) => {
                let meta = file.metadata()?;
                Ok(Some(Reading {
                    stream,
                    file,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    offset: 0,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Send everything from the offset to the file's current end. (The
    /// reads are synchronous: the logs are on tmpfs, and each read is one
    /// chunk.)
    async fn send_rest(&mut self, path: &Path, tx: &Sender) -> Result<(), Failed> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = self.file.read_at(&mut buf, self.offset).map_err(on(path))?;
            if n == 0 {
                return Ok(());
            }
            self.offset += n as u64;
            let chunk = LogChunk {
                data: buf[..n].to_vec(),
                stream: self.stream.into(),
            };
            tx.send(Ok(chunk)).await.map_err(|_| Failed::Gone)?;
        }
    }
}

async fn run(
    files: &[(PathBuf, Stream); 2],
    tail: u32,
    follow: bool,
    tx: &Sender,
) -> Result<(), Failed> {
    let mut readings = Vec::with_capacity(files.len());
    for (path, stream) in files {
        readings.push(last_lines(path, *stream, tail, tx).await?);
    }
    if !follow {
        return Ok(());
    }
    let [(out, out_stream), (err, err_stream)] = files;
    let mut readings = readings.into_iter();
    let (out_reading, err_reading) = (readings.next().flatten(), readings.next().flatten());
    tokio::try_join!(
        follow_file(out, *out_stream, out_reading, tx),
        follow_file(err, *err_stream, err_reading, tx),
    )?;
    Ok(())
}

/// Send the last `tail` lines of `path` (all when 0), if it exists.
async fn last_lines(
    path: &Path,
    stream: Stream,
    tail: u32,
    tx: &Sender,
) -> Result<Option<Reading>, Failed> {
    let mut reading = Reading::open(path, stream).map_err(on(path))?;
    if let Some(r) = &mut reading {
        let len = r.file.metadata().map_err(on(path))?.len();
        r.offset = if tail == 0 {
            0
        } else {
            tail_offset(&r.file, len, tail).map_err(on(path))?
        };
        r.send_rest(path, tx).await?;
    }
    Ok(reading)
}

/// Send what is appended to `path` from `reading` on, until the call ends.
async fn follow_file(
    path: &Path,
    stream: Stream,
    mut reading: Option<Reading>,
    tx: &Sender,
) -> Result<(), Failed> {
    loop {
        tokio::select! {
            () = tx.closed() => return Err(Failed::Gone),
            () = tokio::time::sleep(POLL) => {}
        }
        if let Some(r) = &mut reading {
            // What was appended, to this file (even if it was renamed
            // away by now: its last lines come before the new file's).
            if r.file.metadata().map_err(on(path))?.len() < r.offset {
                r.offset = 0; // truncated
            }
            r.send_rest(path, tx).await?;
        }
        let now = match std::fs::metadata(path) {
            Ok(meta) => Some((meta.dev(), meta.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(on(path)(e)),
        };
        let same = reading
            .as_ref()
            .is_some_and(|r| now == Some((r.dev, r.ino)));
        if now.is_some() && !same {
            // Created or recreated: read it from its start.
            reading = Reading::open(path, stream).map_err(on(path))?;
            if let Some(r) = &mut reading {
                r.send_rest(path, tx).await?;
            }
        }
    }
}

/// Where the last `lines` lines of a file of `len` bytes begin; a final
/// line without its newline counts.
pub fn tail_offset(file: &File, len: u64, lines: u32) -> io::Result<u64> {
    let mut end = len;
    let mut wanted = lines;
    let mut buf = vec![0u8; CHUNK];
    // The newline ending the last line does not begin another.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let block = &mut buf[..(end - start) as usize];
        file.read_exact_at(block, start)?;
        for (i, byte) in block.iter().enumerate().rev() {
            let at = start + i as u64;
            if *byte != b'\n' {
                continue;
            }
            if skip_last && at + 1 == len {
                continue;
            }
            wanted -= 1;
            if wanted == 0 {
                return Ok(at + 1);
            }
        }
        skip_last = false;
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str, lines: u32) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, text).unwrap();
        let file = File::open(&path).unwrap();
        let at = tail_offset(&file, text.len() as u64, lines).unwrap();
        text[at as usize..].to_owned()
    }

    #[test]
    fn last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\nc\n", 5), "a\nb\nc\n");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("\n\n", 1), "\n");
        let long: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&long, 3), "line 99997\nline 99998\nline 99999\n");
    }

    #[test]
    fn names() {
        let dir = Path::new("/var/log");
        assert_eq!(
            log_paths(dir, "web").unwrap(),
            [
                (PathBuf::from("/var/log/web.out.log"), Stream::Stdout),
                (PathBuf::from("/var/log/web.log"), Stream::Stderr)
            ]
        );
        for bad in ["", "..", "a/b", "."] {
            assert_eq!(
                log_paths(dir, bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
    }
}
