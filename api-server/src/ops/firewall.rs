//! What the firewall should hold, derived from the records: one network
//! element group per network, one map element per published port.
use std::net::IpAddr;

use super::Ops;
use crate::domain::ports::Family;
use crate::error::Result;
use crate::executor::{FirewallDelta, FirewallGuard, FirewallNetwork, FirewallPort, FirewallTable};
use crate::model::{Endpoint, NetworkRecord, Owner, Phase, SandboxRecord};
use crate::state::State;

pub fn network(n: &NetworkRecord) -> FirewallNetwork {
    FirewallNetwork {
        bridge: n.bridge.clone(),
        subnet: n.ipv4.map(|a| a.subnet),
        subnet6: n.ipv6.map(|a| a.subnet),
        internal: n.internal,
        icc: n.icc,
        mode4: n.mode4,
        mode6: n.mode6,
    }
}

pub fn ports_of(rec: &SandboxRecord, ep: &Endpoint) -> Vec<FirewallPort> {
    let port = |p: &crate::model::PublishedPort| {
        // Each family is granted only on an interface that has it.
        let target_ip = match p.family {
            Family::V4 => IpAddr::V4(ep.address?),
            Family::V6 => IpAddr::V6(ep.address6?),
        };
        Some(FirewallPort {
            proto: p.proto,
            host_ip: p.host_ip,
            host_port: p.host_port,
            target_ip,
            target_port: p.container_port,
            // The table is derived state, rebuilt whole from the records: its
            // element comments name the sandbox only.
            owner: Owner::Sandbox(rec.id.clone(), None),
            routed: p.routed,
        })
    };
    ep.ports.iter().filter_map(port).collect()
}

impl Endpoint {
    /// The anti-spoofing guard of a guarded endpoint.
    pub fn guard(&self, rec: &SandboxRecord) -> Option<FirewallGuard> {
        self.guarded.then(|| FirewallGuard {
            link: self.host_ifname.clone(),
            mac: self.mac,
            ip: self.address,
            ip6: self.address6,
            owner: Owner::Sandbox(rec.id.clone(), None),
        })
    }
}

/// A delta adding (or removing) these guards.
pub fn guards(g: impl IntoIterator<Item = FirewallGuard>, add: bool) -> FirewallDelta {
    let g: Vec<FirewallGuard> = g.into_iter().collect();
    if add {
        FirewallDelta { add_guards: g, ..Default::default() }
    } else {
        FirewallDelta { remove_guards: g, ..Default::default() }
    }
}

pub fn all_ports(rec: &SandboxRecord) -> Vec<FirewallPort> {
    rec.endpoints.iter().flat_map(|ep| ports_of(rec, ep)).collect()
}

/// The whole desired table: everything not being deleted; a failed
/// sandbox keeps its ports reserved but not installed.
pub fn desired(st: &State) -> FirewallTable {
    let live = |s: &&SandboxRecord| matches!(s.phase, Phase::Creating | Phase::Ready);
    FirewallTable {
        networks: st
            .networks
            .values()
            .filter(|n| n.phase != Phase::Deleting)
            .map(network)
            .collect(),
        ports: st.sandboxes.values().filter(live).flat_map(all_ports).collect(),
        // Every phase: a veth that may still exist stays guarded.
        guards: st
            .sandboxes
            .values()
            .flat_map(|s| s.endpoints.iter().filter_map(move |e| e.guard(s)))
            .collect(),
    }
}

impl Ops {
    /// A delta, alongside other deltas, never during a full rebuild.
    pub(super) async fn apply_delta(&self, delta: FirewallDelta) -> Result<()> {
        if delta == FirewallDelta::default() {
            return Ok(());
        }
        let _shared = self.firewall.read().await;
        self.exec.update_firewall(&delta).await
    }

    pub(super) async fn add_ports(&self, ports: Vec<FirewallPort>) -> Result<()> {
        self.apply_delta(FirewallDelta { add_ports: ports, ..Default::default() }).await
    }

    pub(super) async fn remove_ports(&self, ports: Vec<FirewallPort>) -> Result<()> {
        self.apply_delta(FirewallDelta { remove_ports: ports, ..Default::default() }).await
    }

    pub(super) async fn add_network_elements(&self, rec: &NetworkRecord) -> Result<()> {
        self.apply_delta(FirewallDelta { add_networks: vec![network(rec)], ..Default::default() })
            .await
    }

    pub(super) async fn remove_network_elements(&self, rec: &NetworkRecord) -> Result<()> {
        self.apply_delta(FirewallDelta {
            remove_networks: vec![network(rec)],
            ..Default::default()
        })
        .await
    }

    /// The whole table, computed and applied with no delta in between.
    pub(super) async fn sync_firewall(&self) -> Result<()> {
        let _alone = self.firewall.write().await;
        let table = desired(&*self.lock().await);
        self.exec.sync_firewall(&table).await
    }
}
