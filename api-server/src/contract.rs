//! The executor contract: what api-server relies on from any executor.
//! The same cases run against the fake (api-server's unit tests) and the
//! real netexec (tests/tests/executor.rs, as root in a test namespace), so
//! the fake can never pass a case the real one fails.
use std::net::Ipv4Addr;

use crate::domain::{GatewayMode, LinkName, Mac, NetworkId, SandboxId, StoreId, Subnet};
use crate::error::{Error, Refusal};
use crate::executor::*;
use crate::model::Owner;

/// The names and addresses one run of the suite uses.
pub struct Fixture {
    pub bridge: LinkName,
    pub network: NetworkId,
    pub sandbox: SandboxId,
    pub host_ifname: LinkName,
    pub subnet: Subnet,
    /// The store whose objects these are.
    pub store: StoreId,
}

impl Fixture {
    /// Objects named with `prefix` in 198.19.`octet`.0/24.
    pub fn new(prefix: &str, octet: u8) -> Self {
        let network = NetworkId::random();
        let sandbox = SandboxId::random();
        Self {
            bridge: LinkName::for_network(prefix, &network),
            host_ifname: LinkName::for_endpoint(prefix, &sandbox, 0),
            network,
            sandbox,
            subnet: Subnet { base: Ipv4Addr::new(198, 19, octet, 0), prefix: 24 },
            store: StoreId::random(),
        }
    }

    pub fn network_owner(&self) -> Owner {
        Owner::Network(self.network.clone(), Some(self.store.clone()))
    }

    pub fn sandbox_owner(&self) -> Owner {
        Owner::Sandbox(self.sandbox.clone(), Some(self.store.clone()))
    }

    fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.base) + n)
    }

    pub fn bridge_args(&self) -> BridgeArgs {
        BridgeArgs {
            name: self.bridge.clone(),
            address: Some((self.host(1), self.subnet.prefix)),
            address6: None,
            mtu: 1500,
            owner: self.network_owner(),
            adopt_untagged: false,
        }
    }

    pub fn endpoint_args(&self) -> EndpointArgs {
        EndpointArgs {
            netns: NetnsTarget::Owned(self.sandbox.clone()),
            host_ifname: self.host_ifname.clone(),
            ifname: "eth0".into(),
            bridge: self.bridge.clone(),
            address: Some((self.host(2), self.subnet.prefix)),
            gateway: Some(self.host(1)),
            address6: None,
            gateway6: None,
            mac: Mac::from_ipv4(self.host(2)),
            mtu: 1500,
            owner: self.sandbox_owner(),
            hairpin: true,
            announce: false,
        }
    }

    pub fn port(&self) -> FirewallPort {
        FirewallPort {
            proto: crate::domain::ports::Proto::Tcp,
            host_ip: None,
            host_port: 7070,
            target_ip: self.host(2).into(),
            target_port: 80,
            owner: Owner::Sandbox(self.sandbox.clone(), None),
            routed: false,
        }
    }

    pub fn guard(&self) -> FirewallGuard {
        FirewallGuard {
            link: self.host_ifname.clone(),
            mac: Mac::from_ipv4(self.host(2)),
            ip: Some(self.host(2)),
            ip6: None,
            owner: Owner::Sandbox(self.sandbox.clone(), None),
        }
    }

    pub fn fw_network(&self) -> FirewallNetwork {
        FirewallNetwork {
            bridge: self.bridge.clone(),
            subnet: Some(self.subnet),
            subnet6: None,
            internal: false,
            icc: true,
            mode4: GatewayMode::Nat,
            mode6: GatewayMode::Nat,
        }
    }
}

fn ok<T>(case: &str, step: &str, r: crate::error::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("contract {case}: {step}: {e}"))
}

/// The kind of a refusal; its message names no host path.
fn refusal(case: &str, step: &str, r: crate::error::Result<()>) -> Refusal {
    match r {
        Err(Error::ExecutorRefused { kind, message }) => {
            let leaked =
                ["/proc", "/dev", "/run", "/sys", "/usr"].iter().find(|p| message.contains(*p));
            assert!(
                leaked.is_none(),
                "contract {case}: {step}: the message names a host path: {message}"
            );
            kind
        }
        other => panic!("contract {case}: {step}: expected a refusal, got {other:?}"),
    }
}

/// Repeating a bridge is a no-op; it is listed once, tagged; deleting it
/// twice succeeds.
pub async fn bridges_are_idempotent(x: &dyn Executor, f: &Fixture) {
    let c = "bridges_are_idempotent";
    for _ in 0..2 {
        ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    }
    let inv = ok(c, "inventory", x.inventory().await);
    let listed: Vec<_> = inv.links.iter().filter(|l| l.name == f.bridge.as_str()).collect();
    assert_eq!(listed.len(), 1, "contract {c}: bridge listed once");
    assert!(
        listed.iter().all(|l| l.kind == LinkKind::Bridge && l.owner == f.bridge_args().owner),
        "{c}: {listed:?}"
    );
    for _ in 0..2 {
        ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
    }
    assert!(ok(c, "inventory", x.inventory().await).link(&f.bridge).is_none(), "{c}: bridge gone");
}

/// Creating a namespace twice gives one pin; deleting it twice succeeds.
pub async fn namespaces_are_idempotent(x: &dyn Executor, f: &Fixture) {
    let c = "namespaces_are_idempotent";
    let first = ok(c, "create netns", x.create_netns(&f.sandbox).await);
    let second = ok(c, "create netns again", x.create_netns(&f.sandbox).await);
    assert_eq!(first, second, "contract {c}: same pin");
    assert!(ok(c, "inventory", x.inventory().await).pins.contains(&f.sandbox), "{c}: pinned");
    ok(c, "loopback", x.setup_loopback(&NetnsTarget::Owned(f.sandbox.clone())).await);
    for _ in 0..2 {
        ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    }
    assert!(!ok(c, "inventory", x.inventory().await).pins.contains(&f.sandbox), "{c}: unpinned");
}

/// Attaching twice leaves one endpoint, a port of its bridge, addressed
/// inside with a default route; detaching twice succeeds.
pub async fn endpoints_are_idempotent(x: &dyn Executor, f: &Fixture) {
    let c = "endpoints_are_idempotent";
    ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    ok(c, "create netns", x.create_netns(&f.sandbox).await);
    for _ in 0..2 {
        ok(c, "attach", x.attach(&f.endpoint_args()).await);
    }
    let inv = ok(c, "inventory", x.inventory().await);
    let veth = inv.link(&f.host_ifname).unwrap_or_else(|| panic!("contract {c}: veth listed"));
    assert_eq!((veth.kind, veth.master.as_str()), (LinkKind::Veth, f.bridge.as_str()), "{c}");
    assert_eq!(veth.owner, f.endpoint_args().owner, "{c}: tagged");
    let target = NetnsTarget::Owned(f.sandbox.clone());
    let seen = ok(c, "inspect", x.inspect_netns(&target).await);
    let eth0 = seen.interfaces.iter().find(|i| i.name == "eth0");
    let want = format!("{}/{}", f.host(2), f.subnet.prefix);
    assert!(eth0.is_some_and(|i| i.up && i.addresses == vec![want.clone()]), "{c}: {seen:?}");
    assert_eq!(seen.default_gateway, Some(f.host(1)), "{c}: default route");
    for _ in 0..2 {
        ok(c, "unplug", x.unplug(&f.host_ifname, &f.sandbox_owner()).await);
    }
    let inv = ok(c, "inventory", x.inventory().await);
    let veth = inv.link(&f.host_ifname).unwrap_or_else(|| panic!("contract {c}: still listed"));
    assert_eq!(veth.master, "", "{c}: unplugged from its bridge");
    for _ in 0..2 {
        ok(c, "detach", x.detach(&f.host_ifname, &f.sandbox_owner(), 0).await);
    }
    ok(c, "unplug when gone", x.unplug(&f.host_ifname, &f.sandbox_owner()).await);
    let seen = ok(c, "inspect", x.inspect_netns(&target).await);
    assert!(seen.interfaces.iter().all(|i| i.name != "eth0"), "{c}: eth0 gone: {seen:?}");
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
}

/// Deleting a namespace takes the veths in it along.
pub async fn a_deleted_namespace_takes_its_endpoints(x: &dyn Executor, f: &Fixture) {
    let c = "a_deleted_namespace_takes_its_endpoints";
    ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    ok(c, "create netns", x.create_netns(&f.sandbox).await);
    ok(c, "attach", x.attach(&f.endpoint_args()).await);
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    ok(c, "detach after the namespace", x.detach(&f.host_ifname, &f.sandbox_owner(), 2000).await);
    assert!(
        ok(c, "inventory", x.inventory().await).link(&f.host_ifname).is_none(),
        "{c}: veth gone"
    );
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
}

/// Firewall elements: adds and removes repeat without error; a full sync
/// with an empty table succeeds.
pub async fn firewall_changes_are_idempotent(x: &dyn Executor, f: &Fixture) {
    let c = "firewall_changes_are_idempotent";
    // A network's elements go with its bridge (netexec sets its sysctls).
    ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    let add = FirewallDelta {
        add_networks: vec![f.fw_network()],
        add_ports: vec![f.port()],
        add_guards: vec![f.guard()],
        ..Default::default()
    };
    let remove = FirewallDelta {
        remove_networks: vec![f.fw_network()],
        remove_ports: vec![f.port()],
        remove_guards: vec![f.guard()],
        ..Default::default()
    };
    for _ in 0..2 {
        ok(c, "add", x.update_firewall(&add).await);
    }
    for _ in 0..2 {
        ok(c, "remove", x.update_firewall(&remove).await);
    }
    let table = FirewallTable { guards: vec![f.guard()], ..Default::default() };
    ok(c, "sync with a guard", x.sync_firewall(&table).await);
    ok(c, "sync empty", x.sync_firewall(&FirewallTable::default()).await);
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
}

/// What is gone can be deleted again.
pub async fn deleting_what_is_gone_succeeds(x: &dyn Executor, f: &Fixture) {
    let c = "deleting_what_is_gone_succeeds";
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    ok(c, "detach", x.detach(&f.host_ifname, &f.sandbox_owner(), 0).await);
    let remove = FirewallDelta { remove_ports: vec![f.port()], ..Default::default() };
    ok(c, "remove port", x.update_firewall(&remove).await);
}

/// The refusals api-server tells apart.
pub async fn refusals_have_their_kinds(x: &dyn Executor, f: &Fixture) {
    let c = "refusals_have_their_kinds";
    ok(c, "create netns", x.create_netns(&f.sandbox).await);
    let no_bridge = refusal(c, "attach without bridge", x.attach(&f.endpoint_args()).await);
    assert_eq!(no_bridge, Refusal::NotFound, "{c}: attach to a missing bridge");
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    let orphan = FirewallDelta { add_networks: vec![f.fw_network()], ..Default::default() };
    let kind =
        refusal(c, "elements of a network without its bridge", x.update_firewall(&orphan).await);
    assert_eq!(kind, Refusal::Internal, "{c}: no bridge for the network's sysctls");
    let missing = NetnsTarget::Owned(f.sandbox.clone());
    assert_eq!(refusal(c, "loopback", x.setup_loopback(&missing).await), Refusal::NotFound, "{c}");
    // A bridge asked for under the name of an existing veth.
    ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    ok(c, "create netns", x.create_netns(&f.sandbox).await);
    ok(c, "attach", x.attach(&f.endpoint_args()).await);
    let over_veth = BridgeArgs { name: f.host_ifname.clone(), ..f.bridge_args() };
    let kind = refusal(c, "bridge over a veth", x.ensure_bridge(&over_veth).await);
    assert_eq!(kind, Refusal::Precondition, "{c}: not a bridge");
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    ok(c, "detach", x.detach(&f.host_ifname, &f.sandbox_owner(), 2000).await);
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
}

/// A link is changed or deleted only by a request naming its exact owner.
pub async fn only_the_exact_owner_touches_a_link(x: &dyn Executor, f: &Fixture) {
    let c = "only_the_exact_owner_touches_a_link";
    ok(c, "ensure bridge", x.ensure_bridge(&f.bridge_args()).await);
    ok(c, "create netns", x.create_netns(&f.sandbox).await);
    ok(c, "attach", x.attach(&f.endpoint_args()).await);
    let stranger = Owner::Sandbox(SandboxId::random(), Some(f.store.clone()));
    let other_net = Owner::Network(NetworkId::random(), Some(f.store.clone()));
    // The same object's id under another store is another owner.
    let other_store = f.sandbox_owner().with_store(&StoreId::random());
    let kind =
        refusal(c, "detach by another store", x.detach(&f.host_ifname, &other_store, 0).await);
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let kind =
        refusal(c, "detach by another sandbox", x.detach(&f.host_ifname, &stranger, 0).await);
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let kind = refusal(c, "unplug by another sandbox", x.unplug(&f.host_ifname, &stranger).await);
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let kind = refusal(
        c,
        "delete bridge by another network",
        x.delete_bridge(&f.bridge, &other_net).await,
    );
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let kind = refusal(
        c,
        "delete a veth as a bridge",
        x.delete_bridge(&f.host_ifname, &f.sandbox_owner()).await,
    );
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let taken = BridgeArgs { owner: other_net, ..f.bridge_args() };
    let kind = refusal(c, "another network's bridge name", x.ensure_bridge(&taken).await);
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let stolen = EndpointArgs { owner: stranger, ..f.endpoint_args() };
    assert_eq!(
        refusal(c, "another sandbox's veth name", x.attach(&stolen).await),
        Refusal::Precondition,
        "{c}"
    );
    let inv = ok(c, "inventory", x.inventory().await);
    assert!(
        inv.link(&f.host_ifname).is_some() && inv.link(&f.bridge).is_some(),
        "{c}: both survive"
    );
    ok(c, "delete netns", x.delete_netns(&f.sandbox).await);
    ok(c, "detach", x.detach(&f.host_ifname, &f.sandbox_owner(), 2000).await);
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &f.network_owner()).await);
}

/// A link changes hands (a store adopting it) only from its exact tag, and
/// only as the kind it is.
pub async fn a_link_is_retagged_only_from_its_exact_tag(x: &dyn Executor, f: &Fixture) {
    let c = "a_link_is_retagged_only_from_its_exact_tag";
    let old = Owner::Network(f.network.clone(), None);
    ok(
        c,
        "ensure bridge",
        x.ensure_bridge(&BridgeArgs { owner: old.clone(), ..f.bridge_args() }).await,
    );
    let mine = f.network_owner();
    let stranger = Owner::Network(NetworkId::random(), None);
    let bridge = LinkKind::Bridge;
    let kind =
        refusal(c, "retag from a wrong tag", x.retag(&f.bridge, bridge, &stranger, &mine).await);
    assert_eq!(kind, Refusal::Precondition, "{c}");
    let as_veth = x.retag(&f.bridge, LinkKind::Veth, &old, &mine).await;
    assert_eq!(refusal(c, "retag as another kind", as_veth), Refusal::Precondition, "{c}");
    let gone = x.retag(&f.host_ifname, LinkKind::Veth, &old, &mine).await;
    assert_eq!(refusal(c, "retag what does not exist", gone), Refusal::NotFound, "{c}");
    ok(c, "retag", x.retag(&f.bridge, bridge, &old, &mine).await);
    let inv = ok(c, "inventory", x.inventory().await);
    assert_eq!(inv.link(&f.bridge).map(|l| &l.owner), Some(&mine), "{c}: retagged");
    ok(c, "delete bridge", x.delete_bridge(&f.bridge, &mine).await);
}

/// Every case, in turn; each cleans up after itself.
pub async fn all(x: &dyn Executor, f: &Fixture) {
    bridges_are_idempotent(x, f).await;
    namespaces_are_idempotent(x, f).await;
    endpoints_are_idempotent(x, f).await;
    a_deleted_namespace_takes_its_endpoints(x, f).await;
    firewall_changes_are_idempotent(x, f).await;
    deleting_what_is_gone_succeeds(x, f).await;
    refusals_have_their_kinds(x, f).await;
    only_the_exact_owner_touches_a_link(x, f).await;
    a_link_is_retagged_only_from_its_exact_tag(x, f).await;
}
