//! A fake executor for tests: an in-memory model of the kernel objects
//! netexec owns, with the real one's semantics (idempotent repeats, deletes
//! of what is gone succeed, the same refusals; the contract suite holds both
//! to it), failure injection and call recording.
//!
//! Faults are injected per call: "the Nth call of this kind from now"
//! fails, fails after it took effect (a lost reply), hangs before or after
//! taking effect (until `release`), or finds netexec unreachable.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{watch, Notify};

use crate::domain::{LinkName, SandboxId};
use crate::error::{Error, Refusal, Result};
use crate::executor::*;
use crate::model::Owner;

/// The executor's operations, for faults and the call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Ping,
    EnsureBridge,
    DeleteBridge,
    CreateNetns,
    DeleteNetns,
    SetupLoopback,
    Attach,
    Detach,
    Unplug,
    Retag,
    UpdateFirewall,
    SyncFirewall,
    ListListeners,
    HostRoutes,
    Inventory,
    InspectNetns,
}

impl Op {
    /// Operations that change the kernel.
    pub const MUTATING: [Op; 10] = [
        Op::EnsureBridge,
        Op::DeleteBridge,
        Op::CreateNetns,
        Op::DeleteNetns,
        Op::SetupLoopback,
        Op::Attach,
        Op::Detach,
        Op::Unplug,
        Op::Retag,
        Op::UpdateFirewall,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused, nothing done.
    Fail,
    /// Done, but the reply is lost (the caller sees "unavailable").
    FailAfter,
    /// Waits for `release`, then is done.
    Hang,
    /// Done, then waits for `release`.
    HangAfter,
    /// netexec unreachable, nothing done.
    Unavailable,
}

struct Rule {
    /// None: any operation.
    op: Option<Op>,
    /// Matching calls still to pass before this one faults.
    skip: usize,
    fault: Fault,
}

/// The kernel as the fake sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kernel {
    pub bridges: BTreeMap<String, BridgeArgs>,
    pub netns: BTreeSet<SandboxId>,
    /// Namespaces a "runtime" pinned: the only valid netns_paths.
    pub external: BTreeSet<PathBuf>,
    /// Veth pairs by host end.
    pub endpoints: BTreeMap<String, EndpointArgs>,
    /// Host ends taken off their bridge (still there, passing nothing).
    pub unplugged: BTreeSet<String>,
    pub fw_networks: HashSet<FirewallNetwork>,
    pub fw_ports: HashSet<FirewallPort>,
    pub fw_guards: HashSet<FirewallGuard>,
    pub listeners: Vec<HostListener>,
    /// The host's addresses and routes, as a test sets them.
    pub host: HostRoutes,
}

#[derive(Default)]
struct Inner {
    kernel: Kernel,
    rules: Vec<Rule>,
    calls: Vec<Op>,
    down: bool,
    host_pin: Option<PathBuf>,
}

pub struct FakeExecutor {
    inner: Mutex<Inner>,
    release: Notify,
    /// How many calls have reached a hang so far.
    hangs: watch::Sender<usize>,
}

impl Default for FakeExecutor {
    fn default() -> Self {
        let inner =
            Inner { host_pin: Some(PathBuf::from("/fake/netns/host")), ..Default::default() };
        Self { inner: Mutex::new(inner), release: Notify::new(), hangs: watch::channel(0).0 }
    }
}

fn refused(kind: Refusal, message: impl Into<String>) -> Error {
    Error::ExecutorRefused { kind, message: message.into() }
}

/// netexec's answer for a link that is not the requester's.
fn not_this_objects(name: &LinkName, kind: &str) -> Error {
    refused(Refusal::Precondition, format!("link {name} exists and is not this object's {kind}"))
}

fn pin_path(id: &SandboxId) -> PathBuf {
    PathBuf::from(format!("/fake/netns/{id}"))
}

impl FakeExecutor {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `nth` (1-based) call of `op` (None: of any operation) from now
    /// gets `fault`.
    pub fn inject(&self, op: Option<Op>, nth: usize, fault: Fault) {
        self.inner().rules.push(Rule { op, skip: nth.saturating_sub(1), fault });
    }

    pub fn clear_faults(&self) {
        self.inner().rules.clear();
    }

    /// netexec unreachable (every call) or back.
    pub fn set_down(&self, down: bool) {
        self.inner().down = down;
    }

    /// The join-only profile pins nothing, so host mode has no pin.
    pub fn set_host_pin(&self, pin: Option<PathBuf>) {
        self.inner().host_pin = pin;
    }

    /// Lets every call waiting in a hang go on.
    pub fn release(&self) {
        self.release.notify_waiters();
    }

    /// How many calls have reached a hang so far.
    pub fn hangs(&self) -> usize {
        *self.hangs.borrow()
    }

    /// Waits until `n` calls in all have reached a hang.
    pub async fn hung(&self, n: usize) {
        let mut rx = self.hangs.subscribe();
        let _ = rx.wait_for(|h| *h >= n).await;
    }

    pub fn calls(&self) -> Vec<Op> {
        self.inner().calls.clone()
    }

    pub fn count(&self, op: Op) -> usize {
        self.inner().calls.iter().filter(|c| **c == op).count()
    }

    pub fn kernel(&self) -> Kernel {
        self.inner().kernel.clone()
    }

    /// Changes the kernel behind ctnet's back (a test's "operator").
    pub fn tamper(&self, f: impl FnOnce(&mut Kernel)) {
        f(&mut self.inner().kernel)
    }

    /// Records the call; says which fault it gets, if any.
    fn enter(&self, op: Op) -> Option<Fault> {
        let mut inner = self.inner();
        inner.calls.push(op);
        if inner.down {
            return Some(Fault::Unavailable);
        }
        // Every matching rule counts this call; the first one due fires.
        let mut hit = None;
        for (i, r) in inner.rules.iter_mut().enumerate() {
            if r.op.is_some_and(|o| o != op) {
                continue;
            }
            match r.skip {
                0 if hit.is_none() => hit = Some((i, r.fault)),
                0 => {}
                _ => r.skip -= 1,
            }
        }
        let (i, fault) = hit?;
        inner.rules.remove(i);
        Some(fault)
    }

    async fn hang(&self) {
        let released = self.release.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        self.hangs.send_modify(|h| *h += 1);
        released.await;
    }

    fn effect<T>(&self, f: impl FnOnce(&mut Kernel) -> Result<T>) -> Result<T> {
        f(&mut self.inner().kernel)
    }

    async fn call<T>(&self, op: Op, f: impl FnOnce(&mut Kernel) -> Result<T>) -> Result<T> {
        let unavailable = || Error::ExecutorUnavailable(format!("fake: {op:?} injected"));
        match self.enter(op) {
            None => self.effect(f),
            Some(Fault::Fail) => {
                Err(refused(Refusal::Internal, format!("fake: {op:?} failed (injected)")))
            }
            Some(Fault::Unavailable) => Err(unavailable()),
            Some(Fault::FailAfter) => self.effect(f).and(Err(unavailable())),
            Some(Fault::Hang) => {
                self.hang().await;
                self.effect(f)
            }
            Some(Fault::HangAfter) => {
                let done = self.effect(f);
                self.hang().await;
                done
            }
        }
    }
}

impl Kernel {
    /// Refused unless the link is absent or `owner`'s veth.
    fn own_veth(&self, name: &LinkName, owner: &Owner) -> Result<()> {
        let theirs = self.endpoints.get(name.as_str()).is_some_and(|e| &e.owner != owner);
        if theirs || self.bridges.contains_key(name.as_str()) {
            return Err(not_this_objects(name, "veth"));
        }
        Ok(())
    }

    fn netns_exists(&self, t: &NetnsTarget) -> Result<()> {
        match t {
            NetnsTarget::Owned(id) if self.netns.contains(id) => Ok(()),
            NetnsTarget::Owned(id) => {
                Err(refused(Refusal::NotFound, format!("network namespace {id} does not exist")))
            }
            NetnsTarget::External(p) if self.external.contains(p) => Ok(()),
            NetnsTarget::External(_) => {
                Err(refused(Refusal::Invalid, "netns.external_path: not a network namespace"))
            }
        }
    }

    /// The same key with other data is refused, as nft refuses it.
    fn add_port(&mut self, p: &FirewallPort) -> Result<()> {
        let same_key = |q: &FirewallPort| {
            (q.proto, q.host_ip, q.host_port) == (p.proto, p.host_ip, p.host_port) && q != p
        };
        if self.fw_ports.iter().any(same_key) {
            return Err(refused(Refusal::Internal, "nft: Could not process rule: File exists"));
        }
        self.fw_ports.insert(p.clone());
        Ok(())
    }
}

#[tonic::async_trait]
impl Executor for FakeExecutor {
    async fn ping(&self) -> Result<PingInfo> {
        let host_netns = self.inner().host_pin.clone();
        self.call(Op::Ping, |_| Ok(PingInfo { host_netns, instance: 1, drift_repairs: 0 })).await
    }

    async fn ensure_bridge(&self, b: &BridgeArgs) -> Result<()> {
        self.call(Op::EnsureBridge, |k| {
            let theirs = k.bridges.get(b.name.as_str()).is_some_and(|x| x.owner != b.owner);
            if k.endpoints.contains_key(b.name.as_str()) || theirs {
                return Err(not_this_objects(&b.name, "bridge"));
            }
            k.bridges.entry(b.name.to_string()).or_insert_with(|| b.clone());
            Ok(())
        })
        .await
    }

    async fn delete_bridge(&self, name: &LinkName, owner: &Owner) -> Result<()> {
        self.call(Op::DeleteBridge, |k| {
            let theirs = k.bridges.get(name.as_str()).is_some_and(|b| &b.owner != owner);
            if theirs || k.endpoints.contains_key(name.as_str()) {
                return Err(not_this_objects(name, "bridge"));
            }
            k.bridges.remove(name.as_str());
            Ok(())
        })
        .await
    }

    async fn create_netns(&self, sandbox: &SandboxId) -> Result<PathBuf> {
        self.call(Op::CreateNetns, |k| {
            k.netns.insert(sandbox.clone());
            Ok(pin_path(sandbox))
        })
        .await
    }

    /// The namespace goes, and with it the veths in it.
    async fn delete_netns(&self, sandbox: &SandboxId) -> Result<()> {
        self.call(Op::DeleteNetns, |k| {
            k.netns.remove(sandbox);
            k.endpoints.retain(|_, e| e.netns != NetnsTarget::Owned(sandbox.clone()));
            Ok(())
        })
        .await
    }

    async fn setup_loopback(&self, netns: &NetnsTarget) -> Result<()> {
        self.call(Op::SetupLoopback, |k| k.netns_exists(netns)).await
    }

    async fn attach(&self, e: &EndpointArgs) -> Result<()> {
        self.call(Op::Attach, |k| {
            k.netns_exists(&e.netns)?;
            if !k.bridges.contains_key(e.bridge.as_str()) {
                return Err(refused(
                    Refusal::NotFound,
                    format!("bridge {} does not exist", e.bridge),
                ));
            }
            let theirs =
                k.endpoints.get(e.host_ifname.as_str()).is_some_and(|x| x.owner != e.owner);
            if k.bridges.contains_key(e.host_ifname.as_str()) || theirs {
                return Err(not_this_objects(&e.host_ifname, "veth"));
            }
            // What ctnet must never cause: one address on two interfaces of
            // one bridge (a real kernel would take it, and both would answer).
            let ips = |x: &EndpointArgs| {
                [x.address.map(|(a, _)| IpAddr::V4(a)), x.address6.map(|(a, _)| IpAddr::V6(a))]
            };
            let mine = ips(e);
            let twice = k
                .endpoints
                .values()
                .filter(|x| x.host_ifname != e.host_ifname && x.bridge == e.bridge)
                .flat_map(ips)
                .flatten()
                .find(|a| mine.contains(&Some(*a)));
            if let Some(a) = twice {
                let why = format!("{a} is already on another veth of bridge {}", e.bridge);
                return Err(refused(Refusal::Precondition, why));
            }
            k.endpoints.insert(e.host_ifname.to_string(), e.clone());
            Ok(())
        })
        .await
    }

    async fn detach(&self, host_ifname: &LinkName, owner: &Owner, _grace_ms: u32) -> Result<()> {
        self.call(Op::Detach, |k| {
            k.own_veth(host_ifname, owner)?;
            k.endpoints.remove(host_ifname.as_str());
            k.unplugged.remove(host_ifname.as_str());
            Ok(())
        })
        .await
    }

    async fn unplug(&self, host_ifname: &LinkName, owner: &Owner) -> Result<()> {
        self.call(Op::Unplug, |k| {
            k.own_veth(host_ifname, owner)?;
            if k.endpoints.contains_key(host_ifname.as_str()) {
                k.unplugged.insert(host_ifname.to_string());
            }
            Ok(())
        })
        .await
    }

    async fn retag(&self, name: &LinkName, kind: LinkKind, from: &Owner, to: &Owner) -> Result<()> {
        self.call(Op::Retag, |k| {
            let exists =
                k.bridges.contains_key(name.as_str()) || k.endpoints.contains_key(name.as_str());
            let tag = match kind {
                LinkKind::Bridge => k.bridges.get_mut(name.as_str()).map(|b| &mut b.owner),
                LinkKind::Veth => k.endpoints.get_mut(name.as_str()).map(|e| &mut e.owner),
                LinkKind::Other => None,
            };
            match tag {
                Some(t) if t == from => {
                    *t = to.clone();
                    Ok(())
                }
                _ if exists => Err(not_this_objects(name, "link")),
                _ => Err(refused(Refusal::NotFound, format!("link {name} does not exist"))),
            }
        })
        .await
    }

    async fn update_firewall(&self, d: &FirewallDelta) -> Result<()> {
        self.call(Op::UpdateFirewall, |k| {
            // One transaction: all or nothing.
            let mut next = k.clone();
            // netexec sets each new network's bridge sysctls.
            if let Some(n) =
                d.add_networks.iter().find(|n| !k.bridges.contains_key(n.bridge.as_str()))
            {
                let why =
                    format!("write route_localnet of {}: No such file or directory", n.bridge);
                return Err(refused(Refusal::Internal, why));
            }
            next.fw_networks.extend(d.add_networks.iter().cloned());
            for p in &d.add_ports {
                next.add_port(p)?;
            }
            d.remove_networks.iter().for_each(|n| {
                next.fw_networks.remove(n);
            });
            d.remove_ports.iter().for_each(|p| {
                next.fw_ports.remove(p);
            });
            d.remove_guards.iter().for_each(|g| {
                next.fw_guards.remove(g);
            });
            next.fw_guards.extend(d.add_guards.iter().cloned());
            *k = next;
            Ok(())
        })
        .await
    }

    async fn sync_firewall(&self, t: &FirewallTable) -> Result<()> {
        self.call(Op::SyncFirewall, |k| {
            k.fw_networks = t.networks.iter().cloned().collect();
            k.fw_ports.clear();
            k.fw_guards = t.guards.iter().cloned().collect();
            t.ports.iter().try_for_each(|p| k.add_port(p))
        })
        .await
    }

    async fn list_listeners(&self) -> Result<Vec<HostListener>> {
        self.call(Op::ListListeners, |k| Ok(k.listeners.clone())).await
    }

    async fn host_routes(&self) -> Result<HostRoutes> {
        self.call(Op::HostRoutes, |k| Ok(k.host.clone())).await
    }

    async fn inventory(&self) -> Result<Inventory> {
        self.call(Op::Inventory, |k| {
            let bridges = k.bridges.values().map(|b| TaggedLink {
                name: b.name.to_string(),
                owner: b.owner.clone(),
                kind: LinkKind::Bridge,
                master: String::new(),
            });
            let veths = k.endpoints.values().map(|e| TaggedLink {
                name: e.host_ifname.to_string(),
                owner: e.owner.clone(),
                kind: LinkKind::Veth,
                master: if k.bridges.contains_key(e.bridge.as_str())
                    && !k.unplugged.contains(e.host_ifname.as_str())
                {
                    e.bridge.to_string()
                } else {
                    String::new()
                },
            });
            let links = bridges.chain(veths).collect();
            Ok(Inventory { links, pins: k.netns.iter().cloned().collect() })
        })
        .await
    }

    async fn inspect_netns(&self, netns: &NetnsTarget) -> Result<NetnsView> {
        self.call(Op::InspectNetns, |k| {
            k.netns_exists(netns)?;
            let inside: Vec<&EndpointArgs> =
                k.endpoints.values().filter(|e| &e.netns == netns).collect();
            Ok(NetnsView {
                interfaces: inside
                    .iter()
                    .map(|e| InterfaceView {
                        name: e.ifname.clone(),
                        addresses: (e.address.map(|(a, p)| format!("{a}/{p}")).into_iter())
                            .chain(e.address6.map(|(a, p)| format!("{a}/{p}")))
                            .collect(),
                        up: true,
                    })
                    .collect(),
                default_gateway: inside.iter().find_map(|e| e.gateway),
                default_gateway6: inside.iter().find_map(|e| e.gateway6),
            })
        })
        .await
    }
}

/// Whose the fake's objects are, for invariant checks.
pub fn owners(k: &Kernel) -> Vec<Owner> {
    let links = k
        .bridges
        .values()
        .map(|b| b.owner.clone())
        .chain(k.endpoints.values().map(|e| e.owner.clone()));
    links.chain(k.fw_ports.iter().map(|p| p.owner.clone())).collect()
}
