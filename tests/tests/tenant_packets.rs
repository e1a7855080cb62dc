//! Tenants' packets, with the real daemons: a sandbox of tenant alpha
//! reaches no address of beta's sandboxes (TCP, UDP, ping) except beta's
//! published host ports; the same probes succeed between the two on a
//! network the policy shares with both; there, a frame from alpha with a
//! forged source MAC or address never reaches beta, and flushing the guard
//! (the control) lets the same frames through.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ctnet_tests::net::{self, Echo, UdpEcho};
use ctnet_tests::tenants::{as_uid, open_socket, Tenants};
use ctnet_tests::{ip_of, pb, raw, req, Options, Stack};

const POLICY: &str = "[tenants.alpha]\nuids = [{a}]\naddress_pool = \"198.19.32.0/20\"\n\
    shared_networks = [\"shared\"]\n\
    [tenants.alpha.allow]\nhost_ports = \"30000-30099\"\n\n\
    [tenants.beta]\nuids = [{b}]\naddress_pool = \"198.19.48.0/20\"\n\
    shared_networks = [\"shared\"]\n\
    [tenants.beta.allow]\nhost_ports = \"30100-30199\"\n";

/// Creates a sandbox as `uid` and returns it as the admin sees it.
async fn make(st: &mut Stack, uid: u32, tenant: &str, args: &[&str]) -> pb::Sandbox {
    let name = args[0];
    let mut all = vec!["sandbox", "create", "--name"];
    all.extend(args);
    as_uid(st, uid, &all).unwrap_or_else(|e| panic!("create {name}: {e}"));
    st.get(&format!("{tenant}/{name}")).await
}

fn mac_of(s: &pb::Sandbox) -> [u8; 6] {
    raw::mac(&s.interfaces[0].mac_address)
}

fn gateway_of(s: &pb::Sandbox) -> Ipv4Addr {
    s.interfaces[0].gateway.parse().unwrap()
}

fn no_rp_filter(s: &pb::Sandbox) {
    for key in ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth0.rp_filter"] {
        ctnet_tests::netns::sysctl_set(&Stack::pin_of(s), key, "0");
    }
}

#[tokio::test]
async fn tenants_exchange_packets_only_on_a_shared_network_and_never_forged_ones() {
    let t = Tenants::new(POLICY);
    let mut st = Stack::start_with(Options { api_args: t.args(), ..Default::default() }).await;
    open_socket(&st);
    let shared = req::network("shared", "198.19.64.0/24");
    st.client.networks.create_network(shared).await.unwrap();
    as_uid(&st, t.a, &["network", "create", "anet", "--subnet", ""]).unwrap();
    as_uid(&st, t.b, &["network", "create", "bnet", "--subnet", ""]).unwrap();
    let a1 = make(&mut st, t.a, "alpha", &["a1", "--net", "anet"]).await;
    let a2 = make(&mut st, t.a, "alpha", &["a2", "--net", "shared"]).await;
    let b1 = make(&mut st, t.b, "beta", &["b1", "--net", "bnet", "-p", "30101:80"]).await;
    let b2 = make(&mut st, t.b, "beta", &["b2", "--net", "shared"]).await;
    let b3 = make(&mut st, t.b, "beta", &["b3", "--net", "shared"]).await;
    let (pa1, pa2, pb1, pb2) =
        (Stack::pin_of(&a1), Stack::pin_of(&a2), Stack::pin_of(&b1), Stack::pin_of(&b2));

    // Separate networks: nothing gets through, in either direction...
    let tcp = Echo::start_on(&pb1, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert!(net::tcp_roundtrip(&pa1, ip_of(&b1, "eth0"), 80, "x").is_err(), "TCP a1 -> b1");
    let udp = UdpEcho::start(&pb1, Ipv4Addr::UNSPECIFIED, 0, 1, 4);
    assert!(net::udp_roundtrip(&pa1, ip_of(&b1, "eth0"), udp.port, "x").is_err(), "UDP a1 -> b1");
    assert!(udp.peers().is_empty());
    assert!(!net::ping(&pa1, ip_of(&b1, "eth0"), 1), "ping a1 -> b1");
    assert!(!net::ping(&pb1, ip_of(&a1, "eth0"), 1), "ping b1 -> a1");
    // ...except beta's published host port, public by design.
    let via = gateway_of(&a1);
    assert_eq!(net::tcp_roundtrip(&pa1, via, 30101, "pub").as_deref(), Ok("pub"));
    assert_eq!(tcp.peers().len(), 1);

    // Control: on the shared network the same probes succeed.
    let b2ip = ip_of(&b2, "eth0");
    let tcp = Echo::start_on(&pb2, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&pa2, b2ip, 80, "tcp").as_deref(), Ok("tcp"));
    assert_eq!(tcp.peers()[0].ip(), ip_of(&a2, "eth0"));
    let udp = UdpEcho::start(&pb2, Ipv4Addr::UNSPECIFIED, 0, 1, 4);
    assert_eq!(net::udp_roundtrip(&pa2, b2ip, udp.port, "udp").as_deref(), Ok("udp"));
    assert_eq!(udp.peers().len(), 1);
    assert!(net::ping(&pa2, b2ip, 2), "ping a2 -> b2 on the shared network");

    // The tenants' veths on the admin's network are guarded (kernel state),
    // their veths on their own networks are not.
    let guards = st.nft_elements("guards");
    let guarded: Vec<String> =
        st.nft_elements("guarded").iter().map(net::element_comment).collect();
    assert_eq!(guards.len(), 3, "a2, b2, b3: {guards:?}");
    for s in [&a2, &b2, &b3] {
        assert!(guarded.contains(&format!("sb:{}", s.id)), "{} guarded: {guarded:?}", s.name);
    }

    // Forgery from a2 to b2: only the honest frame arrives.
    no_rp_filter(&b2);
    let send = |sport_base: u16| {
        let (a2ip, b3ip) = (ip_of(&a2, "eth0"), ip_of(&b3, "eth0"));
        let frames = [
            (mac_of(&a2), a2ip, sport_base),     // honest
            (mac_of(&a2), b3ip, sport_base + 1), // beta's address
            (mac_of(&b3), a2ip, sport_base + 2), // beta's MAC
        ];
        for _ in 0..3 {
            for (mac, ip, sport) in frames {
                let f = raw::udp_frame(mac_of(&b2), mac, ip, b2ip, sport, 5353, b"forged?");
                raw::send_frame(&pa2, "eth0", f);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let sports = |peers: Vec<SocketAddr>| {
        let mut p: Vec<u16> = peers.iter().map(|p| p.port()).collect();
        p.sort();
        p.dedup();
        p
    };
    let seen = UdpEcho::start(&pb2, Ipv4Addr::UNSPECIFIED, 5353, 9, 2);
    send(41000);
    assert_eq!(sports(seen.peers()), [41000], "only the honest frame reaches b2");

    // Control: without the guard chain the forged frames arrive, so the
    // guard is what stopped them. netexec is stopped first (it would
    // repair the flushed chain at once).
    st.kill_netexec();
    st.flush_chain("bridge", "guard");
    let seen = UdpEcho::start(&pb2, Ipv4Addr::UNSPECIFIED, 5353, 9, 2);
    send(42000);
    assert_eq!(sports(seen.peers()), [42000, 42001, 42002], "control: unguarded, all arrive");
    st.start_netexec();
    st.kill_api();
    st.start_api().await;

    for s in ["alpha/a1", "alpha/a2", "beta/b1", "beta/b2", "beta/b3"] {
        st.delete(s).await;
    }
    st.wait_for_releases();
    assert!(st.nft_elements("guards").is_empty(), "guards go with their sandboxes");
    for n in ["alpha/anet", "beta/bnet", "shared"] {
        let r = pb::DeleteNetworkRequest { network: n.into() };
        st.client.networks.delete_network(r).await.unwrap();
    }
    st.finish().await;
}
