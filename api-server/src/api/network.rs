//! NetworkService.
use ctnet_proto::v1::{self as pb, network_service_server::NetworkService};
use tonic::{Request, Response};

use super::{naming, touching, Api, Reply};
use crate::domain::network::NetworkSpec;
use crate::domain::{labels_match, prefixed, GatewayMode, Ref};
use crate::model::NetworkRecord;
use crate::policy::Caller;
use crate::state::{shared_with, State};

/// Renders a network with the sandboxes attached to it, ordered by address.
/// Renders a network for `caller`: another tenant's sandboxes on a shared
/// network are not shown.
pub fn view(st: &State, caller: &Caller, n: &NetworkRecord) -> pb::Network {
    let mut attached: Vec<_> = st
        .attached_to(&n.id)
        .into_iter()
        .filter(|s| caller.sees(&s.tenant))
        .flat_map(|s| s.endpoints.iter().filter(|e| e.network_id == n.id).map(move |e| (s, e)))
        .collect();
    attached.sort_by_key(|(_, e)| (e.address, e.address6));
    pb::Network {
        id: n.id.to_string(),
        name: n.name.to_string(),
        tenant: n.tenant.clone(),
        driver: "bridge".into(),
        subnet: n.ipv4.map(|a| a.subnet.to_string()).unwrap_or_default(),
        // The bridge has no address of an isolated family.
        gateway: n
            .ipv4
            .filter(|_| n.mode4 != GatewayMode::Isolated)
            .map(|a| a.gateway.to_string())
            .unwrap_or_default(),
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
                address: prefixed(e.address.zip(n.ipv4.map(|a| a.subnet.prefix))),
                mac_address: e.mac.to_string(),
                ipv6_address: prefixed(e.address6.zip(n.ipv6.map(|a| a.subnet.prefix))),
            })
            .collect(),
        created_at: n.created_at,
        default: n.is_default,
        ipv6_subnet: n.ipv6.map(|a| a.subnet.to_string()).unwrap_or_default(),
        ipv6_gateway: n
            .ipv6
            .filter(|_| n.mode6 != GatewayMode::Isolated)
            .map(|a| a.gateway.to_string())
            .unwrap_or_default(),
        gateway_mode_ipv4: n.ipv4.map(|_| n.mode4.as_str().into()).unwrap_or_default(),
        gateway_mode_ipv6: n.ipv6.map(|_| n.mode6.as_str().into()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl NetworkService for Api {
    async fn create_network(&self, req: Request<pb::CreateNetworkRequest>) -> Reply<pb::Network> {
        let asked = [req.get_ref().name.clone()];
        naming(&asked, async move {
            let caller = self.caller(&req)?;
            let spec = NetworkSpec::parse(req.get_ref(), &self.ops.settings().link_prefix)?;
            let c = caller.clone();
            let rec =
                self.ops.spawn(|ops| async move { ops.create_network(&c, spec).await }).await?;
            let st = self.ops.lock().await;
            Ok(touching(view(&st, &caller, &rec), [rec.id.to_string()]))
        })
        .await
    }

    async fn get_network(&self, req: Request<pb::GetNetworkRequest>) -> Reply<pb::Network> {
        let asked = [req.get_ref().network.clone()];
        naming(&asked, async move {
            let (caller, r) = (self.caller(&req)?, Ref::parse("network", &req.get_ref().network)?);
            let st = self.ops.lock().await;
            Ok(Response::new(view(&st, &caller, st.network(&caller, &r)?)))
        })
        .await
    }

    async fn list_networks(
        &self,
        req: Request<pb::ListNetworksRequest>,
    ) -> Reply<pb::ListNetworksResponse> {
        let (caller, sel) = (self.caller(&req)?, &req.get_ref().label_selector);
        let st = self.ops.lock().await;
        let usable = |n: &&NetworkRecord| caller.sees(&n.tenant) || shared_with(&caller, n);
        let mut networks: Vec<pb::Network> = st
            .networks
            .values()
            .filter(usable)
            .filter(|n| labels_match(&n.labels, sel))
            .map(|n| view(&st, &caller, n))
            .collect();
        networks.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn delete_network(
        &self,
        req: Request<pb::DeleteNetworkRequest>,
    ) -> Reply<pb::DeleteNetworkResponse> {
        let asked = [req.get_ref().network.clone()];
        naming(&asked, async move {
            let (caller, r) = (self.caller(&req)?, Ref::parse("network", &req.get_ref().network)?);
            let named = r.as_str().to_string();
            self.ops.spawn(|ops| async move { ops.delete_network(&caller, &r).await }).await?;
            Ok(touching(pb::DeleteNetworkResponse {}, [named]))
        })
        .await
    }
}
