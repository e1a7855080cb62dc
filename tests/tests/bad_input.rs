//! Bad input gets the right status code, names the field, and changes
//! nothing: neither the kernel nor the API's state.
use ctnet_tests::expect_status as expect;
use ctnet_tests::net;
use ctnet_tests::{pb, req, Stack};
use pb::create_sandbox_request::Mode;
use tonic::Code;

/// Everything a bad request must leave untouched.
async fn snapshot(
    st: &mut Stack,
) -> (serde_json::Value, Vec<String>, pb::ListNetworksResponse, pb::ListSandboxesResponse) {
    (
        net::ip_json(&st.host, &["addr", "show"]),
        st.sandbox_pins(),
        st.client
            .networks
            .list_networks(pb::ListNetworksRequest::default())
            .await
            .unwrap()
            .into_inner(),
        st.list_sandboxes().await,
    )
}

#[tokio::test]
async fn bad_networks_are_refused_without_change() {
    let mut st = Stack::start().await;
    let before = snapshot(&mut st).await;
    let long = "n".repeat(65);
    let cases: Vec<(&str, pb::CreateNetworkRequest, Code, &str)> = vec![
        ("no prefix length", req::network("x", "198.19.0.0"), Code::InvalidArgument, "subnet"),
        (
            "host bits set",
            req::network("x", "198.19.0.1/24"),
            Code::InvalidArgument,
            "198.19.0.0/24",
        ),
        ("not an address", req::network("x", "nonsense/24"), Code::InvalidArgument, "subnet"),
        ("prefix too long", req::network("x", "198.19.0.0/31"), Code::InvalidArgument, "subnet"),
        ("missing subnet", req::network("x", ""), Code::InvalidArgument, "subnet"),
        (
            "overlaps default",
            req::network("x", "198.18.5.0/24"),
            Code::FailedPrecondition,
            "overlaps network bridge",
        ),
        ("duplicate name", req::network("bridge", "198.19.1.0/24"), Code::AlreadyExists, "name"),
        ("name too long", req::network(&long, "198.19.1.0/24"), Code::InvalidArgument, "name"),
        ("name with slash", req::network("a/b", "198.19.1.0/24"), Code::InvalidArgument, "name"),
        ("name with dots", req::network("..", "198.19.1.0/24"), Code::InvalidArgument, "name"),
        ("name with space", req::network("a b", "198.19.1.0/24"), Code::InvalidArgument, "name"),
        (
            "gateway outside",
            pb::CreateNetworkRequest {
                gateway: Some("198.19.2.1".into()),
                ..req::network("x", "198.19.1.0/24")
            },
            Code::InvalidArgument,
            "gateway",
        ),
        (
            "bridge name too long",
            pb::CreateNetworkRequest {
                bridge_name: Some("ct-0123456789abc".into()),
                ..req::network("x", "198.19.1.0/24")
            },
            Code::InvalidArgument,
            "bridge_name",
        ),
        (
            "bridge name not ours",
            pb::CreateNetworkRequest {
                bridge_name: Some("docker0".into()),
                ..req::network("x", "198.19.1.0/24")
            },
            Code::InvalidArgument,
            "bridge_name",
        ),
        (
            "bridge name taken",
            pb::CreateNetworkRequest {
                bridge_name: Some("ctnet0".into()),
                ..req::network("x", "198.19.1.0/24")
            },
            Code::AlreadyExists,
            "bridge_name",
        ),
        (
            "unknown driver",
            pb::CreateNetworkRequest {
                driver: "macvlan".into(),
                ..req::network("x", "198.19.1.0/24")
            },
            Code::InvalidArgument,
            "driver",
        ),
        (
            "bad mtu",
            pb::CreateNetworkRequest { mtu: 10, ..req::network("x", "198.19.1.0/24") },
            Code::InvalidArgument,
            "mtu",
        ),
    ];
    for (case, r, code, mentions) in cases {
        expect(st.client.networks.create_network(r).await, code, mentions, case);
    }
    let del = |n: &str| pb::DeleteNetworkRequest { network: n.into() };
    expect(
        st.client.networks.delete_network(del("nope")).await,
        Code::NotFound,
        "nope",
        "delete unknown",
    );
    expect(
        st.client.networks.delete_network(del("bridge")).await,
        Code::FailedPrecondition,
        "default",
        "delete default",
    );
    expect(
        st.client.networks.get_network(pb::GetNetworkRequest { network: "".into() }).await,
        Code::InvalidArgument,
        "network",
        "empty ref",
    );
    assert_eq!(snapshot(&mut st).await, before);
    st.finish().await;
}

#[tokio::test]
async fn bad_sandboxes_are_refused_without_change() {
    let mut st = Stack::start().await;
    st.create(req::bridge("taken", &[])).await;
    st.create(req::mode("hostbox", Mode::Host(pb::HostMode {}))).await;
    let before = snapshot(&mut st).await;
    let with_ip = |ip: &str| pb::CreateSandboxRequest {
        mode: Some(Mode::Bridge(pb::BridgeMode {
            networks: vec![pb::NetworkAttachment {
                network: "bridge".into(),
                ipv4_address: Some(ip.into()),
                ipv6_address: None,
                interface_name: None,
                mac_address: None,
            }],
        })),
        ..Default::default()
    };
    let long = "s".repeat(65);
    let cases: Vec<(&str, pb::CreateSandboxRequest, Code, &str)> = vec![
        ("unknown network", req::bridge("x", &["nope"]), Code::NotFound, "nope"),
        (
            "unknown container target",
            req::mode("x", Mode::Container(pb::ContainerMode { target: "ghost".into() })),
            Code::NotFound,
            "ghost",
        ),
        (
            "empty container target",
            req::mode("x", Mode::Container(pb::ContainerMode { target: "".into() })),
            Code::InvalidArgument,
            "container.target",
        ),
        ("address outside subnet", with_ip("198.19.0.5"), Code::InvalidArgument, "ipv4_address"),
        ("address taken", with_ip("198.18.0.2"), Code::AlreadyExists, "already in use"),
        ("address is the gateway", with_ip("198.18.0.1"), Code::AlreadyExists, "gateway"),
        ("address is broadcast", with_ip("198.18.255.255"), Code::InvalidArgument, "ipv4_address"),
        ("address malformed", with_ip("198.18.0"), Code::InvalidArgument, "ipv4_address"),
        ("duplicate name", req::bridge("taken", &[]), Code::AlreadyExists, "name"),
        ("name with slash", req::bridge("a/b", &[]), Code::InvalidArgument, "name"),
        ("name with dots", req::bridge("..", &[]), Code::InvalidArgument, "name"),
        ("name with space", req::bridge("a b", &[]), Code::InvalidArgument, "name"),
        ("name too long", req::bridge(&long, &[]), Code::InvalidArgument, "name"),
        (
            "bad mac",
            pb::CreateSandboxRequest {
                mac_address: Some("02:42:zz:00:00:01".into()),
                ..req::bridge("x", &[])
            },
            Code::InvalidArgument,
            "mac_address",
        ),
        (
            "multicast mac",
            pb::CreateSandboxRequest {
                mac_address: Some("01:00:5e:00:00:01".into()),
                ..req::bridge("x", &[])
            },
            Code::InvalidArgument,
            "mac_address",
        ),
        (
            "mac taken",
            pb::CreateSandboxRequest {
                mac_address: Some("02:42:c6:12:00:02".into()),
                ..req::bridge("x", &[])
            },
            Code::AlreadyExists,
            "mac_address",
        ),
        (
            "mac in host mode",
            pb::CreateSandboxRequest {
                mac_address: Some("02:00:00:00:00:01".into()),
                ..req::mode("x", Mode::Host(pb::HostMode {}))
            },
            Code::InvalidArgument,
            "mac_address",
        ),
        (
            "netns_path in host mode",
            pb::CreateSandboxRequest {
                netns_path: Some("/run/netns/x".into()),
                ..req::mode("x", Mode::Host(pb::HostMode {}))
            },
            Code::InvalidArgument,
            "netns_path",
        ),
        (
            "relative netns_path",
            pb::CreateSandboxRequest {
                netns_path: Some("netns/x".into()),
                ..req::bridge("x", &[])
            },
            Code::InvalidArgument,
            "netns_path",
        ),
        (
            "netns_path with ..",
            pb::CreateSandboxRequest {
                netns_path: Some("/run/../etc/x".into()),
                ..req::bridge("x", &[])
            },
            Code::InvalidArgument,
            "netns_path",
        ),
    ];
    for (case, r, code, mentions) in cases {
        expect(st.client.sandboxes.create_sandbox(r).await, code, mentions, case);
    }
    let connect = |s: &str, n: &str| pb::ConnectRequest {
        sandbox: s.into(),
        network: n.into(),
        ipv4_address: None,
        ipv6_address: None,
        publish: vec![],
        interface_name: None,
        mac_address: None,
    };
    expect(
        st.client.sandboxes.connect(connect("ghost", "bridge")).await,
        Code::NotFound,
        "ghost",
        "connect unknown sandbox",
    );
    expect(
        st.client.sandboxes.connect(connect("taken", "nope")).await,
        Code::NotFound,
        "nope",
        "connect unknown network",
    );
    expect(
        st.client.sandboxes.connect(connect("taken", "bridge")).await,
        Code::AlreadyExists,
        "already connected",
        "connect twice",
    );
    expect(
        st.client.sandboxes.connect(connect("hostbox", "bridge")).await,
        Code::FailedPrecondition,
        "bridge-mode",
        "connect host mode",
    );
    let disconnect = pb::DisconnectRequest { sandbox: "hostbox".into(), network: "bridge".into() };
    expect(
        st.client.sandboxes.disconnect(disconnect).await,
        Code::FailedPrecondition,
        "bridge-mode",
        "disconnect host mode",
    );
    expect(
        st.client
            .sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: "ghost".into() })
            .await,
        Code::NotFound,
        "ghost",
        "delete unknown",
    );
    assert_eq!(snapshot(&mut st).await, before);
    st.delete("taken").await;
    st.delete("hostbox").await;
    st.finish().await;
}

/// A request message over the size limit is refused from its length
/// prefix, before it is read, with ResourceExhausted; nothing changes and
/// the connection serves the next request.
#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_without_change() {
    let mut st = Stack::start().await;
    let before = snapshot(&mut st).await;
    let huge = pb::CreateSandboxRequest { name: Some("x".repeat(2 << 20)), ..req::bridge("", &[]) };
    let err = st.client.sandboxes.create_sandbox(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("1048576 bytes"), "{}", err.message());
    assert_eq!(snapshot(&mut st).await, before);
    st.create(req::bridge("after", &[])).await;
    st.delete("after").await;
    st.finish().await;
}
