//! Forwarding one HTTP/2 stream to another, frame by frame: headers, DATA
//! in both directions, trailers, and resets. Messages are never decoded.
//!
//! Flow control carries through: received DATA is released to the sender
//! only once it has been handed to the other side within that side's send
//! window, so a reader that stalls stalls its own stream and nothing else.

use std::future::poll_fn;
use std::task::Poll;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use tonic::Code;

use crate::status;

/// Why a pump stopped early.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// The side we read from failed or reset the stream.
    Source(h2::Error),
    /// The side we write to reset the stream or went away.
    Destination,
}

/// Copies `from` into `to` until the end of the stream, then its trailers.
pub(crate) async fn pump(
    mut from: RecvStream,
    to: &mut SendStream<Bytes>,
) -> Result<(), PumpError> {
    loop {
        let next = poll_fn(|cx| {
            if to.poll_reset(cx).is_ready() {
                return Poll::Ready(Err(PumpError::Destination));
            }
            from.poll_data(cx).map(Ok)
        })
        .await?;
        match next {
            Some(Ok(chunk)) => {
                let n = chunk.len();
                send_all(to, chunk).await?;
                // Only now may the sender send more on this stream.
                let _ = from.flow_control().release_capacity(n);
            }
            Some(Err(e)) => return Err(PumpError::Source(e)),
            None => break,
        }
    }
    let trailers = poll_fn(|cx| {
        if to.poll_reset(cx).is_ready() {
            return Poll::Ready(Err(PumpError::Destination));
        }
        from.poll_trailers(cx).map(Ok)
    })
    .await?
    .map_err(PumpError::Source)?;
    match trailers {
        Some(t) => to.send_trailers(t),
        None => to.send_data(Bytes::new(), true),
    }
    .map_err(|_| PumpError::Destination)
}

/// Sends `data` within the stream's send window, waiting for capacity.
pub(crate) async fn send_all(to: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), PumpError> {
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let mut cap = to.capacity();
        while cap == 0 {
            cap = poll_fn(|cx| {
                if to.poll_reset(cx).is_ready() {
                    return Poll::Ready(Err(PumpError::Destination));
                }
                match to.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
                    Poll::Ready(Some(Err(_))) => Poll::Ready(Err(PumpError::Destination)),
                    Poll::Ready(None) => Poll::Ready(Err(PumpError::Destination)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await?;
        }
        let part = data.split_to(cap.min(data.len()));
        to.send_data(part, false)
            .map_err(|_| PumpError::Destination)?;
    }
    Ok(())
}

/// The request as sent upstream: the same method, path, and headers.
/// A missing scheme or authority (both optional for a server) is filled in,
/// since an HTTP/2 client must send them.
fn upstream_request(req: Request<()>) -> Request<()> {
    let (mut parts, ()) = req.into_parts();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    if uri.scheme.is_none() {
        uri.scheme = Some(Scheme::HTTP);
    }
    if uri.authority.is_none() {
        uri.authority = Some(Authority::from_static("localhost"));
    }
    parts.uri = Uri::from_parts(uri).unwrap_or_default();
    // HTTP/2 forbids connection-specific headers; h2 rejects them on send.
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        parts.headers.remove(h);
    }
    Request::from_parts(parts, ())
}

/// Whether `e` means the stream never reached the upstream peer, so the call
/// can be retried on a fresh connection (a GOAWAY or closed connection).
pub(crate) fn not_delivered(e: &h2::Error) -> bool {
    e.is_go_away() || e.is_io() || (!e.is_reset() && !e.is_remote())
}

/// Forwards one client stream (`req`, `respond`) to `upstream`, whose peer is
/// called `name` in the statuses the multiplexer makes up itself.
///
/// Returns the stream back if `upstream` refused it before anything was
/// sent (a connection that went away), so the caller may retry elsewhere.
pub(crate) async fn forward(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    mut upstream: SendRequest<Bytes>,
    name: &str,
) -> Result<(), (Request<RecvStream>, SendResponse<Bytes>)> {
    // Wait for a stream slot upstream, unless the client gives up first.
    let ready = tokio::select! {
        r = poll_fn(|cx| upstream.poll_ready(cx)) => r,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return Ok(()),
    };
    if ready.is_err() {
        return Err((req, respond));
    }
    let (head, body) = req.into_parts();
    let head = Request::from_parts(head, ());
    let end = body.is_end_stream();
    let (response, up_send) = match upstream.send_request(upstream_request(head.clone()), end) {
        Ok(pair) => pair,
        Err(e) if not_delivered(&e) => {
            let (parts, ()) = head.into_parts();
            return Err((Request::from_parts(parts, body), respond));
        }
        Err(e) => {
            status::reply(
                respond,
                Code::Unavailable,
                &format!("component \"{name}\": {e}"),
            );
            return Ok(());
        }
    };
    drop(upstream);

    let request_side = async move {
        if end {
            return Ok(());
        }
        let mut up_send = up_send;
        pump(body, &mut up_send).await
    };
    let response_side = respond_with(response, &mut respond, name);
    tokio::pin!(request_side, response_side);
    let mut request_done = false;
    loop {
        tokio::select! {
            r = &mut request_side, if !request_done => {
                request_done = true;
                if let Err(PumpError::Source(_)) = r {
                    // The client reset or broke its stream: dropping the
                    // upstream halves resets the component's stream (CANCEL).
                    return Ok(());
                }
                // Otherwise the component stopped reading or failed: its
                // response (or its failure) is what the client gets.
            }
            () = &mut response_side => return Ok(()),
        }
    }
}

/// Waits for the upstream response and relays it, trailers included.
async fn respond_with(
    response: h2::client::ResponseFuture,
    respond: &mut SendResponse<Bytes>,
    name: &str,
) {
    let response = tokio::select! {
        r = response => r,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            if let (Some(reason), true) = (e.reason(), e.is_reset() && e.is_remote()) {
                respond.send_reset(reason);
            } else {
                let _ = respond.send_response(
                    status::trailers_only(Code::Unavailable, &format!("component \"{name}\": {e}")),
                    true,
                );
            }
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    let Ok(mut down) = respond.send_response(http::Response::from_parts(parts, ()), end) else {
        return;
    };
    if end {
        return;
    }
    match pump(body, &mut down).await {
        Ok(()) | Err(PumpError::Destination) => {}
        Err(PumpError::Source(e)) => {
            if let (Some(reason), true) = (e.reason(), e.is_reset() && e.is_remote()) {
                down.send_reset(reason);
            } else {
                let _ = down.send_trailers(status::status_trailers(
                    Code::Unavailable,
                    &format!("component \"{name}\" went away: {e}"),
                ));
            }
        }
    }
}
