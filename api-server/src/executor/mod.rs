//! The executor seam: everything api-server asks of the kernel goes through
//! this trait, in api-server's own domain types, so the decisions can be
//! tested against a fake and the transport can change without touching
//! them. `grpc` converts to and from the wire API `ctnet.exec.v1`.
pub mod grpc;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::domain::ports::{Family, Proto};
use crate::domain::{GatewayMode, LinkName, Mac, SandboxId, Subnet, Subnet6};
use crate::error::Result;
use crate::model::Owner;

pub use grpc::GrpcExecutor;

/// Which namespace an endpoint goes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsTarget {
    /// A namespace netexec pinned for this sandbox.
    Owned(SandboxId),
    /// A runtime's pin (netns_path).
    External(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointArgs {
    pub netns: NetnsTarget,
    pub host_ifname: LinkName,
    pub ifname: String,
    pub bridge: LinkName,
    /// The IPv4 address and its prefix length; None on an IPv6-only network.
    pub address: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    /// On a dual-stack or IPv6-only network: the address and its prefix
    /// length.
    pub address6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
    pub mac: Mac,
    pub mtu: u32,
    pub owner: Owner,
    pub hairpin: bool,
    pub announce: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeArgs {
    pub name: LinkName,
    /// The IPv4 gateway address and prefix length; None when the network's
    /// IPv4 is isolated or absent: the bridge has no IPv4 address.
    pub address: Option<(Ipv4Addr, u8)>,
    /// On a dual-stack network whose IPv6 is not isolated: the IPv6
    /// gateway address and prefix length.
    pub address6: Option<(Ipv6Addr, u8)>,
    pub mtu: u32,
    pub owner: Owner,
    /// Reconciliation of an existing record: an untagged bridge of this
    /// name (half-made by a netexec that died) is adopted. Never for a
    /// fresh create, so an operator's untagged bridge is never taken.
    pub adopt_untagged: bool,
}

/// Who answered a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingInfo {
    /// Path of the host namespace pin; None when netexec pins nothing
    /// (the join-only profile).
    pub host_netns: Option<PathBuf>,
    /// Random per netexec process: a change means it restarted.
    pub instance: u64,
    /// Firewall rebuilds after changes made outside ctnet, by this process.
    pub drift_repairs: u64,
}

/// A socket listening in the host namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostListener {
    pub proto: Proto,
    /// As bound, an IPv4-mapped IPv6 address as IPv4.
    pub address: IpAddr,
    pub port: u16,
    /// As netexec reported it, for messages.
    pub shown: String,
}

impl HostListener {
    /// Whether the socket takes traffic for `host_ip` (None: every address)
    /// of `family`. "::" may take IPv4 too (a dual-stack socket).
    pub fn covers(&self, family: Family, host_ip: Option<IpAddr>) -> bool {
        match self.address {
            IpAddr::V6(a) if a.is_unspecified() => true,
            a if a.is_unspecified() => Family::of(a) == family,
            a => Family::of(a) == family && host_ip.is_none_or(|h| h == a),
        }
    }
}

/// A prefix as the host has it, either family: any length, host bits
/// allowed (an address with its prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl HostPrefix {
    /// "ADDRESS/len"; None for anything else (netexec's answer is checked,
    /// not trusted).
    pub fn parse(s: &str) -> Option<Self> {
        let (a, l) = s.split_once('/')?;
        let (addr, len): (IpAddr, u8) = (a.parse().ok()?, l.parse().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(HostPrefix { addr, len })
    }

    /// True when some address is in both.
    pub fn overlaps(&self, s: &Subnet) -> bool {
        let IpAddr::V4(addr) = self.addr else { return false };
        let m = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0) & s.mask();
        u32::from(addr) & m == u32::from(s.base) & m
    }

    pub fn overlaps6(&self, s: &Subnet6) -> bool {
        let IpAddr::V6(addr) = self.addr else { return false };
        let m = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0) & s.mask();
        u128::from(addr) & m == u128::from(s.base) & m
    }

    /// A default route: every subnet overlaps it, none takes it.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Display for HostPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub interface: String,
    pub prefix: HostPrefix,
}

/// A route of the host's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: HostPrefix,
    /// Empty when the route has no output interface.
    pub interface: String,
    pub gateway: Option<IpAddr>,
}

impl std::fmt::Display for HostRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if !self.interface.is_empty() {
            write!(f, " dev {}", self.interface)?;
        }
        Ok(())
    }
}

/// The host namespace's addresses and main-table routes, both families.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRoutes {
    pub addresses: Vec<HostAddress>,
    pub routes: Vec<HostRoute>,
}

/// One network's firewall rules: its subnet masqueraded (unless internal),
/// its bridge isolated from other networks' bridges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallNetwork {
    pub bridge: LinkName,
    /// None on an IPv6-only network.
    pub subnet: Option<Subnet>,
    /// A dual-stack or IPv6-only network's IPv6 subnet.
    pub subnet6: Option<Subnet6>,
    pub internal: bool,
    pub icc: bool,
    pub mode4: GatewayMode,
    pub mode6: GatewayMode,
}

/// One published port of one family: a DNAT map element, or on a routed
/// family an opening of the container port (host_ip None, host_port =
/// target_port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallPort {
    pub proto: Proto,
    /// None: every host address of target_ip's family.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub target_ip: IpAddr,
    pub target_port: u16,
    pub owner: Owner,
    pub routed: bool,
}

/// A sandbox's host veth that accepts only its own source MAC and address:
/// anti-spoofing for a sandbox on another tenant's (shared) network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallGuard {
    pub link: LinkName,
    pub mac: Mac,
    /// None on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// On a dual-stack or IPv6-only network.
    pub ip6: Option<Ipv6Addr>,
    pub owner: Owner,
}

/// Elements added and removed in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallDelta {
    pub add_networks: Vec<FirewallNetwork>,
    pub remove_networks: Vec<FirewallNetwork>,
    pub add_ports: Vec<FirewallPort>,
    pub remove_ports: Vec<FirewallPort>,
    pub add_guards: Vec<FirewallGuard>,
    pub remove_guards: Vec<FirewallGuard>,
}

/// Everything the firewall table should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallTable {
    pub networks: Vec<FirewallNetwork>,
    pub ports: Vec<FirewallPort>,
    pub guards: Vec<FirewallGuard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Veth,
    Other,
}

/// A link in the host namespace that carries an owner tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedLink {
    pub name: String,
    pub owner: Owner,
    pub kind: LinkKind,
    /// Name of the bridge it is a port of; empty if none.
    pub master: String,
}

/// What netexec owns that exists: tagged links and pinned namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub links: Vec<TaggedLink>,
    pub pins: Vec<SandboxId>,
}

impl Inventory {
    pub fn link(&self, name: &LinkName) -> Option<&TaggedLink> {
        self.links.iter().find(|l| l.name == name.as_str())
    }
}

/// One interface inside a sandbox namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceView {
    pub name: String,
    /// "ADDRESS/PREFIX".
    pub addresses: Vec<String>,
    pub up: bool,
}

/// What a sandbox namespace holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsView {
    pub interfaces: Vec<InterfaceView>,
    pub default_gateway: Option<Ipv4Addr>,
    pub default_gateway6: Option<Ipv6Addr>,
}

/// Every operation is idempotent: repeating one is a no-op, removing what
/// is gone succeeds. The contract suite (`contract`) holds both
/// implementations to that.
#[tonic::async_trait]
pub trait Executor: Send + Sync + 'static {
    async fn ping(&self) -> Result<PingInfo>;
    async fn ensure_bridge(&self, b: &BridgeArgs) -> Result<()>;
    /// Deletes the bridge if it carries exactly `owner`'s tag; refused if
    /// anyone else's link holds the name.
    async fn delete_bridge(&self, name: &LinkName, owner: &Owner) -> Result<()>;
    /// Returns the pin path.
    async fn create_netns(&self, sandbox: &SandboxId) -> Result<PathBuf>;
    async fn delete_netns(&self, sandbox: &SandboxId) -> Result<()>;
    async fn setup_loopback(&self, netns: &NetnsTarget) -> Result<()>;
    async fn attach(&self, e: &EndpointArgs) -> Result<()>;
    /// Deletes the endpoint, first waiting up to `grace_ms` for it to vanish
    /// with its just-unpinned namespace.
    /// Only `owner`'s veth (or a half-made untagged one of that name) goes.
    async fn detach(&self, host_ifname: &LinkName, owner: &Owner, grace_ms: u32) -> Result<()>;
    /// Takes `owner`'s veth off its bridge and down at once, without the
    /// delete's RCU wait: nothing passes through it any more. Gone is fine.
    async fn unplug(&self, host_ifname: &LinkName, owner: &Owner) -> Result<()>;
    /// Gives `from`'s link of this name and kind (bridge or veth) the tag
    /// `to`; refused unless it carries exactly `from`.
    async fn retag(&self, name: &LinkName, kind: LinkKind, from: &Owner, to: &Owner) -> Result<()>;
    /// Adds and removes firewall elements in one transaction.
    async fn update_firewall(&self, delta: &FirewallDelta) -> Result<()>;
    /// Replaces the whole firewall table with this one.
    async fn sync_firewall(&self, table: &FirewallTable) -> Result<()>;
    /// Sockets listening in the host namespace.
    async fn list_listeners(&self) -> Result<Vec<HostListener>>;
    /// The host's addresses and main-table routes.
    async fn host_routes(&self) -> Result<HostRoutes>;
    /// Tagged links and pins that exist.
    async fn inventory(&self) -> Result<Inventory>;
    /// What a sandbox namespace holds.
    async fn inspect_netns(&self, netns: &NetnsTarget) -> Result<NetnsView>;
}
