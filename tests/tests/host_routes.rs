//! Host-safe networks with the real daemons, in a fake host with a LAN
//! (198.19.80.5/24 on lan0), a default route and a VPN's 0.0.0.0/1 through
//! the LAN's router 198.19.80.1, and a routed 198.19.90.0/24 behind it.
//! Before, any subnet ctnet's own networks left free was taken, the host's
//! router address included.
use std::time::{Duration, Instant};

use ctnet_tests::{net, pb, req, Stack};
use tonic::Code;

fn add_lan(st: &mut Stack) {
    st.add_test_link("lan0", "bridge");
    net::ip_do(&st.host, &["addr", "add", "198.19.80.5/24", "dev", "lan0"]);
    net::ip_do(&st.host, &["link", "set", "lan0", "up"]);
    for dst in ["default", "0.0.0.0/1", "198.19.90.0/24"] {
        net::ip_do(&st.host, &["route", "add", dst, "via", "198.19.80.1", "dev", "lan0"]);
    }
}

#[tokio::test]
async fn networks_over_the_hosts_addresses_or_routes_are_refused() {
    let mut st = Stack::start().await;
    add_lan(&mut st);
    let routes = net::routes(&st.host);
    let overlapping = [
        ("198.19.80.0/25", Some("198.19.80.1"), "198.19.80.5/24 on lan0"),
        ("198.19.80.128/25", None, "198.19.80.5/24 on lan0"),
        ("198.19.90.0/25", None, "route 198.19.90.0/24 via 198.19.80.1 dev lan0"),
    ];
    for (subnet, gateway, names) in overlapping {
        let r = pb::CreateNetworkRequest {
            gateway: gateway.map(str::to_string),
            ..req::network("hijack", subnet)
        };
        let err = st.client.networks.create_network(r).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{subnet}: {err:?}");
        assert!(err.message().contains(names), "{subnet}: {}", err.message());
    }
    let err = st.client.networks.create_network(req::network("ll", "169.254.0.0/16")).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("subnet"), "{}", err.message());
    assert_eq!(net::routes(&st.host), routes, "the host's routes are unchanged");
    let nets = st.client.networks.list_networks(pb::ListNetworksRequest::default()).await;
    assert_eq!(nets.unwrap().into_inner().networks.len(), 1, "only the default network");

    // The control: a subnet beside the LAN, under the catch-all routes.
    let ok = st.client.networks.create_network(req::network("beside", "198.19.81.0/24")).await;
    let bridge = ok.unwrap().into_inner().bridge_name;
    let has_route = net::routes(&st.host).iter().any(|r| r["dst"] == "198.19.81.0/24");
    assert!(has_route, "the accepted network's bridge route exists");
    let del = pb::DeleteNetworkRequest { network: "beside".into() };
    st.client.networks.delete_network(del).await.unwrap();
    assert!(net::link(&st.host, &bridge).is_none());
    st.finish().await;
}

#[tokio::test]
async fn a_default_subnet_over_the_host_stops_ctnet_api_naming_the_address() {
    let mut st = Stack::start().await;
    add_lan(&mut st);
    // A second ctnet-api on a store of its own (told to leave the first
    // one's objects alone): it stops before it ever reconciles.
    let (socket, state) = (st.dir.join("second.sock"), st.dir.join("second-state"));
    let mut cmd = st.api_command(&socket, &state);
    cmd.args(["--default-subnet", "198.19.80.0/24", "--foreign-objects", "adopt"]);
    let mut second = st.spawn_in_host(cmd, "second-api.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "ctnet-api kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1));
    let log = std::fs::read_to_string(st.dir.join("second-api.log")).unwrap();
    assert!(log.contains("198.19.80.5/24 on lan0"), "{log}");
    assert!(net::link(&st.host, "ctnet0").is_some(), "the running stack's bridge stays");
    st.finish().await;
}
