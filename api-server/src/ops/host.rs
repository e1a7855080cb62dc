//! Host-safe networks: a network's subnet must not take an address the host
//! has or a route the host uses, or its bridge would make the host's router
//! local and steal part of its LAN. Checked on every create, explicit
//! subnets included (Docker checks only the subnets it picks itself).
use std::fmt;
use std::net::Ipv4Addr;

use super::Ops;
use crate::domain::{Subnet, Subnet6};
use crate::error::{Error, Result};
use crate::executor::{HostPrefix, HostRoutes};
use crate::state::State;

/// IPv4 routes shorter than this are catch-alls (the default route, a
/// VPN's 0.0.0.0/1 and 128.0.0.0/1): every subnet overlaps them, none takes
/// them. For IPv6 only ::/0 is one (and link-local routes, one per
/// interface, are never a subnet's: fe80::/10 is refused).
const MIN_CHECKED_ROUTE: u8 = 8;

/// A subnet of either family, checked against the host.
#[derive(Debug, Clone, Copy)]
pub enum Range {
    V4(Subnet),
    V6(Subnet6),
}

impl Range {
    fn hit(&self, p: &HostPrefix) -> bool {
        match self {
            Range::V4(s) => p.overlaps(s),
            Range::V6(s) => p.overlaps6(s),
        }
    }
    fn catch_all(&self, p: &HostPrefix) -> bool {
        match self {
            Range::V4(_) => p.len < MIN_CHECKED_ROUTE,
            Range::V6(_) => p.is_default(),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::V4(s) => s.fmt(f),
            Range::V6(s) => s.fmt(f),
        }
    }
}

/// Where the default network's subnet comes from when no flag names one:
/// the first /16 of 172.17.0.0-172.31.255.255 (Docker's first pool) that
/// overlaps nothing on the host and no other network.
pub const DEFAULT_POOL: std::ops::RangeInclusive<u8> = 17..=31;

/// What on the host a subnet would take, for the refusal's message.
pub(super) fn host_conflict(host: &HostRoutes, subnet: &Range, own: &[&str]) -> Option<String> {
    let ours = |dev: &str| own.contains(&dev);
    if let Some(a) = host.addresses.iter().find(|a| !ours(&a.interface) && subnet.hit(&a.prefix)) {
        return Some(format!("the host's address {} on {}", a.prefix, a.interface));
    }
    host.routes
        .iter()
        .filter(|r| !subnet.catch_all(&r.destination) && !ours(&r.interface))
        .find(|r| subnet.hit(&r.destination))
        .map(|r| format!("the host's route {r}"))
}

/// The bridges of ctnet's own networks: their addresses and routes are ours.
pub(super) fn own_bridges(st: &State) -> Vec<&str> {
    st.networks.values().map(|n| n.bridge.as_str()).collect()
}

impl Ops {
    /// Refuses `subnet` (the request's field `field`) when it overlaps the
    /// host, unless the daemon was started with --allow-host-overlap.
    pub(super) fn check_host(
        &self,
        st: &State,
        host: &HostRoutes,
        field: &str,
        subnet: &Range,
    ) -> Result<()> {
        let Some(what) = host_conflict(host, subnet, &own_bridges(st)) else {
            return Ok(());
        };
        if self.settings.allow_host_overlap {
            tracing::warn!(%subnet, conflict = %what, "host overlap allowed by --allow-host-overlap");
            return Ok(());
        }
        Err(Error::Conflict(format!(
            "{field}: {subnet} overlaps {what}; choose a range the host does not use \
             (ctnet-api --allow-host-overlap overrides this check)"
        )))
    }

    /// The default network's subnet: the flag's, refused if it overlaps the
    /// host, or else the first free /16 of the pool.
    pub(super) fn default_subnet(&self, st: &State, host: &HostRoutes) -> Result<Subnet> {
        if let Some(fixed) = self.settings.default_subnet {
            self.check_host(st, host, "--default-subnet", &Range::V4(fixed))?;
            return Ok(fixed);
        }
        let own = own_bridges(st);
        let free = |s: &Subnet| {
            host_conflict(host, &Range::V4(*s), &own).is_none()
                && !st.networks.values().any(|n| n.overlaps4(s))
        };
        let chosen = DEFAULT_POOL
            .map(|b| Subnet { base: Ipv4Addr::new(172, b, 0, 0), prefix: 16 })
            .find(free)
            .ok_or_else(|| {
                Error::Exhausted(
                    "--default-subnet: every /16 of 172.17.0.0-172.31.255.255 overlaps the host \
                     or a network; name a free subnet"
                        .into(),
                )
            })?;
        tracing::info!(subnet = %chosen, "default network subnet picked from the pool");
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{HostAddress, HostPrefix, HostRoute};

    fn prefix(s: &str) -> HostPrefix {
        HostPrefix::parse(s).unwrap()
    }

    fn subnet(s: &str) -> Range {
        Range::V4(Subnet::parse("s", s).unwrap())
    }

    fn subnet6(s: &str) -> Range {
        Range::V6(Subnet6::parse("s", s).unwrap())
    }

    fn host() -> HostRoutes {
        let route = |d: &str, dev: &str| HostRoute {
            destination: prefix(d),
            interface: dev.into(),
            gateway: None,
        };
        HostRoutes {
            addresses: vec![HostAddress {
                interface: "eth0".into(),
                prefix: prefix("10.80.0.5/24"),
            }],
            routes: vec![
                route("0.0.0.0/0", "eth0"),
                route("0.0.0.0/1", "tun0"),
                route("10.80.0.0/24", "eth0"),
                route("192.0.2.0/24", "ct0"),
                route("::/0", "eth0"),
                route("2001:db8:80::/64", "eth0"),
                route("fe80::/64", "eth0"),
            ],
        }
    }

    #[test]
    fn overlaps_with_the_host_are_found_and_catch_alls_and_own_routes_ignored() {
        let h = host();
        let found = host_conflict(&h, &subnet("10.80.0.0/25"), &["ct0"]).unwrap();
        assert!(found.contains("10.80.0.5/24 on eth0"), "{found}");
        let wide = host_conflict(&h, &subnet("10.0.0.0/8"), &["ct0"]).unwrap();
        assert!(wide.contains("10.80.0"), "{wide}");
        assert_eq!(host_conflict(&h, &subnet("10.81.0.0/24"), &["ct0"]), None);
        assert_eq!(host_conflict(&h, &subnet("192.0.2.0/25"), &["ct0"]), None);
        let foreign = host_conflict(&h, &subnet("192.0.2.0/25"), &[]).unwrap();
        assert!(foreign.contains("route 192.0.2.0/24 dev ct0"), "{foreign}");
    }

    #[test]
    fn ipv6_overlaps_ignore_only_the_default_route() {
        let mut h = host();
        let v6 = |s: &str| host_conflict(&h, &subnet6(s), &["ct0"]);
        let found = v6("2001:db8:80::/64").unwrap();
        assert!(found.contains("route 2001:db8:80::/64 dev eth0"), "{found}");
        assert!(v6("2001:db8::/32").is_some(), "a wider subnet takes the route too");
        assert_eq!(v6("2001:db8:81::/64"), None, "::/0 and fe80::/64 are not conflicts");
        assert_eq!(host_conflict(&h, &subnet("10.81.0.0/24"), &["ct0"]), None, "v4 ignores v6");
        h.addresses.push(HostAddress { interface: "eth1".into(), prefix: prefix("fd00:1::5/128") });
        let addr = host_conflict(&h, &subnet6("fd00:1::/64"), &["ct0"]).unwrap();
        assert!(addr.contains("address fd00:1::5/128 on eth1"), "{addr}");
    }

    #[test]
    fn host_prefixes_of_every_length_compare_safely() {
        let s = Subnet::parse("s", "198.18.0.0/16").unwrap();
        assert!(prefix("0.0.0.0/0").overlaps(&s));
        assert!(prefix("198.18.3.4/32").overlaps(&s));
        assert!(!prefix("198.19.3.4/32").overlaps(&s));
        assert_eq!(HostPrefix::parse("1.2.3.4/33"), None);
        assert_eq!(HostPrefix::parse("2001:db8::/129"), None);
        assert!(prefix("::/0").overlaps6(&Subnet6::parse("s", "2001:db8::/64").unwrap()));
        assert!(!prefix("::/0").overlaps(&Subnet::parse("s", "198.18.0.0/16").unwrap()));
        assert_eq!(HostPrefix::parse("1.2.3.4"), None);
    }
}
