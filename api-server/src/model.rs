//! The records api-server keeps: what it has decided, persisted in the store
//! and mirrored in memory. They only ever hold validated domain types.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::network::Addressing;
use crate::domain::ports::{Family, Proto};
use crate::domain::{
    Addressing6, GatewayMode, Labels, LinkName, Mac, Name, NetworkId, SandboxId, StoreId, Subnet,
};

/// Where a resource is in its life. Creating and Deleting are intents
/// recorded before the kernel work, so a crash can be finished or undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Creating,
    Ready,
    Deleting,
    Failed(String),
    /// Deleted as far as any caller can tell (acknowledged, invisible, its
    /// name free, its ports unpublished, nothing passes its veths), while
    /// the kernel still destroys the old endpoints: its addresses and MACs
    /// stay held, and it counts against the global limits, until they are
    /// confirmed gone.
    Releasing,
}

impl Phase {
    /// Whether callers can see the resource at all.
    pub fn visible(&self) -> bool {
        *self != Phase::Releasing
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: NetworkId,
    pub name: Name,
    /// The tenant that created it; records made before tenants are the admin's.
    #[serde(default = "admin_tenant")]
    pub tenant: String,
    /// The IPv4 subnet and gateway; None on an IPv6-only network. Stored
    /// as the top-level `subnet` and `gateway` they always were.
    #[serde(flatten, with = "ipv4_fields")]
    pub ipv4: Option<Addressing>,
    /// The IPv6 side of a dual-stack network; None: IPv4 only.
    #[serde(default)]
    pub ipv6: Option<Addressing6>,
    pub bridge: LinkName,
    pub mtu: u32,
    pub internal: bool,
    pub icc: bool,
    pub labels: Labels,
    /// Records made before gateway modes are NAT on both families.
    #[serde(default)]
    pub mode4: GatewayMode,
    #[serde(default)]
    pub mode6: GatewayMode,
    pub created_at: i64,
    pub is_default: bool,
    pub phase: Phase,
}

impl NetworkRecord {
    /// The tag of this network's bridge, made by `store`.
    pub fn owner(&self, store: &StoreId) -> Owner {
        Owner::Network(self.id.clone(), Some(store.clone()))
    }

    /// Whether its IPv4 subnet, if it has one, overlaps `s`.
    pub fn overlaps4(&self, s: &Subnet) -> bool {
        self.ipv4.is_some_and(|a| a.subnet.overlaps(s))
    }
}

/// One interface of a bridge-mode sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: NetworkId,
    /// Inside the sandbox: eth0, eth1, ...
    pub ifname: String,
    /// Host end of the veth pair.
    pub host_ifname: LinkName,
    pub mac: Mac,
    /// None on an IPv6-only network.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// On a dual-stack or IPv6-only network.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// Only the first interface carries the default route.
    pub default_route: bool,
    /// False while the kernel work of a Connect is in flight.
    pub attached: bool,
    /// Ports published to this interface's address.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// The host veth accepts only this interface's own MAC and address: a
    /// sandbox on another tenant's (the admin's shared) network.
    #[serde(default)]
    pub guarded: bool,
}

/// One published port of one family: host side to this interface's
/// address of that family. A dual-stack `-p 8080:80` is two of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub proto: Proto,
    /// Records made before dual stack are IPv4.
    #[serde(default = "ipv4")]
    pub family: Family,
    /// None: every host address of the family.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    /// On a routed family: no DNAT, the container port opened on the
    /// sandbox's own address (host_ip None, host_port = container_port).
    #[serde(default)]
    pub routed: bool,
}

/// A network's IPv4 side as two optional top-level fields: both or
/// neither, and a malformed one is an error, never a missing IPv4.
mod ipv4_fields {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::network::Addressing;
    use crate::domain::Subnet;

    #[derive(Serialize, Deserialize)]
    struct Fields {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet: Option<Subnet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<std::net::Ipv4Addr>,
    }

    pub fn serialize<S: Serializer>(a: &Option<Addressing>, s: S) -> Result<S::Ok, S::Error> {
        Fields { subnet: a.map(|a| a.subnet), gateway: a.map(|a| a.gateway) }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Addressing>, D::Error> {
        match Fields::deserialize(d)? {
            Fields { subnet: Some(subnet), gateway: Some(gateway) } => {
                Ok(Some(Addressing { subnet, gateway }))
            }
            Fields { subnet: None, gateway: None } => Ok(None),
            _ => Err(D::Error::custom("a network's subnet and gateway are stored together")),
        }
    }
}

fn ipv4() -> Family {
    Family::V4
}

impl PublishedPort {
    /// Two mappings clash when protocol, port and family match on
    /// overlapping host addresses (the wildcard overlaps every address).
    pub fn clashes(
        &self,
        proto: Proto,
        family: Family,
        host_ip: Option<IpAddr>,
        port: u16,
    ) -> bool {
        // A routed opening holds no host port.
        !self.routed
            && self.proto == proto
            && self.host_port == port
            && self.family == family
            && overlap(self.host_ip, host_ip)
    }
}

pub fn overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
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
    Joined { target: SandboxId, path: PathBuf },
}

impl Netns {
    pub fn path(&self) -> &PathBuf {
        match self {
            Netns::Owned(p)
            | Netns::External(p)
            | Netns::Host(p)
            | Netns::Joined { path: p, .. } => p,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: SandboxId,
    pub name: Option<Name>,
    /// The tenant that created it; records made before tenants are the admin's.
    #[serde(default = "admin_tenant")]
    pub tenant: String,
    pub labels: Labels,
    pub mode: ModeKind,
    pub netns: Netns,
    pub endpoints: Vec<Endpoint>,
    pub created_at: i64,
    pub phase: Phase,
}

impl SandboxRecord {
    /// The tag of this sandbox's links, made by `store`.
    pub fn owner(&self, store: &StoreId) -> Owner {
        Owner::Sandbox(self.id.clone(), Some(store.clone()))
    }
    pub fn display_name(&self) -> String {
        self.name.as_ref().map(|n| n.to_string()).unwrap_or_default()
    }
}

/// "name (id)" or just the id, for messages.
impl std::fmt::Display for SandboxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} ({})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// Whose a kernel object is: the tag netexec writes on links
/// ("net:ID:STORE", "sb:ID:STORE") and on firewall elements. Tags made
/// before stores had identities lack ":STORE".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Network(NetworkId, Option<StoreId>),
    Sandbox(SandboxId, Option<StoreId>),
    /// A tag this version does not know: never ours to judge.
    Other(String),
}

impl Owner {
    pub fn parse(tag: &str) -> Self {
        let mut parts = tag.split(':');
        let (kind, id, store) = (parts.next(), parts.next(), parts.next());
        let store = match store.map(StoreId::parse) {
            None => Some(None),
            Some(Some(s)) => Some(Some(s)),
            Some(None) => None,
        };
        let parsed = match (kind, id.zip(store), parts.next()) {
            (Some("net"), Some((id, store)), None) => {
                NetworkId::parse(id).map(|id| Owner::Network(id, store))
            }
            (Some("sb"), Some((id, store)), None) => {
                SandboxId::parse(id).map(|id| Owner::Sandbox(id, store))
            }
            _ => None,
        };
        parsed.unwrap_or_else(|| Owner::Other(tag.to_string()))
    }

    /// The store that made the object; None for a tag of an older release
    /// or one this version does not know.
    pub fn store(&self) -> Option<&StoreId> {
        match self {
            Owner::Network(_, s) | Owner::Sandbox(_, s) => s.as_ref(),
            Owner::Other(_) => None,
        }
    }

    /// The same object's tag as `store` writes it.
    pub fn with_store(&self, store: &StoreId) -> Owner {
        match self {
            Owner::Network(id, _) => Owner::Network(id.clone(), Some(store.clone())),
            Owner::Sandbox(id, _) => Owner::Sandbox(id.clone(), Some(store.clone())),
            Owner::Other(t) => Owner::Other(t.clone()),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, id, store) = match self {
            Owner::Network(id, s) => ("net", id.as_str(), s),
            Owner::Sandbox(id, s) => ("sb", id.as_str(), s),
            Owner::Other(tag) => return f.write_str(tag),
        };
        write!(f, "{kind}:{id}")?;
        match store {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}

fn admin_tenant() -> String {
    crate::policy::ADMIN.into()
}

pub fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}
