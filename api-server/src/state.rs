//! The in-memory mirror of the store, with lookups and IPAM. Every mutation
//! happens under one lock together with its store commit, so two requests
//! can never take one address, name or port.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::domain::network::Addressing;
use crate::domain::{Addressing6, Mac, NetworkId, Ref, SandboxId, Subnet};
use crate::error::{Error, Result};
use crate::limits::BRIDGE_MAX_PORTS;
use crate::model::{Netns, NetworkRecord, SandboxRecord};
use crate::policy::{Caller, ADMIN};

/// The tenant and name a reference means: `tenant/name` for the admin (a
/// tenant's own prefix is accepted too), else a name in the caller's tenant.
fn scoped<'a>(caller: &'a Caller, r: &'a Ref) -> (&'a str, &'a str) {
    match r.as_str().split_once('/') {
        Some((t, n)) if caller.sees(t) => (t, n),
        // Another tenant's prefix: a name no record of the caller's has.
        Some(_) => (caller.tenant.as_str(), r.as_str()),
        None => (caller.tenant.as_str(), r.as_str()),
    }
}

/// An admin network the policy lets `caller`'s tenant attach to.
pub fn shared_with(caller: &Caller, n: &NetworkRecord) -> bool {
    n.tenant == ADMIN
        && caller
            .rules
            .as_ref()
            .is_some_and(|r| r.shared_networks.iter().any(|s| s == n.name.as_str()))
}

pub struct State {
    pub networks: BTreeMap<NetworkId, NetworkRecord>,
    pub sandboxes: BTreeMap<SandboxId, SandboxRecord>,
    /// Ports allowed per bridge: at most BRIDGE_MAX_PORTS.
    pub bridge_max_ports: usize,
}

impl State {
    pub fn new(bridge_max_ports: usize) -> Self {
        Self {
            networks: BTreeMap::new(),
            sandboxes: BTreeMap::new(),
            bridge_max_ports: bridge_max_ports.min(BRIDGE_MAX_PORTS),
        }
    }

    /// A network `caller` may use, by id, by name in its own tenant, by
    /// `tenant/name` (the admin), or an admin network the policy shares with
    /// it. Another tenant's is NotFound: existence is not leaked.
    pub fn network(&self, caller: &Caller, r: &Ref) -> Result<&NetworkRecord> {
        let (tenant, name) = scoped(caller, r);
        let usable = |n: &&NetworkRecord| caller.sees(&n.tenant) || shared_with(caller, n);
        let by_id = NetworkId::parse(r.as_str()).and_then(|id| self.networks.get(&id));
        let named =
            |t: &str| self.networks.values().find(|n| n.tenant == t && n.name.as_str() == name);
        let shared = || named(ADMIN).filter(|n| shared_with(caller, n));
        by_id
            .filter(usable)
            .or_else(|| named(tenant))
            .or_else(shared)
            .ok_or_else(|| Error::NotFound(format!("network {:?} does not exist", r.as_str())))
    }

    /// A network of a tenant `caller` sees (not merely one shared with it):
    /// what it may change or delete.
    pub fn own_network(&self, caller: &Caller, r: &Ref) -> Result<&NetworkRecord> {
        self.network(caller, r)
            .ok()
            .filter(|n| caller.sees(&n.tenant))
            .ok_or_else(|| Error::NotFound(format!("network {:?} does not exist", r.as_str())))
    }

    /// A sandbox of a tenant `caller` sees, by id, by name in its own
    /// tenant, or by `tenant/name` (the admin).
    pub fn sandbox(&self, caller: &Caller, r: &Ref) -> Result<&SandboxRecord> {
        let (tenant, name) = scoped(caller, r);
        let by_id = SandboxId::parse(r.as_str())
            .and_then(|id| self.sandboxes.get(&id))
            .filter(|s| s.phase.visible() && caller.sees(&s.tenant));
        let by_name = || {
            let named = |s: &&SandboxRecord| {
                s.phase.visible()
                    && s.tenant == tenant
                    && s.name.as_ref().is_some_and(|n| n.as_str() == name)
            };
            self.sandboxes.values().find(named)
        };
        by_id
            .or_else(by_name)
            .ok_or_else(|| Error::NotFound(format!("sandbox {:?} does not exist", r.as_str())))
    }

    /// Sandboxes with an interface on the network, in any phase.
    pub fn attached_to(&self, net: &NetworkId) -> Vec<&SandboxRecord> {
        let on = |s: &&SandboxRecord| s.endpoints.iter().any(|e| &e.network_id == net);
        self.sandboxes.values().filter(on).collect()
    }

    /// Sandboxes that joined `id`'s namespace through container mode.
    pub fn joiners_of(&self, id: &SandboxId) -> Vec<&SandboxRecord> {
        let joins =
            |s: &&SandboxRecord| matches!(&s.netns, Netns::Joined { target, .. } if target == id);
        self.sandboxes.values().filter(joins).collect()
    }

    fn used_addresses(&self, net: &NetworkRecord, a4: &Addressing) -> BTreeSet<u32> {
        let held = self.sandboxes.values().flat_map(|s| &s.endpoints);
        let mut used: BTreeSet<u32> = held
            .filter(|e| e.network_id == net.id)
            .filter_map(|e| e.address.map(u32::from))
            .collect();
        used.insert(u32::from(a4.gateway));
        used
    }

    /// Refuses one more interface on a bridge that holds the most it can
    /// (the gateway counts as one, as the bridge's own port would).
    pub fn check_bridge_room(&self, net: &NetworkRecord) -> Result<()> {
        let held = self.sandboxes.values().flat_map(|s| &s.endpoints);
        if held.filter(|e| e.network_id == net.id).count() + 1 > self.bridge_max_ports {
            return Err(Error::Exhausted(format!(
                "network {} has {} interfaces, the most its Linux bridge holds (--bridge-max-ports); create another network",
                net.name, self.bridge_max_ports
            )));
        }
        Ok(())
    }

    /// IPAM for IPv6: a static address is honoured or refused; otherwise the
    /// lowest free one. Walks the interfaces that exist, never the prefix.
    pub fn allocate6(
        &self,
        net: &NetworkRecord,
        a6: &Addressing6,
        want: Option<Ipv6Addr>,
        field: &str,
    ) -> Result<Ipv6Addr> {
        let held = self.sandboxes.values().flat_map(|s| &s.endpoints);
        let mut used: BTreeSet<u128> = held
            .filter(|e| e.network_id == net.id)
            .filter_map(|e| e.address6.map(u128::from))
            .collect();
        used.insert(u128::from(a6.gateway));
        let Some(a) = want else {
            let (lo, hi) = a6.subnet.hosts();
            return lowest_free6(lo, hi, &used).map(Ipv6Addr::from).ok_or_else(|| {
                let why = format!("network {}: no free address left in {}", net.name, a6.subnet);
                Error::Exhausted(why)
            });
        };
        if !a6.subnet.is_host(a) {
            let why =
                format!("{a} is not a usable host address of {} (network {})", a6.subnet, net.name);
            return Err(Error::invalid(field, why));
        }
        if used.contains(&u128::from(a)) {
            let what = if a == a6.gateway { "the gateway" } else { "already in use" };
            return Err(Error::AlreadyExists(format!(
                "{field}: {a} is {what} on network {}",
                net.name
            )));
        }
        Ok(a)
    }

    /// True when an interface on the network already has this MAC.
    pub fn mac_taken(&self, net: &NetworkId, mac: Mac) -> bool {
        let mut all = self.sandboxes.values().flat_map(|s| &s.endpoints);
        all.any(|e| &e.network_id == net && e.mac == mac)
    }

    /// IPAM: a static address is honoured or refused; otherwise the lowest
    /// free host address for which `skip` is false. The network, broadcast
    /// and gateway addresses are never handed out; an address is free again
    /// once no interface holds it.
    pub fn allocate(
        &self,
        net: &NetworkRecord,
        a4: &Addressing,
        want: Option<Ipv4Addr>,
        field: &str,
        skip: impl Fn(Ipv4Addr) -> bool,
    ) -> Result<Ipv4Addr> {
        let used = self.used_addresses(net, a4);
        match want {
            Some(a) => check_static(net, a4, a, &used, field),
            None => lowest_free(&a4.subnet, &used, skip).ok_or_else(|| {
                Error::Exhausted(format!(
                    "network {}: no free address left in {}",
                    net.name, a4.subnet
                ))
            }),
        }
    }
}

fn check_static(
    net: &NetworkRecord,
    a4: &Addressing,
    a: Ipv4Addr,
    used: &BTreeSet<u32>,
    field: &str,
) -> Result<Ipv4Addr> {
    if !a4.subnet.is_host(a) {
        let why =
            format!("{a} is not a usable host address of {} (network {})", a4.subnet, net.name);
        return Err(Error::invalid(field, why));
    }
    if a == a4.gateway {
        return Err(Error::AlreadyExists(format!(
            "{field}: {a} is the gateway of network {}",
            net.name
        )));
    }
    if used.contains(&u32::from(a)) {
        return Err(Error::AlreadyExists(format!(
            "{field}: {a} is already in use on network {}",
            net.name
        )));
    }
    Ok(a)
}

fn lowest_free(
    subnet: &Subnet,
    used: &BTreeSet<u32>,
    skip: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let (lo, hi) = subnet.hosts();
    let mut taken = used.range(lo..=hi).peekable();
    // Walks the free addresses in order; `skip` is true for few of them (one
    // per explicit MAC), so this stops soon after the first gap.
    for candidate in lo..=hi {
        if taken.next_if_eq(&&candidate).is_some() {
            continue;
        }
        let a = Ipv4Addr::from(candidate);
        if !skip(a) {
            return Some(a);
        }
    }
    None
}

/// The first address of lo..=hi not in `used`: the first gap among the
/// used addresses, O(used).
fn lowest_free6(lo: u128, hi: u128, used: &BTreeSet<u128>) -> Option<u128> {
    let mut candidate = lo;
    for &u in used.range(lo..=hi) {
        if u != candidate {
            break;
        }
        candidate = candidate.checked_add(1)?;
    }
    (candidate <= hi).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free6_finds_the_first_gap_without_walking_the_prefix() {
        let (lo, hi) = (1u128, u128::from(u64::MAX));
        assert_eq!(lowest_free6(lo, hi, &BTreeSet::new()), Some(1));
        let used: BTreeSet<u128> = [1, 2, 3, 5].into();
        assert_eq!(lowest_free6(lo, hi, &used), Some(4));
        assert_eq!(lowest_free6(lo, 3, &[1, 2, 3].into()), None);
        assert_eq!(lowest_free6(u128::MAX, u128::MAX, &[u128::MAX].into()), None);
    }

    #[test]
    fn lowest_free_skips_used_and_stops_at_broadcast() {
        let s = Subnet { base: Ipv4Addr::new(198, 18, 0, 0), prefix: 30 };
        let none = |_| false;
        let mut used = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 0, 1))]);
        assert_eq!(lowest_free(&s, &used, none), Some(Ipv4Addr::new(198, 18, 0, 2)));
        used.insert(u32::from(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(lowest_free(&s, &used, none), None);
        let used = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 0, 2))]);
        assert_eq!(lowest_free(&s, &used, none), Some(Ipv4Addr::new(198, 18, 0, 1)));
    }

    #[test]
    fn lowest_free_passes_over_skipped_addresses() {
        let s = Subnet { base: Ipv4Addr::new(198, 18, 0, 0), prefix: 29 };
        let used = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 0, 1))]);
        let squatted = |a: Ipv4Addr| a == Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(lowest_free(&s, &used, squatted), Some(Ipv4Addr::new(198, 18, 0, 3)));
        assert_eq!(lowest_free(&s, &used, |_| true), None);
    }
}
