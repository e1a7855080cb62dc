//! Gateway modes per family: `routed` (no NAT; a published container port
//! is reached on the sandbox's own address and nothing else) and
//! `isolated` (nothing in or out, no address of the family on the bridge),
//! proven with packets of both families and the kernel state read back.
use std::net::{IpAddr, Ipv6Addr};

use ctnet_tests::net::{self, Echo};
use ctnet_tests::{expect_status, ip_of, pb, req, Stack};
use ctnet_tests::{EXTERNAL, EXTERNAL6, HOST_OUTSIDE, HOST_OUTSIDE6};

fn moded(name: &str, third: u8, mode: &str) -> pb::CreateNetworkRequest {
    pb::CreateNetworkRequest {
        gateway_mode_ipv4: mode.into(),
        gateway_mode_ipv6: mode.into(),
        ..req::dual_stack(name, third)
    }
}

fn ip6_of(s: &pb::Sandbox) -> Ipv6Addr {
    ctnet_tests::ip6_of(s, "eth0")
}

#[tokio::test]
async fn routed_opens_published_container_ports_on_the_sandbox_address_only() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    st.add_external_ipv6(&ext);
    let n = st.client.networks.create_network(moded("rt", 82, "routed")).await.unwrap();
    let n = n.into_inner();
    assert_eq!((n.gateway_mode_ipv4.as_str(), n.gateway_mode_ipv6.as_str()), ("routed", "routed"));
    // The outside knows the way to the routed prefixes (as a router would).
    net::ip_do(&ext.pin, &["route", "add", "198.19.82.0/24", "via", &HOST_OUTSIDE.to_string()]);
    let via6 = HOST_OUTSIDE6.to_string();
    net::ip_do(&ext.pin, &["-6", "route", "add", "2001:db8:52::/64", "via", &via6]);

    let s = st.create(req::published("s", &["rt"], &["80"])).await;
    let (pin, s4, s6) = (Stack::pin_of(&s), ip_of(&s, "eth0"), ip6_of(&s));
    let shown: Vec<(&str, u32)> =
        s.ports.iter().map(|p| (p.host_ip.as_str(), p.host_port)).collect();
    assert_eq!(shown.len(), 2, "one opening per family: {:?}", s.ports);
    assert!(shown.iter().all(|(_, port)| *port == 80), "no host port: {:?}", s.ports);

    // In: the published container port, straight to the sandbox's own
    // address, and the sandbox sees the client's address on both families.
    let echo = Echo::start_on(&pin, Ipv6Addr::UNSPECIFIED, 80, 2);
    assert_eq!(net::tcp_roundtrip(&ext.pin, s6, 80, "r6").unwrap(), "r6");
    assert_eq!(net::tcp_roundtrip(&ext.pin, s4, 80, "r4").unwrap(), "r4");
    let peers: Vec<IpAddr> = echo.peers().iter().map(|p| p.ip().to_canonical()).collect();
    assert_eq!(peers, vec![IpAddr::V6(EXTERNAL6), IpAddr::V4(EXTERNAL)]);
    // An unpublished port and ping are dropped, both families.
    let closed = Echo::start_on(&pin, Ipv6Addr::UNSPECIFIED, 81, 2);
    assert!(net::tcp_roundtrip(&ext.pin, s6, 81, "x").is_err(), "unpublished, IPv6");
    assert!(net::tcp_roundtrip(&ext.pin, s4, 81, "x").is_err(), "unpublished, IPv4");
    assert!(!net::ping(&ext.pin, s6, 1) && !net::ping(&ext.pin, s4, 1), "ping from outside");
    // Out: the sandbox's own address, not masqueraded.
    let out = Echo::start(&ext.pin, Ipv6Addr::UNSPECIFIED, 2);
    assert_eq!(net::tcp_roundtrip(&pin, EXTERNAL6, out.port, "o6").unwrap(), "o6");
    assert_eq!(net::tcp_roundtrip(&pin, EXTERNAL, out.port, "o4").unwrap(), "o4");
    let peers: Vec<IpAddr> = out.peers().iter().map(|p| p.ip().to_canonical()).collect();
    assert_eq!(peers, vec![IpAddr::V6(s6), IpAddr::V4(s4)]);

    // Kernel state: openings, no DNAT element, no masquerade.
    assert_eq!(st.nft_elements("routed_open").len(), 1);
    assert_eq!(st.nft_elements("routed_open6").len(), 1);
    assert!(st.nft_elements("ports_any").is_empty() && st.nft_elements("ports_any6").is_empty());
    let masq =
        format!("{:?}{:?}", st.nft_elements("masq_subnets"), st.nft_elements("masq_subnets6"));
    assert!(!masq.contains("198.19.82.0") && !masq.contains("2001:db8:52::"), "{masq}");

    // A host port or a host address cannot be honoured without NAT.
    let before = st.host_veths();
    for spec in ["8080:80", "192.0.2.1::80", "[::]:8080:80"] {
        let err = st.client.sandboxes.create_sandbox(req::published("bad", &["rt"], &[spec])).await;
        expect_status(err, tonic::Code::InvalidArgument, "routed", spec);
    }
    assert_eq!(st.host_veths(), before, "nothing made");

    // Control: without ctnet's forward rules the unpublished port answers,
    // so the drop above is the rule's (netexec stopped: drift repair would
    // restore the chain at once).
    st.kill_netexec();
    st.flush_chain("inet", "forward");
    assert_eq!(net::tcp_roundtrip(&ext.pin, s6, 81, "c6").unwrap(), "c6");
    assert_eq!(net::tcp_roundtrip(&ext.pin, s4, 81, "c4").unwrap(), "c4");
    closed.peers();
    st.start_netexec();
    st.kill_api();
    st.start_api().await;

    st.delete("s").await;
    st.wait_for_releases();
    assert!(st.nft_elements("routed_open6").is_empty(), "the opening goes with its sandbox");
    let del = pb::DeleteNetworkRequest { network: "rt".into() };
    st.client.networks.delete_network(del).await.unwrap();
    st.finish().await;
}

#[tokio::test]
async fn isolated_has_nothing_in_or_out_and_no_gateway() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    st.add_external_ipv6(&ext);
    let n = st.client.networks.create_network(moded("iso", 83, "isolated")).await.unwrap();
    let n = n.into_inner();
    assert_eq!((n.gateway.as_str(), n.ipv6_gateway.as_str()), ("", ""), "no gateway shown");
    // The bridge holds no address of either family.
    assert!(net::addresses(&st.host, &n.bridge_name).is_empty());
    assert!(net::addresses6(&st.host, &n.bridge_name).is_empty());
    // A nat network beside it: the control for every probe below.
    st.client.networks.create_network(moded("open", 84, "nat")).await.unwrap();

    let i1 = st.create(req::bridge("i1", &["iso"])).await;
    let i2 = st.create(req::bridge("i2", &["iso"])).await;
    let o = st.create(req::bridge("o", &["open"])).await;
    let (p1, po) = (Stack::pin_of(&i1), Stack::pin_of(&o));
    // Neighbours talk, both families.
    assert!(net::ping(&p1, ip_of(&i2, "eth0"), 3) && net::ping(&p1, ip6_of(&i2), 3));
    // No default route of either family.
    assert!(!net::routes(&p1).iter().any(|r| r["dst"] == "default"), "{:?}", net::routes(&p1));
    assert!(!net::routes6(&p1).iter().any(|r| r["dst"] == "default"));
    // Nothing out, nothing in, the host cannot reach them.
    assert!(!net::ping(&p1, EXTERNAL, 1) && !net::ping(&p1, EXTERNAL6, 1), "out");
    assert!(!net::ping(&st.host, ip_of(&i1, "eth0"), 1), "host to sandbox, IPv4");
    assert!(!net::ping(&st.host, ip6_of(&i1), 1), "host to sandbox, IPv6");
    // Control: the same probes pass for the nat network's sandbox.
    assert!(net::ping(&po, EXTERNAL, 3) && net::ping(&po, EXTERNAL6, 3), "control: out");
    assert!(net::ping(&st.host, ip_of(&o, "eth0"), 3) && net::ping(&st.host, ip6_of(&o), 3));
    // Nothing can be published on it.
    let before = st.host_veths();
    let err = st.client.sandboxes.create_sandbox(req::published("p", &["iso"], &["80"])).await;
    expect_status(err, tonic::Code::InvalidArgument, "isolated", "publish on isolated");
    assert_eq!(st.host_veths(), before);
    let isolated: Vec<_> =
        ["isolated4", "isolated6"].iter().map(|s| st.nft_elements(s).len()).collect();
    assert_eq!(isolated, [1, 1]);
    // Check agrees with the kernel (no default route is expected).
    let chk = st.client.sandboxes.check(pb::CheckRequest { sandbox: "i1".into() });
    let diffs = chk.await.unwrap().into_inner().differences;
    assert!(diffs.is_empty(), "{diffs:?}");

    for s in ["i1", "i2", "o"] {
        st.delete(s).await;
    }
    for n in ["iso", "open"] {
        let del = pb::DeleteNetworkRequest { network: n.into() };
        st.client.networks.delete_network(del).await.unwrap();
    }
    st.finish().await;
}
