//! Nothing lost, nothing leaked: drift from outside, objects made or removed
//! behind ctnet's back, a netexec restart, concurrency.
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ctnet_tests::net::{self, Echo};
use ctnet_tests::{ip_of, netns, pb, req, Stack, HOST_OUTSIDE};

/// Polls (generously: speed is the benchmark's business) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reachable(ext: &std::path::Path, sandbox_ns: &std::path::Path, port: u16) -> bool {
    let echo = Echo::start_on(sandbox_ns, Ipv4Addr::UNSPECIFIED, 80, 1);
    let ok = net::tcp_roundtrip(ext, HOST_OUTSIDE, port, "ping").is_ok_and(|r| r == "ping");
    if !ok {
        // Unblock the listener so its thread ends.
        let _ = net::tcp_roundtrip(sandbox_ns, Ipv4Addr::LOCALHOST, 80, "x");
    }
    echo.peers();
    ok
}

#[tokio::test]
async fn nft_flush_ruleset_is_repaired_and_own_batches_are_not_drift() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    // ctnet's own batches, additions and deletions: none is drift.
    for i in 0..4 {
        let name = format!("churn{i}");
        st.create(req::published(&name, &[], &[&format!("{}:80", 9000 + i)])).await;
        st.delete(&name).await;
    }
    let s = st.create(req::published("web", &[], &["8080:80"])).await;
    let pin = Stack::pin_of(&s);
    assert!(reachable(&ext.pin, &pin, 8080));
    st.flush_ruleset();
    eventually("the published port works again", || reachable(&ext.pin, &pin, 8080));
    assert_eq!(st.nft_elements("ports_any").len(), 1);
    // Exactly one rebuild: the flush's. Had an own batch been taken for
    // drift, its rebuild would have come first.
    let log = st.netexec_log();
    assert_eq!(log.matches("changed behind ctnet's back").count(), 1, "{log}");
    st.delete("web").await;
    st.finish().await;
}

#[tokio::test]
async fn check_reports_drift_and_gc_removes_what_nothing_owns() {
    let mut st = Stack::start().await;
    let s = st.create(req::bridge("victim", &[])).await;
    let check = |st: &mut Stack| {
        let mut c = st.client.sandboxes.clone();
        async move {
            c.check(pb::CheckRequest { sandbox: "victim".into() })
                .await
                .unwrap()
                .into_inner()
                .differences
        }
    };
    assert_eq!(check(&mut st).await, Vec::<String>::new(), "a fresh sandbox is as it should be");
    // Its veth deleted behind ctnet's back.
    net::ip_do(&st.host, &["link", "del", &s.interfaces[0].host_interface]);
    let diffs = check(&mut st).await;
    assert!(diffs.iter().any(|d| d.contains("host veth") && d.contains("missing")), "{diffs:?}");
    assert!(diffs.iter().any(|d| d.contains("eth0: missing inside")), "{diffs:?}");

    // A tagged veth and a pin that nothing owns, made behind its back.
    net::ip_do(
        &st.host,
        &["link", "add", "ctvdeadbeef00a0", "type", "veth", "peer", "name", "ctvdeadbeef00b0"],
    );
    net::ip_do(&st.host, &["link", "set", "ctvdeadbeef00a0", "alias", "ctnet:sb:00000000deadbeef"]);
    let stray = st.netns_dir.join("00000000deadbeef");
    netns::create_pinned(&stray, || {});
    // Our prefix but no tag: not provably ctnet's, so never removed.
    net::ip_do(&st.host, &["link", "add", "ctuntagged0", "type", "bridge"]);
    let removed = st
        .client
        .maintenance
        .garbage_collect(pb::GarbageCollectRequest {})
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert!(removed.iter().any(|r| r.contains("ctvdeadbeef00a0")), "{removed:?}");
    assert!(removed.iter().any(|r| r.contains("netns pin 00000000deadbeef")), "{removed:?}");
    assert!(
        net::link(&st.host, "ctvdeadbeef00a0").is_none()
            && net::link(&st.host, "ctvdeadbeef00b0").is_none()
    );
    assert!(!netns::is_pin(&stray) && !stray.exists());
    assert!(net::link(&st.host, "ctuntagged0").is_some(), "an untagged link survives GC");
    net::ip_do(&st.host, &["link", "del", "ctuntagged0"]);
    st.delete("victim").await;
    st.finish().await;
}

#[tokio::test]
async fn a_netexec_restart_changes_nothing_a_client_sees() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let a = st.create(req::published("a", &[], &["8081:80"])).await;
    let b = st.create(req::bridge("b", &[])).await;
    let before = st.list_sandboxes().await;
    st.kill_netexec();
    // The kernel keeps forwarding while netexec is gone.
    assert!(net::ping(&Stack::pin_of(&b), ip_of(&a, "eth0"), 3));
    assert!(reachable(&ext.pin, &Stack::pin_of(&a), 8081));
    st.start_netexec();
    st.wait_health(tonic_health::pb::health_check_response::ServingStatus::Serving).await;
    let after = st.list_sandboxes().await;
    assert_eq!(before, after);
    assert!(reachable(&ext.pin, &Stack::pin_of(&a), 8081));
    assert!(net::ping(&Stack::pin_of(&a), ip_of(&b, "eth0"), 3));
    // And the restarted netexec works: after its reconciliation, a flush is repaired again.
    st.flush_ruleset();
    eventually("repair by the restarted netexec", || reachable(&ext.pin, &Stack::pin_of(&a), 8081));
    st.delete("a").await;
    st.delete("b").await;
    st.finish().await;
}

#[tokio::test]
async fn a_sandbox_whose_namespace_vanished_is_marked_failed_and_can_be_deleted() {
    let mut st = Stack::start().await;
    let s = st.create(req::published("gone", &[], &["8082:80"])).await;
    st.kill_api();
    // As after a reboot: the pin is gone.
    net::ip_do(&st.host, &["link", "del", &s.interfaces[0].host_interface]);
    netns::unpin(&Stack::pin_of(&s));
    st.start_api().await;
    let got = st.get("gone").await;
    assert_eq!(got.state, pb::SandboxState::Failed as i32);
    assert!(got.state_reason.contains("namespace is gone"), "{}", got.state_reason);
    assert!(st.nft_elements("ports_any").is_empty(), "a failed sandbox's ports are not installed");
    // Its address and port stay reserved until it is deleted.
    let err = st
        .client
        .sandboxes
        .create_sandbox(req::published("other", &[], &["8082:80"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    st.delete("gone").await;
    st.create(req::published("other", &[], &["8082:80"])).await;
    st.delete("other").await;
    st.finish().await;
}

#[tokio::test]
async fn sixty_four_concurrent_creates_get_distinct_reachable_addresses() {
    let st = Stack::start().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let mut c = st.client.sandboxes.clone();
        tasks.push(tokio::spawn(async move {
            c.create_sandbox(req::bridge(&format!("c{i}"), &[])).await.unwrap().into_inner()
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.unwrap());
    }
    let mut ips: Vec<Ipv4Addr> = made.iter().map(|s| ip_of(s, "eth0")).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 64, "64 distinct addresses");
    for ip in &ips {
        assert!(net::ping(&st.host, *ip, 3), "{ip} answers");
    }
    let mut tasks = Vec::new();
    for s in &made {
        let mut c = st.client.sandboxes.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            c.delete_sandbox(pb::DeleteSandboxRequest { sandbox: id }).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    st.finish().await;
}

#[tokio::test]
async fn a_half_made_untagged_veth_of_ours_is_still_removed() {
    // What a netexec killed between creating a veth and tagging it leaves:
    // our name, no alias. (Found by the chaos test: it blocked reconciliation.)
    let mut st = Stack::start().await;
    let s = st.create(req::bridge("half", &[])).await;
    let host_end = &s.interfaces[0].host_interface;
    net::ip_do(&st.host, &["link", "set", "dev", host_end, "alias", ""]);
    assert!(net::link(&st.host, host_end).unwrap().get("ifalias").is_none(), "the tag is gone");
    st.delete("half").await;
    // A delete is answered once the veth is unplugged; its removal follows.
    st.wait_for_releases();
    assert!(net::link(&st.host, host_end).is_none(), "the untagged veth is removed");
    // A link with our prefix tagged by someone else is still refused.
    net::ip_do(&st.host, &["link", "add", "ctforeign0", "type", "bridge"]);
    net::ip_do(&st.host, &["link", "set", "dev", "ctforeign0", "alias", "someone-else"]);
    let opts_err = st.client.networks.create_network(pb::CreateNetworkRequest {
        bridge_name: Some("ctforeign0".into()),
        ..req::network("clash", "198.19.60.0/24")
    });
    let err = opts_err.await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(net::link(&st.host, "ctforeign0").is_some());
    net::ip_do(&st.host, &["link", "del", "ctforeign0"]);
    st.finish().await;
}
