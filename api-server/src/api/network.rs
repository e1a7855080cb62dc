//! NetworkService.
use ctnet_proto::v1::{self as pb, network_service_server::NetworkService};
use tonic::{Request, Response};

use super::{Api, Reply};
use crate::domain::network::NetworkSpec;
use crate::domain::{labels_match, Ref};
use crate::model::NetworkRecord;
use crate::state::State;

/// Renders a network with the sandboxes attached to it, ordered by address.
pub fn view(st: &State, n: &NetworkRecord) -> pb::Network {
    let mut attached: Vec<_> = st
        .attached_to(&n.id)
        .into_iter()
        .flat_map(|s| s.endpoints.iter().filter(|e| e.network_id == n.id).map(move |e| (s, e)))
        .collect();
    attached.sort_by_key(|(_, e)| u32::from(e.address));
    pb::Network {
        id: n.id.to_string(),
        name: n.name.to_string(),
        driver: "bridge".into(),
        subnet: n.subnet.to_string(),
        gateway: n.gateway.to_string(),
        bridge_name: n.bridge.to_string(),
        mtu: n.mtu,
        internal: n.internal,
        icc: n.icc,
        labels: n.labels.clone().into_iter().collect(),
        sandboxes: attached
            .into_iter()
            .map(|(s, e)| pb::AttachedSandbox {
                sandbox_id: s.id.to_string(),
                sandbox_name: s.display_name(),
                interface: e.ifname.clone(),
                address: format!("{}/{}", e.address, n.subnet.prefix),
                mac_address: e.mac.to_string(),
            })
            .collect(),
        created_at: n.created_at,
        default: n.is_default,
    }
}

#[tonic::async_trait]
impl NetworkService for Api {
    async fn create_network(&self, req: Request<pb::CreateNetworkRequest>) -> Reply<pb::Network> {
        let spec = NetworkSpec::parse(req.get_ref(), &self.ops.settings().link_prefix)?;
        let rec = self.ops.spawn(|ops| async move { ops.create_network(spec).await }).await?;
        let st = self.ops.lock().await;
        Ok(Response::new(view(&st, &rec)))
    }

    async fn get_network(&self, req: Request<pb::GetNetworkRequest>) -> Reply<pb::Network> {
        let r = Ref::parse("network", &req.get_ref().network)?;
        let st = self.ops.lock().await;
        Ok(Response::new(view(&st, st.network(&r)?)))
    }

    async fn list_networks(
        &self,
        req: Request<pb::ListNetworksRequest>,
    ) -> Reply<pb::ListNetworksResponse> {
        let sel = &req.get_ref().label_selector;
        let st = self.ops.lock().await;
        let mut networks: Vec<pb::Network> = st
            .networks
            .values()
            .filter(|n| labels_match(&n.labels, sel))
            .map(|n| view(&st, n))
            .collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn delete_network(
        &self,
        req: Request<pb::DeleteNetworkRequest>,
    ) -> Reply<pb::DeleteNetworkResponse> {
        let r = Ref::parse("network", &req.get_ref().network)?;
        self.ops.spawn(|ops| async move { ops.delete_network(&r).await }).await?;
        Ok(Response::new(pb::DeleteNetworkResponse {}))
    }
}
