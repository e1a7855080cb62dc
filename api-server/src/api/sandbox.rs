//! SandboxService.
use ctnet_proto::v1::{self as pb, sandbox_service_server::SandboxService};
use tonic::{Request, Response};

use super::{naming, touching, Api, Reply};
use crate::domain::ports::Family;
use crate::domain::prefixed;
use crate::domain::sandbox::{ConnectSpec, DisconnectSpec, SandboxSpec};
use crate::domain::{labels_match, Ref};
use crate::model::{ModeKind, Netns, Phase, SandboxRecord};
use crate::state::State;

pub fn view(st: &State, s: &SandboxRecord) -> pb::Sandbox {
    let (state, reason) = match &s.phase {
        Phase::Creating => (pb::SandboxState::Creating, String::new()),
        Phase::Ready => (pb::SandboxState::Ready, String::new()),
        Phase::Deleting => (
            pb::SandboxState::Failed,
            "a delete was interrupted; reconciliation finishes it (or delete it again)".to_string(),
        ),
        Phase::Failed(r) => (pb::SandboxState::Failed, r.clone()),
        // Never shown: lookups and lists skip it.
        Phase::Releasing => (pb::SandboxState::Failed, "deleted".to_string()),
    };
    let mode = match s.mode {
        ModeKind::Bridge => pb::SandboxMode::Bridge,
        ModeKind::Host => pb::SandboxMode::Host,
        ModeKind::None => pb::SandboxMode::None,
        ModeKind::Container => pb::SandboxMode::Container,
    };
    pb::Sandbox {
        id: s.id.to_string(),
        name: s.display_name(),
        tenant: s.tenant.clone(),
        labels: s.labels.clone().into_iter().collect(),
        mode: mode as i32,
        container_target: match &s.netns {
            Netns::Joined { target, .. } => target.to_string(),
            _ => String::new(),
        },
        netns_path: s.netns.path().display().to_string(),
        netns_owned: matches!(s.netns, Netns::Owned(_)),
        interfaces: s.endpoints.iter().map(|e| interface_view(st, e)).collect(),
        state: state as i32,
        state_reason: reason,
        created_at: s.created_at,
        ports: ports_view(s),
    }
}

fn ports_view(s: &SandboxRecord) -> Vec<pb::PortMapping> {
    let mut out: Vec<pb::PortMapping> = s
        .endpoints
        .iter()
        .flat_map(|e| {
            e.ports.iter().map(move |p| pb::PortMapping {
                protocol: p.proto.as_str().into(),
                host_ip: p.host_ip.unwrap_or(p.family.unspecified()).to_string(),
                host_port: p.host_port.into(),
                interface: e.ifname.clone(),
                container_ip: match p.family {
                    Family::V4 => e.address.map(|a| a.to_string()).unwrap_or_default(),
                    Family::V6 => e.address6.map(|a| a.to_string()).unwrap_or_default(),
                },
                container_port: p.container_port.into(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.protocol, a.host_port, &a.host_ip).cmp(&(&b.protocol, b.host_port, &b.host_ip))
    });
    out
}

fn interface_view(st: &State, e: &crate::model::Endpoint) -> pb::Interface {
    let net = st.networks.get(&e.network_id);
    let (v4, v6) = (net.and_then(|n| n.ipv4), net.and_then(|n| n.ipv6));
    pb::Interface {
        name: e.ifname.clone(),
        network_id: e.network_id.to_string(),
        network_name: net.map(|n| n.name.to_string()).unwrap_or_default(),
        mac_address: e.mac.to_string(),
        address: prefixed(e.address.zip(v4.map(|n| n.subnet.prefix))),
        gateway: v4.filter(|_| e.default_route).map(|n| n.gateway.to_string()).unwrap_or_default(),
        host_interface: e.host_ifname.to_string(),
        ipv6_address: prefixed(e.address6.zip(v6.map(|n| n.subnet.prefix))),
        ipv6_gateway: v6
            .filter(|_| e.default_route)
            .map(|n| n.gateway.to_string())
            .unwrap_or_default(),
    }
}

/// The sandbox a container-mode create joins, for a refusal's audit line.
fn container_target(r: &pb::CreateSandboxRequest) -> String {
    match &r.mode {
        Some(pb::create_sandbox_request::Mode::Container(c)) => c.target.clone(),
        _ => String::new(),
    }
}

impl Api {
    async fn render(&self, rec: &SandboxRecord) -> pb::Sandbox {
        view(&*self.ops.lock().await, rec)
    }
}

#[tonic::async_trait]
impl SandboxService for Api {
    async fn create_sandbox(&self, req: Request<pb::CreateSandboxRequest>) -> Reply<pb::Sandbox> {
        let asked =
            [req.get_ref().name.clone().unwrap_or_default(), container_target(req.get_ref())];
        naming(&asked, async move {
            let (caller, spec) = (self.caller(&req)?, SandboxSpec::parse(req.get_ref())?);
            let rec = self
                .ops
                .spawn(|ops| async move { ops.create_sandbox(&caller, spec).await })
                .await?;
            Ok(touching(self.render(&rec).await, [rec.id.to_string()]))
        })
        .await
    }

    async fn get_sandbox(&self, req: Request<pb::GetSandboxRequest>) -> Reply<pb::Sandbox> {
        let asked = [req.get_ref().sandbox.clone()];
        naming(&asked, async move {
            let (caller, r) = (self.caller(&req)?, Ref::parse("sandbox", &req.get_ref().sandbox)?);
            let st = self.ops.lock().await;
            Ok(Response::new(view(&st, st.sandbox(&caller, &r)?)))
        })
        .await
    }

    async fn list_sandboxes(
        &self,
        req: Request<pb::ListSandboxesRequest>,
    ) -> Reply<pb::ListSandboxesResponse> {
        let (caller, sel) = (self.caller(&req)?, &req.get_ref().label_selector);
        let st = self.ops.lock().await;
        let shown = |s: &&SandboxRecord| {
            s.phase.visible() && caller.sees(&s.tenant) && labels_match(&s.labels, sel)
        };
        let mut list: Vec<&SandboxRecord> = st.sandboxes.values().filter(shown).collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(Response::new(pb::ListSandboxesResponse {
            sandboxes: list.into_iter().map(|s| view(&st, s)).collect(),
        }))
    }

    async fn delete_sandbox(
        &self,
        req: Request<pb::DeleteSandboxRequest>,
    ) -> Reply<pb::DeleteSandboxResponse> {
        let asked = [req.get_ref().sandbox.clone()];
        naming(&asked, async move {
            let (caller, r) = (self.caller(&req)?, Ref::parse("sandbox", &req.get_ref().sandbox)?);
            let named = r.as_str().to_string();
            self.ops.spawn(|ops| async move { ops.delete_sandbox(&caller, &r).await }).await?;
            Ok(touching(pb::DeleteSandboxResponse {}, [named]))
        })
        .await
    }

    async fn connect(&self, req: Request<pb::ConnectRequest>) -> Reply<pb::Sandbox> {
        let asked = [req.get_ref().sandbox.clone(), req.get_ref().network.clone()];
        naming(&asked, async move {
            let (caller, spec) = (self.caller(&req)?, ConnectSpec::parse(req.get_ref())?);
            let network = spec.attach.network.as_str().to_string();
            let rec = self.ops.spawn(|ops| async move { ops.connect(&caller, spec).await }).await?;
            Ok(touching(self.render(&rec).await, [rec.id.to_string(), network]))
        })
        .await
    }

    async fn disconnect(&self, req: Request<pb::DisconnectRequest>) -> Reply<pb::Sandbox> {
        let asked = [req.get_ref().sandbox.clone(), req.get_ref().network.clone()];
        naming(&asked, async move {
            let (caller, spec) = (self.caller(&req)?, DisconnectSpec::parse(req.get_ref())?);
            let network = spec.network.as_str().to_string();
            let rec =
                self.ops.spawn(|ops| async move { ops.disconnect(&caller, spec).await }).await?;
            Ok(touching(self.render(&rec).await, [rec.id.to_string(), network]))
        })
        .await
    }

    async fn check(&self, req: Request<pb::CheckRequest>) -> Reply<pb::CheckResponse> {
        let asked = [req.get_ref().sandbox.clone()];
        naming(&asked, async move {
            let (caller, r) = (self.caller(&req)?, Ref::parse("sandbox", &req.get_ref().sandbox)?);
            Ok(Response::new(pb::CheckResponse { differences: self.ops.check(&caller, &r).await? }))
        })
        .await
    }
}
