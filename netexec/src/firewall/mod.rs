//! Packet filtering and NAT behind one trait, so the executor's service does
//! not care how rules are installed. The implementation is nftables
//! (`nft.rs`): one table, sets and maps whose elements each request adds or
//! removes in one transaction.
pub mod conntrack;
pub mod drift;
pub mod element;
#[cfg(test)]
pub mod fixtures;
pub mod nfnl;
pub mod nft;
pub mod render;
pub mod writer;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checks::{self, Addr6Prefix, AddrPrefix, OwnedLinkName, Owner};
use crate::error::{ExecError, Result};
use ctnet_proto::exec as wire;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(ExecError::InvalidArgument(format!("{field}: {s:?} is not tcp, udp or sctp"))),
        }
    }
    /// The IP protocol number, as nf_tables keys hold it.
    pub fn number(&self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
            Proto::Sctp => libc::IPPROTO_SCTP as u8,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: OwnedLinkName,
    /// Canonical subnet; None on an IPv6-only network.
    pub subnet: Option<AddrPrefix>,
    /// A dual-stack or IPv6-only network's canonical IPv6 subnet.
    pub subnet6: Option<Addr6Prefix>,
    pub internal: bool,
    pub icc: bool,
    pub mode4: GatewayMode,
    pub mode6: GatewayMode,
}

/// How one family of a network reaches the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    Nat,
    Routed,
    Isolated,
}

impl GatewayMode {
    fn parse(field: &str, v: i32) -> Result<Self> {
        match wire::GatewayMode::try_from(v) {
            Ok(wire::GatewayMode::Nat) => Ok(Self::Nat),
            Ok(wire::GatewayMode::Routed) => Ok(Self::Routed),
            Ok(wire::GatewayMode::Isolated) => Ok(Self::Isolated),
            Err(_) => {
                Err(ExecError::InvalidArgument(format!("{field}: {v} is not a gateway mode")))
            }
        }
    }
}

/// A sandbox's host veth that accepts only the sandbox's own source MAC
/// and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwGuard {
    pub link: OwnedLinkName,
    pub mac: [u8; 6],
    /// None on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// On a dual-stack or IPv6-only network: its IPv6 address (its link-local one,
    /// derived from the MAC, is allowed too).
    pub ip6: Option<Ipv6Addr>,
    pub owner: Owner,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPort {
    pub proto: Proto,
    /// None: every host address of target_ip's family.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub target_ip: IpAddr,
    pub target_port: u16,
    pub owner: Owner,
    /// No DNAT: target_ip's target_port is opened to outside traffic.
    pub routed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub add_networks: Vec<FwNetwork>,
    pub remove_networks: Vec<FwNetwork>,
    pub add_ports: Vec<FwPort>,
    pub remove_ports: Vec<FwPort>,
    pub add_guards: Vec<FwGuard>,
    pub remove_guards: Vec<FwGuard>,
}

#[derive(Debug, Clone, Default)]
pub struct FwState {
    pub networks: Vec<FwNetwork>,
    pub ports: Vec<FwPort>,
    pub guards: Vec<FwGuard>,
}

/// Adds what is not there yet.
fn add_new<T: PartialEq + Clone>(to: &mut Vec<T>, items: &[T]) {
    for i in items {
        if !to.contains(i) {
            to.push(i.clone());
        }
    }
}

impl FwState {
    /// What the table holds after `delta` (removals first, like the
    /// transaction itself).
    pub fn apply(&mut self, delta: &Delta) {
        self.networks.retain(|n| !delta.remove_networks.contains(n));
        self.ports.retain(|p| !delta.remove_ports.contains(p));
        self.guards.retain(|g| !delta.remove_guards.contains(g));
        add_new(&mut self.networks, &delta.add_networks);
        add_new(&mut self.ports, &delta.add_ports);
        add_new(&mut self.guards, &delta.add_guards);
    }
}

#[tonic::async_trait]
pub trait Firewall: Send + Sync + 'static {
    /// Creates the table if it is missing; leaves an existing one alone.
    async fn ensure_table(&self) -> Result<()>;
    /// Adds and removes exactly these elements, in one transaction.
    async fn update(&self, delta: &Delta) -> Result<()>;
    /// Replaces the whole table with `state`, atomically.
    async fn sync(&self, state: &FwState) -> Result<()>;
}

pub fn parse_network(field: &str, n: &wire::FirewallNetwork, prefix: &str) -> Result<FwNetwork> {
    let net = FwNetwork {
        bridge: OwnedLinkName::parse(&format!("{field}.bridge"), &n.bridge, prefix)?,
        subnet: AddrPrefix::parse_subnet_opt(&format!("{field}.subnet"), &n.subnet)?,
        subnet6: Addr6Prefix::parse_subnet_opt(&format!("{field}.subnet6"), &n.subnet6)?,
        internal: n.internal,
        icc: n.icc,
        mode4: GatewayMode::parse(&format!("{field}.mode4"), n.mode4)?,
        mode6: GatewayMode::parse(&format!("{field}.mode6"), n.mode6)?,
    };
    // Without an IPv4 subnet nothing of IPv4 may pass the bridge.
    if net.subnet.is_none() && (net.subnet6.is_none() || net.mode4 != GatewayMode::Isolated) {
        return Err(ExecError::InvalidArgument(format!(
            "{field}.subnet: empty only on an IPv6-only network (subnet6 set, mode4 isolated)"
        )));
    }
    Ok(net)
}

pub fn parse_port(field: &str, p: &wire::FirewallPort) -> Result<FwPort> {
    let port = |name: &str, v: u32| -> Result<u16> {
        u16::try_from(v).ok().filter(|v| *v != 0).ok_or_else(|| {
            ExecError::InvalidArgument(format!("{field}.{name}: {v} is not a port (1-65535)"))
        })
    };
    let ip = |name: &str, s: &str| -> Result<IpAddr> {
        s.parse().map_err(|_| {
            ExecError::InvalidArgument(format!("{field}.{name}: {s:?} is not an IP address"))
        })
    };
    let target_ip = ip("target_ip", &p.target_ip)?;
    let host_ip = if p.host_ip.is_empty() { None } else { Some(ip("host_ip", &p.host_ip)?) };
    if p.routed && (host_ip.is_some() || p.host_port != p.target_port) {
        return Err(ExecError::InvalidArgument(format!(
            "{field}: a routed port has no host address and its host_port is its target_port"
        )));
    }
    if host_ip.is_some_and(|h| h.is_ipv4() != target_ip.is_ipv4()) {
        return Err(ExecError::InvalidArgument(format!(
            "{field}.host_ip: {} and target_ip {target_ip} are of different families",
            p.host_ip
        )));
    }
    Ok(FwPort {
        proto: Proto::parse(&format!("{field}.protocol"), &p.protocol)?,
        host_ip,
        host_port: port("host_port", p.host_port)?,
        target_ip,
        target_port: port("target_port", p.target_port)?,
        owner: checks::Owner::parse(&format!("{field}.owner"), &p.owner)?,
        routed: p.routed,
    })
}

/// An address of one family; empty is None.
fn optional_ip<A: std::str::FromStr>(field: &str, s: &str, family: &str) -> Result<Option<A>> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || ExecError::InvalidArgument(format!("{field}: {s:?} is not an {family} address"));
    s.parse().map(Some).map_err(|_| bad())
}

pub fn parse_guard(field: &str, g: &wire::FirewallGuard, prefix: &str) -> Result<FwGuard> {
    if g.ip.is_empty() && g.ip6.is_empty() {
        let why = format!("{field}.ip: a guard needs the sandbox's address, of either family");
        return Err(ExecError::InvalidArgument(why));
    }
    Ok(FwGuard {
        link: OwnedLinkName::parse(&format!("{field}.link"), &g.link, prefix)?,
        mac: checks::parse_mac(&format!("{field}.mac"), &g.mac)?,
        ip: optional_ip(&format!("{field}.ip"), &g.ip, "IPv4")?,
        ip6: optional_ip(&format!("{field}.ip6"), &g.ip6, "IPv6")?,
        owner: checks::Owner::parse(&format!("{field}.owner"), &g.owner)?,
    })
}

pub fn parse_delta(d: &wire::FirewallDelta, prefix: &str) -> Result<Delta> {
    let nets = |list: &[wire::FirewallNetwork], name: &str| -> Result<Vec<FwNetwork>> {
        list.iter()
            .enumerate()
            .map(|(i, n)| parse_network(&format!("{name}[{i}]"), n, prefix))
            .collect()
    };
    let ports = |list: &[wire::FirewallPort], name: &str| -> Result<Vec<FwPort>> {
        list.iter().enumerate().map(|(i, p)| parse_port(&format!("{name}[{i}]"), p)).collect()
    };
    let guards = |list: &[wire::FirewallGuard], name: &str| -> Result<Vec<FwGuard>> {
        list.iter()
            .enumerate()
            .map(|(i, g)| parse_guard(&format!("{name}[{i}]"), g, prefix))
            .collect()
    };
    Ok(Delta {
        add_networks: nets(&d.add_networks, "add_networks")?,
        remove_networks: nets(&d.remove_networks, "remove_networks")?,
        add_ports: ports(&d.add_ports, "add_ports")?,
        remove_ports: ports(&d.remove_ports, "remove_ports")?,
        add_guards: guards(&d.add_guards, "add_guards")?,
        remove_guards: guards(&d.remove_guards, "remove_guards")?,
    })
}

pub fn parse_state(s: &wire::FirewallState, prefix: &str) -> Result<FwState> {
    let d = parse_delta(
        &wire::FirewallDelta {
            add_networks: s.networks.clone(),
            add_ports: s.ports.clone(),
            add_guards: s.guards.clone(),
            ..Default::default()
        },
        prefix,
    )?;
    Ok(FwState { networks: d.add_networks, ports: d.add_ports, guards: d.add_guards })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_net(subnet: &str, subnet6: &str, mode4: wire::GatewayMode) -> wire::FirewallNetwork {
        wire::FirewallNetwork {
            bridge: "ct-n1".into(),
            subnet: subnet.into(),
            subnet6: subnet6.into(),
            icc: true,
            mode4: mode4.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_subnet_is_only_for_an_ipv6_only_network() {
        use wire::GatewayMode::{Isolated, Nat};
        let n = parse_network("n", &wire_net("", "2001:db8:6::/64", Isolated), "ct").unwrap();
        assert_eq!((n.subnet, n.mode4), (None, GatewayMode::Isolated));
        for bad in [wire_net("", "2001:db8:6::/64", Nat), wire_net("", "", Isolated)] {
            let e = parse_network("n", &bad, "ct").unwrap_err().to_string();
            assert!(e.contains("n.subnet: empty only on an IPv6-only network"), "{e}");
        }
        assert!(parse_network("n", &wire_net("198.18.0.0/16", "", Nat), "ct").is_ok());
    }

    #[test]
    fn a_guard_needs_an_address_of_either_family() {
        let g = wire::FirewallGuard {
            link: "ct-a1b2c3d4e0".into(),
            mac: vec![6, 0x1f, 0x8a, 0, 0, 2],
            ip6: "2001:db8:6::2".into(),
            owner: "sb:00000000000000a1".into(),
            ..Default::default()
        };
        let parsed = parse_guard("g", &g, "ct").unwrap();
        assert_eq!((parsed.ip, parsed.ip6.is_some()), (None, true));
        let none = wire::FirewallGuard { ip6: String::new(), ..g.clone() };
        assert!(parse_guard("g", &none, "ct").unwrap_err().to_string().contains("g.ip:"));
        let bad = wire::FirewallGuard { ip: "2001:db8::1".into(), ..g };
        assert!(parse_guard("g", &bad, "ct").unwrap_err().to_string().contains("not an IPv4"));
    }
}
