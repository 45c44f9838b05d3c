//! Standard output. `println!` panics when the reader has gone (`slipway
//! cache ls | head`); these macros return the error instead, and `main`
//! ends quietly on a broken pipe.

use std::fmt;
use std::io::Write;

/// A line on standard output; `?` on the result as on any write.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub fn write_line(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Text on standard output as it is.
pub fn write_str(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A file written whole, all or nothing (a temporary file renamed into
/// place), as every output is: a timeline, a chart, a report.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    slipway_formats::write_file(path, |w| {
        w.write_all(bytes)
            .map_err(|source| slipway_formats::FormatError::Io {
                what: "writing",
                path: path.to_path_buf(),
                source,
            })
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether the error, or any error it wraps, is a write to a closed pipe,
/// and standard output is that pipe (the reader of `slipway build -o - |
/// head` has had enough). A broken pipe to anything else stays an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    stdout_reader_gone()
        && err.chain().any(|cause| {
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(cause);
            while let Some(e) = next {
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                {
                    return true;
                }
                next = e.source();
            }
            false
        })
}

/// Linux reports `POLLERR` on a pipe's write end once no reader is left.
fn stdout_reader_gone() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR))
}
