//! Test certificates, made by the tests (rcgen), never committed: a CA,
//! server and client certificates it signs, and the odd ones the refusal
//! tests need (another CA, expired, a key that does not match).
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, in PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

/// What a leaf certificate says about itself.
pub struct Subject<'a> {
    pub cn: &'a str,
    /// A URI SAN (spiffe://...), if any.
    pub uri: Option<&'a str>,
    /// DNS names and IP addresses.
    pub names: &'a [&'a str],
    pub server: bool,
    /// Valid only in 2020 (long expired).
    pub expired: bool,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(p, key), pem }
    }

    pub fn issue(&self, s: &Subject) -> Leaf {
        let mut p =
            CertificateParams::new(s.names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, s.cn);
        if let Some(uri) = s.uri {
            p.subject_alt_names.push(SanType::URI(uri.try_into().unwrap()));
        }
        p.extended_key_usages = vec![if s.server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if s.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let key = KeyPair::generate().unwrap();
        Leaf { cert: p.signed_by(&key, &self.issuer).unwrap().pem(), key: key.serialize_pem() }
    }

    pub fn server(&self, cn: &str) -> Leaf {
        let names = ["localhost", "127.0.0.1"];
        self.issue(&Subject { cn, uri: None, names: &names, server: true, expired: false })
    }

    pub fn client(&self, cn: &str, uri: Option<&str>) -> Leaf {
        self.issue(&Subject { cn, uri, names: &[], server: false, expired: false })
    }
}

/// Writes `pem` to DIR/NAME, readable by everyone (the test's ctnet-api
/// runs as an unprivileged uid); returns the path.
pub fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}
