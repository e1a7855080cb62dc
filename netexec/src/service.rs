//! The executor's gRPC service: each request is parsed into checked types,
//! then becomes one kernel action.
use std::sync::Arc;

use ctnet_proto::exec::executor_server::Executor;
use ctnet_proto::exec::{self as wire, netns_ref::Kind};
use tonic::{Request, Response, Status};

use crate::checks::{
    self, Addr6Prefix, AddrPrefix, AllowedDir, NetnsTarget, OwnedLinkName, Owner, SandboxId,
    SandboxIfName,
};
use crate::error::{ExecError, Result};
use crate::firewall::{self, Firewall};
use crate::kernel::{self, BridgeSpec, EndpointSpec};
use crate::netns::{PinDir, Place};

pub struct Config {
    /// Name prefix of every host link we own.
    pub prefix: String,
    /// Our pins, including "host", the pin of our own namespace (none in
    /// the join-only profile).
    pub pins: Option<Arc<PinDir>>,
    /// Identity (dev, inode) of our own namespace.
    pub host_ns: (u64, u64),
    /// Where runtimes may pin namespaces for `netns_path`.
    pub allowed_dirs: Vec<AllowedDir>,
}

/// Name of the pin of netexec's own (host) namespace.
pub const HOST_PIN: &str = "host";

pub struct ExecService {
    cfg: Arc<Config>,
    /// Random per process, so api-server notices a restart.
    instance: u64,
    /// Netlink connections in the host namespace, shared by all requests
    /// (deletions on their own: see `kernel::Netlink`).
    nl: kernel::Netlink,
    firewall: Arc<dyn Firewall>,
}

type Reply<T> = std::result::Result<Response<T>, Status>;

impl ExecService {
    pub fn new(cfg: Config, nl: kernel::Netlink, firewall: Arc<dyn Firewall>) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Self { cfg: Arc::new(cfg), instance: h.finish(), nl, firewall }
    }

    fn link_name(&self, field: &str, name: &str) -> Result<OwnedLinkName> {
        OwnedLinkName::parse(field, name, &self.cfg.prefix)
    }

    /// The namespace a request names. A caller-named path is resolved and
    /// opened on a blocking thread, never on a runtime worker.
    async fn netns_target(&self, r: Option<&wire::NetnsRef>) -> Result<NetnsTarget> {
        match r.and_then(|r| r.kind.as_ref()) {
            Some(Kind::SandboxId(id)) => {
                Ok(NetnsTarget::Owned(SandboxId::parse("netns.sandbox_id", id)?))
            }
            Some(Kind::ExternalPath(p)) => {
                let (cfg, path) = (self.cfg.clone(), p.clone());
                let open = move || {
                    let field = "netns.external_path";
                    checks::external_netns(field, &path, &cfg.allowed_dirs, cfg.host_ns)
                };
                let file = tokio::task::spawn_blocking(open)
                    .await
                    .map_err(|e| ExecError::step("namespace open task", e))??;
                Ok(NetnsTarget::External(file))
            }
            None => Err(ExecError::InvalidArgument("netns: required".into())),
        }
    }

    fn open_target(&self, t: NetnsTarget) -> Result<std::fs::File> {
        match t {
            NetnsTarget::Owned(id) => self.pins()?.open_pin(id.as_str()),
            NetnsTarget::External(f) => Ok(f),
        }
    }

    /// Our pin directory; the join-only profile has none.
    fn pins(&self) -> Result<&Arc<PinDir>> {
        self.cfg.pins.as_ref().ok_or_else(|| {
            ExecError::FailedPrecondition(
                "netexec runs join-only: it configures namespaces a runtime pinned (netns_path) and creates none".into(),
            )
        })
    }

    fn parse_endpoint(&self, r: &wire::AttachEndpointRequest) -> Result<EndpointSpec> {
        let address = AddrPrefix::parse_opt("address", &r.address)?;
        let address6 = Addr6Prefix::parse_opt("address6", &r.address6)?;
        if address.is_none() && address6.is_none() {
            let why = "an endpoint needs an address of either family (address or address6)";
            return Err(ExecError::InvalidArgument(format!("address: {why}")));
        }
        Ok(EndpointSpec {
            host_ifname: self.link_name("host_ifname", &r.host_ifname)?,
            ifname: SandboxIfName::parse("ifname", &r.ifname)?,
            bridge: self.link_name("bridge", &r.bridge)?,
            gateway: checks::parse_gateway("gateway", &r.gateway, address.as_ref())?,
            address,
            gateway6: checks::parse_gateway6("gateway6", &r.gateway6, address6.as_ref())?,
            address6,
            mac: checks::parse_mac("mac", &r.mac)?,
            mtu: checks::parse_mtu("mtu", r.mtu)?,
            owner: Owner::parse("owner", &r.owner)?,
            hairpin: r.hairpin,
            announce: r.announce,
        })
    }

    async fn attach(&self, spec: EndpointSpec, target: NetnsTarget) -> Result<()> {
        let t = std::time::Instant::now();
        let ns = self.open_target(target)?;
        let inside = ns.try_clone().map_err(|e| ExecError::step("dup netns fd", e))?;
        let created = kernel::create_veth(&self.nl.host, &spec, &ns).await?;
        let veth_us = t.elapsed().as_micros();
        let inside_spec = kernel::InsideSpec {
            ifname: spec.ifname.clone(),
            address: spec.address,
            gateway: spec.gateway,
            address6: spec.address6,
            gateway6: spec.gateway6,
            mac: spec.mac,
            announce: spec.announce,
        };
        let done = crate::netns::run_in(Place::Existing(inside), move |h| {
            kernel::configure_inside(h, inside_spec)
        })
        .await;
        // All or nothing: a half-configured endpoint this request made is
        // removed again (one that existed before is not this request's).
        if done.is_err() && created {
            let (name, owner) = (&spec.host_ifname, &spec.owner);
            let _ = kernel::delete_owned_link(&self.nl, name, kernel::Kind::Veth, owner).await;
        }
        tracing::debug!(veth_us, inside_us = t.elapsed().as_micros() - veth_us, "attach timing");
        done
    }
}

fn ok<T>(v: T) -> Reply<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl Executor for ExecService {
    async fn ping(&self, _: Request<wire::PingRequest>) -> Reply<wire::PingResponse> {
        let pins = self.cfg.pins.as_ref();
        ok(wire::PingResponse {
            host_netns_path: pins
                .map(|p| p.path_of(HOST_PIN).display().to_string())
                .unwrap_or_default(),
            netns_dir: pins.map(|p| p.path().display().to_string()).unwrap_or_default(),
            instance: self.instance,
            drift_repairs: crate::firewall::drift::REPAIRS
                .load(std::sync::atomic::Ordering::SeqCst),
        })
    }

    #[tracing::instrument(skip_all, fields(bridge = %req.get_ref().name))]
    async fn ensure_bridge(
        &self,
        req: Request<wire::EnsureBridgeRequest>,
    ) -> Reply<wire::EnsureBridgeResponse> {
        let r = req.into_inner();
        let spec = BridgeSpec {
            name: self.link_name("name", &r.name)?,
            // Empty: the network's IPv4 is isolated, the bridge has none.
            address: AddrPrefix::parse_opt("address", &r.address)?,
            address6: Addr6Prefix::parse_opt("address6", &r.address6)?,
            mtu: checks::parse_mtu("mtu", r.mtu)?,
            owner: Owner::parse("owner", &r.owner)?,
            adopt_untagged: r.adopt_untagged,
        };
        kernel::ensure_bridge(&self.nl.host, &spec).await?;
        tracing::info!("bridge ready");
        ok(wire::EnsureBridgeResponse {})
    }

    #[tracing::instrument(skip_all, fields(bridge = %req.get_ref().name))]
    async fn delete_bridge(
        &self,
        req: Request<wire::DeleteBridgeRequest>,
    ) -> Reply<wire::DeleteBridgeResponse> {
        let name = self.link_name("name", &req.get_ref().name)?;
        let owner = Owner::parse("owner", &req.get_ref().owner)?;
        kernel::delete_owned_link(&self.nl, &name, kernel::Kind::Bridge, &owner).await?;
        tracing::info!("bridge deleted");
        ok(wire::DeleteBridgeResponse {})
    }

    #[tracing::instrument(skip_all, fields(sandbox = %req.get_ref().sandbox_id))]
    async fn create_netns(
        &self,
        req: Request<wire::CreateNetnsRequest>,
    ) -> Reply<wire::CreateNetnsResponse> {
        let id = SandboxId::parse("sandbox_id", &req.get_ref().sandbox_id)?;
        let pins = self.pins()?;
        let place = match pins.open_pin(id.as_str()) {
            Ok(existing) => Place::Existing(existing),
            Err(_) => Place::New(pins.clone(), id.as_str().to_string()),
        };
        let made =
            crate::netns::run_in(place, |h| async move { kernel::loopback_up(&h).await }).await;
        if let Err(e) = made {
            let _ = pins.unpin(id.as_str());
            return Err(e.into());
        }
        tracing::info!("netns pinned");
        ok(wire::CreateNetnsResponse { path: pins.path_of(id.as_str()).display().to_string() })
    }

    #[tracing::instrument(skip_all, fields(sandbox = %req.get_ref().sandbox_id))]
    async fn delete_netns(
        &self,
        req: Request<wire::DeleteNetnsRequest>,
    ) -> Reply<wire::DeleteNetnsResponse> {
        let id = SandboxId::parse("sandbox_id", &req.get_ref().sandbox_id)?;
        self.pins()?.unpin(id.as_str()).map_err(|e| ExecError::step("unpin", e))?;
        tracing::info!("netns unpinned");
        ok(wire::DeleteNetnsResponse {})
    }

    async fn setup_loopback(
        &self,
        req: Request<wire::SetupLoopbackRequest>,
    ) -> Reply<wire::SetupLoopbackResponse> {
        let target = self.netns_target(req.get_ref().netns.as_ref()).await?;
        let ns = self.open_target(target)?;
        crate::netns::run_in(Place::Existing(ns), |h| async move { kernel::loopback_up(&h).await })
            .await?;
        ok(wire::SetupLoopbackResponse {})
    }

    #[tracing::instrument(skip_all, fields(host_ifname = %req.get_ref().host_ifname, owner = %req.get_ref().owner))]
    async fn attach_endpoint(
        &self,
        req: Request<wire::AttachEndpointRequest>,
    ) -> Reply<wire::AttachEndpointResponse> {
        let r = req.into_inner();
        let target = self.netns_target(r.netns.as_ref()).await?;
        let spec = self.parse_endpoint(&r)?;
        self.attach(spec, target).await?;
        tracing::info!("endpoint attached");
        ok(wire::AttachEndpointResponse {})
    }

    #[tracing::instrument(skip_all, fields(host_ifname = %req.get_ref().host_ifname))]
    async fn detach_endpoint(
        &self,
        req: Request<wire::DetachEndpointRequest>,
    ) -> Reply<wire::DetachEndpointResponse> {
        let name = self.link_name("host_ifname", &req.get_ref().host_ifname)?;
        let owner = Owner::parse("owner", &req.get_ref().owner)?;
        if req.get_ref().unplug_only {
            kernel::unplug(&self.nl.host, &name, &owner).await?;
            tracing::info!("endpoint unplugged");
            return ok(wire::DetachEndpointResponse {});
        }
        let grace = std::time::Duration::from_millis(req.get_ref().grace_ms.min(5000).into());
        kernel::await_gone(&self.nl.host, &name, grace).await?;
        kernel::delete_owned_link(&self.nl, &name, kernel::Kind::Veth, &owner).await?;
        tracing::info!("endpoint detached");
        ok(wire::DetachEndpointResponse {})
    }

    async fn inventory(
        &self,
        _: Request<wire::InventoryRequest>,
    ) -> Reply<wire::InventoryResponse> {
        let links = kernel::all_links(&self.nl.host).await?;
        let name_of = |idx: u32| {
            links.iter().find(|l| l.index == idx).map(|l| l.name.clone()).unwrap_or_default()
        };
        let owned = links
            .iter()
            .filter(|l| l.name.starts_with(&self.cfg.prefix))
            .filter_map(|l| {
                Some(wire::OwnedLink {
                    owner: l.owner()?.to_string(),
                    name: l.name.clone(),
                    kind: l.kind.clone().unwrap_or_default(),
                    master: l.master.map(name_of).unwrap_or_default(),
                })
            })
            .collect();
        let netns_pins = match &self.cfg.pins {
            Some(p) => list_pins(p)?,
            None => Vec::new(),
        };
        ok(wire::InventoryResponse { links: owned, netns_pins })
    }

    async fn update_firewall(
        &self,
        req: Request<wire::FirewallDelta>,
    ) -> Reply<wire::UpdateFirewallResponse> {
        let delta = firewall::parse_delta(req.get_ref(), &self.cfg.prefix)?;
        self.firewall.update(&delta).await?;
        tracing::info!(
            add_networks = delta.add_networks.len(),
            remove_networks = delta.remove_networks.len(),
            add_ports = delta.add_ports.len(),
            remove_ports = delta.remove_ports.len(),
            "firewall updated"
        );
        ok(wire::UpdateFirewallResponse {})
    }

    async fn sync_firewall(
        &self,
        req: Request<wire::FirewallState>,
    ) -> Reply<wire::SyncFirewallResponse> {
        let state = firewall::parse_state(req.get_ref(), &self.cfg.prefix)?;
        self.firewall.sync(&state).await?;
        ok(wire::SyncFirewallResponse {})
    }

    async fn inspect_netns(
        &self,
        req: Request<wire::InspectNetnsRequest>,
    ) -> Reply<wire::InspectNetnsResponse> {
        let target = self.netns_target(req.get_ref().netns.as_ref()).await?;
        let ns = self.open_target(target)?;
        let seen =
            crate::netns::run_in(Place::Existing(ns), |h| async move { kernel::inspect(&h).await })
                .await?;
        ok(seen)
    }

    async fn host_routes(
        &self,
        _: Request<wire::HostRoutesRequest>,
    ) -> Reply<wire::HostRoutesResponse> {
        ok(kernel::host_routes(&self.nl.host).await?)
    }

    #[tracing::instrument(skip_all, fields(name = %req.get_ref().name, to = %req.get_ref().to))]
    async fn retag_link(
        &self,
        req: Request<wire::RetagLinkRequest>,
    ) -> Reply<wire::RetagLinkResponse> {
        let r = req.get_ref();
        let name = self.link_name("name", &r.name)?;
        let kind = match r.kind.as_str() {
            "bridge" => kernel::Kind::Bridge,
            "veth" => kernel::Kind::Veth,
            other => {
                let why = format!("kind: {other:?} is not \"bridge\" or \"veth\"");
                return Err(ExecError::InvalidArgument(why).into());
            }
        };
        let (from, to) = (Owner::parse("from", &r.from)?, Owner::parse("to", &r.to)?);
        kernel::retag(&self.nl.host, &name, kind, &from, &to).await?;
        tracing::info!("link retagged");
        ok(wire::RetagLinkResponse {})
    }

    async fn list_listeners(
        &self,
        _: Request<wire::ListListenersRequest>,
    ) -> Reply<wire::ListListenersResponse> {
        let found = tokio::task::spawn_blocking(crate::listeners::list)
            .await
            .map_err(|e| ExecError::step("listener task", e))??;
        let listeners = found
            .into_iter()
            .map(|l| wire::Listener {
                protocol: l.protocol.into(),
                address: l.address.to_string(),
                port: l.port.into(),
            })
            .collect();
        ok(wire::ListListenersResponse { listeners })
    }
}

fn list_pins(dir: &PinDir) -> Result<Vec<String>> {
    let names = dir.names().map_err(|e| ExecError::step("read netns dir", e))?;
    let mut pins: Vec<String> =
        names.into_iter().filter(|n| SandboxId::parse("", n).is_ok()).collect();
    pins.sort();
    Ok(pins)
}
