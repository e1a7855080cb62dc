//! The in-memory mirror of the store, with lookups and IPAM. Every mutation
//! happens under one lock together with its store commit, so the store is the
//! single source of truth and two requests can never take one address.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use tonic::Status;

use crate::domain::Subnet;
use crate::model::{NetworkRecord, SandboxRecord};

/// A Linux bridge holds at most 1024 ports (BR_MAX_PORTS, port 0 reserved);
/// the 1024th attach would fail with the kernel's cryptic "exchange full".
pub const BRIDGE_MAX_PORTS: usize = 1023;

pub struct State {
    pub networks: BTreeMap<String, NetworkRecord>,
    pub sandboxes: BTreeMap<String, SandboxRecord>,
    /// Sandboxes and networks with an operation in flight.
    pub busy: HashSet<String>,
    /// Ports allowed per bridge: BRIDGE_MAX_PORTS unless lowered (tests).
    pub bridge_max_ports: usize,
}

impl State {
    pub fn new(bridge_max_ports: usize) -> Self {
        Self { networks: BTreeMap::new(), sandboxes: BTreeMap::new(), busy: HashSet::new(), bridge_max_ports: bridge_max_ports.min(BRIDGE_MAX_PORTS) }
    }

    pub fn network(&self, r: &str) -> Result<&NetworkRecord, Status> {
        self.networks
            .get(r)
            .or_else(|| self.networks.values().find(|n| n.name.as_str() == r))
            .ok_or_else(|| Status::not_found(format!("network {r:?} does not exist")))
    }

    pub fn sandbox(&self, r: &str) -> Result<&SandboxRecord, Status> {
        self.sandboxes
            .get(r)
            .or_else(|| self.sandboxes.values().find(|s| s.name.as_ref().is_some_and(|n| n.as_str() == r)))
            .ok_or_else(|| Status::not_found(format!("sandbox {r:?} does not exist")))
    }

    /// Marks a resource busy, or refuses when another operation holds it.
    pub fn claim(&mut self, id: &str, what: &str) -> Result<(), Status> {
        if !self.busy.insert(id.to_string()) {
            return Err(Status::failed_precondition(format!("{what} {id} has another operation in progress; retry when it ends")));
        }
        Ok(())
    }

    pub fn release(&mut self, id: &str) {
        self.busy.remove(id);
    }

    /// Sandboxes (id, name) with an interface on the network, in any phase.
    pub fn attached_to(&self, net_id: &str) -> Vec<&SandboxRecord> {
        self.sandboxes.values().filter(|s| s.endpoints.iter().any(|e| e.network_id == net_id)).collect()
    }

    /// Sandboxes that joined `id`'s namespace through container mode.
    pub fn joiners_of(&self, id: &str) -> Vec<&SandboxRecord> {
        self.sandboxes
            .values()
            .filter(|s| matches!(&s.netns, crate::model::Netns::Joined { target, .. } if target == id))
            .collect()
    }

    fn used_addresses(&self, net: &NetworkRecord) -> BTreeSet<u32> {
        let held = self.sandboxes.values().flat_map(|s| &s.endpoints).filter(|e| e.network_id == net.id);
        let mut used: BTreeSet<u32> = held.map(|e| u32::from(e.address)).collect();
        used.insert(u32::from(net.gateway));
        used
    }

    /// IPAM: a static address is honoured or refused; otherwise the lowest
    /// free host address. The network, broadcast and gateway addresses are
    /// never handed out; an address is free again once no interface holds it.
    pub fn allocate(&self, net: &NetworkRecord, want: Option<Ipv4Addr>, field: &str) -> Result<Ipv4Addr, Status> {
        let used = self.used_addresses(net);
        // `used` holds the gateway besides one address per interface.
        if used.len() > self.bridge_max_ports {
            return Err(Status::resource_exhausted(format!(
                "network {} has {} interfaces, the most its Linux bridge holds; create another network",
                net.name, self.bridge_max_ports
            )));
        }
        match want {
            Some(a) => check_static(&net.subnet, net, a, &used, field),
            None => lowest_free(&net.subnet, &used).ok_or_else(|| {
                Status::resource_exhausted(format!("network {}: no free address left in {}", net.name, net.subnet))
            }),
        }
    }
}

fn check_static(subnet: &Subnet, net: &NetworkRecord, a: Ipv4Addr, used: &BTreeSet<u32>, field: &str) -> Result<Ipv4Addr, Status> {
    if !subnet.is_host(a) {
        return Err(crate::domain::invalid(field, format!("{a} is not a usable host address of {subnet} (network {})", net.name)));
    }
    if a == net.gateway {
        return Err(Status::already_exists(format!("{field}: {a} is the gateway of network {}", net.name)));
    }
    if used.contains(&u32::from(a)) {
        return Err(Status::already_exists(format!("{field}: {a} is already in use on network {}", net.name)));
    }
    Ok(a)
}

fn lowest_free(subnet: &Subnet, used: &BTreeSet<u32>) -> Option<Ipv4Addr> {
    let (lo, hi) = subnet.hosts();
    let mut candidate = lo;
    for &u in used.range(lo..=hi) {
        if u != candidate {
            break;
        }
        candidate += 1;
    }
    (candidate <= hi).then(|| Ipv4Addr::from(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_skips_used_and_stops_at_broadcast() {
        let s = Subnet { base: Ipv4Addr::new(198, 18, 0, 0), prefix: 30 };
        let mut used = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 0, 1))]);
        assert_eq!(lowest_free(&s, &used), Some(Ipv4Addr::new(198, 18, 0, 2)));
        used.insert(u32::from(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(lowest_free(&s, &used), None);
        let used = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 0, 2))]);
        assert_eq!(lowest_free(&s, &used), Some(Ipv4Addr::new(198, 18, 0, 1)));
    }
}
