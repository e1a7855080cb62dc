//! User-defined networks: their own bridge and subnet, connect/disconnect,
//! inspect, delete.
use ctnet_tests::net::{self, Echo};
use ctnet_tests::{ip_of, pb, req, Stack};

#[tokio::test]
async fn second_network_connect_and_disconnect() {
    let mut st = Stack::start().await;
    let mut nr = req::network("backend", "198.19.7.0/24");
    nr.bridge_name = Some("ct-backend".into());
    let n = st.client.networks.create_network(nr).await.unwrap().into_inner();
    assert_eq!(n.gateway, "198.19.7.1");
    let br = net::link(&st.host, "ct-backend").expect("bridge exists");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    ctnet_tests::assert_tag(&br["ifalias"], "net", &n.id);
    assert_eq!(net::addresses(&st.host, "ct-backend"), vec!["198.19.7.1/24".to_string()]);

    let a = st.create(req::bridge("a", &[])).await;
    let b = st.create(req::bridge("b", &["backend"])).await;
    assert_eq!(ip_of(&b, "eth0").to_string(), "198.19.7.2");
    let (pa, pb_) = (Stack::pin_of(&a), Stack::pin_of(&b));
    assert!(!net::ping(&pa, ip_of(&b, "eth0"), 1), "no route between the networks before connect");

    // Connect a to backend: eth1 with an address from it.
    let creq = pb::ConnectRequest {
        sandbox: "a".into(),
        network: "backend".into(),
        ipv4_address: None,
        ipv6_address: None,
        publish: vec![],
        interface_name: None,
        mac_address: None,
    };
    let a2 = st.client.sandboxes.connect(creq).await.unwrap().into_inner();
    assert_eq!(a2.interfaces.len(), 2);
    let eth1 = &a2.interfaces[1];
    assert_eq!((eth1.name.as_str(), eth1.address.as_str()), ("eth1", "198.19.7.3/24"));
    assert_eq!(eth1.gateway, "", "only eth0 carries the default route");
    assert_eq!(net::addresses(&pa, "eth1"), vec!["198.19.7.3/24".to_string()]);
    assert_eq!(net::link(&st.host, &eth1.host_interface).unwrap()["master"], "ct-backend");
    let echo = Echo::start(&pb_, ip_of(&b, "eth0"), 1);
    assert_eq!(
        net::tcp_roundtrip(&pa, ip_of(&b, "eth0"), echo.port, "over eth1").unwrap(),
        "over eth1"
    );
    assert_eq!(echo.peers()[0].ip().to_string(), "198.19.7.3");

    // Inspect lists both attached sandboxes, by address.
    let inspected = st.network("backend").await;
    let attached: Vec<(&str, &str)> = inspected
        .sandboxes
        .iter()
        .map(|s| (s.sandbox_name.as_str(), s.interface.as_str()))
        .collect();
    assert_eq!(attached, vec![("b", "eth0"), ("a", "eth1")]);

    // The network cannot go while sandboxes are attached; the message names them.
    let err = st
        .client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "backend".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains(&b.id) && err.message().contains(&a.id), "{}", err.message());

    // Disconnect removes eth1 and its host end; the address is free again.
    let dreq = pb::DisconnectRequest { sandbox: a.id.clone(), network: n.id.clone() };
    let a3 = st.client.sandboxes.disconnect(dreq).await.unwrap().into_inner();
    assert_eq!(a3.interfaces.len(), 1);
    assert!(!net::link_names(&pa).contains(&"eth1".to_string()));
    assert!(net::link(&st.host, &eth1.host_interface).is_none());
    assert!(!net::ping(&pa, ip_of(&b, "eth0"), 1));
    assert_eq!(st.network("backend").await.sandboxes.len(), 1);

    st.delete("a").await;
    st.delete("b").await;
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "backend".into() })
        .await
        .unwrap();
    assert!(net::link(&st.host, "ct-backend").is_none(), "bridge deleted with its network");
    st.finish().await;
}

#[tokio::test]
async fn sandbox_on_two_networks_at_create() {
    let mut st = Stack::start().await;
    st.client.networks.create_network(req::network("n2", "198.19.8.0/24")).await.unwrap();
    let s = st.create(req::bridge("multi", &["n2", "bridge"])).await;
    let names: Vec<&str> = s.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["eth0", "eth1"]);
    assert_eq!(
        s.interfaces[0].gateway, "198.19.8.1",
        "the first network carries the default route"
    );
    let pin = Stack::pin_of(&s);
    let default: Vec<_> = net::routes(&pin).into_iter().filter(|r| r["dst"] == "default").collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["gateway"], "198.19.8.1");
    assert!(net::ping(&pin, "198.19.8.1".parse::<std::net::Ipv4Addr>().unwrap(), 3));
    assert!(net::ping(&pin, "198.18.0.1".parse::<std::net::Ipv4Addr>().unwrap(), 3));
    st.delete("multi").await;
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "n2".into() })
        .await
        .unwrap();
    st.finish().await;
}

#[tokio::test]
async fn labels_filter_lists() {
    let mut st = Stack::start().await;
    let mut r = req::bridge("l1", &[]);
    r.labels.insert("app".into(), "web".into());
    st.create(r).await;
    st.create(req::bridge("l2", &[])).await;
    let sel = pb::ListSandboxesRequest {
        label_selector: [("app".to_string(), "web".to_string())].into(),
    };
    let found = st.client.sandboxes.list_sandboxes(sel).await.unwrap().into_inner().sandboxes;
    assert_eq!(found.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["l1"]);
    st.delete("l1").await;
    st.delete("l2").await;
    st.finish().await;
}

/// A runtime names the interface (CNI_IFNAME): the kernel has it by that
/// name, a default name skips it, and a name already used is refused.
#[tokio::test]
async fn requested_interface_names_are_what_the_sandbox_sees() {
    let mut st = Stack::start().await;
    let mut r = req::bridge("named", &["bridge"]);
    if let Some(pb::create_sandbox_request::Mode::Bridge(b)) = &mut r.mode {
        b.networks[0].interface_name = Some("net1".into());
    }
    let s = st.create(r).await;
    let pin = Stack::pin_of(&s);
    assert_eq!(s.interfaces[0].name, "net1");
    assert!(net::link(&pin, "net1").is_some(), "net1 in the namespace");
    assert!(net::link(&pin, "eth0").is_none());
    let gw: std::net::Ipv4Addr = s.interfaces[0].gateway.parse().unwrap();
    assert!(net::ping(&pin, gw, 2), "net1 carries the default route");
    st.client.networks.create_network(req::network("side", "198.19.8.0/24")).await.unwrap();
    let connect = |name: Option<&str>| pb::ConnectRequest {
        sandbox: "named".into(),
        network: "side".into(),
        interface_name: name.map(String::from),
        ..Default::default()
    };
    let e = st.client.sandboxes.connect(connect(Some("net1"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    let s = st.client.sandboxes.connect(connect(None)).await.unwrap().into_inner();
    assert_eq!(s.interfaces[1].name, "eth0", "the first free default name");
    assert!(net::link(&pin, "eth0").is_some());
    st.delete("named").await;
    let d = pb::DeleteNetworkRequest { network: "side".into() };
    st.client.networks.delete_network(d).await.unwrap();
    st.finish().await;
}
