//! Reaching ctnet-api's TLS listener inside a fake host: TCP sockets made
//! on a thread in that namespace, then TLS over them (tonic for gRPC,
//! tokio-rustls for bare handshakes), and the CLI and Python run there.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::netns;

/// The address the tests' ctnet-api listens on inside its fake host (each
/// test has its own namespace, so the port is never shared).
pub const LISTEN: &str = "127.0.0.1:7443";

/// A client's PEM files.
#[derive(Clone)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A TCP connection to `addr` made inside `ns`, from `source` if given.
pub fn tcp_in(
    ns: &Path,
    addr: SocketAddr,
    source: Option<SocketAddr>,
) -> std::io::Result<std::net::TcpStream> {
    netns::run_in(ns, move || {
        use nix::sys::socket::{
            bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        let sock = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        let v4 = |a: SocketAddr| match a {
            SocketAddr::V4(v) => Ok(SockaddrIn::from(v)),
            SocketAddr::V6(_) => Err(std::io::Error::other("IPv4 only")),
        };
        if let Some(src) = source {
            bind(std::os::fd::AsRawFd::as_raw_fd(&sock), &v4(src)?)?;
        }
        connect(std::os::fd::AsRawFd::as_raw_fd(&sock), &v4(addr)?)?;
        Ok(std::net::TcpStream::from(sock))
    })
}

/// A gRPC client over TLS to ctnet-api's listener in `ns`.
pub async fn grpc_client(ns: &Path, files: &ClientFiles) -> Result<ctnet_client::Client, String> {
    let read = |p: &Path| std::fs::read(p).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(&files.ca)))
        .identity(tonic::transport::Identity::from_pem(read(&files.cert), read(&files.key)))
        .domain_name("localhost");
    let endpoint = tonic::transport::Endpoint::from_static("https://localhost:7443")
        .tls_config(tls)
        .map_err(|e| e.to_string())?;
    let ns = ns.to_path_buf();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let ns = ns.clone();
        async move {
            let s = tcp_in(&ns, LISTEN.parse().unwrap(), None)?;
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(
                s,
            )?))
        }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ctnet_client::error_chain(&e))?;
    Ok(ctnet_client::Client::on(channel))
}

/// How a bare TLS client presents itself.
pub enum Presents {
    Nothing,
    /// A certificate and key (PEM); they need not match.
    Cert {
        cert: String,
        key: String,
    },
}

/// Always offers the configured certificate and key, matching or not
/// (rustls's own builders refuse a key that does not match).
#[derive(Debug)]
struct Offer(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Offer {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A bare TLS handshake with ctnet-api's listener in `ns`, trusting `ca`;
/// then the HTTP/2 preface. Ok(server certificate, DER) once the server
/// answered with its SETTINGS, so it accepted this client; Err otherwise.
pub async fn handshake(ns: &Path, ca: &str, presents: Presents) -> Result<Vec<u8>, String> {
    handshake_from(ns, None, ca, presents).await
}

/// `handshake` from the source address `source`.
pub async fn handshake_from(
    ns: &Path,
    source: Option<SocketAddr>,
    ca: &str,
    presents: Presents,
) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match presents {
        Presents::Nothing => builder.with_no_client_auth(),
        Presents::Cert { cert, key } => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert.as_bytes()).map(|c| c.unwrap()).collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            let signer = provider.key_provider.load_private_key(key).unwrap();
            let offer = Offer(Arc::new(rustls::sign::CertifiedKey::new(chain, signer)));
            builder.with_client_cert_resolver(Arc::new(offer))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tcp_in(ns, LISTEN.parse().unwrap(), source).map_err(|e| e.to_string())?;
    tcp.set_nonblocking(true).unwrap();
    let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
    let server_cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .map_err(|e| e.to_string())?;
    let mut frame = [0u8; 9];
    match tokio::time::timeout(std::time::Duration::from_secs(10), tls.read_exact(&mut frame)).await
    {
        Ok(Ok(_)) if frame[3] == 4 => Ok(server_cert),
        Ok(Ok(_)) => Err(format!("unexpected frame {frame:?}")),
        Ok(Err(e)) => Err(format!("refused: {e}")),
        Err(_) => Err("no answer".into()),
    }
}

/// The DER of the first certificate in a PEM text.
pub fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap().to_vec()
}
