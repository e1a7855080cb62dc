//! Who is calling. Over the Unix socket the caller is its socket
//! credentials (SO_PEERCRED's uid and gid, SO_PEERGROUPS' supplementary
//! groups, read at accept); over TLS it is its verified client certificate
//! (a URI SAN such as spiffe://..., else the subject CN). The request layer
//! puts the identity into every request's extensions; handlers read it from
//! there and never look at the transport.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Local { uid: u32, gid: u32, groups: Vec<u32> },
    Certificate { name: String },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Local { uid, .. } => write!(f, "uid:{uid}"),
            Identity::Certificate { name } => f.write_str(name),
        }
    }
}

impl Identity {
    /// A Unix-socket peer's credentials; None when the kernel gives none.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Option<Identity> {
        let cred = stream.peer_cred().ok()?;
        let groups = peer_groups(stream).unwrap_or_default();
        Some(Identity::Local { uid: cred.uid(), gid: cred.gid(), groups })
    }

    /// A verified client certificate's name: its first URI SAN, else its
    /// subject CN. None for a certificate that has neither.
    pub fn of_certificate(der: &[u8]) -> Option<Identity> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let uri = cert.subject_alternative_name().ok().flatten().and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
        });
        let cn = || {
            let cn = cert.subject().iter_common_name().next()?;
            cn.as_str().ok().map(str::to_string)
        };
        let name = uri.or_else(cn).filter(|n| !n.is_empty())?;
        Some(Identity::Certificate { name })
    }
}

/// The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13).
fn peer_groups(stream: &tokio::net::UnixStream) -> Option<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len =
        libc::socklen_t::try_from(groups.len() * std::mem::size_of::<libc::gid_t>()).ok()?;
    // SAFETY: the buffer is live for the call and `len` says its size in
    // bytes; the kernel writes at most that many and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    groups.truncate(usize::try_from(len).ok()? / std::mem::size_of::<libc::gid_t>());
    Some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, uri: Option<&str>) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        if let Some(u) = uri {
            p.subject_alt_names.push(SanType::URI(u.try_into().unwrap()));
        }
        p.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_is_its_uri_san_else_its_cn() {
        let name = |der: &[u8]| Identity::of_certificate(der).map(|i| i.to_string());
        let both = cert(Some("orchestrator"), Some("spiffe://example.org/o"));
        assert_eq!(name(&both).as_deref(), Some("spiffe://example.org/o"));
        assert_eq!(name(&cert(Some("orchestrator"), None)).as_deref(), Some("orchestrator"));
        assert_eq!(name(&cert(None, None)), None, "nameless: no identity");
        assert_eq!(name(b"not a certificate"), None);
    }
}
