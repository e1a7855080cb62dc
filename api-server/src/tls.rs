//! The remote listener's TLS: rustls with a required client certificate
//! signed by the configured CA. The configuration is held behind a lock so
//! SIGHUP can swap in a reloaded one: new connections get it, established
//! ones keep theirs, and a reload that fails keeps the old one.
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The PEM files of the server's certificate chain, its key, and the CA
/// bundle client certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let config = config(&files)?;
        Ok(Self { files, current: RwLock::new(config) })
    }

    /// Reads the files again; on failure the old configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = config(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read_certs = |path: &PathBuf, what: &str| {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect())
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{what} {}: no certificate in it", path.display()));
        }
        Ok(certs)
    };
    let chain = read_certs(&files.cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca, "--tls-client-ca")? {
        roots.add(ca).map_err(|e| format!("--tls-client-ca: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("--tls-client-ca: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    #[test]
    fn a_key_that_does_not_match_or_a_broken_file_is_refused_naming_the_flag() {
        let dir = std::env::temp_dir().join(format!("ctnet-tls-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = cert.self_signed(&key).unwrap();
        let write = |n: &str, s: &str| {
            std::fs::write(dir.join(n), s).unwrap();
            dir.join(n)
        };
        let files = TlsFiles {
            cert: write("c.pem", &cert.pem()),
            key: write("k.pem", &key.serialize_pem()),
            client_ca: write("ca.pem", &cert.pem()),
        };
        let tls = ServerTls::load(files.clone()).expect("a matching pair loads");
        write("k.pem", &KeyPair::generate().unwrap().serialize_pem());
        let e = tls.reload().unwrap_err();
        assert!(e.contains("--tls-cert and --tls-key"), "{e}");
        write("c.pem", "garbage");
        assert!(tls.reload().unwrap_err().contains("--tls-cert"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
