//! The network resource at the edge: CreateNetworkRequest becomes a
//! NetworkSpec, or an InvalidArgument naming the field.
use std::net::Ipv4Addr;

use ctnet_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use super::common::*;
use super::ids::LinkName;
use super::ipv6::Addressing6;
use crate::error::{Error, Result};

/// Default MTU of a bridge and its ports.
pub const DEFAULT_MTU: u32 = 1500;

#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: Name,
    pub ipv4: Ipv4Ask,
    /// None: IPv4 only.
    pub ipv6: Option<Ipv6Ask>,
    /// None: derived from the network id once it exists.
    pub bridge_name: Option<LinkName>,
    pub mtu: u32,
    pub internal: bool,
    pub icc: bool,
    pub labels: Labels,
    /// Isolated on an IPv6-only network: no IPv4 passes its bridge.
    pub mode4: GatewayMode,
    /// Nat when the network has no IPv6.
    pub mode6: GatewayMode,
}

/// How one family of a network reaches the outside (Docker's
/// `gateway_mode_ipv4`/`gateway_mode_ipv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    /// Masquerade out, published ports DNAT'ed in from host ports.
    #[default]
    Nat,
    /// No NAT: published container ports open on the sandbox's own
    /// address, nothing else reachable from outside.
    Routed,
    /// Nothing in or out, and the bridge has no address of the family.
    Isolated,
}

impl GatewayMode {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        match s {
            "" | "nat" => Ok(Self::Nat),
            "routed" => Ok(Self::Routed),
            "isolated" => Ok(Self::Isolated),
            other => Err(Error::invalid(
                field,
                format!("{other:?} is not a gateway mode: nat, routed or isolated"),
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Routed => "routed",
            Self::Isolated => "isolated",
        }
    }
}

/// How a network gets its IPv4 subnet, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Ask {
    /// From the caller's tenant's address pool.
    Pool,
    Given(Addressing),
    /// An IPv6-only network (enable_ipv4 false).
    Off,
}

/// How a dual-stack network gets its IPv6 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Ask {
    /// A free /64 of the host's ULA prefix.
    Ula,
    Given(Addressing6),
}

/// An IPv4 subnet and its gateway (the bridge's own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
}

impl Addressing {
    /// The first usable address is the gateway.
    pub fn of(subnet: Subnet) -> Self {
        Addressing { subnet, gateway: Ipv4Addr::from(subnet.hosts().0) }
    }
}

impl NetworkSpec {
    pub fn parse(r: &pb::CreateNetworkRequest, link_prefix: &str) -> Result<Self> {
        let name = Name::parse("name", &r.name)?;
        if !(r.driver.is_empty() || r.driver == "bridge") {
            return Err(Error::invalid(
                "driver",
                format!("{:?} is not supported; the only driver is \"bridge\"", r.driver),
            ));
        }
        let ipv4 = ipv4_ask(r)?;
        let ipv6 = match (r.ipv6_subnet.as_deref(), r.ipv6_gateway.as_deref()) {
            (None, Some(_)) => return Err(Error::invalid("ipv6_gateway", "needs an ipv6_subnet")),
            (None, None) => r.enable_ipv6.then_some(Ipv6Ask::Ula),
            (Some(s), g) => Some(Ipv6Ask::Given(Addressing6::parse("ipv6_subnet", s, g)?)),
        };
        let mode4 = GatewayMode::parse("gateway_mode_ipv4", &r.gateway_mode_ipv4)?;
        let mode6 = GatewayMode::parse("gateway_mode_ipv6", &r.gateway_mode_ipv6)?;
        if ipv6.is_none() && !r.gateway_mode_ipv6.is_empty() {
            let why = "needs IPv6 on the network (ipv6_subnet or enable_ipv6)";
            return Err(Error::invalid("gateway_mode_ipv6", why));
        }
        if ipv4 == Ipv4Ask::Off && ipv6.is_none() {
            let why = "false needs IPv6 on the network (ipv6_subnet or enable_ipv6)";
            return Err(Error::invalid("enable_ipv4", why));
        }
        if ipv4 == Ipv4Ask::Off && !r.gateway_mode_ipv4.is_empty() {
            let why = "an IPv6-only network (enable_ipv4 false) has no IPv4 to route";
            return Err(Error::invalid("gateway_mode_ipv4", why));
        }
        // Nothing of IPv4 passes an IPv6-only network's bridge.
        let mode4 = if ipv4 == Ipv4Ask::Off { GatewayMode::Isolated } else { mode4 };
        let bridge_name = r
            .bridge_name
            .as_deref()
            .map(|b| LinkName::parse("bridge_name", b, link_prefix))
            .transpose()?;
        let mtu = match r.mtu {
            0 => DEFAULT_MTU,
            68..=65535 => r.mtu,
            m => return Err(Error::invalid("mtu", format!("{m} is outside 68-65535"))),
        };
        Ok(Self {
            name,
            ipv4,
            ipv6,
            bridge_name,
            mtu,
            internal: r.internal,
            icc: r.icc.unwrap_or(true),
            labels: parse_labels("labels", &r.labels)?,
            mode4,
            mode6,
        })
    }
}

fn ipv4_ask(r: &pb::CreateNetworkRequest) -> Result<Ipv4Ask> {
    let off = "an IPv6-only network (enable_ipv4 false) has none";
    match (r.enable_ipv4, r.subnet.as_str(), &r.gateway) {
        (Some(false), "", None) => Ok(Ipv4Ask::Off),
        (Some(false), "", Some(_)) => Err(Error::invalid("gateway", off)),
        (Some(false), _, _) => Err(Error::invalid("subnet", off)),
        (_, "", None) => Ok(Ipv4Ask::Pool),
        (_, "", Some(_)) => Err(Error::invalid("gateway", "needs a subnet")),
        (_, s, g) => {
            let subnet = Subnet::parse("subnet", s)?;
            let gateway = match g {
                Some(g) => parse_gateway(g, &subnet)?,
                None => Ipv4Addr::from(subnet.hosts().0),
            };
            Ok(Ipv4Ask::Given(Addressing { subnet, gateway }))
        }
    }
}

fn parse_gateway(g: &str, subnet: &Subnet) -> Result<Ipv4Addr> {
    let gw = parse_ipv4("gateway", g)?;
    if !subnet.is_host(gw) {
        return Err(Error::invalid(
            "gateway",
            format!("{gw} is not a usable host address of {subnet}"),
        ));
    }
    Ok(gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnet: &str) -> pb::CreateNetworkRequest {
        pb::CreateNetworkRequest { name: "n1".into(), subnet: subnet.into(), ..Default::default() }
    }

    #[test]
    fn gateway_modes_per_family() {
        let s = NetworkSpec::parse(&req("198.18.5.0/24"), "ct").unwrap();
        assert_eq!((s.mode4, s.mode6), (GatewayMode::Nat, GatewayMode::Nat));
        let mut r = req("198.18.5.0/24");
        r.enable_ipv6 = true;
        r.gateway_mode_ipv4 = "isolated".into();
        r.gateway_mode_ipv6 = "routed".into();
        let s = NetworkSpec::parse(&r, "ct").unwrap();
        assert_eq!((s.mode4, s.mode6), (GatewayMode::Isolated, GatewayMode::Routed));
        r.gateway_mode_ipv4 = "NAT".into();
        let e = NetworkSpec::parse(&r, "ct").unwrap_err().to_string();
        assert!(e.starts_with("gateway_mode_ipv4: \"NAT\" is not a gateway mode"), "{e}");
        let mut r = req("198.18.5.0/24");
        r.gateway_mode_ipv6 = "routed".into();
        let e = NetworkSpec::parse(&r, "ct").unwrap_err().to_string();
        assert!(e.starts_with("gateway_mode_ipv6: needs IPv6"), "{e}");
    }

    #[test]
    fn defaults() {
        let s = NetworkSpec::parse(&req("198.18.5.0/24"), "ct").unwrap();
        let Ipv4Ask::Given(a) = s.ipv4 else { panic!("given: {:?}", s.ipv4) };
        assert_eq!(a.gateway, Ipv4Addr::new(198, 18, 5, 1));
        assert_eq!(NetworkSpec::parse(&req(""), "ct").unwrap().ipv4, Ipv4Ask::Pool);
        assert_eq!(s.mtu, 1500);
        assert!(s.icc);
    }

    #[test]
    fn ipv6_only_needs_ipv6_and_takes_nothing_of_ipv4() {
        let mut r = req("");
        r.enable_ipv4 = Some(false);
        r.enable_ipv6 = true;
        let s = NetworkSpec::parse(&r, "ct").unwrap();
        assert_eq!((s.ipv4, s.mode4), (Ipv4Ask::Off, GatewayMode::Isolated));
        let field = |r: &pb::CreateNetworkRequest| {
            let e = NetworkSpec::parse(r, "ct").unwrap_err().to_string();
            e.split(':').next().unwrap_or_default().to_string()
        };
        let mut bad = r.clone();
        bad.enable_ipv6 = false;
        assert_eq!(field(&bad), "enable_ipv4");
        let mut bad = r.clone();
        bad.subnet = "198.18.5.0/24".into();
        assert_eq!(field(&bad), "subnet");
        let mut bad = r.clone();
        bad.gateway = Some("198.18.5.1".into());
        assert_eq!(field(&bad), "gateway");
        let mut bad = r.clone();
        bad.gateway_mode_ipv4 = "nat".into();
        assert_eq!(field(&bad), "gateway_mode_ipv4");
        r.enable_ipv4 = Some(true);
        assert_eq!(NetworkSpec::parse(&r, "ct").unwrap().ipv4, Ipv4Ask::Pool);
    }

    #[test]
    fn gateway_must_be_inside() {
        let mut r = req("198.18.5.0/24");
        r.gateway = Some("198.18.6.1".into());
        assert!(NetworkSpec::parse(&r, "ct").unwrap_err().to_string().starts_with("gateway:"));
        r.gateway = Some("198.18.5.255".into());
        assert!(NetworkSpec::parse(&r, "ct").is_err());
    }

    #[test]
    fn ipv6_is_off_unless_asked_for() {
        assert_eq!(NetworkSpec::parse(&req("198.18.5.0/24"), "ct").unwrap().ipv6, None);
        let mut r = req("198.18.5.0/24");
        r.enable_ipv6 = true;
        assert_eq!(NetworkSpec::parse(&r, "ct").unwrap().ipv6, Some(Ipv6Ask::Ula));
        r.ipv6_subnet = Some("2001:db8:5::/64".into());
        let Some(Ipv6Ask::Given(a)) = NetworkSpec::parse(&r, "ct").unwrap().ipv6 else {
            panic!("a given subnet")
        };
        assert_eq!(a.gateway.to_string(), "2001:db8:5::1");
        r.ipv6_subnet = None;
        r.ipv6_gateway = Some("2001:db8:5::1".into());
        let e = NetworkSpec::parse(&r, "ct").unwrap_err().to_string();
        assert!(e.starts_with("ipv6_gateway: needs"), "{e}");
    }

    #[test]
    fn bridge_name_needs_prefix_and_length() {
        let mut r = req("198.18.5.0/24");
        r.bridge_name = Some("docker0".into());
        assert!(NetworkSpec::parse(&r, "ct").is_err());
        r.bridge_name = Some("ct-abcdefghijklmn".into());
        assert!(NetworkSpec::parse(&r, "ct").is_err());
        r.bridge_name = Some("ct-web".into());
        assert!(NetworkSpec::parse(&r, "ct").is_ok());
    }
}
