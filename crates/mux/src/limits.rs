//! HTTP/2 settings shared by every connection the multiplexer makes or
//! accepts. Flow-control windows bound what one stream can leave buffered:
//! a stream whose reader stalls holds at most `STREAM_WINDOW` bytes, and a
//! connection `CONNECTION_WINDOW`, so one slow client blocks only itself
//! until `CONNECTION_WINDOW / STREAM_WINDOW` streams stall at once.

use std::time::Duration;

/// Per-stream receive window (and send buffer), in bytes.
pub const STREAM_WINDOW: u32 = 128 * 1024;
/// Per-connection receive window, in bytes.
pub const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Concurrent streams one client connection may open.
pub const MAX_CONCURRENT_STREAMS: u32 = 512;
/// Largest header block accepted (gRPC metadata included).
pub const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Connecting to a component's socket and its HTTP/2 handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A reflection lookup the multiplexer makes to a component on a client's behalf.
pub const REFLECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reflection answer read from a component.
pub const MAX_REFLECTION_RESPONSE: usize = 16 * 1024 * 1024;

pub fn server() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(STREAM_WINDOW as usize);
    b
}

pub fn client() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(STREAM_WINDOW as usize)
        .enable_push(false);
    b
}

/// TCP keepalive of a TLS client's connection: probes after a minute of
/// silence, every 10 s; a peer that answers none of 6 is gone (2 minutes).
pub fn tcp_keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(6)
}
