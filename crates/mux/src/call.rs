//! A minimal gRPC client call over an h2 connection, for the few requests
//! the multiplexer makes itself (reflection lookups in components): one
//! request message, the first response message, and the status.

use std::future::poll_fn;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request, header};
use tonic::Code;

use crate::limits;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("{0}")]
    Transport(String),
    #[error("status {code:?}: {message}")]
    Status { code: Code, message: String },
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

fn transport(e: impl std::fmt::Display) -> CallError {
    CallError::Transport(e.to_string())
}

/// The gRPC status in `headers` (trailers, or a trailers-only response).
fn status_in(headers: &HeaderMap) -> Option<(Code, String)> {
    let status = tonic::Status::from_header_map(headers)?;
    Some((status.code(), status.message().to_string()))
}

/// Calls `path` with one encoded message and returns the first response
/// message (empty if there was none but the status was OK).
pub(crate) async fn call(
    sender: SendRequest<Bytes>,
    path: &str,
    message: &[u8],
) -> Result<Bytes, CallError> {
    tokio::time::timeout(
        limits::REFLECTION_TIMEOUT,
        call_inner(sender, path, message),
    )
    .await
    .map_err(|_| CallError::Transport(format!("{path}: no answer in time")))?
}

async fn call_inner(
    sender: SendRequest<Bytes>,
    path: &str,
    message: &[u8],
) -> Result<Bytes, CallError> {
    let request = Request::post(format!("http://localhost{path}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(())
        .map_err(transport)?;
    let mut sender = sender.ready().await.map_err(transport)?;
    let (response, mut send) = sender.send_request(request, false).map_err(transport)?;
    let len =
        u32::try_from(message.len()).map_err(|_| CallError::Malformed("request too large"))?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(len);
    frame.put_slice(message);
    // One small message: h2 queues it until the window allows.
    send.send_data(frame.freeze(), true).map_err(transport)?;

    let response = response.await.map_err(transport)?;
    let (parts, mut body) = response.into_parts();
    if let Some((code, message)) = status_in(&parts.headers)
        && code != Code::Ok
    {
        return Err(CallError::Status { code, message });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = poll_fn(|cx| body.poll_data(cx)).await {
        let chunk = chunk.map_err(transport)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > limits::MAX_REFLECTION_RESPONSE {
            return Err(CallError::Malformed("response too large"));
        }
        buf.extend_from_slice(&chunk);
    }
    let trailers = poll_fn(|cx| body.poll_trailers(cx))
        .await
        .map_err(transport)?;
    if let Some((code, message)) = trailers.as_ref().and_then(status_in)
        && code != Code::Ok
    {
        return Err(CallError::Status { code, message });
    }
    if buf.is_empty() {
        return Ok(Bytes::new());
    }
    if buf.len() < 5 {
        return Err(CallError::Malformed("truncated message header"));
    }
    let mut buf = buf.freeze();
    if buf.get_u8() != 0 {
        return Err(CallError::Malformed("compressed message"));
    }
    let len = buf.get_u32() as usize;
    if buf.len() < len {
        return Err(CallError::Malformed("truncated message"));
    }
    Ok(buf.split_to(len))
}
