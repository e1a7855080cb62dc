//! The executor client: everything api-server asks of the kernel goes
//! through this trait, so the decisions can be tested without netexec and
//! the transport can change without touching them.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ctnet_proto::exec::{self as pb, executor_client::ExecutorClient, netns_ref::Kind};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::domain::Mac;
use crate::ports::HostListener;

/// Which namespace an endpoint goes into.
#[derive(Debug, Clone)]
pub enum NetnsTarget {
    Owned(String),
    External(PathBuf),
}

#[derive(Debug, Clone)]
pub struct EndpointArgs {
    pub netns: NetnsTarget,
    pub host_ifname: String,
    pub ifname: String,
    pub bridge: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Mac,
    pub mtu: u32,
    pub owner: String,
    pub hairpin: bool,
    pub announce: bool,
}

#[derive(Debug, Clone)]
pub struct BridgeArgs {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    pub owner: String,
}

/// Who answered a ping.
#[derive(Debug, Clone)]
pub struct PingInfo {
    /// Path of the host namespace pin; empty when netexec pins nothing.
    pub host_netns: PathBuf,
    /// Random per netexec process: a change means it restarted.
    pub instance: u64,
}

#[tonic::async_trait]
pub trait Executor: Send + Sync + 'static {
    async fn ping(&self) -> Result<PingInfo, Status>;
    async fn ensure_bridge(&self, b: &BridgeArgs) -> Result<(), Status>;
    async fn delete_bridge(&self, name: &str) -> Result<(), Status>;
    /// Returns the pin path.
    async fn create_netns(&self, sandbox_id: &str) -> Result<PathBuf, Status>;
    async fn delete_netns(&self, sandbox_id: &str) -> Result<(), Status>;
    async fn setup_loopback(&self, netns: &NetnsTarget) -> Result<(), Status>;
    async fn attach(&self, e: &EndpointArgs) -> Result<(), Status>;
    /// Deletes the endpoint, first waiting up to `grace_ms` for it to vanish
    /// with its just-unpinned namespace.
    async fn detach(&self, host_ifname: &str, grace_ms: u32) -> Result<(), Status>;
    /// Adds and removes firewall elements in one transaction.
    async fn update_firewall(&self, delta: pb::FirewallDelta) -> Result<(), Status>;
    /// Replaces the whole firewall table with this state.
    async fn sync_firewall(&self, state: pb::FirewallState) -> Result<(), Status>;
    /// Sockets listening in the host namespace.
    async fn list_listeners(&self) -> Result<Vec<HostListener>, Status>;
    /// Tagged links and pins that exist.
    async fn inventory(&self) -> Result<pb::InventoryResponse, Status>;
    /// What a sandbox namespace holds.
    async fn inspect_netns(&self, netns: &NetnsTarget) -> Result<pb::InspectNetnsResponse, Status>;
}

/// The executor over gRPC on netexec's Unix socket. The channel connects
/// lazily and reconnects by itself, so api-server starts and keeps serving
/// reads while netexec is down.
#[derive(Clone)]
pub struct GrpcExecutor {
    client: ExecutorClient<Channel>,
}

impl GrpcExecutor {
    pub fn new(socket: &Path) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(format!("unix://{}", socket.display()))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(30))
            .connect_lazy();
        Ok(Self { client: ExecutorClient::new(channel) })
    }
}

/// An executor failure keeps its code, with the executor named in the message;
/// an unreachable executor is Unavailable, as gRPC says.
fn exec_status(s: Status) -> Status {
    Status::new(s.code(), format!("netexec: {}", s.message()))
}

fn netns_ref(t: &NetnsTarget) -> pb::NetnsRef {
    let kind = match t {
        NetnsTarget::Owned(id) => Kind::SandboxId(id.clone()),
        NetnsTarget::External(p) => Kind::ExternalPath(p.display().to_string()),
    };
    pb::NetnsRef { kind: Some(kind) }
}

#[tonic::async_trait]
impl Executor for GrpcExecutor {
    async fn ping(&self) -> Result<PingInfo, Status> {
        let r = self.client.clone().ping(pb::PingRequest {}).await.map_err(exec_status)?.into_inner();
        Ok(PingInfo { host_netns: PathBuf::from(r.host_netns_path), instance: r.instance })
    }

    async fn inventory(&self) -> Result<pb::InventoryResponse, Status> {
        Ok(self.client.clone().inventory(pb::InventoryRequest {}).await.map_err(exec_status)?.into_inner())
    }

    async fn inspect_netns(&self, netns: &NetnsTarget) -> Result<pb::InspectNetnsResponse, Status> {
        let req = pb::InspectNetnsRequest { netns: Some(netns_ref(netns)) };
        Ok(self.client.clone().inspect_netns(req).await.map_err(exec_status)?.into_inner())
    }

    async fn ensure_bridge(&self, b: &BridgeArgs) -> Result<(), Status> {
        let req = pb::EnsureBridgeRequest {
            name: b.name.clone(),
            address: format!("{}/{}", b.address, b.prefix),
            mtu: b.mtu,
            owner: b.owner.clone(),
        };
        self.client.clone().ensure_bridge(req).await.map_err(exec_status)?;
        Ok(())
    }

    async fn delete_bridge(&self, name: &str) -> Result<(), Status> {
        self.client.clone().delete_bridge(pb::DeleteBridgeRequest { name: name.into() }).await.map_err(exec_status)?;
        Ok(())
    }

    async fn create_netns(&self, sandbox_id: &str) -> Result<PathBuf, Status> {
        let r = self
            .client
            .clone()
            .create_netns(pb::CreateNetnsRequest { sandbox_id: sandbox_id.into() })
            .await
            .map_err(exec_status)?;
        Ok(PathBuf::from(r.into_inner().path))
    }

    async fn delete_netns(&self, sandbox_id: &str) -> Result<(), Status> {
        self.client.clone().delete_netns(pb::DeleteNetnsRequest { sandbox_id: sandbox_id.into() }).await.map_err(exec_status)?;
        Ok(())
    }

    async fn setup_loopback(&self, netns: &NetnsTarget) -> Result<(), Status> {
        let req = pb::SetupLoopbackRequest { netns: Some(netns_ref(netns)) };
        self.client.clone().setup_loopback(req).await.map_err(exec_status)?;
        Ok(())
    }

    async fn attach(&self, e: &EndpointArgs) -> Result<(), Status> {
        let req = pb::AttachEndpointRequest {
            netns: Some(netns_ref(&e.netns)),
            host_ifname: e.host_ifname.clone(),
            ifname: e.ifname.clone(),
            bridge: e.bridge.clone(),
            address: format!("{}/{}", e.address, e.prefix),
            gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
            mac: e.mac.0.to_vec(),
            mtu: e.mtu,
            owner: e.owner.clone(),
            hairpin: e.hairpin,
            announce: e.announce,
        };
        self.client.clone().attach_endpoint(req).await.map_err(exec_status)?;
        Ok(())
    }

    async fn detach(&self, host_ifname: &str, grace_ms: u32) -> Result<(), Status> {
        let req = pb::DetachEndpointRequest { host_ifname: host_ifname.into(), grace_ms };
        self.client.clone().detach_endpoint(req).await.map_err(exec_status)?;
        Ok(())
    }

    async fn update_firewall(&self, delta: pb::FirewallDelta) -> Result<(), Status> {
        self.client.clone().update_firewall(delta).await.map_err(exec_status)?;
        Ok(())
    }

    async fn sync_firewall(&self, state: pb::FirewallState) -> Result<(), Status> {
        self.client.clone().sync_firewall(state).await.map_err(exec_status)?;
        Ok(())
    }

    async fn list_listeners(&self) -> Result<Vec<HostListener>, Status> {
        let r = self.client.clone().list_listeners(pb::ListListenersRequest {}).await.map_err(exec_status)?;
        Ok(r.into_inner().listeners.iter().filter_map(HostListener::from_wire).collect())
    }
}
