//! Bridges between h2 streams and `http_body` bodies, for the services the
//! multiplexer serves itself with tonic.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http_body::{Body, Frame};
use tonic::Code;

use crate::forward::send_all;
use crate::status;

/// A request body read from an h2 stream; flow-control credit is returned
/// as the service consumes each chunk.
#[derive(Debug)]
pub(crate) struct H2Body {
    stream: RecvStream,
    data_done: bool,
    done: bool,
}

impl H2Body {
    pub(crate) fn new(stream: RecvStream) -> Self {
        H2Body {
            stream,
            data_done: false,
            done: false,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    let _ = self.stream.flow_control().release_capacity(chunk.len());
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.data_done = true,
            }
        }
        let trailers = ready!(self.stream.poll_trailers(cx));
        self.done = true;
        Poll::Ready(match trailers {
            Ok(Some(t)) => Some(Ok(Frame::trailers(t))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.stream.is_end_stream()
    }
}

/// Sends a tonic response on an h2 stream, within flow control.
pub(crate) async fn relay(
    response: http::Response<tonic::body::Body>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    let Ok(mut down) = respond.send_response(http::Response::from_parts(parts, ()), end) else {
        return;
    };
    if end {
        return;
    }
    let mut body = std::pin::pin!(body);
    loop {
        let frame = poll_fn(|cx| {
            if down.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            body.as_mut().poll_frame(cx).map(Some)
        })
        .await;
        let Some(frame) = frame else {
            return; // the client reset the stream
        };
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if send_all(&mut down, data).await.is_err() {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = down.send_trailers(trailers);
                    }
                    return;
                }
            },
            Some(Err(status)) => {
                let _ =
                    down.send_trailers(status::status_trailers(status.code(), status.message()));
                return;
            }
            None => {
                let _ = down.send_trailers(status::status_trailers(Code::Ok, ""));
                return;
            }
        }
    }
}
