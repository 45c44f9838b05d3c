//! gRPC statuses the multiplexer produces itself (no route, component
//! unavailable), sent as trailers-only responses.

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use tonic::{Code, Status};

/// Response headers of a trailers-only gRPC response carrying `code`.
pub fn trailers_only(code: Code, message: &str) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(status_trailers(code, message));
    resp
}

/// `grpc-status` and `grpc-message` (percent-encoded by tonic).
pub fn status_trailers(code: Code, message: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if Status::new(code, message).add_header(&mut h).is_err() {
        // Only an unencodable message can fail; the code alone still says enough.
        h.clear();
        h.insert("grpc-status", HeaderValue::from(code as i32));
    }
    h
}

/// Answers a stream with `code` and ends it.
pub fn reply(mut respond: SendResponse<Bytes>, code: Code, message: &str) {
    // A client that already reset the stream has nobody left to tell.
    let _ = respond.send_response(trailers_only(code, message), true);
}

/// The service part of a gRPC path: `/pkg.Service/Method` → `pkg.Service`.
pub fn service_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

/// Whether a request is gRPC at all: POST with an `application/grpc*` type.
pub fn is_grpc(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A plain HTTP error for requests that are not gRPC.
pub fn reply_http(mut respond: SendResponse<Bytes>, status: StatusCode) {
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    let _ = respond.send_response(resp, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert_eq!(service_of("/a.B/C"), Some("a.B"));
        assert_eq!(service_of("/a.B/"), None);
        assert_eq!(service_of("a.B/C"), None);
        assert_eq!(service_of("/a.B/C/D"), None);
        assert_eq!(service_of("//C"), None);
    }

    #[test]
    fn status_is_encoded() {
        let r = trailers_only(Code::Unavailable, "component \"x\": gone 100%");
        assert_eq!(r.headers()["grpc-status"], "14");
        let msg = r.headers()["grpc-message"].to_str().unwrap_or_default();
        assert!(msg.contains("%25"), "{msg}");
    }
}
