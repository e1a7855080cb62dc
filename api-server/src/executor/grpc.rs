//! The executor over gRPC on netexec's Unix socket. The channel connects
//! lazily and reconnects by itself, so api-server starts and keeps serving
//! reads while netexec is down. This is the only module that knows the
//! wire API `ctnet.exec.v1` (imported as `wire`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ctnet_proto::exec::{self as wire, executor_client::ExecutorClient, netns_ref::Kind};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::*;
use crate::domain::ports::Proto;
use crate::domain::GatewayMode;
use crate::error::{Error, Refusal};

#[derive(Clone)]
pub struct GrpcExecutor {
    client: ExecutorClient<Timed>,
}

/// The channel to netexec, each call's duration recorded by operation.
#[derive(Clone)]
pub struct Timed(Channel);

type Answer = tonic::codegen::http::Response<tonic::body::Body>;

impl tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for Timed {
    type Response = Answer;
    type Error = tonic::transport::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<Answer, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        let operation = ctnet_proto::request_id::method(req.uri().path()).to_string();
        let call = tower::Service::call(&mut self.0, req);
        Box::pin(async move {
            let start = std::time::Instant::now();
            let out = call.await;
            let labels = crate::metrics::Operation { operation };
            let took = start.elapsed().as_secs_f64();
            crate::metrics::get().executor.get_or_create(&labels).observe(took);
            out
        })
    }
}

impl GrpcExecutor {
    pub fn new(socket: &Path) -> Result<Self> {
        let channel = Endpoint::from_shared(format!("unix://{}", socket.display()))
            .map_err(|e| Error::Internal(format!("netexec socket address: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        Ok(Self { client: ExecutorClient::new(Timed(channel)) })
    }

    fn client(&self) -> ExecutorClient<Timed> {
        self.client.clone()
    }
}

/// netexec's answer as api-server's error: transport failures and deadlines
/// are "unavailable" (the work may or may not have happened); a refusal keeps
/// what kind of refusal it was.
fn from_status(s: Status) -> Error {
    let kind = match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            return Error::ExecutorUnavailable(s.message().to_string())
        }
        Code::InvalidArgument | Code::OutOfRange => Refusal::Invalid,
        Code::NotFound => Refusal::NotFound,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Refusal::Precondition,
        Code::PermissionDenied | Code::Unauthenticated => Refusal::Denied,
        _ => Refusal::Internal,
    };
    Error::ExecutorRefused { kind, message: s.message().to_string() }
}

/// An executor request carrying the request id of the call it serves, so
/// netexec's log lines for it name the same id.
fn with_id<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    let id = crate::request_id::current().and_then(|id| id.parse().ok());
    if let Some(v) = id {
        r.metadata_mut().insert(ctnet_proto::request_id::HEADER, v);
    }
    r
}

fn netns_ref(t: &NetnsTarget) -> wire::NetnsRef {
    let kind = match t {
        NetnsTarget::Owned(id) => Kind::SandboxId(id.to_string()),
        NetnsTarget::External(p) => Kind::ExternalPath(p.display().to_string()),
    };
    wire::NetnsRef { kind: Some(kind) }
}

fn network(n: &FirewallNetwork) -> wire::FirewallNetwork {
    wire::FirewallNetwork {
        bridge: n.bridge.to_string(),
        subnet: n.subnet.map(|s| s.to_string()).unwrap_or_default(),
        subnet6: n.subnet6.map(|s| s.to_string()).unwrap_or_default(),
        internal: n.internal,
        icc: n.icc,
        mode4: mode(n.mode4).into(),
        mode6: mode(n.mode6).into(),
    }
}

fn mode(m: GatewayMode) -> wire::GatewayMode {
    match m {
        GatewayMode::Nat => wire::GatewayMode::Nat,
        GatewayMode::Routed => wire::GatewayMode::Routed,
        GatewayMode::Isolated => wire::GatewayMode::Isolated,
    }
}

fn port(p: &FirewallPort) -> wire::FirewallPort {
    wire::FirewallPort {
        protocol: p.proto.as_str().into(),
        host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
        host_port: p.host_port.into(),
        target_ip: p.target_ip.to_string(),
        target_port: p.target_port.into(),
        owner: p.owner.to_string(),
        routed: p.routed,
    }
}

fn guard(g: &FirewallGuard) -> wire::FirewallGuard {
    wire::FirewallGuard {
        link: g.link.to_string(),
        mac: g.mac.0.to_vec(),
        ip: g.ip.map(|a| a.to_string()).unwrap_or_default(),
        ip6: g.ip6.map(|a| a.to_string()).unwrap_or_default(),
        owner: g.owner.to_string(),
    }
}

fn listener(l: &wire::Listener) -> Option<HostListener> {
    let proto = match l.protocol.as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    // An IPv4-mapped address is an IPv4 socket's.
    let address = match l.address.parse::<IpAddr>().ok()? {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        a => a,
    };
    let port = u16::try_from(l.port).ok()?;
    Some(HostListener { proto, address, port, shown: format!("{}:{}", l.address, l.port) })
}

fn link_kind(kind: &str) -> LinkKind {
    match kind {
        "bridge" => LinkKind::Bridge,
        "veth" => LinkKind::Veth,
        _ => LinkKind::Other,
    }
}

fn netns_view(r: wire::InspectNetnsResponse) -> NetnsView {
    NetnsView {
        interfaces: r
            .interfaces
            .into_iter()
            .map(|i| InterfaceView { name: i.name, addresses: i.addresses, up: i.up })
            .collect(),
        default_gateway: r.default_gateway.parse::<Ipv4Addr>().ok(),
        default_gateway6: r.default_gateway6.parse::<Ipv6Addr>().ok(),
    }
}

#[tonic::async_trait]
impl Executor for GrpcExecutor {
    async fn ping(&self) -> Result<PingInfo> {
        let r = self
            .client()
            .ping(with_id(wire::PingRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        let host_netns = (!r.host_netns_path.is_empty()).then(|| PathBuf::from(r.host_netns_path));
        Ok(PingInfo { host_netns, instance: r.instance, drift_repairs: r.drift_repairs })
    }

    async fn ensure_bridge(&self, b: &BridgeArgs) -> Result<()> {
        let req = wire::EnsureBridgeRequest {
            name: b.name.to_string(),
            address: crate::domain::prefixed(b.address),
            address6: crate::domain::prefixed(b.address6),
            mtu: b.mtu,
            owner: b.owner.to_string(),
            adopt_untagged: b.adopt_untagged,
        };
        self.client().ensure_bridge(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn delete_bridge(&self, name: &LinkName, owner: &Owner) -> Result<()> {
        let req = wire::DeleteBridgeRequest { name: name.to_string(), owner: owner.to_string() };
        self.client().delete_bridge(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn create_netns(&self, sandbox: &SandboxId) -> Result<PathBuf> {
        let req = wire::CreateNetnsRequest { sandbox_id: sandbox.to_string() };
        let r = self.client().create_netns(with_id(req)).await.map_err(from_status)?;
        Ok(PathBuf::from(r.into_inner().path))
    }

    async fn delete_netns(&self, sandbox: &SandboxId) -> Result<()> {
        let req = wire::DeleteNetnsRequest { sandbox_id: sandbox.to_string() };
        self.client().delete_netns(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn setup_loopback(&self, netns: &NetnsTarget) -> Result<()> {
        let req = wire::SetupLoopbackRequest { netns: Some(netns_ref(netns)) };
        self.client().setup_loopback(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn attach(&self, e: &EndpointArgs) -> Result<()> {
        let req = wire::AttachEndpointRequest {
            netns: Some(netns_ref(&e.netns)),
            host_ifname: e.host_ifname.to_string(),
            ifname: e.ifname.clone(),
            bridge: e.bridge.to_string(),
            address: crate::domain::prefixed(e.address),
            gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
            address6: crate::domain::prefixed(e.address6),
            gateway6: e.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            mac: e.mac.0.to_vec(),
            mtu: e.mtu,
            owner: e.owner.to_string(),
            hairpin: e.hairpin,
            announce: e.announce,
        };
        self.client().attach_endpoint(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn retag(&self, name: &LinkName, kind: LinkKind, from: &Owner, to: &Owner) -> Result<()> {
        let kind = match kind {
            LinkKind::Bridge => "bridge",
            LinkKind::Veth => "veth",
            LinkKind::Other => "other",
        };
        let req = wire::RetagLinkRequest {
            name: name.to_string(),
            kind: kind.into(),
            from: from.to_string(),
            to: to.to_string(),
        };
        self.client().retag_link(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn detach(&self, host_ifname: &LinkName, owner: &Owner, grace_ms: u32) -> Result<()> {
        let req = wire::DetachEndpointRequest {
            host_ifname: host_ifname.to_string(),
            grace_ms,
            owner: owner.to_string(),
            unplug_only: false,
        };
        self.client().detach_endpoint(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn unplug(&self, host_ifname: &LinkName, owner: &Owner) -> Result<()> {
        let req = wire::DetachEndpointRequest {
            host_ifname: host_ifname.to_string(),
            grace_ms: 0,
            owner: owner.to_string(),
            unplug_only: true,
        };
        self.client().detach_endpoint(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn update_firewall(&self, d: &FirewallDelta) -> Result<()> {
        let req = wire::FirewallDelta {
            add_networks: d.add_networks.iter().map(network).collect(),
            remove_networks: d.remove_networks.iter().map(network).collect(),
            add_ports: d.add_ports.iter().map(port).collect(),
            remove_ports: d.remove_ports.iter().map(port).collect(),
            add_guards: d.add_guards.iter().map(guard).collect(),
            remove_guards: d.remove_guards.iter().map(guard).collect(),
        };
        self.client().update_firewall(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn sync_firewall(&self, t: &FirewallTable) -> Result<()> {
        let req = wire::FirewallState {
            networks: t.networks.iter().map(network).collect(),
            ports: t.ports.iter().map(port).collect(),
            guards: t.guards.iter().map(guard).collect(),
        };
        self.client().sync_firewall(with_id(req)).await.map_err(from_status)?;
        Ok(())
    }

    async fn list_listeners(&self) -> Result<Vec<HostListener>> {
        let req = wire::ListListenersRequest {};
        let r = self.client().list_listeners(with_id(req)).await.map_err(from_status)?.into_inner();
        Ok(r.listeners.iter().filter_map(listener).collect())
    }

    async fn host_routes(&self) -> Result<HostRoutes> {
        let r = self
            .client()
            .host_routes(with_id(wire::HostRoutesRequest {}))
            .await
            .map_err(from_status)?;
        let r = r.into_inner();
        let addresses = r
            .addresses
            .into_iter()
            .filter_map(|a| {
                Some(HostAddress { prefix: HostPrefix::parse(&a.address)?, interface: a.interface })
            })
            .collect();
        let routes = r
            .routes
            .into_iter()
            .filter_map(|r| {
                Some(HostRoute {
                    destination: HostPrefix::parse(&r.destination)?,
                    gateway: r.gateway.parse().ok(),
                    interface: r.interface,
                })
            })
            .collect();
        Ok(HostRoutes { addresses, routes })
    }

    async fn inventory(&self) -> Result<Inventory> {
        let r = self
            .client()
            .inventory(with_id(wire::InventoryRequest {}))
            .await
            .map_err(from_status)?;
        let r = r.into_inner();
        let links = r
            .links
            .into_iter()
            .map(|l| TaggedLink {
                owner: Owner::parse(&l.owner),
                kind: link_kind(&l.kind),
                name: l.name,
                master: l.master,
            })
            .collect();
        let pins = r.netns_pins.iter().filter_map(|p| SandboxId::parse(p)).collect();
        Ok(Inventory { links, pins })
    }

    async fn inspect_netns(&self, netns: &NetnsTarget) -> Result<NetnsView> {
        let req = wire::InspectNetnsRequest { netns: Some(netns_ref(netns)) };
        let r = self.client().inspect_netns(with_id(req)).await.map_err(from_status)?;
        Ok(netns_view(r.into_inner()))
    }
}
