//! The four network modes, proven with packets and kernel read-backs.
use std::net::Ipv4Addr;

use ctnet_tests::net::{self, Echo};
use ctnet_tests::{netns, pb, req, Stack};
use pb::create_sandbox_request::Mode;

fn addr_of(s: &pb::Sandbox, ifname: &str) -> (Ipv4Addr, String) {
    let i = s.interfaces.iter().find(|i| i.name == ifname).expect("interface");
    let ip: Ipv4Addr = i.address.split('/').next().unwrap().parse().unwrap();
    (ip, i.address.clone())
}

#[tokio::test]
async fn bridge_sandboxes_talk_to_each_other_and_the_gateway() {
    let mut st = Stack::start().await;
    let a = st.client.sandboxes.create_sandbox(req::bridge("a", &[])).await.unwrap().into_inner();
    let b = st
        .client
        .sandboxes
        .create_sandbox(req::bridge("b", &["bridge"]))
        .await
        .unwrap()
        .into_inner();
    let (pa, pb_) = (Stack::pin_of(&a), Stack::pin_of(&b));
    let (ip_a, cidr_a) = addr_of(&a, "eth0");
    let (ip_b, cidr_b) = addr_of(&b, "eth0");
    assert_eq!(cidr_a, "198.18.0.2/16");
    assert_eq!(cidr_b, "198.18.0.3/16");
    let gw: Ipv4Addr = a.interfaces[0].gateway.parse().unwrap();
    assert_eq!(gw, Ipv4Addr::new(198, 18, 0, 1));

    // Kernel state: eth0 with the address, default route via the gateway.
    for (pin, cidr) in [(&pa, &cidr_a), (&pb_, &cidr_b)] {
        assert_eq!(net::addresses(pin, "eth0"), vec![cidr.clone()]);
        let routes = net::routes(pin);
        let default = routes.iter().find(|r| r["dst"] == "default").expect("default route");
        assert_eq!(default["gateway"], "198.18.0.1");
        assert_eq!(default["dev"], "eth0");
    }
    // Each host end is a port of the bridge, tagged with its owner.
    for s in [&a, &b] {
        let host_end = net::link(&st.host, &s.interfaces[0].host_interface).expect("host veth");
        assert_eq!(host_end["master"], "ctnet0");
        ctnet_tests::assert_tag(&host_end["ifalias"], "sb", &s.id);
    }
    assert_eq!(net::addresses(&st.host, "ctnet0"), vec!["198.18.0.1/16".to_string()]);

    // Packets: pings and TCP round trips both ways and to the gateway.
    assert!(net::ping(&pa, ip_b, 3));
    assert!(net::ping(&pb_, ip_a, 3));
    assert!(net::ping(&pa, gw, 3));
    let echo = Echo::start(&pb_, ip_b, 1);
    assert_eq!(net::tcp_roundtrip(&pa, ip_b, echo.port, "a->b").unwrap(), "a->b");
    assert_eq!(echo.peers()[0].ip(), std::net::IpAddr::V4(ip_a), "b sees a's own address");
    let echo = Echo::start(&pa, ip_a, 1);
    assert_eq!(net::tcp_roundtrip(&pb_, ip_a, echo.port, "b->a").unwrap(), "b->a");
    echo.peers();
    let echo = Echo::start(&st.host, gw, 1);
    assert_eq!(net::tcp_roundtrip(&pa, gw, echo.port, "a->gw").unwrap(), "a->gw");
    echo.peers();
    let echo = Echo::start(&pa, ip_a, 1);
    assert_eq!(net::tcp_roundtrip(&st.host, ip_a, echo.port, "gw->a").unwrap(), "gw->a");
    echo.peers();

    for s in ["a", "b"] {
        st.client
            .sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: s.into() })
            .await
            .unwrap();
    }
    st.finish().await;
}

#[tokio::test]
async fn host_mode_uses_the_host_namespace() {
    let mut st = Stack::start().await;
    let links_before = net::link_names(&st.host);
    let h = st
        .client
        .sandboxes
        .create_sandbox(req::mode("h", Mode::Host(pb::HostMode {})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.mode, pb::SandboxMode::Host as i32);
    assert!(h.interfaces.is_empty());
    assert!(!h.netns_owned);
    assert_eq!(
        netns::inode(&Stack::pin_of(&h)),
        netns::inode(&st.host),
        "same netns inode as the fake host"
    );
    assert_eq!(net::link_names(&st.host), links_before, "host mode creates no links");
    // A listener in the host is reachable from the "sandbox" on loopback: they are one namespace.
    let echo = Echo::start(&st.host, Ipv4Addr::LOCALHOST, 1);
    assert_eq!(
        net::tcp_roundtrip(&Stack::pin_of(&h), Ipv4Addr::LOCALHOST, echo.port, "hi").unwrap(),
        "hi"
    );
    echo.peers();
    st.client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "h".into() })
        .await
        .unwrap();
    assert_eq!(net::link_names(&st.host), links_before);
    st.finish().await;
}

#[tokio::test]
async fn none_mode_has_only_loopback() {
    let mut st = Stack::start().await;
    let n = st
        .client
        .sandboxes
        .create_sandbox(req::mode("n", Mode::None(pb::NoneMode {})))
        .await
        .unwrap()
        .into_inner();
    let pin = Stack::pin_of(&n);
    assert!(n.netns_owned);
    assert_ne!(netns::inode(&pin), netns::inode(&st.host));
    assert_eq!(net::link_names(&pin), vec!["lo".to_string()]);
    assert!(net::routes(&pin).is_empty(), "no IPv4 routes: {:?}", net::routes(&pin));
    let lo = net::link(&pin, "lo").unwrap();
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "lo is up");
    // Loopback works; the bridge is unreachable.
    let echo = Echo::start(&pin, Ipv4Addr::LOCALHOST, 1);
    assert_eq!(net::tcp_roundtrip(&pin, Ipv4Addr::LOCALHOST, echo.port, "lo").unwrap(), "lo");
    echo.peers();
    assert!(!net::ping(&pin, Ipv4Addr::new(198, 18, 0, 1), 1));
    assert!(net::tcp_roundtrip(&pin, Ipv4Addr::new(198, 18, 0, 1), 9, "x").is_err());
    assert!(net::host_veths_is_empty(&st.host));
    st.client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "n".into() })
        .await
        .unwrap();
    st.finish().await;
}

#[tokio::test]
async fn container_mode_shares_the_target_namespace() {
    let mut st = Stack::start().await;
    let t =
        st.client.sandboxes.create_sandbox(req::bridge("target", &[])).await.unwrap().into_inner();
    let mode = Mode::Container(pb::ContainerMode { target: "target".into() });
    let j =
        st.client.sandboxes.create_sandbox(req::mode("joiner", mode)).await.unwrap().into_inner();
    assert_eq!(j.container_target, t.id);
    assert!(!j.netns_owned);
    assert_eq!(netns::inode(&Stack::pin_of(&j)), netns::inode(&Stack::pin_of(&t)));
    let echo = Echo::start(&Stack::pin_of(&t), Ipv4Addr::LOCALHOST, 1);
    assert_eq!(
        net::tcp_roundtrip(&Stack::pin_of(&j), Ipv4Addr::LOCALHOST, echo.port, "local").unwrap(),
        "local"
    );
    echo.peers();

    // The target cannot go while the joiner shares its namespace.
    let err = st
        .client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "target".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("joiner"), "{}", err.message());
    // Joining a joiner is refused, naming the namespace's owner.
    let mode = Mode::Container(pb::ContainerMode { target: "joiner".into() });
    let err = st.client.sandboxes.create_sandbox(req::mode("j2", mode)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains(&t.id), "{}", err.message());

    st.client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "joiner".into() })
        .await
        .unwrap();
    assert!(netns::inode(&Stack::pin_of(&t)).1 > 0, "target's namespace survives the joiner");
    st.client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "target".into() })
        .await
        .unwrap();
    st.finish().await;
}
