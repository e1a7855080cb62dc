//! api-server's operations against the fake executor: no root, no daemon,
//! milliseconds per test. `Env` is one api-server (operations, a real redb
//! store in a temporary directory) over one fake kernel; `agree` checks
//! that records, store and fake kernel say the same.
mod cancel;
mod faults;
mod host;
mod identity;
mod model;
mod ops;
mod release;
mod tenants;

use crate::policy::Caller;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use ctnet_proto::v1 as pb;

use crate::domain::network::NetworkSpec;
use crate::domain::sandbox::{ConnectSpec, DisconnectSpec, SandboxSpec};
use crate::domain::{LinkName, Ref, Subnet};
use crate::error::Result;
use crate::executor::{Executor, FirewallGuard, FirewallNetwork, FirewallPort};
use crate::fake::{FakeExecutor, Kernel};
use crate::limits::Limits;
use crate::model::{Netns, Phase, SandboxRecord};
use crate::ops::{firewall, Ops, Settings};
use crate::ports::EphemeralRange;
use crate::store::Store;

pub const PREFIX: &str = "ct";

pub struct Env {
    pub ops: Arc<Ops>,
    pub fake: Arc<FakeExecutor>,
    dir: TempDir,
}

/// The store's directory, removed with the test.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn settings() -> Settings {
    Settings {
        link_prefix: PREFIX.into(),
        default_subnet: Some(Subnet { base: "198.18.0.0".parse().unwrap(), prefix: 16 }),
        allow_host_overlap: false,
        foreign: crate::ops::identity::Foreign::Refuse,
        default_bridge: LinkName::parse("b", "ct0", PREFIX).unwrap(),
        ephemeral: EphemeralRange(49153, 49160),
        release_vanished_after: std::time::Duration::ZERO,
        limits: Limits { bridge_ports: 8, ..Limits::default() },
    }
}

impl Env {
    /// A fresh api-server with the default network made.
    pub async fn new() -> Env {
        Self::with_limits(settings().limits).await
    }

    pub async fn with_limits(limits: Limits) -> Env {
        Self::with_settings(Settings { limits, ..settings() }, |_| {}).await
    }

    /// With these settings, on a fake kernel prepared by `host` (its
    /// addresses and routes, say) before the first reconciliation.
    pub async fn with_settings(settings: Settings, host: impl FnOnce(&mut Kernel)) -> Env {
        let env = Self::unreconciled(settings, host).await;
        env.ops.reconcile().await.expect("first reconciliation");
        env
    }

    /// Opened, with no reconciliation yet (no default network either).
    pub async fn unreconciled(settings: Settings, host: impl FnOnce(&mut Kernel)) -> Env {
        let dir = std::env::temp_dir().join(format!("ctnet-unit-{:016x}", rand::random::<u64>()));
        let fake = Arc::new(FakeExecutor::default());
        fake.tamper(host);
        let ops = Self::open(&dir, fake.clone(), settings).await;
        Env { ops, fake, dir: TempDir(dir) }
    }

    async fn open(dir: &std::path::Path, fake: Arc<FakeExecutor>, settings: Settings) -> Arc<Ops> {
        let store = Store::open(dir).expect("open store");
        let exec: Arc<dyn Executor> = fake;
        crate::open(store, exec, settings).await.expect("open")
    }

    /// api-server restarted on the same store and kernel: the old
    /// process's claims and tasks die with it.
    pub async fn restart(self) -> Env {
        let Env { ops, fake, dir } = self;
        let settings = ops.settings().clone();
        drop(ops);
        let ops = Self::open(&dir.0, fake.clone(), settings).await;
        Env { ops, fake, dir }
    }

    pub async fn sandbox(&self, req: pb::CreateSandboxRequest) -> Result<SandboxRecord> {
        let spec = SandboxSpec::parse(&req)?;
        self.ops.spawn(|ops| async move { ops.create_sandbox(&Caller::admin(), spec).await }).await
    }

    pub async fn bridge(&self, name: &str, publish: &[&str]) -> Result<SandboxRecord> {
        self.sandbox(bridge_req(name, publish)).await
    }

    pub async fn network(&self, name: &str, subnet: &str) -> Result<crate::model::NetworkRecord> {
        let req = pb::CreateNetworkRequest {
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        };
        self.network_from(req).await
    }

    /// A network without IPv4.
    pub async fn ipv6_only(
        &self,
        name: &str,
        subnet6: &str,
    ) -> Result<crate::model::NetworkRecord> {
        let req = pb::CreateNetworkRequest {
            name: name.into(),
            ipv6_subnet: Some(subnet6.into()),
            enable_ipv4: Some(false),
            ..Default::default()
        };
        self.network_from(req).await
    }

    pub async fn network_from(
        &self,
        req: pb::CreateNetworkRequest,
    ) -> Result<crate::model::NetworkRecord> {
        let spec = NetworkSpec::parse(&req, PREFIX)?;
        self.ops.spawn(|ops| async move { ops.create_network(&Caller::admin(), spec).await }).await
    }

    pub async fn delete(&self, r: &str) -> Result<()> {
        let r = Ref::parse("sandbox", r)?;
        self.ops.spawn(|ops| async move { ops.delete_sandbox(&Caller::admin(), &r).await }).await
    }

    pub async fn delete_network(&self, r: &str) -> Result<()> {
        let r = Ref::parse("network", r)?;
        self.ops.spawn(|ops| async move { ops.delete_network(&Caller::admin(), &r).await }).await
    }

    pub async fn connect(
        &self,
        sandbox: &str,
        network: &str,
        publish: &[&str],
    ) -> Result<SandboxRecord> {
        let req = pb::ConnectRequest {
            sandbox: sandbox.into(),
            network: network.into(),
            publish: publish.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        let spec = ConnectSpec::parse(&req)?;
        self.ops.spawn(|ops| async move { ops.connect(&Caller::admin(), spec).await }).await
    }

    pub async fn disconnect(&self, sandbox: &str, network: &str) -> Result<SandboxRecord> {
        let req = pb::DisconnectRequest { sandbox: sandbox.into(), network: network.into() };
        let spec = DisconnectSpec::parse(&req)?;
        self.ops.spawn(|ops| async move { ops.disconnect(&Caller::admin(), spec).await }).await
    }

    /// Faults cleared, hangs released, every operation task ended, one
    /// periodic reconciliation run.
    pub async fn settle(&self) {
        self.fake.clear_faults();
        self.fake.release();
        self.idle(true).await;
        assert_eq!(self.ops.in_flight(), 0, "an operation task still runs");
        assert_eq!(self.ops.claims().count(), 0, "claims still held after every task ended");
        self.ops.finish_interrupted().await.expect("periodic reconciliation");
    }

    /// Records, store and fake kernel agree; nothing is transient or
    /// claimed; no address, MAC or host port is held twice.
    /// Waits until no operation task runs and no claim is held (background
    /// releases hold theirs), releasing hung calls if `release`. Store
    /// commits run on blocking threads: waits in time, not in yields.
    pub async fn idle(&self, release: bool) {
        for _ in 0..10_000 {
            if self.ops.in_flight() == 0 && self.ops.claims().count() == 0 {
                break;
            }
            if release {
                self.fake.release();
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    pub async fn agree(&self) {
        self.idle(false).await;
        assert_eq!(self.ops.claims().count(), 0, "a claim is held");
        let st = self.ops.lock().await;
        for s in st.sandboxes.values() {
            assert!(
                matches!(s.phase, Phase::Ready | Phase::Failed(_)),
                "sandbox {s} is {:?}",
                s.phase
            );
            assert!(
                s.endpoints.iter().all(|e| e.attached),
                "sandbox {s} has an unattached endpoint"
            );
        }
        for n in st.networks.values() {
            assert_eq!(n.phase, Phase::Ready, "network {} is {:?}", n.name, n.phase);
        }
        no_duplicates(&st);
        let k = self.fake.kernel();
        let names = |it: &mut dyn Iterator<Item = String>| it.collect::<BTreeSet<_>>();
        let bridges = names(&mut st.networks.values().map(|n| n.bridge.to_string()));
        assert_eq!(names(&mut k.bridges.keys().cloned()), bridges, "bridges");
        let pins: BTreeSet<_> = st
            .sandboxes
            .values()
            .filter(|s| matches!(s.netns, Netns::Owned(_)))
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(k.netns, pins, "namespaces");
        let ready = || st.sandboxes.values().filter(|s| s.phase == Phase::Ready);
        let veths =
            names(&mut ready().flat_map(|s| s.endpoints.iter().map(|e| e.host_ifname.to_string())));
        assert_eq!(names(&mut k.endpoints.keys().cloned()), veths, "endpoints");
        let ports: HashSet<FirewallPort> = ready().flat_map(firewall::all_ports).collect();
        assert_eq!(k.fw_ports, ports, "published ports");
        let guards: HashSet<FirewallGuard> =
            ready().flat_map(|s| s.endpoints.iter().filter_map(|e| e.guard(s))).collect();
        assert_eq!(k.fw_guards, guards, "anti-spoofing guards");
        let nets: HashSet<FirewallNetwork> = st.networks.values().map(firewall::network).collect();
        assert_eq!(k.fw_networks, nets, "firewall networks");
        // The store says what memory says.
        let (sn, ss) = self.ops.store().load().unwrap();
        let json = |v: &dyn erased::Json| v.json();
        let mem_n: Vec<_> = st.networks.values().cloned().collect();
        let mem_s: Vec<_> = st.sandboxes.values().cloned().collect();
        assert_eq!(json(&sn), json(&mem_n), "store networks");
        assert_eq!(json(&ss), json(&mem_s), "store sandboxes");
    }
}

/// Comparing records through their JSON form (they hold no PartialEq).
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for Vec<T> {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

/// No address, MAC or host port held twice.
pub fn no_duplicates(st: &crate::state::State) {
    let mut addrs = HashSet::new();
    let mut macs = HashSet::new();
    let mut ports: Vec<&crate::model::PublishedPort> = Vec::new();
    for s in st.sandboxes.values() {
        for e in &s.endpoints {
            let ips = [e.address.map(std::net::IpAddr::V4), e.address6.map(std::net::IpAddr::V6)];
            for a in ips.into_iter().flatten() {
                assert!(addrs.insert((e.network_id.clone(), a)), "address {a} held twice");
            }
            assert!(macs.insert((e.network_id.clone(), e.mac)), "MAC {} held twice", e.mac);
            for p in &e.ports {
                let clash =
                    ports.iter().any(|q| q.clashes(p.proto, p.family, p.host_ip, p.host_port));
                assert!(!clash, "host port {} held twice", p.host_port);
                ports.push(p);
            }
        }
    }
}

pub fn bridge_req(name: &str, publish: &[&str]) -> pb::CreateSandboxRequest {
    pb::CreateSandboxRequest {
        name: (!name.is_empty()).then(|| name.to_string()),
        publish: publish.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}
