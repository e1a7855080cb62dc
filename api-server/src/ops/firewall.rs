//! What the firewall should hold, derived from the records: one network
//! element group per network, one map element per published port.
use ctnet_proto::exec as pb;
use tonic::Status;

use super::Ops;
use crate::model::{Endpoint, NetworkRecord, Phase, SandboxRecord};
use crate::state::State;

pub fn network(n: &NetworkRecord) -> pb::FirewallNetwork {
    pb::FirewallNetwork { bridge: n.bridge.clone(), subnet: n.subnet.to_string(), internal: n.internal, icc: n.icc }
}

pub fn ports_of(rec: &SandboxRecord, ep: &Endpoint) -> Vec<pb::FirewallPort> {
    ep.ports
        .iter()
        .map(|p| pb::FirewallPort {
            protocol: p.proto.as_str().into(),
            host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
            host_port: p.host_port.into(),
            target_ip: ep.address.to_string(),
            target_port: p.container_port.into(),
            owner: rec.owner_tag(),
        })
        .collect()
}

pub fn all_ports(rec: &SandboxRecord) -> Vec<pb::FirewallPort> {
    rec.endpoints.iter().flat_map(|ep| ports_of(rec, ep)).collect()
}

/// The whole desired table: everything not being deleted; a failed
/// sandbox keeps its ports reserved but not installed.
pub fn desired(st: &State) -> pb::FirewallState {
    let live = |s: &&SandboxRecord| matches!(s.phase, Phase::Creating | Phase::Ready);
    pb::FirewallState {
        networks: st.networks.values().filter(|n| n.phase != Phase::Deleting).map(network).collect(),
        ports: st.sandboxes.values().filter(live).flat_map(all_ports).collect(),
    }
}

impl Ops {
    pub(super) async fn add_ports(&self, ports: Vec<pb::FirewallPort>) -> Result<(), Status> {
        if ports.is_empty() {
            return Ok(());
        }
        self.exec.update_firewall(pb::FirewallDelta { add_ports: ports, ..Default::default() }).await
    }

    pub(super) async fn remove_ports(&self, ports: Vec<pb::FirewallPort>) -> Result<(), Status> {
        if ports.is_empty() {
            return Ok(());
        }
        self.exec.update_firewall(pb::FirewallDelta { remove_ports: ports, ..Default::default() }).await
    }

    pub(super) async fn sync_firewall(&self) -> Result<(), Status> {
        let state = desired(&*self.lock().await);
        self.exec.sync_firewall(state).await
    }
}
