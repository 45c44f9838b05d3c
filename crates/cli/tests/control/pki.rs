//! A CA made on the spot (rcgen) and the PEM files of a machine's TCP
//! listener and its clients: `ca.pem`, `server.pem`/`.key` (for
//! `localhost` and `127.0.0.1`), `client.pem`/`.key` from the CA, and
//! `stranger.pem`/`.key` from another CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use slipway_mux::tls::TlsFiles;

#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = new_ca("slipway test CA");
        let other = new_ca("another CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let issue =
            |name: &str, sans: Vec<String>, usage, issuer: &CertifiedIssuer<'_, KeyPair>| {
                let key = KeyPair::generate().unwrap();
                let mut params = CertificateParams::new(sans).unwrap();
                params.distinguished_name.push(DnType::CommonName, name);
                params.extended_key_usages = vec![usage];
                let cert = params.signed_by(&key, issuer).unwrap();
                std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
                std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
            };
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        issue("server", sans, ExtendedKeyUsagePurpose::ServerAuth, &ca);
        issue("client", vec![], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        issue(
            "stranger",
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other,
        );
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The machine's side: `server.pem`, trusting `ca.pem` for clients.
    pub fn server(&self) -> TlsFiles {
        TlsFiles {
            ca: self.path("ca.pem"),
            cert: self.path("server.pem"),
            key: self.path("server.key"),
        }
    }
}
