//! Sandbox operations: create in each mode, delete, connect, disconnect.
use std::path::PathBuf;

use tonic::Status;

use super::firewall;
use super::network::describe;
use super::Ops;
use crate::domain::invalid;
use crate::ports::{self, HostListener};
use crate::domain::sandbox::{AttachSpec, ConnectSpec, DisconnectSpec, ModeSpec, SandboxSpec, MAX_INTERFACES};
use crate::domain::Mac;
use crate::executor::{EndpointArgs, NetnsTarget};
use crate::model::{new_id, now, Endpoint, ModeKind, Netns, Phase, SandboxRecord};
use crate::state::State;

impl Ops {
    pub async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxRecord, Status> {
        // Host mode needs the host pin's path: ask before taking the lock.
        let host = match spec.mode {
            ModeSpec::Host => Some(self.host_netns().await?),
            _ => None,
        };
        let t = std::time::Instant::now();
        let listeners = self.listeners_for(&spec.publish).await?;
        let listeners_us = t.elapsed().as_micros();
        let mut st = self.lock().await;
        let rec = self.decide_sandbox(&st, spec, host, &listeners)?;
        let decided_us = t.elapsed().as_micros();
        if rec.phase == Phase::Ready {
            // host and container modes: no kernel work.
            self.put_sandbox(&mut st, rec.clone()).await?;
            tracing::info!(sandbox = %rec.id, mode = ?rec.mode, "sandbox created");
            return Ok(rec);
        }
        self.put_sandbox(&mut st, rec.clone()).await?;
        st.claim(&rec.id, "sandbox")?;
        drop(st);
        let intent_us = t.elapsed().as_micros();
        let made = self.build_sandbox(&rec).await;
        let kernel_us = t.elapsed().as_micros();
        let out = self.finish_create(rec, made).await;
        tracing::debug!(listeners_us, decided_us, intent_us, kernel_us, total_us = t.elapsed().as_micros(), "create timing");
        out
    }

    /// Decides everything about a new sandbox under the lock: id, namespace,
    /// interfaces and addresses. No side effects.
    fn decide_sandbox(
        &self,
        st: &State,
        spec: SandboxSpec,
        host: Option<PathBuf>,
        listeners: &[HostListener],
    ) -> Result<SandboxRecord, Status> {
        if let Some(name) = &spec.name {
            if let Ok(other) = st.sandbox(name.as_str()) {
                return Err(Status::already_exists(format!("name: sandbox {name:?} already exists ({})", other.id)));
            }
        }
        let id = fresh_sandbox_id(st);
        let mut rec = SandboxRecord {
            id,
            name: spec.name,
            labels: spec.labels,
            mode: ModeKind::Bridge,
            netns: Netns::Owned(PathBuf::new()),
            endpoints: Vec::new(),
            created_at: now(),
            phase: Phase::Creating,
        };
        match spec.mode {
            ModeSpec::Host => {
                rec.mode = ModeKind::Host;
                rec.netns = Netns::Host(host.expect("host pin asked for"));
                rec.phase = Phase::Ready;
            }
            ModeSpec::Container { target } => {
                rec.mode = ModeKind::Container;
                rec.netns = join_target(st, &target)?;
                rec.phase = Phase::Ready;
            }
            ModeSpec::None { netns } => {
                rec.mode = ModeKind::None;
                rec.netns = netns.map(Netns::External).unwrap_or(Netns::Owned(PathBuf::new()));
            }
            ModeSpec::Bridge { networks, netns } => {
                rec.netns = netns.map(Netns::External).unwrap_or(Netns::Owned(PathBuf::new()));
                for (i, attach) in networks.iter().enumerate() {
                    let field = format!("bridge.networks[{i}].ipv4_address");
                    let mac = if i == 0 { spec.mac } else { None };
                    let ep = new_endpoint(st, &self.settings.link_prefix, &rec, attach, mac, &field)?;
                    rec.endpoints.push(ep);
                }
                if !spec.publish.is_empty() {
                    // Ports reach the address on the first network that has a way in.
                    let ep = rec.endpoints.iter().position(|e| !st.networks[&e.network_id].internal).ok_or_else(|| {
                        invalid("publish", "the sandbox is attached only to internal networks, which have no published ports")
                    })?;
                    rec.endpoints[ep].ports = ports::allocate(st, &spec.publish, listeners, self.settings.ephemeral)?;
                }
            }
        }
        Ok(rec)
    }

    /// The kernel work of a create; on failure it undoes what it did.
    async fn build_sandbox(&self, rec: &SandboxRecord) -> Result<PathBuf, Status> {
        let (path, target) = match &rec.netns {
            Netns::External(p) => (p.clone(), NetnsTarget::External(p.clone())),
            _ => (self.exec.create_netns(&rec.id).await?, NetnsTarget::Owned(rec.id.clone())),
        };
        let mut done = if rec.mode == ModeKind::None && matches!(target, NetnsTarget::External(_)) {
            self.exec.setup_loopback(&target).await
        } else {
            Ok(())
        };
        for ep in &rec.endpoints {
            if done.is_err() {
                break;
            }
            done = self.attach_endpoint(rec, ep, &target).await;
        }
        done?;
        self.add_ports(firewall::all_ports(rec)).await?;
        Ok(path)
    }

    pub(super) async fn attach_endpoint(&self, rec: &SandboxRecord, ep: &Endpoint, target: &NetnsTarget) -> Result<(), Status> {
        let net = self.lock().await.networks.get(&ep.network_id).cloned();
        let net = net.ok_or_else(|| Status::not_found(format!("network {} vanished", ep.network_id)))?;
        let args = EndpointArgs {
            netns: target.clone(),
            host_ifname: ep.host_ifname.clone(),
            ifname: ep.ifname.clone(),
            bridge: net.bridge.clone(),
            address: ep.address,
            prefix: net.subnet.prefix,
            gateway: ep.default_route.then_some(net.gateway),
            mac: ep.mac,
            mtu: net.mtu,
            owner: rec.owner_tag(),
            // Reaching its own published ports through the host comes back
            // in on the same bridge port.
            hairpin: !net.internal,
            // A derived MAC comes back with its address, so neighbours'
            // caches stay right; only an explicit one needs announcing
            // (a broadcast every sandbox on the bridge receives).
            announce: ep.mac != Mac::from_ipv4(ep.address),
        };
        self.exec.attach(&args).await
    }

    /// Removes a sandbox's kernel objects, best effort first, then reports
    /// the first failure: every step is idempotent, so a retry finishes it.
    /// A namespace of our own goes first: the kernel then destroys it, and
    /// the veth pairs in it, asynchronously and batched, so endpoints are
    /// only waited for (and deleted explicitly if something still holds the
    /// namespace). An explicit veth delete waits for an RCU grace period
    /// holding RTNL, which every other request queues behind.
    pub(super) async fn teardown(&self, rec: &SandboxRecord) -> Result<(), Status> {
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
            if let Err(e) = self.exec.detach(&ep.host_ifname, grace_ms).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn finish_create(&self, mut rec: SandboxRecord, made: Result<PathBuf, Status>) -> Result<SandboxRecord, Status> {
        let path = match made {
            Ok(p) => p,
            Err(e) => {
                self.roll_back(rec).await;
                return Err(e);
            }
        };
        let mut st = self.lock().await;
        st.release(&rec.id);
        if let Netns::Owned(p) = &mut rec.netns {
            *p = path;
        }
        rec.endpoints.iter_mut().for_each(|e| e.attached = true);
        rec.phase = Phase::Ready;
        self.put_sandbox(&mut st, rec.clone()).await?;
        tracing::info!(sandbox = %rec.id, mode = ?rec.mode, "sandbox created");
        Ok(rec)
    }

    /// Undoes a failed create. If even the undo fails (netexec gone), the
    /// record stays as Deleting and reconciliation finishes it later.
    async fn roll_back(&self, mut rec: SandboxRecord) {
        let undone = self.teardown(&rec).await;
        let mut st = self.lock().await;
        st.release(&rec.id);
        let kept = match undone {
            Ok(()) => self.drop_sandbox(&mut st, &rec.id).await,
            Err(_) => {
                rec.phase = Phase::Deleting;
                self.put_sandbox(&mut st, rec.clone()).await
            }
        };
        if let Err(e) = kept {
            tracing::error!(sandbox = %rec.id, error = %e.message(), "could not record the rollback");
        }
        tracing::warn!(sandbox = %rec.id, "sandbox create failed and was rolled back");
    }

    pub async fn delete_sandbox(&self, reference: &str) -> Result<(), Status> {
        let rec = {
            let mut st = self.lock().await;
            let mut rec = st.sandbox(reference)?.clone();
            let joiners: Vec<String> = st.joiners_of(&rec.id).iter().map(|s| describe(s)).collect();
            if !joiners.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "sandbox {} shares its namespace with {}; delete them first",
                    describe(&rec),
                    joiners.join(", ")
                )));
            }
            st.claim(&rec.id, "sandbox")?;
            rec.phase = Phase::Deleting;
            if let Err(e) = self.put_sandbox(&mut st, rec.clone()).await {
                st.release(&rec.id);
                return Err(e);
            }
            rec
        };
        let gone = self.teardown(&rec).await;
        let mut st = self.lock().await;
        st.release(&rec.id);
        gone?;
        self.drop_sandbox(&mut st, &rec.id).await?;
        tracing::info!(sandbox = %rec.id, "sandbox deleted");
        Ok(())
    }

    pub async fn connect(&self, spec: ConnectSpec) -> Result<SandboxRecord, Status> {
        let listeners = self.listeners_for(&spec.publish).await?;
        let (rec, ep) = {
            let mut st = self.lock().await;
            let mut rec = ready_bridge_sandbox(&st, &spec.sandbox)?;
            let mut ep = new_endpoint(&st, &self.settings.link_prefix, &rec, &spec.attach, None, "ipv4_address")?;
            if !spec.publish.is_empty() {
                if st.networks[&ep.network_id].internal {
                    return Err(invalid("publish", "the network is internal and has no published ports"));
                }
                ep.ports = ports::allocate(&st, &spec.publish, &listeners, self.settings.ephemeral)?;
            }
            st.claim(&rec.id, "sandbox")?;
            rec.endpoints.push(ep.clone());
            if let Err(e) = self.put_sandbox(&mut st, rec.clone()).await {
                st.release(&rec.id);
                return Err(e);
            }
            (rec, ep)
        };
        let target = endpoint_target(&rec);
        let mut done = self.attach_endpoint(&rec, &ep, &target).await;
        if done.is_ok() {
            done = self.add_ports(firewall::ports_of(&rec, &ep)).await;
        }
        // A failed attach is undone; if the undo fails too, the endpoint stays
        // recorded as not attached and reconciliation removes it.
        let undone = match &done {
            Ok(()) => false,
            Err(_) => {
                let ports = self.remove_ports(firewall::ports_of(&rec, &ep)).await;
                ports.is_ok() && self.exec.detach(&ep.host_ifname, 0).await.is_ok()
            }
        };
        let mut st = self.lock().await;
        st.release(&rec.id);
        let mut rec = st.sandbox(&rec.id)?.clone();
        match done {
            Ok(()) => rec.endpoints.iter_mut().filter(|e| e.ifname == ep.ifname).for_each(|e| e.attached = true),
            Err(_) if undone => rec.endpoints.retain(|e| e.ifname != ep.ifname),
            Err(_) => {}
        }
        self.put_sandbox(&mut st, rec.clone()).await?;
        done.map(|()| rec)
    }

    pub async fn disconnect(&self, spec: DisconnectSpec) -> Result<SandboxRecord, Status> {
        let (rec, ep) = {
            let mut st = self.lock().await;
            let rec = ready_bridge_sandbox(&st, &spec.sandbox)?;
            let net = st.network(&spec.network)?;
            let ep = rec.endpoints.iter().find(|e| e.network_id == net.id).cloned().ok_or_else(|| {
                Status::not_found(format!("sandbox {} is not connected to network {}", describe(&rec), net.name))
            })?;
            st.claim(&rec.id, "sandbox")?;
            (rec, ep)
        };
        let mut gone = self.remove_ports(firewall::ports_of(&rec, &ep)).await;
        if gone.is_ok() {
            gone = self.exec.detach(&ep.host_ifname, 0).await;
        }
        let mut st = self.lock().await;
        st.release(&rec.id);
        gone?;
        let mut rec = st.sandbox(&rec.id)?.clone();
        rec.endpoints.retain(|e| e.ifname != ep.ifname);
        self.put_sandbox(&mut st, rec.clone()).await?;
        Ok(rec)
    }
}

/// How long a deleted sandbox's veths may take to vanish with its namespace
/// before they are deleted explicitly.
const NETNS_TEARDOWN_GRACE_MS: u32 = 1000;

/// A new id whose first ten hex digits are unique: they name the host ends
/// of its veth pairs.
fn fresh_sandbox_id(st: &State) -> String {
    loop {
        let id = new_id();
        if !st.sandboxes.keys().any(|k| k[..10] == id[..10]) {
            return id;
        }
    }
}

fn join_target(st: &State, target: &str) -> Result<Netns, Status> {
    let t = st.sandbox(target).map_err(|_| Status::not_found(format!("container.target: sandbox {target:?} does not exist")))?;
    if let Netns::Joined { target: root, .. } = &t.netns {
        return Err(Status::failed_precondition(format!(
            "container.target: sandbox {} itself shares the namespace of {root}; join {root} instead",
            describe(t)
        )));
    }
    if t.phase != Phase::Ready {
        return Err(Status::failed_precondition(format!("container.target: sandbox {} is not ready ({:?})", describe(t), t.phase)));
    }
    Ok(Netns::Joined { target: t.id.clone(), path: t.netns.path().clone() })
}

fn ready_bridge_sandbox(st: &State, reference: &str) -> Result<SandboxRecord, Status> {
    let rec = st.sandbox(reference)?;
    if rec.mode != ModeKind::Bridge {
        return Err(Status::failed_precondition(format!(
            "sandbox {} is in {:?} mode; only bridge-mode sandboxes connect to networks",
            describe(rec),
            rec.mode
        )));
    }
    if rec.phase != Phase::Ready {
        return Err(Status::failed_precondition(format!("sandbox {} is not ready ({:?})", describe(rec), rec.phase)));
    }
    Ok(rec.clone())
}

/// Picks the interface name, address and MAC of a new interface of `rec`.
fn new_endpoint(st: &State, prefix: &str, rec: &SandboxRecord, attach: &AttachSpec, mac: Option<Mac>, field: &str) -> Result<Endpoint, Status> {
    let net = st.network(&attach.network)?;
    if net.phase != Phase::Ready {
        return Err(Status::failed_precondition(format!("network {} is not ready ({:?})", net.name, net.phase)));
    }
    if rec.endpoints.iter().any(|e| e.network_id == net.id) {
        return Err(Status::already_exists(format!("sandbox {} is already connected to network {}", describe(rec), net.name)));
    }
    let index = (0..MAX_INTERFACES)
        .find(|i| !rec.endpoints.iter().any(|e| e.ifname == format!("eth{i}")))
        .ok_or_else(|| Status::resource_exhausted(format!("sandbox {} already has {MAX_INTERFACES} interfaces", describe(rec))))?;
    let address = st.allocate(net, attach.address, field)?;
    let mac = mac.unwrap_or_else(|| Mac::from_ipv4(address));
    let holder = st.sandboxes.values().flat_map(|s| &s.endpoints).find(|e| e.network_id == net.id && e.mac == mac);
    if holder.is_some() {
        return Err(Status::already_exists(format!("mac_address: {mac} is already in use on network {}", net.name)));
    }
    Ok(Endpoint {
        network_id: net.id.clone(),
        ifname: format!("eth{index}"),
        host_ifname: format!("{prefix}v{}{index:x}", &rec.id[..10]),
        mac,
        address,
        default_route: !rec.endpoints.iter().any(|e| e.default_route),
        attached: false,
        ports: Vec::new(),
    })
}

pub(super) fn endpoint_target(rec: &SandboxRecord) -> NetnsTarget {
    match &rec.netns {
        Netns::External(p) => NetnsTarget::External(p.clone()),
        _ => NetnsTarget::Owned(rec.id.clone()),
    }
}
