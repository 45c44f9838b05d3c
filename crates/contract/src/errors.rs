//! How an error is written as text, wherever it ends up: a console line or
//! timeline event in the guest, a control-socket reply, the CLI's last line.
//!
//! Every error type of slipway's crates leaves its cause out of its own
//! message and returns it from `source()`, so a cause can be inspected
//! (a broken pipe, a missing file) and is shown once. This joins the
//! message and its causes with `: `, as `anyhow`'s `{:#}` does, for the
//! places that hold a plain `&dyn Error`. Other crates' errors do not all
//! keep that rule (some repeat their cause in their message), so a cause
//! whose text is already there is not said twice.

use std::error::Error;

/// The error and every cause under it, `: `-separated.
///
/// ```
/// use std::io;
/// #[derive(Debug, thiserror::Error)]
/// #[error("reading /etc/hostname")]
/// struct Read(#[source] io::Error);
///
/// let e = Read(io::Error::new(io::ErrorKind::NotFound, "gone"));
/// assert_eq!(slipway_contract::errors::chain(&e), "reading /etc/hostname: gone");
/// ```
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// The operating system's reason for an I/O error without Rust's
/// ` (os error N)` suffix, for messages that already say what was done
/// ("cannot read x.conf: Permission denied"). A wrapper around an I/O
/// error (as `tempfile` makes) gives the reason of the error it wraps.
pub fn io_reason(err: &std::io::Error) -> String {
    let inner = err
        .get_ref()
        .and_then(|e| e.source())
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or(err);
    let text = inner.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
