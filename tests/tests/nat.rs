//! Outbound NAT, published ports on every access path, and isolation,
//! proven with packets between a fake host, an external namespace and
//! sandboxes, plus the nft elements read back.
use std::net::{IpAddr, Ipv4Addr};

use ctnet_tests::net::{self, Echo, UdpEcho};
use ctnet_tests::{ip_of, netns, pb, req, Stack, EXTERNAL, HOST_OUTSIDE};

fn host_port(s: &pb::Sandbox, proto: &str, container_port: u32) -> u16 {
    let p = s
        .ports
        .iter()
        .find(|p| p.protocol == proto && p.container_port == container_port)
        .expect("mapping");
    p.host_port as u16
}

#[tokio::test]
async fn outbound_traffic_is_masqueraded_and_forwarding_switched_on() {
    let mut st = Stack::start().await;
    // The harness asserted ip_forward=0 before the daemons started; the
    // default network made ctnet switch it on.
    assert_eq!(netns::sysctl_get(&st.host, "net.ipv4.ip_forward"), "1");
    let ext = st.add_external();
    let s = st.create(req::bridge("out", &[])).await;
    let echo = Echo::start(&ext.pin, EXTERNAL, 1);
    assert_eq!(net::tcp_roundtrip(&Stack::pin_of(&s), EXTERNAL, echo.port, "out").unwrap(), "out");
    assert_eq!(
        echo.peers()[0].ip(),
        IpAddr::V4(HOST_OUTSIDE),
        "the external side sees the host's address"
    );
    st.delete("out").await;
    st.finish().await;
}

#[tokio::test]
async fn published_tcp_udp_ranges_and_ephemeral_ports_reach_the_sandbox() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let s = st
        .create(req::published(
            "web",
            &[],
            &["8080:80", "5353:53/udp", "9000-9002:7000-7002", "81"],
        ))
        .await;
    let (pin, ip) = (Stack::pin_of(&s), ip_of(&s, "eth0"));
    assert_eq!(s.ports.len(), 6);

    // 8080 -> 80: the sandbox sees the external client's own address.
    let echo = Echo::start_on(&pin, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 8080, "tcp").unwrap(), "tcp");
    assert_eq!(echo.peers()[0].ip(), IpAddr::V4(EXTERNAL));
    // UDP 5353 -> 53.
    let udp = UdpEcho::start(&pin, Ipv4Addr::UNSPECIFIED, 53, 1, 10);
    assert_eq!(net::udp_roundtrip(&ext.pin, HOST_OUTSIDE, 5353, "udp").unwrap(), "udp");
    assert_eq!(udp.peers()[0].ip(), IpAddr::V4(EXTERNAL));
    // A range maps port by port.
    for k in 0..3u16 {
        let echo = Echo::start_on(&pin, ip, 7000 + k, 1);
        let reply = net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 9000 + k, &format!("r{k}")).unwrap();
        assert_eq!(reply, format!("r{k}"));
        echo.peers();
    }
    // The ephemeral port reported is the one that works.
    let eph = host_port(&s, "tcp", 81);
    assert!((49153..=60999).contains(&eph), "{eph}");
    let echo = Echo::start_on(&pin, ip, 81, 1);
    assert_eq!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, eph, "eph").unwrap(), "eph");
    echo.peers();

    // Kernel state: one map element per mapping, tagged with the owner.
    let any = st.nft_elements("ports_any");
    assert_eq!(any.len(), 6);
    assert!(any.iter().all(|e| net::element_comment(e) == format!("sb:{}", s.id)), "{any:?}");
    st.delete("web").await;
    st.finish().await;
}

#[tokio::test]
async fn host_loopback_own_address_and_hairpin_reach_published_ports() {
    let mut st = Stack::start().await;
    st.add_external();
    let a = st.create(req::published("a", &[], &["8080:80"])).await;
    let b = st.create(req::published("b", &[], &["8081:80"])).await;
    let (pa, pb_) = (Stack::pin_of(&a), Stack::pin_of(&b));
    let gw = Ipv4Addr::new(198, 18, 0, 1);

    // Host -> 127.0.0.1: DNAT'ed and masqueraded (a loopback source cannot
    // leave the host), so the sandbox sees the gateway.
    let echo = Echo::start_on(&pa, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&st.host, Ipv4Addr::LOCALHOST, 8080, "lo").unwrap(), "lo");
    assert_eq!(echo.peers()[0].ip(), IpAddr::V4(gw));
    // Host -> its own outside address: the sandbox sees that address.
    let echo = Echo::start_on(&pa, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&st.host, HOST_OUTSIDE, 8080, "own").unwrap(), "own");
    assert_eq!(echo.peers()[0].ip(), IpAddr::V4(HOST_OUTSIDE));
    // Hairpin: a reaches its own published port through the host...
    let echo = Echo::start_on(&pa, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&pa, HOST_OUTSIDE, 8080, "self").unwrap(), "self");
    assert_eq!(
        echo.peers()[0].ip(),
        IpAddr::V4(gw),
        "hairpin traffic is masqueraded to the gateway"
    );
    // ...and its neighbour's, through the gateway address.
    let echo = Echo::start_on(&pb_, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&pa, gw, 8081, "neighbour").unwrap(), "neighbour");
    assert_eq!(echo.peers()[0].ip(), IpAddr::V4(gw));
    st.delete("a").await;
    st.delete("b").await;
    st.finish().await;
}

#[tokio::test]
async fn localhost_bound_mapping_is_reachable_from_the_host_only() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let s = st.create(req::published("local", &[], &["127.0.0.1:8082:80"])).await;
    assert_eq!(s.ports[0].host_ip, "127.0.0.1");
    let pin = Stack::pin_of(&s);
    let echo = Echo::start_on(&pin, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&st.host, Ipv4Addr::LOCALHOST, 8082, "host").unwrap(), "host");
    echo.peers();
    // Not through the host's outside address.
    assert!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 8082, "x").is_err());
    assert_eq!(st.nft_elements("ports_addr").len(), 1);
    st.delete("local").await;
    st.finish().await;
}

#[tokio::test]
async fn networks_are_isolated_icc_and_internal_hold() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    st.client.networks.create_network(req::network("other", "198.19.30.0/24")).await.unwrap();
    let quiet =
        pb::CreateNetworkRequest { icc: Some(false), ..req::network("quiet", "198.19.31.0/24") };
    st.client.networks.create_network(quiet).await.unwrap();
    let internal =
        pb::CreateNetworkRequest { internal: true, ..req::network("inside", "198.19.32.0/24") };
    st.client.networks.create_network(internal).await.unwrap();

    let a = st.create(req::bridge("a", &[])).await;
    let o = st.create(req::bridge("o", &["other"])).await;
    let (pa, po) = (Stack::pin_of(&a), Stack::pin_of(&o));
    // Both reach the outside, not each other.
    assert!(net::ping(&pa, EXTERNAL, 3) && net::ping(&po, EXTERNAL, 3));
    assert!(!net::ping(&pa, ip_of(&o, "eth0"), 1));
    let echo = Echo::start(&po, ip_of(&o, "eth0"), 1);
    assert!(net::tcp_roundtrip(&pa, ip_of(&o, "eth0"), echo.port, "x").is_err());
    drop(echo);

    // icc=false: neighbours blocked, the gateway and published ports work.
    let q1 = st.create(req::published("q1", &["quiet"], &["8090:80"])).await;
    let q2 = st.create(req::bridge("q2", &["quiet"])).await;
    let (p1, p2) = (Stack::pin_of(&q1), Stack::pin_of(&q2));
    assert!(!net::ping(&p2, ip_of(&q1, "eth0"), 1));
    assert!(net::ping(&p2, Ipv4Addr::new(198, 19, 31, 1), 3), "the gateway still answers");
    let echo = Echo::start_on(&p1, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 8090, "pub").unwrap(), "pub");
    echo.peers();

    // internal: neighbours talk, nothing gets out, nothing is masqueraded.
    let i1 = st.create(req::bridge("i1", &["inside"])).await;
    let i2 = st.create(req::bridge("i2", &["inside"])).await;
    assert!(net::ping(&Stack::pin_of(&i1), ip_of(&i2, "eth0"), 3));
    assert!(!net::ping(&Stack::pin_of(&i1), EXTERNAL, 1));
    let echo = Echo::start(&ext.pin, EXTERNAL, 1);
    assert!(net::tcp_roundtrip(&Stack::pin_of(&i1), EXTERNAL, echo.port, "x").is_err());
    drop(echo);
    let masq: Vec<String> = st.nft_elements("masq_subnets").iter().map(|e| e.to_string()).collect();
    assert!(!masq.iter().any(|e| e.contains("198.19.32.0")), "{masq:?}");

    for s in ["a", "o", "q1", "q2", "i1", "i2"] {
        st.delete(s).await;
    }
    for n in ["other", "quiet", "inside"] {
        st.client
            .networks
            .delete_network(pb::DeleteNetworkRequest { network: n.into() })
            .await
            .unwrap();
    }
    assert_eq!(st.nft_elements("bridges").len(), 1, "only the default network's bridge is left");
    st.finish().await;
}

#[tokio::test]
async fn deleting_a_sandbox_removes_exactly_its_elements() {
    let mut st = Stack::start().await;
    let a =
        st.create(req::published("a", &[], &["8100:80", "8101:81/udp", "127.0.0.1:8102:82"])).await;
    let b = st.create(req::published("b", &[], &["8200:80"])).await;
    assert_eq!((st.nft_elements("ports_any").len(), st.nft_elements("ports_addr").len()), (3, 1));
    st.delete("a").await;
    let left = st.nft_elements("ports_any");
    assert_eq!(left.len(), 1);
    assert_eq!(net::element_comment(&left[0]), format!("sb:{}", b.id));
    assert!(st.nft_elements("ports_addr").is_empty());
    let _ = a;
    st.delete("b").await;
    assert!(st.nft_elements("ports_any").is_empty() && st.nft_elements("ports_addr").is_empty());
    st.finish().await;
}

#[tokio::test]
async fn udp_flow_follows_a_recreated_mapping() {
    udp_flow_follows("6000:53/udp").await;
}

/// The flush filters by the host address too when the mapping has one.
#[tokio::test]
async fn udp_flow_follows_a_recreated_mapping_on_one_host_address() {
    udp_flow_follows(&format!("{HOST_OUTSIDE}:6000:53/udp")).await;
}

/// A UDP client sending all along reaches a sandbox that publishes the
/// same host port after the first one went: its conntrack entry, which
/// still names the old target, is flushed in-process (over netlink, no
/// `conntrack -D` exec: the log says so whenever it falls back).
async fn udp_flow_follows(spec: &str) {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    let first = st.create(req::published("first", &[], &[spec])).await;
    let got_first = UdpEcho::start(&Stack::pin_of(&first), Ipv4Addr::UNSPECIFIED, 53, 3, 10);
    // One client, one fixed source port, sending all along.
    let sender = std::thread::spawn({
        let pin = ext.pin.clone();
        move || {
            netns::run_in(&pin, || {
                let s = std::net::UdpSocket::bind((EXTERNAL, 40000)).unwrap();
                for _ in 0..300 {
                    let _ = s.send_to(b"tick", (HOST_OUTSIDE, 6000));
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        }
    });
    assert_eq!(got_first.peers().len(), 3, "the first sandbox receives the flow");
    st.delete("first").await;
    let mut r = req::published("second", &[], &[spec]);
    r.mode = Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode {
        networks: vec![pb::NetworkAttachment {
            network: "bridge".into(),
            ipv4_address: Some("198.18.0.10".into()),
            ipv6_address: None,
            interface_name: None,
            mac_address: None,
        }],
    }));
    let second = st.create(r).await;
    assert_ne!(ip_of(&second, "eth0"), ip_of(&first, "eth0"), "a different address");
    let got_second = UdpEcho::start(&Stack::pin_of(&second), Ipv4Addr::UNSPECIFIED, 53, 3, 5);
    let peers = got_second.peers();
    assert_eq!(peers.len(), 3, "the same flow reaches the new sandbox");
    assert_eq!(peers[0].port(), 40000);
    sender.join().unwrap();
    st.delete("second").await;
    assert!(!st.netexec_log().contains("running conntrack -D"), "{}", st.netexec_log());
    st.finish().await;
}
