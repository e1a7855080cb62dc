//! Network operations: create, delete, and the default network.
use tonic::Status;

use ctnet_proto::exec as pb;

use super::firewall;
use super::Ops;
use crate::domain::network::NetworkSpec;
use crate::domain::{Name, Subnet};
use crate::executor::BridgeArgs;
use crate::model::{new_id, now, NetworkRecord, Phase};
use crate::state::State;

pub const DEFAULT_NETWORK_NAME: &str = crate::domain::sandbox::DEFAULT_NETWORK;

fn bridge_args(n: &NetworkRecord) -> BridgeArgs {
    BridgeArgs { name: n.bridge.clone(), address: n.gateway, prefix: n.subnet.prefix, mtu: n.mtu, owner: n.owner_tag() }
}

/// Refuses a name, bridge or subnet that another network already has.
fn check_conflicts(st: &State, name: &Name, bridge: &str, subnet: &Subnet) -> Result<(), Status> {
    for n in st.networks.values() {
        if &n.name == name {
            return Err(Status::already_exists(format!("name: network {name:?} already exists ({})", n.id)));
        }
        if n.bridge == bridge {
            return Err(Status::already_exists(format!("bridge_name: bridge {bridge} is used by network {}", n.name)));
        }
        if n.subnet.overlaps(subnet) {
            return Err(Status::failed_precondition(format!(
                "subnet: {subnet} overlaps network {} ({}); choose a range that does not",
                n.name, n.subnet
            )));
        }
    }
    Ok(())
}

impl Ops {
    pub async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkRecord, Status> {
        let mut rec = {
            let mut st = self.lock().await;
            let id = new_id();
            let bridge = spec.bridge_name.clone().unwrap_or_else(|| format!("{}-{}", self.settings.link_prefix, &id[..10]));
            check_conflicts(&st, &spec.name, &bridge, &spec.subnet)?;
            let rec = NetworkRecord {
                id,
                name: spec.name,
                subnet: spec.subnet,
                gateway: spec.gateway,
                bridge,
                mtu: spec.mtu,
                internal: spec.internal,
                icc: spec.icc,
                labels: spec.labels,
                created_at: now(),
                is_default: false,
                phase: Phase::Creating,
            };
            self.put_network(&mut st, rec.clone()).await?;
            st.claim(&rec.id, "network")?;
            rec
        };
        let mut made = self.exec.ensure_bridge(&bridge_args(&rec)).await;
        if made.is_ok() {
            let delta = pb::FirewallDelta { add_networks: vec![firewall::network(&rec)], ..Default::default() };
            made = self.exec.update_firewall(delta).await;
        }
        let mut st = self.lock().await;
        st.release(&rec.id);
        match made {
            Ok(()) => {
                rec.phase = Phase::Ready;
                self.put_network(&mut st, rec.clone()).await?;
                tracing::info!(network = %rec.id, name = %rec.name, bridge = %rec.bridge, "network created");
                Ok(rec)
            }
            Err(e) => {
                drop(st);
                let _ = self.remove_network_elements(&rec).await;
                let _ = self.exec.delete_bridge(&rec.bridge).await;
                self.drop_network(&mut *self.lock().await, &rec.id).await?;
                Err(e)
            }
        }
    }

    pub async fn delete_network(&self, reference: &str) -> Result<(), Status> {
        let rec = {
            let mut st = self.lock().await;
            let mut rec = st.network(reference)?.clone();
            if rec.is_default {
                return Err(Status::failed_precondition(format!("network {} is the default network and cannot be deleted", rec.name)));
            }
            let attached: Vec<String> = st.attached_to(&rec.id).iter().map(|s| describe(s)).collect();
            if !attached.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "network {} has sandboxes attached: {}; delete or disconnect them first",
                    rec.name,
                    attached.join(", ")
                )));
            }
            st.claim(&rec.id, "network")?;
            rec.phase = Phase::Deleting;
            if let Err(e) = self.put_network(&mut st, rec.clone()).await {
                st.release(&rec.id);
                return Err(e);
            }
            rec
        };
        let mut gone = self.remove_network_elements(&rec).await;
        if gone.is_ok() {
            gone = self.exec.delete_bridge(&rec.bridge).await;
        }
        let mut st = self.lock().await;
        st.release(&rec.id);
        gone?;
        self.drop_network(&mut st, &rec.id).await?;
        tracing::info!(network = %rec.id, name = %rec.name, "network deleted");
        Ok(())
    }

    /// At start: the default network "bridge" exists in the store (its bridge
    /// is made by reconciliation once netexec answers).
    pub async fn ensure_default_network(&self) -> Result<(), Status> {
        let mut st = self.lock().await;
        if let Some(n) = st.networks.values().find(|n| n.is_default) {
            if n.subnet != self.settings.default_subnet {
                tracing::warn!(stored = %n.subnet, flag = %self.settings.default_subnet,
                    "the default network keeps its stored subnet; delete the state to change it");
            }
            return Ok(());
        }
        let subnet = self.settings.default_subnet;
        let name = Name::parse("name", DEFAULT_NETWORK_NAME)?;
        check_conflicts(&st, &name, &self.settings.default_bridge, &subnet)?;
        let rec = NetworkRecord {
            id: new_id(),
            name,
            subnet,
            gateway: std::net::Ipv4Addr::from(subnet.hosts().0),
            bridge: self.settings.default_bridge.clone(),
            mtu: crate::domain::network::DEFAULT_MTU,
            internal: false,
            icc: true,
            labels: Default::default(),
            created_at: now(),
            is_default: true,
            phase: Phase::Creating,
        };
        self.put_network(&mut st, rec).await
    }

    /// Makes sure the network's bridge exists; marks a Creating network Ready.
    pub(super) async fn restore_network(&self, mut rec: NetworkRecord) -> Result<(), Status> {
        self.exec.ensure_bridge(&bridge_args(&rec)).await?;
        if rec.phase == Phase::Creating {
            rec.phase = Phase::Ready;
            self.put_network(&mut *self.lock().await, rec).await?;
        }
        Ok(())
    }

    async fn remove_network_elements(&self, rec: &NetworkRecord) -> Result<(), Status> {
        let delta = pb::FirewallDelta { remove_networks: vec![firewall::network(rec)], ..Default::default() };
        self.exec.update_firewall(delta).await
    }

    pub(super) async fn finish_network_delete(&self, rec: NetworkRecord) -> Result<(), Status> {
        self.remove_network_elements(&rec).await?;
        self.exec.delete_bridge(&rec.bridge).await?;
        self.drop_network(&mut *self.lock().await, &rec.id).await
    }
}

/// "name (id)" or just the id, for messages.
pub fn describe(s: &crate::model::SandboxRecord) -> String {
    match &s.name {
        Some(n) => format!("{n} ({})", s.id),
        None => s.id.clone(),
    }
}
