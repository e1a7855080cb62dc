//! The records api-server keeps: what it has decided, persisted in the store
//! and mirrored in memory. They only ever hold validated domain types.
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::ports::Proto;
use crate::domain::{Labels, Mac, Name, Subnet};

/// Where a resource is in its life. Creating and Deleting are intents
/// recorded before the kernel work, so a crash can be finished or undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Creating,
    Ready,
    Deleting,
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: Name,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub mtu: u32,
    pub internal: bool,
    pub icc: bool,
    pub labels: Labels,
    pub created_at: i64,
    pub is_default: bool,
    pub phase: Phase,
}

impl NetworkRecord {
    pub fn owner_tag(&self) -> String {
        format!("net:{}", self.id)
    }
}

/// One interface of a bridge-mode sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    /// Inside the sandbox: eth0, eth1, ...
    pub ifname: String,
    /// Host end of the veth pair.
    pub host_ifname: String,
    pub mac: Mac,
    pub address: Ipv4Addr,
    /// Only the first interface carries the default route.
    pub default_route: bool,
    /// False while the kernel work of a Connect is in flight.
    pub attached: bool,
    /// Ports published to this interface's address.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
}

/// One published port: host side to this interface's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub proto: Proto,
    /// None: every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PublishedPort {
    /// Two mappings clash when protocol and port match on overlapping host
    /// addresses (the wildcard overlaps every address).
    pub fn clashes(&self, proto: Proto, host_ip: Option<Ipv4Addr>, port: u16) -> bool {
        self.proto == proto && self.host_port == port && overlap(self.host_ip, host_ip)
    }
}

pub fn overlap(a: Option<Ipv4Addr>, b: Option<Ipv4Addr>) -> bool {
    a.is_none() || b.is_none() || a == b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModeKind {
    Bridge,
    Host,
    None,
    Container,
}

/// Whose namespace a sandbox lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Netns {
    /// ctnet created and pinned it; deleted with the sandbox.
    Owned(PathBuf),
    /// A runtime pinned it; ctnet never deletes it.
    External(PathBuf),
    /// The host's own namespace (pinned by netexec).
    Host(PathBuf),
    /// Another sandbox's namespace (container mode), by target id.
    Joined { target: String, path: PathBuf },
}

impl Netns {
    pub fn path(&self) -> &PathBuf {
        match self {
            Netns::Owned(p) | Netns::External(p) | Netns::Host(p) | Netns::Joined { path: p, .. } => p,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub name: Option<Name>,
    pub labels: Labels,
    pub mode: ModeKind,
    pub netns: Netns,
    pub endpoints: Vec<Endpoint>,
    pub created_at: i64,
    pub phase: Phase,
}

impl SandboxRecord {
    pub fn owner_tag(&self) -> String {
        format!("sb:{}", self.id)
    }
    pub fn display_name(&self) -> String {
        self.name.as_ref().map(|n| n.to_string()).unwrap_or_default()
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A fresh random id: 16 lower-case hex digits.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
