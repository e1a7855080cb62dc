//! Isolation between networks, `icc=false` and `internal` hold for IPv6
//! exactly as for IPv4, proven with IPv6 traffic; the control at the end
//! flushes ctnet's forward chain and shows the same traffic then flows.
use std::net::Ipv6Addr;

use ctnet_tests::net::{self, Echo};
use ctnet_tests::req::dual_stack as dual;
use ctnet_tests::{pb, req, Stack, EXTERNAL6, HOST_OUTSIDE6};

fn ip6_of(s: &pb::Sandbox) -> Ipv6Addr {
    ctnet_tests::ip6_of(s, "eth0")
}

/// What the test probes, each expected to be refused while ctnet's rules
/// stand and to pass once they are flushed.
struct Probes {
    /// a (network one) to o (network two).
    across: (std::path::PathBuf, Ipv6Addr),
    /// q2 to q1 on the icc=false network.
    neighbours: (std::path::PathBuf, Ipv6Addr),
    /// i1 on the internal network to the external namespace.
    out_of_internal: std::path::PathBuf,
}

impl Probes {
    fn ping_across(&self, secs: u32) -> bool {
        net::ping(&self.across.0, self.across.1, secs)
    }
    fn ping_neighbour(&self, secs: u32) -> bool {
        net::ping(&self.neighbours.0, self.neighbours.1, secs)
    }
    fn ping_out_of_internal(&self, secs: u32) -> bool {
        net::ping(&self.out_of_internal, EXTERNAL6, secs)
    }
}

#[tokio::test]
async fn ipv6_isolation_icc_and_internal_hold_and_flow_without_the_rules() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    st.add_external_ipv6(&ext);
    // The way back to the internal network, for the control (internal
    // subnets are never masqueraded).
    let back = ["route", "add", "2001:db8:4c::/64", "via", &HOST_OUTSIDE6.to_string()];
    net::ip_do(&ext.pin, &back);
    st.client.networks.create_network(dual("one", 73)).await.unwrap();
    st.client.networks.create_network(dual("two", 74)).await.unwrap();
    let quiet = pb::CreateNetworkRequest { icc: Some(false), ..dual("quiet", 75) };
    st.client.networks.create_network(quiet).await.unwrap();
    let inside = pb::CreateNetworkRequest { internal: true, ..dual("inside", 76) };
    st.client.networks.create_network(inside).await.unwrap();

    // Between networks: both reach the outside, not each other.
    let a = st.create(req::bridge("a", &["one"])).await;
    let o = st.create(req::bridge("o", &["two"])).await;
    let (pa, po) = (Stack::pin_of(&a), Stack::pin_of(&o));
    assert!(net::ping(&pa, EXTERNAL6, 3) && net::ping(&po, EXTERNAL6, 3));
    let echo = Echo::start(&po, ip6_of(&o), 1);
    assert!(net::tcp_roundtrip(&pa, ip6_of(&o), echo.port, "x").is_err());
    drop(echo);

    // icc=false: neighbours blocked; the gateway and a published port on
    // the host's IPv6 address still work.
    let q1 = st.create(req::published("q1", &["quiet"], &["8095:80"])).await;
    let q2 = st.create(req::bridge("q2", &["quiet"])).await;
    let (p1, p2) = (Stack::pin_of(&q1), Stack::pin_of(&q2));
    assert!(net::ping(&p2, "2001:db8:4b::1".parse::<Ipv6Addr>().unwrap(), 3), "the gateway");
    let echo = Echo::start_on(&p1, Ipv6Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE6, 8095, "pub6").unwrap(), "pub6");
    echo.peers();

    // internal: neighbours talk over IPv6, nothing gets out, nothing is
    // masqueraded.
    let i1 = st.create(req::bridge("i1", &["inside"])).await;
    let i2 = st.create(req::bridge("i2", &["inside"])).await;
    let pi1 = Stack::pin_of(&i1);
    assert!(net::ping(&pi1, ip6_of(&i2), 3));
    let masq6: Vec<String> =
        st.nft_elements("masq_subnets6").iter().map(|e| e.to_string()).collect();
    assert!(!masq6.iter().any(|e| e.contains("2001:db8:4c::")), "{masq6:?}");
    assert_eq!(masq6.len(), 3, "{masq6:?}");

    let probes = Probes {
        across: (pa.clone(), ip6_of(&o)),
        neighbours: (p2.clone(), ip6_of(&q1)),
        out_of_internal: pi1.clone(),
    };
    assert!(!probes.ping_across(1), "IPv6 between two networks");
    assert!(!probes.ping_neighbour(1), "IPv6 between icc=false neighbours");
    assert!(!probes.ping_out_of_internal(1), "IPv6 out of an internal network");
    // IPv4 agrees (the same rules, the other family).
    assert!(!net::ping(&pa, ctnet_tests::ip_of(&o, "eth0"), 1));

    // Control: without ctnet's forward rules the same IPv6 traffic flows
    // (netexec stopped first: drift repair would restore the chain).
    st.kill_netexec();
    st.flush_chain("inet", "forward");
    assert!(probes.ping_across(3), "control: across networks");
    // q2 gave up resolving q1 while the rule stood (FAILED); start afresh.
    net::ip_do(&p2, &["-6", "neigh", "flush", "dev", "eth0"]);
    assert!(probes.ping_neighbour(5), "control: icc=false neighbours");
    assert!(probes.ping_out_of_internal(3), "control: out of the internal network");
    st.start_netexec();
    st.kill_api();
    st.start_api().await;

    for s in ["a", "o", "q1", "q2", "i1", "i2"] {
        st.delete(s).await;
    }
    for n in ["one", "two", "quiet", "inside"] {
        let del = pb::DeleteNetworkRequest { network: n.into() };
        st.client.networks.delete_network(del).await.unwrap();
    }
    st.finish().await;
}
