//! The runtime's input, parsed once: environment variables and the network
//! configuration on stdin become typed values, or the spec's error code for
//! what is wrong (4 the environment, 6 undecodable, 7 invalid, 2 a field
//! ctnet does not support, 1 a version it does not speak).
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, Kind, Result};
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

/// The per-container part of the environment (ADD, DEL, CHECK).
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    /// Optional for DEL (the namespace may be gone).
    pub netns: Option<String>,
    pub ifname: String,
    pub args: CniArgs,
}

/// What CNI_ARGS may say: `IP=` and `MAC=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniArgs {
    pub ips: Ips,
    pub mac: Option<String>,
}

/// Static addresses asked for one interface: at most one per family.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ips {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Ips {
    /// Addresses with or without a prefix length; `what` names the source
    /// in errors, `err` makes them.
    fn parse<'a>(
        what: &str,
        list: impl IntoIterator<Item = &'a str>,
        err: fn(String) -> CniError,
    ) -> Result<Self> {
        let mut out = Ips::default();
        for s in list {
            let a = s.split('/').next().unwrap_or(s);
            let ip: IpAddr =
                a.parse().map_err(|_| err(format!("{what} {s:?} is not an IP address")))?;
            let taken = match ip {
                IpAddr::V4(v4) => out.v4.replace(v4).is_some(),
                IpAddr::V6(v6) => out.v6.replace(v6).is_some(),
            };
            if taken {
                return Err(unsupported(format!(
                    "{what}: ctnet gives one address per family per interface"
                )));
            }
        }
        Ok(out)
    }

    /// This request's addresses, or else `other`'s, family by family.
    pub fn or(self, other: Ips) -> Ips {
        Ips { v4: self.v4.or(other.v4), v6: self.v6.or(other.v6) }
    }
}

fn env_err(msg: String) -> CniError {
    CniError::new(Kind::InvalidEnvironment, msg)
}

pub fn command(env: &HashMap<String, String>) -> Result<Command> {
    match env.get("CNI_COMMAND").map(String::as_str) {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("VERSION") => Ok(Command::Version),
        Some("STATUS") => Ok(Command::Status),
        Some("GC") => Ok(Command::Gc),
        Some(c) => Err(env_err(format!(
            "CNI_COMMAND {c:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
        ))),
        None => Err(env_err("CNI_COMMAND is not set".into())),
    }
}

impl Container {
    pub fn from_env(env: &HashMap<String, String>, cmd: Command) -> Result<Self> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
        let need = |k: &str| get(k).cloned().ok_or_else(|| env_err(format!("{k} is not set")));
        let id = need("CNI_CONTAINERID")?;
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(env_err(format!("CNI_CONTAINERID {id:?} may hold only [A-Za-z0-9_.-]")));
        }
        let netns =
            if cmd == Command::Del { get("CNI_NETNS").cloned() } else { Some(need("CNI_NETNS")?) };
        if let Some(p) = &netns {
            if !p.starts_with('/') {
                return Err(env_err(format!("CNI_NETNS {p:?} must be an absolute path")));
            }
        }
        let ifname = need("CNI_IFNAME")?;
        let ok = (1..=15).contains(&ifname.len())
            && ifname.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !matches!(ifname.as_str(), "." | ".." | "lo");
        if !ok {
            return Err(env_err(format!(
                "CNI_IFNAME {ifname:?} is not an interface name: 1-15 of [A-Za-z0-9_.-], not \"lo\""
            )));
        }
        let args = CniArgs::parse(get("CNI_ARGS").map_or("", String::as_str))?;
        Ok(Self { id, netns, ifname, args })
    }
}

/// Keys runtimes send that ctnet reads or knowingly ignores.
const KNOWN_ARGS: &[&str] = &[
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    /// `K=V;K=V`. An unknown key is an error unless `IgnoreUnknown` is
    /// true, as libcni's own argument loader does it.
    pub fn parse(raw: &str) -> Result<Self> {
        let mut pairs = Vec::new();
        for part in raw.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| env_err(format!("CNI_ARGS: {part:?} is not KEY=VALUE")))?;
            pairs.push((k, v));
        }
        let ignore = pairs.iter().any(|(k, v)| {
            *k == "IgnoreUnknown" && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
        });
        let mut out = CniArgs::default();
        for (k, v) in pairs {
            match k {
                // host-local's form: one address per family, comma-separated.
                "IP" => out.ips = Ips::parse("CNI_ARGS: IP=", v.split(','), env_err)?,
                "MAC" => {
                    out.mac =
                        Some(parse_mac(v).map_err(|m| env_err(format!("CNI_ARGS: MAC={v}: {m}")))?)
                }
                k if KNOWN_ARGS.contains(&k) || ignore => {}
                k => {
                    return Err(env_err(format!(
                        "CNI_ARGS: unknown key {k:?} (set IgnoreUnknown=1 to ignore it)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// A MAC in the form ctnet answers with: lower-case colon-separated hex.
fn parse_mac(s: &str) -> std::result::Result<String, &'static str> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6
        && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("not a MAC address like 02:42:ac:11:00:02")
    }
}

/// One `portMappings` entry of the runtime config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortMapping {
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    /// The `docker run -p` form ctnet takes.
    pub fn publish(&self) -> String {
        let ip = match self.host_ip {
            None => String::new(),
            Some(IpAddr::V4(i)) => format!("{i}:"),
            Some(IpAddr::V6(i)) => format!("[{i}]:"),
        };
        format!("{ip}{}:{}/{}", self.host_port, self.container_port, self.protocol)
    }
}

/// Where ctnet listens and, for TLS, the PEM files.
#[derive(Debug, Clone)]
pub struct Api {
    pub address: String,
    pub tls: Option<ctnet_client::TlsFiles>,
}

/// A parsed network configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub version: Version,
    /// The ctnet network (default: the configuration's `name`).
    pub network: String,
    pub api: Api,
    pub ports: Vec<PortMapping>,
    /// From the `ips` capability (one address per family).
    pub ips: Ips,
    /// From the `mac` capability.
    pub mac: Option<String>,
    pub prev_result: Option<Value>,
    /// GC: the attachments to keep, (container id, ifname).
    pub valid: Option<Vec<(String, String)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    network: Option<String>,
    api: Option<String>,
    tls: Option<RawTls>,
    #[serde(default)]
    capabilities: HashMap<String, Value>,
    #[serde(default)]
    runtime_config: HashMap<String, Value>,
    ipam: Option<Value>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<RawAttachment>>,
    #[serde(rename = "cni.dev/attachments")]
    attachments: Option<Vec<RawAttachment>>,
}

#[derive(Deserialize)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPort {
    host_port: i64,
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

/// The capabilities ctnet serves; a conflist declaring any other would be
/// promised something it does not get.
const CAPABILITIES: &[&str] = &["portMappings", "ips", "mac"];

fn invalid(msg: String) -> CniError {
    CniError::new(Kind::InvalidConfig, msg)
}

fn unsupported(msg: String) -> CniError {
    CniError::new(Kind::UnsupportedField, msg)
}

pub fn json(stdin: &[u8]) -> Result<Value> {
    serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(Kind::Decode, format!("the network configuration is not JSON: {e}"))
    })
}

/// The configuration's `cniVersion`, if ctnet-cni speaks it.
pub fn version_of(v: &Value) -> Result<Version> {
    let raw = v.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    let version = Version::parse(raw).ok_or_else(|| {
        CniError::new(Kind::IncompatibleVersion, format!("cniVersion {raw:?} is not supported"))
            .details(format!("ctnet-cni speaks {}", crate::version::SUPPORTED.join(", ")))
    })?;
    Ok(version)
}

impl NetConf {
    pub fn parse(v: Value, version: Version) -> Result<Self> {
        let raw: RawConf = serde_json::from_value(v)
            .map_err(|e| CniError::new(Kind::Decode, format!("network configuration: {e}")))?;
        if raw.kind != "ctnet" {
            return Err(invalid(format!("type is {:?}; this plugin is \"ctnet\"", raw.kind)));
        }
        if raw.name.is_empty() {
            return Err(invalid("name is required".into()));
        }
        if let Some(ipam) = raw.ipam {
            return Err(unsupported(format!(
                "ipam {ipam}: ctnet assigns addresses itself; remove the ipam section"
            )));
        }
        if let Some((k, v)) = raw
            .capabilities
            .iter()
            .find(|(k, v)| !CAPABILITIES.contains(&k.as_str()) && v.as_bool() != Some(false))
        {
            return Err(unsupported(format!(
                "capabilities.{k}: {v}; ctnet supports {}",
                CAPABILITIES.join(", ")
            )));
        }
        let rc = &raw.runtime_config;
        let ports = match rc.get("portMappings") {
            None | Some(Value::Null) => Vec::new(),
            Some(p) => parse_ports(p)?,
        };
        let ips = match rc.get("ips") {
            None | Some(Value::Null) => Ips::default(),
            Some(ips) => parse_ips(ips)?,
        };
        let mac = match rc.get("mac") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => {
                Some(parse_mac(m).map_err(|e| invalid(format!("runtimeConfig.mac {m:?}: {e}")))?)
            }
            Some(m) => return Err(invalid(format!("runtimeConfig.mac {m} is not a string"))),
        };
        let tls = raw.tls.map(|t| ctnet_client::TlsFiles { ca: t.ca, cert: t.cert, key: t.key });
        let address = raw.api.unwrap_or_else(|| ctnet_client::DEFAULT_SOCKET.to_string());
        if address.starts_with("tls://") && tls.is_none() {
            return Err(invalid(format!("api {address:?} needs tls: {{ca, cert, key}}")));
        }
        let valid = raw
            .valid_attachments
            .or(raw.attachments)
            .map(|list| list.into_iter().map(|a| (a.container_id, a.ifname)).collect());
        Ok(Self {
            version,
            network: raw.network.unwrap_or(raw.name),
            api: Api { address, tls },
            ports,
            ips,
            mac,
            prev_result: raw.prev_result,
            valid,
        })
    }
}

fn parse_ports(v: &Value) -> Result<Vec<PortMapping>> {
    let list: Vec<RawPort> = serde_json::from_value(v.clone())
        .map_err(|e| invalid(format!("runtimeConfig.portMappings: {e}")))?;
    let port = |i: usize, what: &str, p: i64| {
        u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
            invalid(format!("runtimeConfig.portMappings[{i}].{what} {p} is not 1-65535"))
        })
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let protocol = match p.protocol.to_ascii_lowercase().as_str() {
            "" | "tcp" => "tcp",
            "udp" => "udp",
            "sctp" => "sctp",
            other => {
                return Err(invalid(format!(
                    "runtimeConfig.portMappings[{i}].protocol {other:?} is not tcp, udp or sctp"
                )))
            }
        };
        // "", 0.0.0.0 and :: all mean every host address (portmap's "").
        let host_ip = match p.host_ip.as_str() {
            "" | "0.0.0.0" | "::" => None,
            ip => Some(ip.parse().map_err(|_| {
                invalid(format!("runtimeConfig.portMappings[{i}].hostIP {ip:?} is not an address"))
            })?),
        };
        out.push(PortMapping {
            protocol: protocol.to_string(),
            host_ip,
            host_port: port(i, "hostPort", p.host_port)?,
            container_port: port(i, "containerPort", p.container_port)?,
        });
    }
    Ok(out)
}

/// `ips`: addresses with or without a prefix length, one per family.
fn parse_ips(v: &Value) -> Result<Ips> {
    let list: Vec<String> = serde_json::from_value(v.clone())
        .map_err(|e| invalid(format!("runtimeConfig.ips: {e}")))?;
    Ips::parse("runtimeConfig.ips", list.iter().map(String::as_str), invalid)
}
