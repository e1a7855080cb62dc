//! Published ports at the edge: the grammar of `docker run -p`,
//! `[host_ip:][host_port[-end]:]container_port[-end][/tcp|udp|sctp]`,
//! parsed into requests for the allocator. An IPv6 host address is written
//! in brackets: `[2001:db8::1]:8080:80`, `[::]:8080:80`.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(a: IpAddr) -> Self {
        if a.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    pub fn unspecified(&self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// Which host addresses a mapping wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// No address given: every address of every family the network has.
    Unspecified,
    /// `0.0.0.0` or `[::]`: every address of one family.
    Any(Family),
    Addr(IpAddr),
}

/// Where one mapping is published: (family, host address) pairs.
pub type Binds = Vec<(Family, Option<IpAddr>)>;

impl Bind {
    /// The (family, address) pairs this bind publishes on, for an
    /// interface with IPv4, IPv6 or both; Err names a family the bind
    /// needs and the interface lacks.
    pub fn resolve(&self, ipv4: bool, ipv6: bool) -> std::result::Result<Binds, Family> {
        let has = |f: Family| if f == Family::V4 { ipv4 } else { ipv6 };
        let one = |f: Family, a: Option<IpAddr>| if has(f) { Ok(vec![(f, a)]) } else { Err(f) };
        match *self {
            Bind::Unspecified => Ok([Family::V4, Family::V6]
                .into_iter()
                .filter(|f| has(*f))
                .map(|f| (f, None))
                .collect()),
            Bind::Any(f) => one(f, None),
            Bind::Addr(a) => one(Family::of(a), Some(a)),
        }
    }
}

/// Which host port a mapping wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPort {
    /// This port.
    Fixed(u16),
    /// The first free port of this range.
    Within(u16, u16),
    /// A free port from the server's ephemeral range.
    Any,
}

/// One mapping asked for; a range spec yields one per port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: Proto,
    pub bind: Bind,
    pub host_port: HostPort,
    pub container_port: u16,
}

/// Host ports one request may publish: a range counts as its length.
pub const MAX_PORTS_PER_REQUEST: usize = 1024;

/// Parses every spec of a `publish` list; the field is named with its index.
/// Sizes are checked before anything is expanded, so a short request cannot
/// make a large allocation.
pub fn parse_publish(field: &str, specs: &[String]) -> Result<Vec<PortRequest>> {
    let too_many =
        || Error::invalid(field, format!("at most {MAX_PORTS_PER_REQUEST} ports per request"));
    if specs.len() > MAX_PORTS_PER_REQUEST {
        return Err(too_many());
    }
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let budget = MAX_PORTS_PER_REQUEST - out.len();
        let parsed = parse_spec(&format!("{field}[{i}]"), spec, budget)?;
        out.extend(parsed.ok_or_else(too_many)?);
    }
    Ok(out)
}

/// One spec, or None when it would expand to more than `budget` ports.
fn parse_spec(field: &str, spec: &str, budget: usize) -> Result<Option<Vec<PortRequest>>> {
    let bad = |why: &str| {
        Error::invalid(field, format!("{spec:?}: {why}; expected [host_ip:][host_port[-end]:]container_port[-end][/tcp|udp|sctp]"))
    };
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some((p, "sctp")) => (p, Proto::Sctp),
        Some(_) => return Err(bad("the protocol must be tcp, udp or sctp")),
        None => (spec, Proto::Tcp),
    };
    let (ip, ports) = match ports.strip_prefix('[') {
        Some(rest) => {
            let (ip, ports) = rest.split_once("]:").ok_or_else(|| bad("no \"]:\" after \"[\""))?;
            let ip = ip.parse::<Ipv6Addr>().map_err(|_| bad("inside [] is not an IPv6 address"))?;
            (Some(IpAddr::V6(ip)), ports)
        }
        None => (None, ports),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, host, container) = match (ip, parts.as_slice()) {
        (None, [c]) => (None, "", *c),
        (None, [h, c]) => (None, *h, *c),
        (None, [ip, h, c]) => {
            let ip = ip.parse::<Ipv4Addr>().map_err(|_| {
                bad("the host address is not an IPv4 address (write IPv6 in brackets)")
            })?;
            (Some(IpAddr::V4(ip)), *h, *c)
        }
        (Some(ip), [h, c]) => (Some(ip), *h, *c),
        (Some(_), [_]) => return Err(bad("a host address needs a host port, empty for any")),
        _ => return Err(bad("too many ':'")),
    };
    let bind = match ip {
        None => Bind::Unspecified,
        Some(a) if a.is_unspecified() => Bind::Any(Family::of(a)),
        Some(a) => Bind::Addr(a),
    };
    if let Bind::Addr(a) = bind {
        let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
        if a.is_multicast() || broadcast {
            return Err(bad("the host address must be unicast"));
        }
        if a == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            return Err(bad("::1 cannot be published: IPv6 has no route_localnet, so the kernel cannot DNAT loopback traffic to a sandbox; use 127.0.0.1"));
        }
    }
    let (c_lo, c_hi) = parse_range(container)
        .ok_or_else(|| bad("the container port must be 1-65535 or a range lo-hi"))?;
    let host_range = if host.is_empty() || host == "0" {
        None
    } else {
        Some(
            parse_range(host)
                .ok_or_else(|| bad("the host port must be 1-65535 or a range lo-hi"))?,
        )
    };
    let request =
        |host_port, container_port| PortRequest { proto, bind, host_port, container_port };
    // A host range mapped to one container port is one port; the lengths
    // are known before anything is expanded.
    let count = match host_range {
        Some((h_lo, h_hi)) if c_lo == c_hi && h_lo != h_hi => 1,
        Some((h_lo, h_hi)) if h_hi - h_lo != c_hi - c_lo => {
            return Err(bad("the host and container ranges differ in length"))
        }
        _ => usize::from(c_hi - c_lo) + 1,
    };
    if count > budget {
        return Ok(None);
    }
    let ports = match host_range {
        None => (c_lo..=c_hi).map(|c| request(HostPort::Any, c)).collect(),
        Some((h_lo, h_hi)) if c_lo == c_hi && h_lo != h_hi => {
            vec![request(HostPort::Within(h_lo, h_hi), c_lo)]
        }
        Some((h_lo, _)) => {
            (0..=c_hi - c_lo).map(|k| request(HostPort::Fixed(h_lo + k), c_lo + k)).collect()
        }
    };
    Ok(Some(ports))
}

/// "80" or "80-90"; ports 1-65535, lo <= hi.
fn parse_range(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((lo, hi)) => Some((port(lo)?, port(hi)?)).filter(|(lo, hi)| lo <= hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortRequest {
        let mut v = parse_spec("p", spec, 1024).unwrap().unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v.remove(0)
    }

    #[test]
    fn docker_grammar() {
        assert_eq!(
            one("80"),
            PortRequest {
                proto: Proto::Tcp,
                bind: Bind::Unspecified,
                host_port: HostPort::Any,
                container_port: 80
            }
        );
        assert_eq!(one("8080:80").host_port, HostPort::Fixed(8080));
        assert_eq!(one("8080:80/udp").proto, Proto::Udp);
        assert_eq!(one("0:80").host_port, HostPort::Any);
        let bound = one("127.0.0.1:8080:80/sctp");
        let localhost = Bind::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((bound.bind, bound.proto), (localhost, Proto::Sctp));
        assert_eq!(one("127.0.0.1::80").host_port, HostPort::Any);
        assert_eq!(one("0.0.0.0:8080:80").bind, Bind::Any(Family::V4));
        assert_eq!(one("[::]:8080:80").bind, Bind::Any(Family::V6));
        let v6 = one("[2001:db8::1]:8080:80/udp");
        assert_eq!(v6.bind, Bind::Addr("2001:db8::1".parse().unwrap()));
        assert_eq!((v6.host_port, v6.proto), (HostPort::Fixed(8080), Proto::Udp));
        assert_eq!(one("[2001:db8::1]::80").host_port, HostPort::Any);
        assert_eq!(one("8000-8010:80").host_port, HostPort::Within(8000, 8010));
        let range = parse_spec("p", "8000-8002:80-82", 1024).unwrap().unwrap();
        let pairs: Vec<(HostPort, u16)> =
            range.iter().map(|r| (r.host_port, r.container_port)).collect();
        assert_eq!(
            pairs,
            vec![
                (HostPort::Fixed(8000), 80),
                (HostPort::Fixed(8001), 81),
                (HostPort::Fixed(8002), 82)
            ]
        );
        assert_eq!(parse_spec("p", "80-82", 1024).unwrap().unwrap().len(), 3);
    }

    #[test]
    fn malformed_specs() {
        for bad in [
            "",
            "x",
            "0",
            "65536",
            "80/icmp",
            "a:b:c:d",
            "1.2.3:80:80",
            "8000-8001:80-82",
            "90-80",
            "8080:",
            "224.0.0.1:80:80",
            "2001:db8::1:8080:80",
            "[2001:db8::1]:80",
            "[2001:db8::1]8080:80",
            "[192.0.2.1]:8080:80",
            "[ff02::1]:8080:80",
            "[::1]:8080:80",
            "[2001:db8::1]:1:8080:80",
        ] {
            let err = parse_spec("publish[0]", bad, 1024).expect_err(bad);
            assert!(err.to_string().starts_with("publish[0]"), "{bad}: {err}");
        }
    }

    #[test]
    fn binds_resolve_to_the_network_s_families() {
        let (v4, v6) = (Some((Family::V4, None)), Some((Family::V6, None)));
        let both: Vec<_> = v4.into_iter().chain(v6).collect();
        assert_eq!(Bind::Unspecified.resolve(true, true), Ok(both));
        assert_eq!(Bind::Unspecified.resolve(true, false), Ok(vec![(Family::V4, None)]));
        assert_eq!(Bind::Unspecified.resolve(false, true), Ok(vec![(Family::V6, None)]));
        assert_eq!(Bind::Any(Family::V6).resolve(true, false), Err(Family::V6));
        assert_eq!(Bind::Any(Family::V6).resolve(true, true), Ok(vec![(Family::V6, None)]));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Bind::Addr(a).resolve(true, false), Err(Family::V6));
        assert_eq!(Bind::Any(Family::V4).resolve(true, true), Ok(vec![(Family::V4, None)]));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(Bind::Addr(a).resolve(false, true), Err(Family::V4));
        assert_eq!(Bind::Any(Family::V4).resolve(false, true), Err(Family::V4));
    }

    #[test]
    fn sizes_are_checked_before_expanding() {
        // 5,000 entries of the whole range: a 16 KB request that once
        // expanded to 327 million mappings before the limit was checked.
        let huge: Vec<String> = (0..5000).map(|_| "1-65535".to_string()).collect();
        let err = parse_publish("publish", &huge).unwrap_err();
        assert_eq!(err.to_string(), "publish: at most 1024 ports per request");
        let one = ["1-65535".to_string()];
        assert!(parse_publish("publish", &one).unwrap_err().to_string().starts_with("publish:"));
        assert_eq!(parse_spec("p", "1-65535", 1024).unwrap(), None, "refused unexpanded");
        // Within the budget: exactly 1024 ports pass.
        let ok: Vec<String> = vec!["1-1000".into(), "2000-2023".into()];
        assert_eq!(parse_publish("publish", &ok).unwrap().len(), 1024);
        let over: Vec<String> = vec!["1-1000".into(), "2000-2024".into()];
        assert!(parse_publish("publish", &over).is_err());
        // A host range for one container port counts once.
        assert_eq!(parse_publish("publish", &["8000-9999:80".into()]).unwrap().len(), 1);
    }
}
