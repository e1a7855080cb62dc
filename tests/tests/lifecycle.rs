//! Lifecycle: deletes leave nothing, freed addresses come back and are
//! reachable at once, state survives an api-server restart, limits hold.
use ctnet_tests::net::{self, Echo};
use ctnet_tests::{ip_of, pb, req, Options, Stack};
use pb::create_sandbox_request::Mode;

/// The MAC B's neighbour table holds for `ip`.
fn neighbour_mac(ns: &std::path::Path, ip: &str) -> Option<String> {
    let n = net::ip_json(ns, &["neigh", "show", ip]);
    n.as_array()?.first()?["lladdr"].as_str().map(String::from)
}

#[tokio::test]
async fn delete_removes_pin_and_veth() {
    let mut st = Stack::start().await;
    let s = st.create(req::bridge("gone", &[])).await;
    assert_eq!(st.sandbox_pins(), vec![s.id.clone()]);
    assert_eq!(st.host_veths(), vec![s.interfaces[0].host_interface.clone()]);
    st.delete("gone").await;
    // Unpinned before the answer; the veth goes with the namespace, after.
    assert!(st.sandbox_pins().is_empty());
    st.wait_for_releases();
    assert!(st.host_veths().is_empty());
    let err = st
        .client
        .sandboxes
        .get_sandbox(pb::GetSandboxRequest { sandbox: "gone".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    st.finish().await;
}

#[tokio::test]
async fn freed_address_is_reused_and_reachable_at_once() {
    let mut st = Stack::start().await;
    let a = st.create(req::bridge("a", &[])).await;
    let b = st.create(req::bridge("b", &[])).await;
    let pb_ = Stack::pin_of(&b);
    let ip_a = ip_of(&a, "eth0");
    assert!(net::ping(&pb_, ip_a, 3), "b learns a's MAC");
    let old_mac = neighbour_mac(&pb_, &ip_a.to_string()).expect("b has a neighbour entry for a");
    st.delete("a").await;

    // Default MACs derive from the address: the new holder keeps the MAC.
    // The address is held until the kernel has destroyed a's veth; a create
    // naming it waits for that.
    let c = st.create(req::at_address("c", &ip_a.to_string())).await;
    assert_eq!(ip_of(&c, "eth0"), ip_a, "the freed address is reused");
    assert_eq!(c.interfaces[0].mac_address, old_mac);
    assert!(net::ping(&pb_, ip_a, 1), "b reaches the new holder at once");
    st.delete("c").await;

    // An explicit MAC differs: the gratuitous ARP sent when eth0 comes up
    // (arp_notify) updates b's stale entry, so the first ping still works.
    let mut r = req::at_address("d", &ip_a.to_string());
    r.mac_address = Some("02:00:00:aa:bb:cc".into());
    let d = st.create(r).await;
    assert_eq!(ip_of(&d, "eth0"), ip_a);
    let echo = Echo::start(&Stack::pin_of(&d), ip_a, 1);
    assert_eq!(net::tcp_roundtrip(&pb_, ip_a, echo.port, "new mac").unwrap(), "new mac");
    echo.peers();
    assert_eq!(neighbour_mac(&pb_, &ip_a.to_string()).as_deref(), Some("02:00:00:aa:bb:cc"));
    st.delete("d").await;
    st.delete("b").await;
    st.finish().await;
}

#[tokio::test]
async fn restart_keeps_networks_sandboxes_and_allocations() {
    let mut st = Stack::start().await;
    st.client.networks.create_network(req::network("keep", "198.19.9.0/24")).await.unwrap();
    st.create(req::bridge("br", &["bridge", "keep"])).await;
    st.create(req::mode("none", Mode::None(pb::NoneMode {}))).await;
    st.create(req::mode("host", Mode::Host(pb::HostMode {}))).await;
    st.create(req::mode("join", Mode::Container(pb::ContainerMode { target: "br".into() }))).await;
    let nets_before = st
        .client
        .networks
        .list_networks(pb::ListNetworksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let sbs_before = st.list_sandboxes().await;

    st.kill_api();
    st.start_api().await;

    let nets_after = st
        .client
        .networks
        .list_networks(pb::ListNetworksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let sbs_after = st.list_sandboxes().await;
    assert_eq!(nets_before, nets_after);
    assert_eq!(sbs_before, sbs_after);
    // Allocations are kept: the next address is a fresh one, and traffic still flows.
    let next = st.create(req::bridge("next", &[])).await;
    assert_eq!(ip_of(&next, "eth0").to_string(), "198.18.0.3");
    let br = st.get("br").await;
    assert!(net::ping(&Stack::pin_of(&next), ip_of(&br, "eth0"), 3));

    for s in ["join", "br", "none", "host", "next"] {
        st.delete(s).await;
    }
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "keep".into() })
        .await
        .unwrap();
    st.finish().await;
}

#[tokio::test]
async fn full_subnet_is_resource_exhausted() {
    let mut st = Stack::start().await;
    // A /30 holds two hosts: the gateway and one sandbox.
    st.client.networks.create_network(req::network("tiny", "198.19.10.0/30")).await.unwrap();
    st.create(req::bridge("only", &["tiny"])).await;
    let links = net::link_names(&st.host);
    let err = st.client.sandboxes.create_sandbox(req::bridge("more", &["tiny"])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("no free address"), "{}", err.message());
    assert_eq!(net::link_names(&st.host), links);
    st.delete("only").await;
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "tiny".into() })
        .await
        .unwrap();
    st.finish().await;
}

#[tokio::test]
async fn bridge_port_limit_is_resource_exhausted_before_the_kernel_refuses() {
    // The real limit is 1023 ports; a lowered limit exercises the same check.
    let opts =
        Options { api_args: vec!["--bridge-max-ports".into(), "2".into()], ..Default::default() };
    let mut st = Stack::start_with(opts).await;
    st.create(req::bridge("p1", &[])).await;
    st.create(req::bridge("p2", &[])).await;
    let pins = st.sandbox_pins();
    let err = st.client.sandboxes.create_sandbox(req::bridge("p3", &[])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("the most its Linux bridge holds"), "{}", err.message());
    assert_eq!(st.sandbox_pins(), pins, "no namespace was created");
    st.delete("p1").await;
    st.create(req::bridge("p3", &[])).await;
    st.delete("p2").await;
    st.delete("p3").await;
    st.finish().await;
}
