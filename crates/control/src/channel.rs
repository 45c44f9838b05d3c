//! gRPC channels over unix sockets.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Error};

/// A channel to the gRPC server on the unix socket `path`, connected now.
/// Its `:authority` is `localhost`, which every server accepts.
pub async fn connect_unix(path: &Path) -> Result<Channel, Error> {
    endpoint().connect_with_connector(connector(path)).await
}

/// A channel to `path` that connects on its first call, and again after the
/// connection breaks.
pub fn lazy_unix(path: &Path) -> Channel {
    endpoint().connect_with_connector_lazy(connector(path))
}

fn endpoint() -> Endpoint {
    // The URI only sets :scheme and :authority; the connector ignores it.
    Endpoint::from_static("http://localhost")
}

fn connector(
    path: &Path,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let path: PathBuf = path.to_owned();
    tower::service_fn(move |_| {
        let path = path.clone();
        async move {
            Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
        }
    })
}
