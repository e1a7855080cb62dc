//! What each operation does, and refuses, against the fake kernel.
use super::*;
use crate::domain::GatewayMode;
use crate::error::Error;
use crate::executor::{HostListener, NetnsTarget};
use crate::fake::{Fault, Op};
use crate::limits::Limits;
use crate::model::ModeKind;
use crate::policy::Caller;

fn mode(m: pb::create_sandbox_request::Mode) -> pb::CreateSandboxRequest {
    pb::CreateSandboxRequest { mode: Some(m), ..Default::default() }
}

fn host_req() -> pb::CreateSandboxRequest {
    mode(pb::create_sandbox_request::Mode::Host(pb::HostMode {}))
}

fn container_req(target: &str) -> pb::CreateSandboxRequest {
    mode(pb::create_sandbox_request::Mode::Container(pb::ContainerMode { target: target.into() }))
}

fn none_req(netns: Option<&str>) -> pb::CreateSandboxRequest {
    pb::CreateSandboxRequest {
        netns_path: netns.map(str::to_string),
        ..mode(pb::create_sandbox_request::Mode::None(pb::NoneMode {}))
    }
}

/// A refused request changes nothing: same records, same kernel.
async fn refused_without_change(env: &Env, out: Result<SandboxRecord>) -> Error {
    let before = env.fake.kernel();
    let e = out.expect_err("refused");
    assert_eq!(env.fake.kernel(), before);
    env.agree().await;
    e
}

#[tokio::test]
async fn bridge_create_makes_namespace_endpoint_and_ports() {
    let env = Env::new().await;
    let rec = env.bridge("web", &["8080:80"]).await.unwrap();
    assert_eq!(rec.phase, Phase::Ready);
    let k = env.fake.kernel();
    let ep = k.endpoints.values().next().expect("one endpoint");
    assert_eq!(
        (ep.address.unwrap().0.to_string(), ep.gateway.map(|g| g.to_string())),
        ("198.18.0.2".into(), Some("198.18.0.1".into()))
    );
    assert_eq!(ep.netns, NetnsTarget::Owned(rec.id.clone()));
    assert_eq!(k.fw_ports.iter().map(|p| p.host_port).collect::<Vec<_>>(), vec![8080]);
    env.agree().await;
}

#[tokio::test]
async fn addresses_are_lowest_free_and_reused_after_delete() {
    let env = Env::new().await;
    let a = env.bridge("a", &[]).await.unwrap();
    let b = env.bridge("b", &[]).await.unwrap();
    assert_eq!(
        (a.endpoints[0].address.unwrap().to_string(), b.endpoints[0].address.unwrap().to_string()),
        ("198.18.0.2".into(), "198.18.0.3".into())
    );
    env.delete("a").await.unwrap();
    let c = env.bridge("c", &[]).await.unwrap();
    assert_eq!(c.endpoints[0].address.unwrap().to_string(), "198.18.0.2");
    env.agree().await;
}

#[tokio::test]
async fn host_mode_records_the_host_pin_and_touches_no_kernel() {
    let env = Env::new().await;
    let before = env.fake.calls().len();
    let rec = env.sandbox(host_req()).await.unwrap();
    assert_eq!(rec.netns, Netns::Host("/fake/netns/host".into()));
    let mutating = env.fake.calls()[before..].iter().filter(|c| Op::MUTATING.contains(c)).count();
    assert_eq!(mutating, 0);
    env.agree().await;
}

#[tokio::test]
async fn host_mode_without_a_host_pin_is_refused() {
    let env = Env::new().await;
    env.fake.set_host_pin(None);
    let e = refused_without_change(&env, env.sandbox(host_req()).await).await;
    assert!(matches!(e, Error::Conflict(_)), "{e}");
}

#[tokio::test]
async fn container_mode_joins_and_protects_its_target() {
    let env = Env::new().await;
    let t = env.bridge("t", &[]).await.unwrap();
    let j = env.sandbox(container_req("t")).await.unwrap();
    assert_eq!(j.mode, ModeKind::Container);
    assert_eq!(j.netns, Netns::Joined { target: t.id.clone(), path: t.netns.path().clone() });
    let e = env.delete("t").await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)) && e.to_string().contains(&j.id.to_string()), "{e}");
    let e = env.sandbox(container_req(j.id.as_str())).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "joining a joiner: {e}");
    env.delete(j.id.as_str()).await.unwrap();
    env.delete("t").await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn container_mode_needs_an_existing_target() {
    let env = Env::new().await;
    let e = refused_without_change(&env, env.sandbox(container_req("nope")).await).await;
    assert!(
        matches!(e, Error::NotFound(_)) && e.to_string().starts_with("container.target"),
        "{e}"
    );
}

#[tokio::test]
async fn none_mode_owns_a_namespace_without_endpoints() {
    let env = Env::new().await;
    let rec = env.sandbox(none_req(None)).await.unwrap();
    assert!(rec.endpoints.is_empty());
    assert!(env.fake.kernel().netns.contains(&rec.id));
    env.delete(rec.id.as_str()).await.unwrap();
    assert!(env.fake.kernel().netns.is_empty());
    env.agree().await;
}

#[tokio::test]
async fn none_mode_in_a_runtime_namespace_sets_up_loopback_and_never_deletes_it() {
    let env = Env::new().await;
    env.fake.tamper(|k| {
        k.external.insert("/run/netns/r1".into());
    });
    let rec = env.sandbox(none_req(Some("/run/netns/r1"))).await.unwrap();
    assert_eq!(env.fake.count(Op::SetupLoopback), 1);
    assert_eq!(env.fake.count(Op::CreateNetns), 0);
    env.delete(rec.id.as_str()).await.unwrap();
    assert_eq!(env.fake.count(Op::DeleteNetns), 0);
    env.agree().await;
}

#[tokio::test]
async fn a_netns_path_netexec_refuses_is_the_callers_mistake() {
    let env = Env::new().await;
    let e = env.sandbox(none_req(Some("/run/netns/missing"))).await.unwrap_err();
    assert!(
        matches!(e, Error::ExecutorRefused { kind: crate::error::Refusal::Invalid, .. }),
        "{e}"
    );
    assert_eq!(crate::api::status(e).code(), tonic::Code::InvalidArgument);
    env.agree().await;
    assert!(env.ops.lock().await.sandboxes.is_empty());
}

#[tokio::test]
async fn a_taken_name_is_refused_without_change() {
    let env = Env::new().await;
    env.bridge("web", &[]).await.unwrap();
    let e = refused_without_change(&env, env.bridge("web", &[]).await).await;
    assert!(matches!(e, Error::AlreadyExists(_)) && e.to_string().starts_with("name:"), "{e}");
}

#[tokio::test]
async fn static_addresses_are_checked() {
    let env = Env::new().await;
    let with_addr = |a: &str| {
        let attach = pb::NetworkAttachment {
            network: "bridge".into(),
            ipv4_address: Some(a.into()),
            ipv6_address: None,
            interface_name: None,
            mac_address: None,
        };
        mode(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode { networks: vec![attach] }))
    };
    env.sandbox(with_addr("198.18.0.9")).await.unwrap();
    let e = refused_without_change(&env, env.sandbox(with_addr("198.18.0.9")).await).await;
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    let e = refused_without_change(&env, env.sandbox(with_addr("198.18.0.1")).await).await;
    assert!(e.to_string().contains("gateway"), "{e}");
    let e = refused_without_change(&env, env.sandbox(with_addr("198.19.0.9")).await).await;
    assert!(
        matches!(e, Error::Invalid { .. })
            && e.to_string().starts_with("bridge.networks[0].ipv4_address"),
        "{e}"
    );
}

#[tokio::test]
async fn a_mac_in_use_is_refused() {
    let env = Env::new().await;
    let req = |name: &str| pb::CreateSandboxRequest {
        mac_address: Some("02:00:00:00:00:07".into()),
        ..bridge_req(name, &[])
    };
    env.sandbox(req("a")).await.unwrap();
    let e = refused_without_change(&env, env.sandbox(req("b")).await).await;
    assert!(e.to_string().starts_with("mac_address"), "{e}");
}

#[tokio::test]
async fn a_mac_squat_does_not_block_automatic_creates() {
    let env = Env::new().await;
    // The MAC that 198.18.0.3 derives, taken explicitly by the first sandbox
    // (which gets .2). The old IPAM offered .3 forever and every automatic
    // create failed with "mac_address already in use".
    let squat = pb::CreateSandboxRequest {
        mac_address: Some("02:42:c6:12:00:03".into()),
        ..bridge_req("squat", &[])
    };
    env.sandbox(squat).await.unwrap();
    let next = env.bridge("a", &[]).await.unwrap();
    assert_eq!(next.endpoints[0].address.unwrap().to_string(), "198.18.0.4");
    let after = env.bridge("b", &[]).await.unwrap();
    assert_eq!(after.endpoints[0].address.unwrap().to_string(), "198.18.0.5");
    env.agree().await;
}

#[tokio::test]
async fn a_published_port_is_held_once() {
    let env = Env::new().await;
    let a = env.bridge("a", &["8080:80"]).await.unwrap();
    let e = refused_without_change(&env, env.bridge("b", &["8080:81"]).await).await;
    assert!(
        matches!(e, Error::AlreadyExists(_)) && e.to_string().contains(&a.id.to_string()),
        "{e}"
    );
    // Another protocol, or another host address than a bound one, is free.
    env.bridge("c", &["8080:80/udp"]).await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn a_host_listener_holds_its_port() {
    let env = Env::new().await;
    env.fake.tamper(|k| {
        let l = HostListener {
            proto: crate::domain::ports::Proto::Tcp,
            address: std::net::Ipv4Addr::UNSPECIFIED.into(),
            port: 2222,
            shown: "0.0.0.0:2222".into(),
        };
        k.listeners.push(l);
    });
    let e = refused_without_change(&env, env.bridge("a", &["2222:22"]).await).await;
    assert!(e.to_string().contains("0.0.0.0:2222"), "{e}");
    env.bridge("a", &["2223:22"]).await.unwrap();
}

#[tokio::test]
async fn the_ephemeral_range_runs_out_with_resource_exhausted() {
    let env = Env::new().await;
    // The test range holds 8 ports.
    env.bridge("a", &["80-87"]).await.unwrap();
    let e = refused_without_change(&env, env.bridge("b", &["90"]).await).await;
    assert!(matches!(e, Error::Exhausted(_)), "{e}");
}

#[tokio::test]
async fn a_full_bridge_is_resource_exhausted() {
    let env = Env::new().await;
    // The test bridge holds 8 ports.
    for i in 0..8 {
        env.bridge(&format!("s{i}"), &[]).await.unwrap();
    }
    let e = refused_without_change(&env, env.bridge("s8", &[]).await).await;
    assert!(matches!(e, Error::Exhausted(_)), "{e}");
}

#[tokio::test]
async fn ports_need_a_network_with_a_way_in() {
    let env = Env::new().await;
    let req = pb::CreateNetworkRequest {
        name: "int".into(),
        subnet: "198.19.9.0/24".into(),
        internal: true,
        ..Default::default()
    };
    let spec = NetworkSpec::parse(&req, PREFIX).unwrap();
    env.ops.create_network(&Caller::admin(), spec).await.unwrap();
    let mut r = bridge_req("a", &["80"]);
    let attach = pb::NetworkAttachment {
        network: "int".into(),
        ipv4_address: None,
        ipv6_address: None,
        interface_name: None,
        mac_address: None,
    };
    r.mode =
        Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode { networks: vec![attach] }));
    let e = refused_without_change(&env, env.sandbox(r).await).await;
    assert!(e.to_string().starts_with("publish"), "{e}");
}

#[tokio::test]
async fn connect_adds_an_interface_and_disconnect_removes_it() {
    let env = Env::new().await;
    env.network("n2", "198.19.2.0/24").await.unwrap();
    env.bridge("web", &[]).await.unwrap();
    let rec = env.connect("web", "n2", &["9090:90"]).await.unwrap();
    let eth1 = rec.endpoints.iter().find(|e| e.ifname == "eth1").expect("eth1");
    assert!(
        eth1.attached && !eth1.default_route && eth1.address.unwrap().to_string() == "198.19.2.2"
    );
    assert!(env.fake.kernel().fw_ports.iter().any(|p| p.host_port == 9090));
    env.agree().await;
    let rec = env.disconnect("web", "n2").await.unwrap();
    assert_eq!(rec.endpoints.len(), 1);
    assert!(env.fake.kernel().fw_ports.is_empty());
    env.agree().await;
}

#[tokio::test]
async fn connect_and_disconnect_refusals() {
    let env = Env::new().await;
    env.network("n2", "198.19.2.0/24").await.unwrap();
    env.bridge("web", &[]).await.unwrap();
    env.sandbox(pb::CreateSandboxRequest { name: Some("h".into()), ..host_req() }).await.unwrap();
    let e = env.connect("web", "bridge", &[]).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    let e = env.connect("web", "nope", &[]).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = env.connect("h", "n2", &[]).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    let e = env.disconnect("web", "n2").await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    env.agree().await;
}

#[tokio::test]
async fn networks_are_created_and_deleted() {
    let env = Env::new().await;
    let n = env.network("n2", "198.19.2.0/24").await.unwrap();
    assert_eq!(n.bridge.as_str(), format!("ct-{}", n.id.short()));
    assert!(env.fake.kernel().bridges.contains_key(n.bridge.as_str()));
    env.agree().await;
    env.delete_network("n2").await.unwrap();
    assert!(!env.fake.kernel().bridges.contains_key(n.bridge.as_str()));
    env.agree().await;
}

#[tokio::test]
async fn network_refusals() {
    let env = Env::new().await;
    env.network("n2", "198.19.2.0/24").await.unwrap();
    let e = env.network("n2", "198.19.3.0/24").await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    let e = env.network("n3", "198.19.2.128/25").await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)) && e.to_string().starts_with("subnet"), "{e}");
    let e = env.delete_network("bridge").await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    env.bridge("web", &[]).await.unwrap();
    env.connect("web", "n2", &[]).await.unwrap();
    let e = env.delete_network("n2").await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)) && e.to_string().contains("web"), "{e}");
    env.agree().await;
}

#[tokio::test]
async fn check_reports_what_is_missing_and_reconciliation_restores_it() {
    let env = Env::new().await;
    let rec = env.bridge("web", &[]).await.unwrap();
    let r = Ref::parse("sandbox", "web").unwrap();
    assert!(env.ops.check(&Caller::admin(), &r).await.unwrap().is_empty());
    env.fake.tamper(|k| k.endpoints.clear());
    let diffs = env.ops.check(&Caller::admin(), &r).await.unwrap();
    assert!(diffs.iter().any(|d| d.contains("missing")), "{diffs:?}");
    env.ops.reconcile().await.unwrap();
    assert!(env.ops.check(&Caller::admin(), &r).await.unwrap().is_empty());
    assert!(env.fake.kernel().endpoints.contains_key(rec.endpoints[0].host_ifname.as_str()));
    env.agree().await;
}

#[tokio::test]
async fn a_sandbox_whose_namespace_vanished_is_marked_failed_and_keeps_its_address() {
    let env = Env::new().await;
    let rec = env.bridge("web", &["8080:80"]).await.unwrap();
    env.fake.tamper(|k| {
        k.netns.clear();
        k.endpoints.clear();
    });
    env.ops.reconcile().await.unwrap();
    let st = env.ops.lock().await;
    assert!(matches!(st.sandboxes[&rec.id].phase, Phase::Failed(_)));
    drop(st);
    let other = env.bridge("other", &[]).await.unwrap();
    assert_ne!(other.endpoints[0].address, rec.endpoints[0].address);
    env.delete("web").await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn garbage_collection_removes_orphans_and_keeps_the_unknown() {
    let env = Env::new().await;
    env.bridge("web", &[]).await.unwrap();
    let orphan = crate::domain::SandboxId::random();
    let foreign = crate::domain::NetworkId::random();
    env.fake.tamper(|k| {
        k.netns.insert(orphan.clone());
        let mut b = crate::contract::Fixture::new(PREFIX, 50).bridge_args();
        b.owner = crate::model::Owner::Network(foreign.clone(), Some(env.ops.store().id().clone()));
        k.bridges.insert(b.name.to_string(), b.clone());
        b.name = LinkName::parse("b", "ctunknown", PREFIX).unwrap();
        b.owner = crate::model::Owner::Other("someone:else".into());
        k.bridges.insert(b.name.to_string(), b);
    });
    let removed = env.ops.garbage_collect().await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    let k = env.fake.kernel();
    assert!(k.bridges.contains_key("ctunknown") && !k.netns.contains(&orphan));
    env.fake.tamper(|k| {
        k.bridges.remove("ctunknown");
    });
    env.agree().await;
}

#[tokio::test]
async fn netexec_down_during_a_create_leaves_nothing() {
    let env = Env::new().await;
    env.fake.set_down(true);
    let e = env.bridge("web", &[]).await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert_eq!(crate::api::status(e).code(), tonic::Code::Unavailable);
    env.fake.set_down(false);
    env.settle().await;
    env.agree().await;
    env.bridge("web", &[]).await.unwrap();
}

#[tokio::test]
async fn a_delete_cut_off_by_netexec_is_finished_by_reconciliation() {
    let env = Env::new().await;
    env.bridge("web", &["8080:80"]).await.unwrap();
    env.fake.inject(Some(Op::DeleteNetns), 1, Fault::Unavailable);
    assert!(env.delete("web").await.unwrap_err().is_unavailable());
    // Gone for callers already; its address and port stay held.
    assert_eq!(
        env.ops.lock().await.sandboxes.values().next().map(|s| s.phase.clone()),
        Some(Phase::Releasing)
    );
    assert!(matches!(env.delete("web").await, Err(crate::error::Error::NotFound(_))));
    env.settle().await;
    env.agree().await;
    assert!(env.ops.lock().await.sandboxes.is_empty());
}

#[tokio::test]
async fn a_restart_finishes_what_the_previous_process_left() {
    let env = Env::new().await;
    env.bridge("kept", &[]).await.unwrap();
    env.fake.inject(Some(Op::Attach), 1, Fault::HangAfter);
    let admin = Caller::admin();
    tokio::select! {
        _ = env.ops.create_sandbox(&admin, SandboxSpec::parse(&bridge_req("cut", &["8080:80"])).unwrap()) => panic!("never hung"),
        () = env.fake.hung(1) => {}
    }
    let env = env.restart().await;
    env.ops.reconcile().await.unwrap();
    env.agree().await;
    let st = env.ops.lock().await;
    let names: Vec<_> = st.sandboxes.values().map(|s| s.display_name()).collect();
    assert_eq!(names, vec!["kept".to_string()]);
}

#[tokio::test]
async fn reconciliation_makes_bridges_before_endpoints_and_removes_them_after() {
    let env = Env::new().await;
    let n = env.network("n2", "198.19.2.0/24").await.unwrap();
    env.connect(&env.bridge("web", &[]).await.unwrap().id.to_string(), "n2", &[]).await.unwrap();
    // The host rebooted: every bridge and veth is gone, the namespaces kept.
    env.fake.tamper(|k| {
        k.bridges.clear();
        k.endpoints.clear();
    });
    let from = env.fake.calls().len();
    env.ops.reconcile().await.unwrap();
    let calls = env.fake.calls()[from..].to_vec();
    let last_bridge = calls.iter().rposition(|c| *c == Op::EnsureBridge).unwrap();
    let first_attach = calls.iter().position(|c| *c == Op::Attach).unwrap();
    assert!(last_bridge < first_attach, "{calls:?}");
    env.agree().await;
    // A delete of a sandbox and then of its network, both cut off: the
    // sandbox's endpoints go before the bridge.
    env.fake.inject(Some(Op::DeleteNetns), 1, Fault::Unavailable);
    assert!(env.delete("web").await.is_err());
    let from = env.fake.calls().len();
    env.settle().await;
    env.delete_network("n2").await.unwrap();
    let calls = env.fake.calls()[from..].to_vec();
    let detach = calls.iter().position(|c| *c == Op::Detach).unwrap();
    let bridge = calls.iter().position(|c| *c == Op::DeleteBridge).unwrap();
    assert!(detach < bridge, "{calls:?}");
    assert!(!env.fake.kernel().bridges.contains_key(n.bridge.as_str()));
    env.agree().await;
}

#[tokio::test]
async fn the_executor_contract_holds_for_the_fake() {
    let fake = FakeExecutor::default();
    let f = crate::contract::Fixture::new(PREFIX, 77);
    crate::contract::all(&fake, &f).await;
    assert_eq!(fake.kernel(), Default::default(), "the suite cleans up");
}

#[tokio::test]
async fn the_sandbox_limit_answers_resource_exhausted() {
    let env = Env::with_limits(Limits { sandboxes: 2, bridge_ports: 8, ..Limits::default() }).await;
    env.bridge("a", &[]).await.unwrap();
    env.sandbox(host_req()).await.unwrap();
    let e = refused_without_change(&env, env.bridge("c", &[]).await).await;
    assert!(matches!(e, Error::Exhausted(_)) && e.to_string().contains("--max-sandboxes"), "{e}");
    assert_eq!(crate::api::status(e).code(), tonic::Code::ResourceExhausted);
    env.delete("a").await.unwrap();
    env.bridge("c", &[]).await.unwrap();
}

#[tokio::test]
async fn the_owned_namespace_limit_counts_only_owned_namespaces() {
    let env =
        Env::with_limits(Limits { owned_netns: 1, bridge_ports: 8, ..Limits::default() }).await;
    env.sandbox(none_req(None)).await.unwrap();
    let e = refused_without_change(&env, env.bridge("b", &[]).await).await;
    assert!(e.to_string().contains("--max-owned-netns"), "{e}");
    // Host and runtime-owned namespaces cost ctnet nothing.
    env.sandbox(host_req()).await.unwrap();
    env.fake.tamper(|k| {
        k.external.insert("/run/netns/r1".into());
    });
    env.sandbox(none_req(Some("/run/netns/r1"))).await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn the_inflight_limit_counts_operations_whose_caller_left() {
    let env =
        Env::with_limits(Limits { inflight_ops: 2, bridge_ports: 8, ..Limits::default() }).await;
    for n in 1..=2 {
        env.fake.inject(Some(Op::Attach), n, Fault::Hang);
    }
    for name in ["a", "b"] {
        // The caller gives up at once; the operation task goes on.
        tokio::select! {
            _ = env.bridge(name, &[]) => panic!("never hung"),
            () = tokio::task::yield_now() => {}
        }
    }
    env.fake.hung(2).await;
    assert_eq!(env.ops.in_flight(), 2);
    let before = env.fake.kernel();
    let e = env.bridge("c", &[]).await.unwrap_err();
    assert!(e.to_string().contains("--max-inflight-ops"), "{e}");
    assert_eq!(env.fake.kernel(), before, "nothing half-made");
    env.settle().await;
    env.agree().await;
    env.bridge("c", &[]).await.unwrap();
    assert_eq!(env.ops.lock().await.sandboxes.len(), 3);
}

/// A runtime's namespace gone without a delete: first marked failed (its
/// address still held), then released after the grace; a namespace that
/// is still there is never touched.
#[tokio::test]
async fn a_vanished_runtime_namespace_is_released_after_the_grace() {
    let grace = std::time::Duration::from_millis(50);
    let env = Env::with_settings(
        crate::ops::Settings { release_vanished_after: grace, ..settings() },
        |k| {
            k.external.insert("/run/netns/gone".into());
            k.external.insert("/run/netns/kept".into());
        },
    )
    .await;
    let mut req = bridge_req("gone", &["8080:80"]);
    req.netns_path = Some("/run/netns/gone".into());
    let gone = env.sandbox(req).await.unwrap();
    let mut req = bridge_req("kept", &[]);
    req.netns_path = Some("/run/netns/kept".into());
    let kept = env.sandbox(req).await.unwrap();
    // Control: nothing vanished, nothing changes.
    env.ops.finish_interrupted().await.unwrap();
    assert_eq!(env.ops.lock().await.sandboxes.len(), 2);
    env.fake.tamper(|k| {
        k.external.remove(std::path::Path::new("/run/netns/gone"));
        k.endpoints.remove(gone.endpoints[0].host_ifname.as_str());
    });
    env.ops.finish_interrupted().await.unwrap();
    {
        let st = env.ops.lock().await;
        let phase = &st.sandboxes[&gone.id].phase;
        assert!(matches!(phase, Phase::Failed(r) if r.contains("released")), "{phase:?}");
        assert_eq!(st.sandboxes[&kept.id].phase, Phase::Ready);
    }
    tokio::time::sleep(grace).await;
    env.ops.finish_interrupted().await.unwrap();
    let st = env.ops.lock().await;
    assert!(!st.sandboxes.contains_key(&gone.id), "released");
    assert!(st.sandboxes.contains_key(&kept.id), "a live namespace stays");
    drop(st);
    assert!(env.fake.kernel().fw_ports.is_empty(), "its published port went too");
    let again = env.bridge("again", &["8080:80"]).await.unwrap();
    assert_eq!(again.endpoints[0].address, gone.endpoints[0].address, "address reusable");
    env.agree().await;
}

/// Group commit: creates running together (as many as the test network
/// holds) share store transactions; every
/// acknowledged one is durable (there after a restart, with its address)
/// and no two got the same address.
#[tokio::test]
async fn concurrent_creates_are_each_durable_when_acknowledged() {
    let env = Arc::new(Env::new().await);
    let creates: Vec<_> = (0..8)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move { env.bridge(&format!("g{i}"), &[]).await.unwrap() })
        })
        .collect();
    let mut made = Vec::new();
    for c in creates {
        made.push(c.await.unwrap());
    }
    let env = Arc::into_inner(env).expect("only this test holds the env").restart().await;
    let st = env.ops.lock().await;
    for rec in &made {
        let kept = st.sandboxes.get(&rec.id).expect("an acknowledged create survives a restart");
        assert_eq!(kept.endpoints[0].address, rec.endpoints[0].address);
    }
    no_duplicates(&st);
}

/// IPv6 IPAM walks what is allocated, never the prefix: 100 addresses in a
/// /64 are stored exactly as 100 in a /120 are (the network record differs
/// only in the prefix length's digits).
#[tokio::test]
async fn ipv6_ipam_stores_a_64_as_it_stores_a_120() {
    let mut stored = Vec::new();
    for subnet6 in ["2001:db8:1::/64", "2001:db8:1::/120"] {
        let limits =
            Limits { bridge_ports: 128, sandboxes: 128, owned_netns: 128, ..settings().limits };
        let env = Env::with_limits(limits).await;
        let req = pb::CreateNetworkRequest {
            name: "v6".into(),
            subnet: "198.19.10.0/24".into(),
            ipv6_subnet: Some(subnet6.into()),
            ..Default::default()
        };
        let spec = NetworkSpec::parse(&req, PREFIX).unwrap();
        let net = env.ops.spawn(|o| async move { o.create_network(&Caller::admin(), spec).await });
        let net = net.await.unwrap();
        let on_v6 = pb::NetworkAttachment { network: "v6".into(), ..Default::default() };
        let mut sandbox_bytes = 0;
        let mut last = None;
        for i in 0..100 {
            let bridge = pb::BridgeMode { networks: vec![on_v6.clone()] };
            let mut r = mode(pb::create_sandbox_request::Mode::Bridge(bridge));
            r.name = Some(format!("s{i:03}"));
            let rec = env.sandbox(r).await.unwrap();
            sandbox_bytes += serde_json::to_vec(&rec).unwrap().len();
            last = rec.endpoints[0].address6;
        }
        assert_eq!(last, Some("2001:db8:1::65".parse().unwrap()), "lowest free, in order");
        stored.push((serde_json::to_vec(&net).unwrap().len(), sandbox_bytes));
        env.agree().await;
    }
    let [(net64, sb64), (net120, sb120)] = stored[..] else { unreachable!() };
    assert_eq!(sb64, sb120, "100 sandboxes' records");
    assert_eq!(net120 - net64, 1, "the network record: \"120\" against \"64\"");
}

/// An IPv6-only network: no IPv4 on its bridge, its interfaces or its
/// firewall elements; random, locally administered MACs; ports on IPv6
/// only; every IPv4 ask refused with nothing changed; all of it kept
/// across a restart.
#[tokio::test]
async fn ipv6_only_networks_have_no_ipv4_and_random_local_macs() {
    let env = Env::new().await;
    let net = env.ipv6_only("v6", "2001:db8:7::/64").await.unwrap();
    assert_eq!((net.ipv4, net.mode4), (None, GatewayMode::Isolated));
    let on = |ipv4: Option<&str>| {
        let attach = pb::NetworkAttachment {
            network: "v6".into(),
            ipv4_address: ipv4.map(str::to_string),
            ..Default::default()
        };
        mode(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode { networks: vec![attach] }))
    };
    let a = env.sandbox(pb::CreateSandboxRequest { publish: vec!["8080:80".into()], ..on(None) });
    let (a, b) = (a.await.unwrap(), env.sandbox(on(None)).await.unwrap());
    let (ea, eb) = (&a.endpoints[0], &b.endpoints[0]);
    assert_eq!((ea.address, ea.address6), (None, Some("2001:db8:7::2".parse().unwrap())));
    for m in [ea.mac.0, eb.mac.0] {
        assert_eq!(m[0] & 3, 2, "unicast, locally administered: {m:?}");
    }
    assert_ne!(ea.mac, eb.mac);
    let families: Vec<_> = ea.ports.iter().map(|p| p.family).collect();
    assert_eq!(families, vec![crate::domain::ports::Family::V6], "published on IPv6 only");
    let k = env.fake.kernel();
    let br = &k.bridges[net.bridge.as_str()];
    assert_eq!((br.address, br.address6.is_some()), (None, true));
    let ep = &k.endpoints[ea.host_ifname.as_str()];
    assert_eq!((ep.address, ep.gateway, ep.announce), (None, None, false));
    assert_eq!(ep.gateway6, Some("2001:db8:7::1".parse().unwrap()));
    let fw = k.fw_networks.iter().find(|n| n.bridge == net.bridge).unwrap();
    assert_eq!((fw.subnet, fw.mode4), (None, GatewayMode::Isolated));
    assert!(k.fw_ports.iter().all(|p| p.target_ip.is_ipv6()));

    let e = refused_without_change(&env, env.sandbox(on(Some("198.18.0.9"))).await).await;
    assert!(e.to_string().starts_with("bridge.networks[0].ipv4_address: network v6 is IPv6-only"));
    let v4_port = pb::CreateSandboxRequest { publish: vec!["0.0.0.0:8081:80".into()], ..on(None) };
    let e = refused_without_change(&env, env.sandbox(v4_port).await).await;
    assert!(e.to_string().contains("an IPv4 host address") && e.to_string().contains("IPv6-only"));
    let env = env.restart().await;
    let st = env.ops.lock().await;
    assert_eq!(st.networks[&net.id].ipv4, None, "stored without IPv4");
    assert_eq!(st.sandboxes[&a.id].endpoints[0].address, None);
    drop(st);
    env.agree().await;
}

/// Records written before IPv6-only networks (top-level subnet and
/// gateway, an address on every interface) read as they always did.
#[test]
fn network_records_keep_their_stored_shape() {
    let old = r#"{"id":"00000000000000a1","name":"n",
        "subnet":{"base":"198.18.0.0","prefix":24},"gateway":"198.18.0.1",
        "bridge":"ct-n","mtu":1500,"internal":false,"icc":true,
        "labels":{},"created_at":0,"is_default":false,"phase":"Ready"}"#;
    let rec: crate::model::NetworkRecord = serde_json::from_str(old).unwrap();
    let a = rec.ipv4.expect("the IPv4 side");
    assert_eq!(
        (a.subnet.to_string(), a.gateway.to_string()),
        ("198.18.0.0/24".into(), "198.18.0.1".into())
    );
    let again = serde_json::to_value(&rec).unwrap();
    assert_eq!(again["subnet"]["prefix"], 24, "written back as it was read");
    assert_eq!(again["gateway"], "198.18.0.1");
    // A damaged IPv4 side is an error, never an IPv6-only network.
    let bad = old.replace("\"198.18.0.1\"", "\"x\"");
    assert!(serde_json::from_str::<crate::model::NetworkRecord>(&bad).is_err());
    let half = old.replace(",\"gateway\":\"198.18.0.1\"", "");
    assert_ne!(half, old);
    assert!(serde_json::from_str::<crate::model::NetworkRecord>(&half).is_err());
    let v6_only = serde_json::to_value(crate::model::NetworkRecord { ipv4: None, ..rec }).unwrap();
    assert!(v6_only.get("subnet").is_none() && v6_only.get("gateway").is_none());
    let back: crate::model::NetworkRecord = serde_json::from_value(v6_only).unwrap();
    assert_eq!(back.ipv4, None);
}

/// The events of a scenario, as stored: each change once, in order, with
/// the request id of the call that made it; a create that failed and was
/// rolled back made none; all of it still there after a restart.
#[tokio::test]
async fn every_change_is_one_stored_event_in_order() {
    use crate::events::Kind::*;
    let env = Env::new().await;
    let start = env.ops.store().events_after(0, 1000).await.unwrap().events.len();
    let id = "req-7".to_string();
    crate::request_id::scope(id.clone(), async {
        env.network("n2", "198.19.2.0/24").await.unwrap();
        env.bridge("a", &[]).await.unwrap();
        env.connect("a", "n2", &[]).await.unwrap();
        env.disconnect("a", "n2").await.unwrap();
        env.fake.inject(Some(Op::Attach), 1, Fault::Fail);
        assert!(env.bridge("b", &[]).await.is_err(), "a failed create");
        env.delete("a").await.unwrap();
        env.delete_network("n2").await.unwrap();
    })
    .await;
    let env = env.restart().await;
    let stored = env.ops.store().events_after(0, 1000).await.unwrap().events;
    let seen: Vec<_> = stored[start..]
        .iter()
        .map(|e| (e.kind, e.sandbox_name.as_str(), e.network_name.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (NetworkCreated, "", "n2"),
            (SandboxCreated, "a", ""),
            (SandboxConnected, "a", "n2"),
            (SandboxDisconnected, "a", "n2"),
            (SandboxDeleted, "a", ""),
            (NetworkDeleted, "", "n2"),
        ]
    );
    let seqs: Vec<u64> = stored[start..].iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "one after another: {seqs:?}");
    assert!(stored[start..].iter().all(|e| e.request_id == id && e.tenant == "admin"));
}
