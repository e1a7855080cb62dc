//! The elements each firewall object puts into the table's sets, as typed
//! parts. `render.rs` writes them as nft text (full rebuilds, the golden
//! files) and `nfnl.rs` as nf_tables netlink messages (every request's
//! delta): one list of what goes where, so the two paths cannot disagree.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{FwGuard, FwNetwork, FwPort, FwState, GatewayMode, Proto};
use crate::checks::{Addr6Prefix, AddrPrefix};

/// One component of a (possibly concatenated) key or map value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// An interface name (`type ifname`).
    Name(String),
    Ip(Ipv4Addr),
    Ip6(Ipv6Addr),
    /// A whole prefix, in an interval set.
    Net(AddrPrefix),
    Net6(Addr6Prefix),
    Proto(Proto),
    Port(u16),
    Mac([u8; 6]),
}

/// One element of one set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: &'static str,
    pub key: Vec<Part>,
    /// The mapped value; empty for a plain set.
    pub data: Vec<Part>,
    /// The owner tag, so `nft list` shows whose element it is.
    pub comment: Option<String>,
}

impl Part {
    pub fn text(&self) -> String {
        match self {
            Part::Name(n) => format!("\"{n}\""),
            Part::Ip(ip) => ip.to_string(),
            Part::Ip6(ip) => ip.to_string(),
            Part::Net(p) => format!("{}/{}", p.addr, p.prefix),
            Part::Net6(p) => format!("{}/{}", p.addr, p.prefix),
            Part::Proto(p) => p.as_str().to_string(),
            Part::Port(p) => p.to_string(),
            Part::Mac(m) => format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

fn joined(parts: &[Part]) -> String {
    parts.iter().map(Part::text).collect::<Vec<_>>().join(" . ")
}

impl Element {
    fn new(set: &'static str, key: Vec<Part>) -> Self {
        Element { set, key, data: Vec::new(), comment: None }
    }

    fn tagged(mut self, tag: &str) -> Self {
        self.comment = Some(tag.to_string());
        self
    }

    /// The element as nft writes it inside `elements = { ... }`.
    pub fn text(&self) -> String {
        let mut out = joined(&self.key);
        if let Some(c) = &self.comment {
            out += &format!(" comment \"{c}\"");
        }
        if !self.data.is_empty() {
            out += &format!(" : {}", joined(&self.data));
        }
        out
    }

    /// The key alone: a deletion names nothing else.
    pub fn key_text(&self) -> String {
        joined(&self.key)
    }
}

/// The elements one network contributes.
pub fn of_network(n: &FwNetwork) -> Vec<Element> {
    let b = || Part::Name(n.bridge.as_str().to_string());
    let mut out =
        vec![Element::new("bridges", vec![b()]), Element::new("same_bridge", vec![b(), b()])];
    if !n.icc {
        out.push(Element::new("no_icc", vec![b(), b()]));
    }
    if n.internal {
        out.push(Element::new("internal", vec![b()]));
    } else {
        let nat4 = n.subnet.filter(|_| n.mode4 == GatewayMode::Nat);
        out.extend(nat4.map(|s| Element::new("masq_subnets", vec![Part::Net(s)])));
        let nat6 = n.subnet6.filter(|_| n.mode6 == GatewayMode::Nat);
        out.extend(nat6.map(|s| Element::new("masq_subnets6", vec![Part::Net6(s)])));
    }
    let sets = |m| match m {
        GatewayMode::Nat => None,
        GatewayMode::Routed => Some(("routed4", "routed6")),
        GatewayMode::Isolated => Some(("isolated4", "isolated6")),
    };
    out.extend(sets(n.mode4).map(|(v4, _)| Element::new(v4, vec![b()])));
    let v6 = n.subnet6.and_then(|_| sets(n.mode6));
    out.extend(v6.map(|(_, v6)| Element::new(v6, vec![b()])));
    out
}

fn ip(a: IpAddr) -> Part {
    match a {
        IpAddr::V4(a) => Part::Ip(a),
        IpAddr::V6(a) => Part::Ip6(a),
    }
}

/// The map element one published port is, in its family's maps.
pub fn of_port(p: &FwPort) -> Element {
    let (proto, port) = (Part::Proto(p.proto), Part::Port(p.host_port));
    let v6 = p.target_ip.is_ipv6();
    if p.routed {
        // No DNAT: the container port opened on the sandbox's address.
        let set = if v6 { "routed_open6" } else { "routed_open" };
        let key = vec![ip(p.target_ip), proto, Part::Port(p.target_port)];
        return Element::new(set, key).tagged(p.owner.tag());
    }
    let mut e = match (p.host_ip, v6) {
        (None, false) => Element::new("ports_any", vec![proto, port]),
        (None, true) => Element::new("ports_any6", vec![proto, port]),
        (Some(h), false) => Element::new("ports_addr", vec![ip(h), proto, port]),
        (Some(h), true) => Element::new("ports_addr6", vec![ip(h), proto, port]),
    };
    e.data = vec![ip(p.target_ip), Part::Port(p.target_port)];
    e.tagged(p.owner.tag())
}

/// The link-local address the kernel gives an interface with this MAC
/// (modified EUI-64, RFC 4291 appendix A).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let m = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The elements one guarded port is: its name, and what it may send.
pub fn of_guard(g: &FwGuard) -> Vec<Element> {
    let link = || Part::Name(g.link.as_str().to_string());
    let tag = g.owner.tag();
    let mut out = vec![Element::new("guarded", vec![link()]).tagged(tag)];
    if let Some(a) = g.ip {
        out.push(Element::new("guards", vec![link(), Part::Mac(g.mac), Part::Ip(a)]).tagged(tag));
    }
    for a in g.ip6.into_iter().flat_map(|a| [a, link_local(g.mac)]) {
        out.push(Element::new("guards6", vec![link(), Part::Mac(g.mac), Part::Ip6(a)]).tagged(tag));
    }
    out
}

/// Every element of `state`: networks, then ports, then guards.
pub fn of_state(state: &FwState) -> Vec<Element> {
    let mut all: Vec<Element> = state.networks.iter().flat_map(of_network).collect();
    all.extend(state.ports.iter().map(of_port));
    all.extend(state.guards.iter().flat_map(of_guard));
    all
}
