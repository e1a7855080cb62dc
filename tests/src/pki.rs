//! Test certificates, made by the tests (rcgen), never committed: a CA,
//! server and client certificates it signs, and the odd ones the refusal
//! tests need (another CA, expired, a key that does not match).
use std::path::{Path, PathBuf};

use crate::remote::{ClientFiles, LISTEN};
use crate::Options;

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

/// The client identity of Pki's first client certificate.
pub const CLIENT_ID: &str = "spiffe://ctnet.test/orchestrator";

/// A CA, a server certificate for ctnet-api and one client (identity
/// CLIENT_ID), written to a temp dir removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Ca,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub ca_file: PathBuf,
    pub client: ClientFiles,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("ctnet-pki-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("ctnet test CA");
        let server = ca.server("ctnet-server-1");
        let client = ca.client("orchestrator", Some(CLIENT_ID));
        Pki {
            server_cert: write(&dir, "server.pem", &server.cert),
            server_key: write(&dir, "server-key.pem", &server.key),
            ca_file: write(&dir, "ca.pem", &ca.pem),
            client: ClientFiles {
                ca: dir.join("ca.pem"),
                cert: write(&dir, "client.pem", &client.cert),
                key: write(&dir, "client-key.pem", &client.key),
            },
            ca,
            dir,
        }
    }

    /// Another client certificate of this CA, with `uri` as its identity.
    pub fn client(&self, name: &str, uri: &str) -> ClientFiles {
        let leaf = self.ca.client(name, Some(uri));
        ClientFiles {
            ca: self.ca_file.clone(),
            cert: write(&self.dir, &format!("{name}.pem"), &leaf.cert),
            key: write(&self.dir, &format!("{name}-key.pem"), &leaf.key),
        }
    }

    /// ctnet-api's flags for TLS on LISTEN with these files, and `extra`.
    pub fn options(&self, extra: &[&str]) -> Options {
        let mut api_args: Vec<String> = vec!["--listen".into(), LISTEN.into()];
        for (flag, path) in [
            ("--tls-cert", &self.server_cert),
            ("--tls-key", &self.server_key),
            ("--tls-client-ca", &self.ca_file),
        ] {
            api_args.push(flag.into());
            api_args.push(path.display().to_string());
        }
        api_args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--policy") {
            // The suite's policy, with this client certificate as an admin.
            let path = write(
                &self.dir,
                "policy.toml",
                &format!("[admin]\nuids = [0]\ncertificates = [\"{CLIENT_ID}\"]\n"),
            );
            api_args.extend(["--policy".into(), path.display().to_string()]);
        }
        Options { api_args, ..Default::default() }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
