//! The PEM files of a machine's TCP listener and its clients
//! (`slipway_testkit::pki`), as the multiplexer takes them.

use slipway_mux::tls::TlsFiles;
pub use slipway_testkit::pki::Pki;

/// The machine's side: `server.pem`, trusting `ca.pem` for clients.
pub fn server(pki: &Pki) -> TlsFiles {
    TlsFiles {
        ca: pki.path("ca.pem"),
        cert: pki.path("server.pem"),
        key: pki.path("server.key"),
    }
}
