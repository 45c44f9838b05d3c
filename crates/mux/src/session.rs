//! The line exchanged before each HTTP/2 session on the virtio-serial port.
//!
//! qemu's chardev socket keeps bytes the guest wrote while no host client
//! was connected (or not yet read by the previous one) and hands them to
//! the next client, and the guest may still hold bytes the previous host
//! session sent. So neither side can trust the start of the byte stream:
//!
//! 1. the host sends `slipway-mux/1 hello <nonce>\n`, with a nonce of its own;
//! 2. the guest discards everything until such a line and answers
//!    `slipway-mux/1 ready <nonce>\n`;
//! 3. the host discards everything until the answer with its latest nonce;
//!    then the host sends the HTTP/2 client preface and the guest starts a
//!    fresh HTTP/2 server session.
//!
//! A host that gets no answer in time sends a new hello with a new nonce.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

const HELLO: &[u8] = b"slipway-mux/1 hello ";
const READY: &[u8] = b"slipway-mux/1 ready ";
/// Lines longer than this are not hellos; their bytes are dropped as read.
const MAX_LINE: usize = 128;

/// Reads lines until one is `prefix` + a nonce, discarding the rest;
/// returns the nonce and the bytes read after its line.
async fn wait_line<IO: AsyncRead + Unpin>(
    io: &mut IO,
    prefix: &[u8],
    wanted: Option<&[u8]>,
) -> io::Result<(Vec<u8>, Bytes)> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            let line = &line[..end];
            if let Some(nonce) = line.strip_prefix(prefix)
                && !nonce.is_empty()
                && wanted.is_none_or(|w| w == nonce)
            {
                return Ok((nonce.to_vec(), buf.freeze()));
            }
        }
        if buf.len() > MAX_LINE {
            // No newline in sight: keep only what could still start a line.
            buf.advance(buf.len() - MAX_LINE);
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the port before the session began",
            ));
        }
    }
}

/// The guest's side: waits for a hello, answers it, and returns the bytes
/// already read past it (the start of the host's HTTP/2 preface, if any).
pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) -> io::Result<Bytes> {
    let (nonce, rest) = wait_line(io, HELLO, None).await?;
    let mut reply = READY.to_vec();
    reply.extend_from_slice(&nonce);
    reply.push(b'\n');
    io.write_all(&reply).await?;
    io.flush().await?;
    Ok(rest)
}

/// The host's side: sends a hello with `nonce` and waits for its answer.
pub async fn hello<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    nonce: &str,
) -> io::Result<Bytes> {
    let mut line = HELLO.to_vec();
    line.extend_from_slice(nonce.as_bytes());
    line.push(b'\n');
    io.write_all(&line).await?;
    io.flush().await?;
    let (_, rest) = wait_line(io, READY, Some(nonce.as_bytes())).await?;
    Ok(rest)
}

/// A nonce no earlier session on this port used: random keys from the
/// standard library's hasher seed, and a counter.
pub fn nonce() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub struct Prefixed<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Prefixed { prefix, io }
    }
}

impl<IO> Prefixed<IO> {
    /// The stream, without any prefix bytes not read yet.
    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_bytes_on_both_sides_are_skipped() {
        let (mut host, mut guest) = tokio::io::duplex(4096);
        // What an earlier session left in each direction.
        guest
            .write_all(b"\x00\x00\x04\x01stale frames\nslipway-mux/1 ready old\n")
            .await
            .unwrap();
        host.write_all(&[0xff; 300]).await.unwrap();
        host.write_all(b"\nslipway-mux/1 hello \n").await.unwrap(); // no nonce: not a hello
        let guest_side = tokio::spawn(async move {
            let rest = accept(&mut guest).await.unwrap();
            (rest, guest)
        });
        let rest = hello(&mut host, "n1").await.unwrap();
        assert!(rest.is_empty());
        host.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let (rest, mut guest) = guest_side.await.unwrap();
        let mut p = Prefixed::new(rest, &mut guest);
        let mut got = [0u8; 14];
        p.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"PRI * HTTP/2.0");
        assert_ne!(nonce(), nonce());
    }
}
