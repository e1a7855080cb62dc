//! Sandbox operations: create in each mode, delete, connect, disconnect.
use std::path::PathBuf;
use std::sync::Arc;

use super::claims::Claim;
use super::firewall;
use super::tenancy;
use super::Ops;
use crate::domain::sandbox::{
    AttachSpec, ConnectSpec, DisconnectSpec, ModeSpec, SandboxSpec, MAX_INTERFACES,
};
use crate::domain::{GatewayMode, LinkName, Mac, Ref, SandboxId, StoreId};
use crate::error::{Error, Result};
use crate::executor::{EndpointArgs, HostListener, NetnsTarget};
use crate::limits::Limits;
use crate::model::{now, Endpoint, ModeKind, Netns, NetworkRecord, Phase, SandboxRecord};
use crate::policy::Caller;
use crate::ports;
use crate::state::State;
use crate::store::Change;

/// How long a deleted sandbox's veths may take to vanish with its namespace
/// before they are deleted explicitly.
const NETNS_TEARDOWN_GRACE_MS: u32 = 1000;

/// What a create decided.
enum Plan {
    /// Host and container modes: the record is all there is.
    RecordOnly(SandboxRecord),
    /// A namespace, endpoints or ports to make first.
    KernelWork(SandboxRecord),
}

impl Ops {
    pub async fn create_sandbox(
        &self,
        caller: &Caller,
        mut spec: SandboxSpec,
    ) -> Result<SandboxRecord> {
        tenancy::fit_ports(caller, &mut spec.publish);
        // Asked before taking the lock: host mode needs the host pin's path.
        let host = match spec.mode {
            ModeSpec::Host => self.exec.ping().await?.host_netns,
            _ => None,
        };
        let listeners = self.listeners_for(&spec.publish).await?;
        // What a just-deleted sandbox still holds (a static address or MAC,
        // a runtime namespace, a bridge port, a place under a global limit)
        // is waited for, briefly.
        let (st, plan) = self
            .after_releases(
                |st| self.decide_sandbox(st, caller, spec.clone(), host.clone(), &listeners),
                |st, e| {
                    matches!(e, Error::AlreadyExists(_) | Error::Exhausted(_))
                        && st.releasing().next().is_some()
                },
            )
            .await?;
        let rec = match plan {
            Plan::RecordOnly(rec) => {
                self.commit(st, Change::PutSandbox(rec.clone())).await?;
                tracing::info!(sandbox = %rec.id, mode = ?rec.mode, "sandbox created");
                return Ok(rec);
            }
            Plan::KernelWork(rec) => rec,
        };
        let intent = Change::PutSandbox(rec.clone());
        let claim = self.record_intent(st, rec.id.as_str(), "sandbox", intent).await?;
        match self.build_sandbox(&rec).await {
            Ok(path) => self.finish_create(claim, rec, path).await,
            Err(e) => {
                self.roll_back(claim, rec).await;
                Err(e)
            }
        }
    }

    /// Decides everything about a new sandbox under the lock: id, namespace,
    /// interfaces, addresses and ports. No side effects.
    fn decide_sandbox(
        &self,
        st: &State,
        caller: &Caller,
        spec: SandboxSpec,
        host: Option<PathBuf>,
        listeners: &[HostListener],
    ) -> Result<Plan> {
        tenancy::check_sandbox(caller, st, &ask(&spec), true)?;
        if let Some(name) = &spec.name {
            let mine = |s: &&SandboxRecord| {
                s.phase.visible() && s.tenant == caller.tenant && s.name.as_ref() == Some(name)
            };
            let taken = st.sandboxes.values().find(mine);
            if let Some(other) = taken {
                let why = format!("name: sandbox {name:?} already exists ({})", other.id);
                return Err(Error::AlreadyExists(why));
            }
        }
        let limits = self.settings.limits;
        if st.sandboxes.len() >= limits.sandboxes {
            return Err(Limits::exhausted("sandboxes", "--max-sandboxes", limits.sandboxes));
        }
        let mut rec = SandboxRecord {
            id: fresh_sandbox_id(st),
            name: spec.name,
            tenant: caller.tenant.clone(),
            labels: spec.labels,
            mode: ModeKind::Bridge,
            netns: Netns::Owned(PathBuf::new()),
            endpoints: Vec::new(),
            created_at: now(),
            phase: Phase::Creating,
        };
        let own_or =
            |netns: Option<PathBuf>| netns.map_or(Netns::Owned(PathBuf::new()), Netns::External);
        match spec.mode {
            ModeSpec::Host => {
                let pin = host.ok_or_else(|| {
                    Error::Conflict(
                        "host mode needs the host's namespace pin, and netexec runs join-only (it pins nothing)"
                            .into(),
                    )
                })?;
                rec.mode = ModeKind::Host;
                rec.netns = Netns::Host(pin);
                rec.phase = Phase::Ready;
                return Ok(Plan::RecordOnly(rec));
            }
            ModeSpec::Container { target } => {
                rec.mode = ModeKind::Container;
                rec.netns = join_target(st, caller, &target)?;
                rec.phase = Phase::Ready;
                return Ok(Plan::RecordOnly(rec));
            }
            ModeSpec::None { netns } => {
                rec.mode = ModeKind::None;
                rec.netns = own_or(netns);
            }
            ModeSpec::Bridge { networks, netns } => {
                rec.netns = own_or(netns);
                for (i, attach) in networks.iter().enumerate() {
                    let field = format!("bridge.networks[{i}].ipv4_address");
                    let prefix = &self.settings.link_prefix;
                    let ep = new_endpoint(st, caller, prefix, &rec, attach, &field)?;
                    rec.endpoints.push(ep);
                }
                if !spec.publish.is_empty() {
                    // Ports reach the address on the first network that has a way in.
                    let ep = first_published(st, &mut rec.endpoints).ok_or_else(|| {
                        let why = "the sandbox is attached only to internal networks, which have no published ports";
                        Error::invalid("publish", why)
                    })?;
                    let range = self.settings.ephemeral;
                    let fam = families(st, ep);
                    ep.ports = ports::allocate(st, caller, &spec.publish, listeners, range, fam)?;
                }
            }
        }
        if let Netns::External(p) = &rec.netns {
            // Its old eth0 may still be in there: the create waits for it.
            let old = |s: &SandboxRecord| matches!(&s.netns, Netns::External(x) if x == p);
            if st.releasing().any(old) {
                return Err(Error::AlreadyExists(
                    "netns_path: a deleted sandbox's interfaces in this namespace are still being removed; try again".into(),
                ));
            }
        }
        let owned = |s: &&SandboxRecord| matches!(s.netns, Netns::Owned(_));
        if owned(&&rec) && st.sandboxes.values().filter(owned).count() >= limits.owned_netns {
            return Err(Limits::exhausted(
                "owned namespaces",
                "--max-owned-netns",
                limits.owned_netns,
            ));
        }
        Ok(Plan::KernelWork(rec))
    }

    /// The kernel work of a create. On failure the caller undoes it all.
    async fn build_sandbox(&self, rec: &SandboxRecord) -> Result<PathBuf> {
        let (path, target) = match &rec.netns {
            Netns::External(p) => (p.clone(), NetnsTarget::External(p.clone())),
            _ => (self.exec.create_netns(&rec.id).await?, NetnsTarget::Owned(rec.id.clone())),
        };
        if rec.mode == ModeKind::None && matches!(target, NetnsTarget::External(_)) {
            self.exec.setup_loopback(&target).await?;
        }
        // Guards first: a guarded veth never sends unchecked.
        self.apply_delta(firewall::guards(rec.endpoints.iter().flat_map(|e| e.guard(rec)), true))
            .await?;
        for ep in &rec.endpoints {
            self.attach_endpoint(rec, ep, &target).await?;
        }
        self.add_ports(firewall::all_ports(rec)).await?;
        Ok(path)
    }

    pub(super) async fn attach_endpoint(
        &self,
        rec: &SandboxRecord,
        ep: &Endpoint,
        target: &NetnsTarget,
    ) -> Result<()> {
        let net = self.lock().await.networks.get(&ep.network_id).cloned();
        let net =
            net.ok_or_else(|| Error::NotFound(format!("network {} vanished", ep.network_id)))?;
        self.exec.attach(&endpoint_args(rec, ep, &net, target, self.store.id())).await
    }

    /// Removes a sandbox's kernel objects, best effort first, then reports
    /// the first failure: every step is idempotent, so a retry finishes it.
    /// A namespace of our own goes first: the kernel then destroys it, and
    /// the veth pairs in it, asynchronously and batched, so endpoints are
    /// only waited for (and deleted explicitly if something still holds the
    /// namespace). An explicit veth delete waits for an RCU grace period
    /// holding RTNL, which every other request queues behind.
    pub(super) async fn teardown(&self, rec: &SandboxRecord) -> Result<()> {
        let mut first_err = self.remove_ports(firewall::all_ports(rec)).await.err();
        let mut grace_ms = 0;
        if matches!(rec.netns, Netns::Owned(_)) {
            match self.exec.delete_netns(&rec.id).await {
                Ok(()) => grace_ms = NETNS_TEARDOWN_GRACE_MS,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for ep in &rec.endpoints {
            if let Err(e) =
                self.exec.detach(&ep.host_ifname, &rec.owner(self.store.id()), grace_ms).await
            {
                first_err.get_or_insert(e);
            }
        }
        // Guards last, once their veths are gone.
        if first_err.is_none() {
            let guards = firewall::guards(rec.endpoints.iter().flat_map(|e| e.guard(rec)), false);
            first_err = self.apply_delta(guards).await.err();
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn finish_create(
        &self,
        claim: Claim,
        mut rec: SandboxRecord,
        path: PathBuf,
    ) -> Result<SandboxRecord> {
        if let Netns::Owned(p) = &mut rec.netns {
            *p = path;
        }
        rec.endpoints.iter_mut().for_each(|e| e.attached = true);
        rec.phase = Phase::Ready;
        self.record_outcome(claim, Change::PutSandbox(rec.clone())).await?;
        tracing::info!(sandbox = %rec.id, mode = ?rec.mode, "sandbox created");
        Ok(rec)
    }

    /// Undoes a failed create. If even the undo fails (netexec gone), the
    /// record stays as Deleting and reconciliation finishes it later.
    async fn roll_back(&self, claim: Claim, mut rec: SandboxRecord) {
        let undone = self.teardown(&rec).await;
        let dropped = Change::DelSandbox(rec.id.clone());
        rec.phase = Phase::Deleting;
        self.record_rollback(claim, undone, dropped, Change::PutSandbox(rec)).await;
    }

    pub async fn delete_sandbox(self: &Arc<Self>, caller: &Caller, reference: &Ref) -> Result<()> {
        let (rec, claim) = {
            let st = self.lock().await;
            let mut rec = st.sandbox(caller, reference)?.clone();
            let joiners: Vec<String> =
                st.joiners_of(&rec.id).iter().map(|s| s.to_string()).collect();
            if !joiners.is_empty() {
                return Err(Error::Conflict(format!(
                    "sandbox {rec} shares its namespace with {}; delete them first",
                    joiners.join(", ")
                )));
            }
            // With endpoints, the intent is already the released record
            // (invisible, holding what it had): one store write less.
            rec.phase = if rec.endpoints.is_empty() { Phase::Deleting } else { Phase::Releasing };
            let intent = Change::PutSandbox(rec.clone());
            let claim = self.record_intent(st, rec.id.as_str(), "sandbox", intent).await?;
            (rec, claim)
        };
        let id = rec.id.clone();
        self.delete_now(claim, rec).await?;
        tracing::info!(sandbox = %id, "sandbox deleted");
        Ok(())
    }

    pub async fn connect(&self, caller: &Caller, mut spec: ConnectSpec) -> Result<SandboxRecord> {
        tenancy::fit_ports(caller, &mut spec.publish);
        let listeners = self.listeners_for(&spec.publish).await?;
        let (mut rec, ep, claim) = {
            let st = self.lock().await;
            let mut rec = ready_bridge_sandbox(&st, caller, &spec.sandbox)?;
            let more = tenancy::SandboxAsk {
                host_mode: false,
                netns_path: None,
                owns_netns: false,
                attachments: 1,
                publish: &spec.publish,
            };
            tenancy::check_sandbox(caller, &st, &more, false)?;
            let prefix = &self.settings.link_prefix;
            let attach = &spec.attach;
            let mut ep = new_endpoint(&st, caller, prefix, &rec, attach, "ipv4_address")?;
            if !spec.publish.is_empty() {
                if st.networks.get(&ep.network_id).is_none_or(|n| n.internal) {
                    return Err(Error::invalid(
                        "publish",
                        "the network is internal and has no published ports",
                    ));
                }
                let range = self.settings.ephemeral;
                let fam = families(&st, &ep);
                ep.ports = ports::allocate(&st, caller, &spec.publish, &listeners, range, fam)?;
            }
            rec.endpoints.push(ep.clone());
            let intent = Change::PutSandbox(rec.clone());
            let claim = self.record_intent(st, rec.id.as_str(), "sandbox", intent).await?;
            (rec, ep, claim)
        };
        let done = self.build_endpoint(&rec, &ep).await;
        // A failed attach is undone; if the undo fails too, the endpoint stays
        // recorded as not attached and reconciliation removes it.
        if done.is_ok() {
            rec.endpoints
                .iter_mut()
                .filter(|e| e.ifname == ep.ifname)
                .for_each(|e| e.attached = true);
        } else if self.unbuild_endpoint(&rec, &ep).await.is_ok() {
            rec.endpoints.retain(|e| e.ifname != ep.ifname);
        }
        self.record_outcome(claim, Change::PutSandbox(rec.clone())).await?;
        done.map(|()| rec)
    }

    async fn build_endpoint(&self, rec: &SandboxRecord, ep: &Endpoint) -> Result<()> {
        self.apply_delta(firewall::guards(ep.guard(rec), true)).await?;
        self.attach_endpoint(rec, ep, &endpoint_target(rec)).await?;
        self.add_ports(firewall::ports_of(rec, ep)).await
    }

    /// Removes one endpoint's ports, then the endpoint, then its guard.
    pub(super) async fn unbuild_endpoint(&self, rec: &SandboxRecord, ep: &Endpoint) -> Result<()> {
        self.remove_ports(firewall::ports_of(rec, ep)).await?;
        self.exec.detach(&ep.host_ifname, &rec.owner(self.store.id()), 0).await?;
        self.apply_delta(firewall::guards(ep.guard(rec), false)).await
    }

    /// The endpoint is first recorded as not attached (the intent): once
    /// accepted, a disconnect always completes, if not here then in
    /// reconciliation.
    pub async fn disconnect(&self, caller: &Caller, spec: DisconnectSpec) -> Result<SandboxRecord> {
        let (mut rec, ep, claim) = {
            let st = self.lock().await;
            let mut rec = ready_bridge_sandbox(&st, caller, &spec.sandbox)?;
            let net = st.network(caller, &spec.network)?;
            let slot = rec.endpoints.iter_mut().find(|e| e.network_id == net.id);
            let Some(slot) = slot else {
                let why =
                    format!("sandbox {} is not connected to network {}", spec.sandbox, net.name);
                return Err(Error::NotFound(why));
            };
            slot.attached = false;
            let ep = slot.clone();
            let intent = Change::PutSandbox(rec.clone());
            let claim = self.record_intent(st, rec.id.as_str(), "sandbox", intent).await?;
            (rec, ep, claim)
        };
        self.unbuild_endpoint(&rec, &ep).await?;
        rec.endpoints.retain(|e| e.ifname != ep.ifname);
        self.record_outcome(claim, Change::PutSandbox(rec.clone())).await?;
        Ok(rec)
    }
}

/// What a create asks of the tenant's quotas and permissions.
fn ask(spec: &SandboxSpec) -> tenancy::SandboxAsk<'_> {
    let (netns, attachments) = match &spec.mode {
        ModeSpec::Bridge { networks, netns } => (netns.as_deref(), networks.len()),
        ModeSpec::None { netns } => (netns.as_deref(), 0),
        _ => (None, 0),
    };
    let owns =
        matches!(spec.mode, ModeSpec::Bridge { .. } | ModeSpec::None { .. }) && netns.is_none();
    tenancy::SandboxAsk {
        host_mode: matches!(spec.mode, ModeSpec::Host),
        netns_path: netns,
        owns_netns: owns,
        attachments,
        publish: &spec.publish,
    }
}

/// The gateway modes of the families an endpoint has.
fn families(st: &State, ep: &Endpoint) -> ports::Families {
    let nat = crate::domain::GatewayMode::Nat;
    let v4 = ports::Families { v4: Some(nat), v6: None };
    st.networks.get(&ep.network_id).map_or(v4, |n| ports::Families::of(n, ep))
}

/// The first endpoint on a network with a way in (not internal).
fn first_published<'a>(st: &State, endpoints: &'a mut [Endpoint]) -> Option<&'a mut Endpoint> {
    let open = |e: &&mut Endpoint| st.networks.get(&e.network_id).is_some_and(|n| !n.internal);
    endpoints.iter_mut().find(open)
}

pub(super) fn endpoint_args(
    rec: &SandboxRecord,
    ep: &Endpoint,
    net: &NetworkRecord,
    target: &NetnsTarget,
    store: &StoreId,
) -> EndpointArgs {
    EndpointArgs {
        netns: target.clone(),
        host_ifname: ep.host_ifname.clone(),
        ifname: ep.ifname.clone(),
        bridge: net.bridge.clone(),
        address: ep.address.zip(net.ipv4.map(|a| a.subnet.prefix)),
        gateway: default_gateway(ep, net),
        address6: ep.address6.zip(net.ipv6.map(|a| a.subnet.prefix)),
        gateway6: default_gateway6(ep, net),
        mac: ep.mac,
        mtu: net.mtu,
        owner: rec.owner(store),
        // Reaching its own published ports through the host comes back in
        // on the same bridge port.
        hairpin: !net.internal,
        // A derived MAC comes back with its address, so neighbours' caches
        // stay right; only an explicit one needs announcing (a broadcast
        // every sandbox on the bridge receives).
        announce: ep.address.is_some() && !ep.mac.is_derived_from(ep.address),
    }
}

/// The endpoint's IPv4 default route, if it carries one: an isolated
/// family has no gateway.
pub(super) fn default_gateway(ep: &Endpoint, net: &NetworkRecord) -> Option<std::net::Ipv4Addr> {
    let open = ep.default_route && net.mode4 != GatewayMode::Isolated;
    net.ipv4.filter(|_| open).map(|a| a.gateway)
}

pub(super) fn default_gateway6(ep: &Endpoint, net: &NetworkRecord) -> Option<std::net::Ipv6Addr> {
    let open = ep.default_route && net.mode6 != GatewayMode::Isolated;
    net.ipv6.filter(|_| open).map(|a| a.gateway)
}

/// A new id whose short form is unique: it names the host ends of its veths.
fn fresh_sandbox_id(st: &State) -> SandboxId {
    loop {
        let id = SandboxId::random();
        if !st.sandboxes.keys().any(|k| k.short() == id.short()) {
            return id;
        }
    }
}

fn join_target(st: &State, caller: &Caller, target: &Ref) -> Result<Netns> {
    let t = st.sandbox(caller, target).map_err(|_| {
        Error::NotFound(format!("container.target: sandbox {:?} does not exist", target.as_str()))
    })?;
    if t.tenant != caller.tenant {
        return Err(Error::Conflict(format!(
            "container.target: sandbox {t} is tenant {}'s; container mode never joins across tenants",
            t.tenant
        )));
    }
    if let Netns::Joined { target: root, .. } = &t.netns {
        return Err(Error::Conflict(format!(
            "container.target: sandbox {t} itself shares the namespace of {root}; join {root} instead"
        )));
    }
    if t.phase != Phase::Ready {
        let why = format!("container.target: sandbox {t} is not ready ({:?})", t.phase);
        return Err(Error::Conflict(why));
    }
    Ok(Netns::Joined { target: t.id.clone(), path: t.netns.path().clone() })
}

fn ready_bridge_sandbox(st: &State, caller: &Caller, reference: &Ref) -> Result<SandboxRecord> {
    let rec = st.sandbox(caller, reference)?;
    if rec.mode != ModeKind::Bridge {
        return Err(Error::Conflict(format!(
            "sandbox {rec} is in {:?} mode; only bridge-mode sandboxes connect to networks",
            rec.mode
        )));
    }
    if rec.phase != Phase::Ready {
        return Err(Error::Conflict(format!("sandbox {rec} is not ready ({:?})", rec.phase)));
    }
    Ok(rec.clone())
}

/// Picks the interface name, address and MAC of a new interface of `rec`.
fn new_endpoint(
    st: &State,
    caller: &Caller,
    prefix: &str,
    rec: &SandboxRecord,
    attach: &AttachSpec,
    field: &str,
) -> Result<Endpoint> {
    let mac = attach.mac;
    let net = st.network(caller, &attach.network)?;
    // A sandbox joins its own tenant's networks and the admin's (which the
    // policy shares); never another tenant's, not even at the admin's word.
    if net.tenant != rec.tenant && net.tenant != crate::policy::ADMIN {
        return Err(Error::Conflict(format!(
            "network {} is another tenant's than sandbox {rec}'s; networks are never shared across tenants",
            net.name
        )));
    }
    if net.phase != Phase::Ready {
        return Err(Error::Conflict(format!(
            "network {} is not ready ({:?})",
            net.name, net.phase
        )));
    }
    if rec.endpoints.iter().any(|e| e.network_id == net.id) {
        let why = format!("sandbox {rec} is already connected to network {}", net.name);
        return Err(Error::AlreadyExists(why));
    }
    // The host end's index and the default name are picked apart: a
    // requested name (CNI_IFNAME) may be anything, even another's ethN.
    let full =
        || Error::Exhausted(format!("sandbox {rec} already has {MAX_INTERFACES} interfaces"));
    let index = (0..MAX_INTERFACES)
        .find(|i| {
            let host = LinkName::for_endpoint(prefix, &rec.id, *i);
            !rec.endpoints.iter().any(|e| e.host_ifname == host)
        })
        .ok_or_else(full)?;
    let taken = |name: &str| rec.endpoints.iter().any(|e| e.ifname == name);
    let ifname = match &attach.ifname {
        Some(n) if taken(n) => {
            let why = format!("interface_name: sandbox {rec} already has an interface {n}");
            return Err(Error::AlreadyExists(why));
        }
        Some(n) => n.clone(),
        None => {
            (0..=MAX_INTERFACES).map(|i| format!("eth{i}")).find(|n| !taken(n)).ok_or_else(full)?
        }
    };
    st.check_bridge_room(net)?;
    let address = match (net.ipv4, attach.address) {
        (None, Some(_)) => {
            let why = format!("network {} is IPv6-only; omit the IPv4 address", net.name);
            return Err(Error::invalid(field, why));
        }
        (None, None) => None,
        (Some(a4), want) => {
            // An automatic address whose derived MAC an explicit MAC already
            // holds is passed over, or one squatted MAC would block the
            // whole network.
            let squatted = |a| mac.is_none() && st.mac_taken(&net.id, Mac::from_ipv4(a));
            Some(st.allocate(net, &a4, want, field, squatted)?)
        }
    };
    let field6 = field.replace("ipv4_address", "ipv6_address");
    let address6 = match (net.ipv6, attach.address6) {
        (None, Some(_)) => {
            let why = format!("network {} is IPv4-only; omit the IPv6 address", net.name);
            return Err(Error::invalid(&field6, why));
        }
        (None, None) => None,
        (Some(a6), want) => Some(st.allocate6(net, &a6, want, &field6)?),
    };
    let mac = match (mac, address) {
        (Some(m), _) => m,
        (None, Some(a)) => Mac::from_ipv4(a),
        // 2^46 MACs: a repeat is rare, and bounded by the bridge's ports.
        (None, None) => std::iter::repeat_with(Mac::random_local)
            .find(|m| !st.mac_taken(&net.id, *m))
            .unwrap_or_else(Mac::random_local),
    };
    if st.mac_taken(&net.id, mac) {
        let why = format!("mac_address: {mac} is already in use on network {}", net.name);
        return Err(Error::AlreadyExists(why));
    }
    Ok(Endpoint {
        network_id: net.id.clone(),
        ifname,
        host_ifname: LinkName::for_endpoint(prefix, &rec.id, index),
        mac,
        address,
        address6,
        default_route: !rec.endpoints.iter().any(|e| e.default_route),
        attached: false,
        ports: Vec::new(),
        guarded: net.tenant != rec.tenant,
    })
}

pub(super) fn endpoint_target(rec: &SandboxRecord) -> NetnsTarget {
    match &rec.netns {
        Netns::External(p) => NetnsTarget::External(p.clone()),
        _ => NetnsTarget::Owned(rec.id.clone()),
    }
}
