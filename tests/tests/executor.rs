//! The executor API is intent-level and idempotent: repeating a call is a
//! no-op, deleting what is already gone succeeds. The contract suite that
//! api-server's fake executor passes runs here against the real netexec.
use ctnet_proto::exec::{self as xpb, executor_client::ExecutorClient};
use ctnet_tests::{net, netns, Options, Stack};

#[tokio::test]
async fn every_executor_operation_can_be_repeated() {
    // Root is allowed here, so the test can speak to the executor directly.
    let opts =
        Options { netexec_args: vec!["--allow-uid".into(), "0".into()], ..Default::default() };
    let st = Stack::start_with(opts).await;
    let ch =
        tonic::transport::Endpoint::from_shared(format!("unix://{}", st.exec_socket.display()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut x = ExecutorClient::new(ch);
    let id = "00000000000000e1";
    let bridge = xpb::EnsureBridgeRequest {
        name: "ctidem0".into(),
        address: "198.19.70.1/24".into(),
        // Dual stack: the IPv6 steps are idempotent too.
        address6: "2001:db8:70::1/64".into(),
        mtu: 1500,
        owner: "net:00000000000000b1".into(),
        adopt_untagged: false,
    };
    let attach = xpb::AttachEndpointRequest {
        netns: Some(xpb::NetnsRef { kind: Some(xpb::netns_ref::Kind::SandboxId(id.into())) }),
        host_ifname: "ctvidem00000000".into(),
        ifname: "eth0".into(),
        bridge: "ctidem0".into(),
        address: "198.19.70.2/24".into(),
        gateway: "198.19.70.1".into(),
        address6: "2001:db8:70::2/64".into(),
        gateway6: "2001:db8:70::1".into(),
        mac: vec![2, 0x42, 198, 19, 70, 2],
        mtu: 1500,
        owner: format!("sb:{id}"),
        hairpin: true,
        announce: false,
    };
    for round in 0..2 {
        x.ensure_bridge(bridge.clone())
            .await
            .unwrap_or_else(|e| panic!("ensure bridge, round {round}: {e:?}"));
        x.create_netns(xpb::CreateNetnsRequest { sandbox_id: id.into() })
            .await
            .unwrap_or_else(|e| panic!("create netns {round}: {e:?}"));
        x.attach_endpoint(attach.clone()).await.unwrap_or_else(|e| panic!("attach {round}: {e:?}"));
    }
    let pin = st.netns_dir.join(id);
    assert_eq!(
        net::addresses(&pin, "eth0"),
        vec!["198.19.70.2/24".to_string()],
        "one address after two attaches"
    );
    assert_eq!(
        net::routes(&pin).iter().filter(|r| r["dst"] == "default").count(),
        1,
        "one default route"
    );
    assert!(net::ping(&pin, "198.19.70.1".parse::<std::net::Ipv4Addr>().unwrap(), 3));
    let v6 = net::addresses6(&pin, "eth0");
    assert_eq!(v6.len(), 1, "one IPv6 address after two attaches: {v6:?}");
    assert_eq!(v6[0]["local"], "2001:db8:70::2");
    assert!(v6[0].get("tentative").is_none(), "added without DAD: {v6:?}");
    let default6 = net::routes6(&pin).into_iter().filter(|r| r["dst"] == "default").count();
    assert_eq!(default6, 1, "one IPv6 default route");
    assert!(net::ping(&pin, "2001:db8:70::1".parse::<std::net::Ipv6Addr>().unwrap(), 3));
    assert_eq!(net::addresses6_text(&st.host, "ctidem0"), vec!["2001:db8:70::1/64".to_string()]);
    assert_eq!(net::addresses(&st.host, "ctidem0"), vec!["198.19.70.1/24".to_string()]);
    let port = xpb::FirewallPort {
        protocol: "tcp".into(),
        host_ip: String::new(),
        host_port: 7070,
        target_ip: "198.19.70.2".into(),
        target_port: 80,
        owner: format!("sb:{id}"),
        routed: false,
    };
    let add = xpb::FirewallDelta { add_ports: vec![port.clone()], ..Default::default() };
    let remove = xpb::FirewallDelta { remove_ports: vec![port], ..Default::default() };
    for round in 0..2 {
        x.update_firewall(add.clone()).await.unwrap_or_else(|e| panic!("add port {round}: {e:?}"));
    }
    assert_eq!(st.nft_elements("ports_any").len(), 1, "one element after two adds");
    for round in 0..2 {
        x.update_firewall(remove.clone())
            .await
            .unwrap_or_else(|e| panic!("remove port {round}: {e:?}"));
    }
    assert!(st.nft_elements("ports_any").is_empty());
    for round in 0..2 {
        let detach = xpb::DetachEndpointRequest {
            host_ifname: "ctvidem00000000".into(),
            grace_ms: 0,
            owner: format!("sb:{id}"),
            unplug_only: false,
        };
        x.detach_endpoint(detach).await.unwrap_or_else(|e| panic!("detach {round}: {e:?}"));
        x.delete_netns(xpb::DeleteNetnsRequest { sandbox_id: id.into() })
            .await
            .unwrap_or_else(|e| panic!("delete netns {round}: {e:?}"));
        x.delete_bridge(xpb::DeleteBridgeRequest {
            name: "ctidem0".into(),
            owner: "net:00000000000000b1".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("delete bridge {round}: {e:?}"));
    }
    assert!(!netns::is_pin(&pin) && !pin.exists());
    assert!(
        net::link(&st.host, "ctidem0").is_none()
            && net::link(&st.host, "ctvidem00000000").is_none()
    );
    st.finish().await;
}

#[tokio::test]
async fn the_executor_contract_holds_for_netexec() {
    let opts =
        Options { netexec_args: vec!["--allow-uid".into(), "0".into()], ..Default::default() };
    let st = Stack::start_with(opts).await;
    let x = ctnet_api::executor::GrpcExecutor::new(&st.exec_socket).unwrap();
    let f = ctnet_api::contract::Fixture::new("ct", 71);
    ctnet_api::contract::all(&x, &f).await;
    assert!(net::link(&st.host, f.bridge.as_str()).is_none(), "the suite cleans up");
    st.finish().await;
}
