//! A CA made on the spot (rcgen) and the PEM files of a mutual-TLS test:
//! `ca.pem`, `server.pem`/`.key` (for `localhost` and `127.0.0.1`),
//! `client.pem`/`.key` from the CA, and `other-ca.pem` with
//! `stranger.pem`/`.key`, a client of another CA. Like the boot helpers,
//! this panics on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// The directory holding the PEM files.
#[derive(Debug)]
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// Make the CAs and certificates in `dir` (created if missing).
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = new_ca("slipway test CA");
        let other = new_ca("another CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
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

    /// One of the files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
