//! Host-safe networks: a network's subnet must not take an address the host
//! has or a route the host uses, or its bridge would make the host's router
//! local and steal part of its LAN. Checked on every create, explicit
//! subnets included (Docker checks only the subnets it picks itself).
use std::net::Ipv4Addr;

use super::Ops;
use crate::domain::Subnet;
use crate::error::{Error, Result};
use crate::executor::HostRoutes;
use crate::state::State;

/// Routes shorter than this are catch-alls (the default route, a VPN's
/// 0.0.0.0/1 and 128.0.0.0/1): every subnet overlaps them, none takes them.
const MIN_CHECKED_ROUTE: u8 = 8;

/// Where the default network's subnet comes from when no flag names one:
/// the first /16 of 172.17.0.0-172.31.255.255 (Docker's first pool) that
/// overlaps nothing on the host and no other network.
pub const DEFAULT_POOL: std::ops::RangeInclusive<u8> = 17..=31;

/// What on the host a subnet would take, for the refusal's message.
pub(super) fn host_conflict(host: &HostRoutes, subnet: &Subnet, own: &[&str]) -> Option<String> {
    let ours = |dev: &str| own.contains(&dev);
    if let Some(a) =
        host.addresses.iter().find(|a| !ours(&a.interface) && a.prefix.overlaps(subnet))
    {
        return Some(format!("the host's address {} on {}", a.prefix, a.interface));
    }
    host.routes
        .iter()
        .filter(|r| r.destination.len >= MIN_CHECKED_ROUTE && !ours(&r.interface))
        .find(|r| r.destination.overlaps(subnet))
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
        subnet: &Subnet,
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
            self.check_host(st, host, "--default-subnet", &fixed)?;
            return Ok(fixed);
        }
        let own = own_bridges(st);
        let free = |s: &Subnet| {
            host_conflict(host, s, &own).is_none()
                && !st.networks.values().any(|n| n.subnet.overlaps(s))
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

    fn subnet(s: &str) -> Subnet {
        Subnet::parse("s", s).unwrap()
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
    fn host_prefixes_of_every_length_compare_safely() {
        assert!(prefix("0.0.0.0/0").overlaps(&subnet("198.18.0.0/16")));
        assert!(prefix("198.18.3.4/32").overlaps(&subnet("198.18.0.0/16")));
        assert!(!prefix("198.19.3.4/32").overlaps(&subnet("198.18.0.0/16")));
        assert_eq!(HostPrefix::parse("1.2.3.4/33"), None);
        assert_eq!(HostPrefix::parse("1.2.3.4"), None);
    }
}
