//! Port conflicts (ctnet's own and a host listener's), malformed specs and
//! ports in the wrong mode: the right status code, and nothing changes.
use std::net::Ipv4Addr;

use ctnet_tests::expect_status as expect;
use ctnet_tests::net::{self, Echo};
use ctnet_tests::{pb, req, Stack};
use pb::create_sandbox_request::Mode;
use tonic::Code;

fn publish(mut r: pb::CreateSandboxRequest, specs: &[&str]) -> pb::CreateSandboxRequest {
    r.publish = specs.iter().map(|s| s.to_string()).collect();
    r
}

async fn kernel_and_state(
    st: &mut Stack,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, Vec<String>, usize) {
    let list = st.list_sandboxes().await;
    (
        st.nft_elements("ports_any"),
        st.nft_elements("ports_addr"),
        st.sandbox_pins(),
        list.sandboxes.len(),
    )
}

#[tokio::test]
async fn conflicting_malformed_and_misplaced_ports_change_nothing() {
    let mut st = Stack::start().await;
    let holder = st
        .create(publish(
            req::bridge("holder", &[]),
            &["8080:80", "127.0.0.1:9090:90", "5000:50/udp"],
        ))
        .await;
    let internal =
        pb::CreateNetworkRequest { internal: true, ..req::network("inside", "198.19.40.0/24") };
    st.client.networks.create_network(internal).await.unwrap();
    // A host process listening on a port (in the fake host).
    let listener = Echo::start_on(&st.host, Ipv4Addr::UNSPECIFIED, 7777, 1);
    let before = kernel_and_state(&mut st).await;

    let b = |specs: &[&str]| publish(req::bridge("new", &[]), specs);
    let cases: Vec<(&str, pb::CreateSandboxRequest, Code, &str)> = vec![
        ("same port, wildcard", b(&["8080:81"]), Code::AlreadyExists, &holder.id),
        (
            "same port, specific address vs wildcard",
            b(&["192.0.2.1:8080:81"]),
            Code::AlreadyExists,
            "holder",
        ),
        ("wildcard vs bound address", b(&["9090:90"]), Code::AlreadyExists, "holder"),
        ("same udp port", b(&["5000:50/udp"]), Code::AlreadyExists, "holder"),
        ("twice in one request", b(&["8500:80", "8500:81"]), Code::AlreadyExists, "twice"),
        ("host listener", b(&["7777:80"]), Code::AlreadyExists, "address already in use"),
        ("malformed", b(&["80:abc"]), Code::InvalidArgument, "publish[0]"),
        ("bad protocol", b(&["80/icmp"]), Code::InvalidArgument, "publish[0]"),
        ("ranges differ", b(&["8000-8001:80-82"]), Code::InvalidArgument, "publish[0]"),
        ("port 0 inside", b(&["8080:0"]), Code::InvalidArgument, "publish[0]"),
        ("second spec bad", b(&["8600:80", "x"]), Code::InvalidArgument, "publish[1]"),
        (
            "host mode",
            publish(req::mode("new", Mode::Host(pb::HostMode {})), &["80"]),
            Code::InvalidArgument,
            "host mode",
        ),
        (
            "none mode",
            publish(req::mode("new", Mode::None(pb::NoneMode {})), &["80"]),
            Code::InvalidArgument,
            "none mode",
        ),
        (
            "container mode",
            publish(
                req::mode("new", Mode::Container(pb::ContainerMode { target: "holder".into() })),
                &["80"],
            ),
            Code::InvalidArgument,
            "container mode",
        ),
        (
            "internal only",
            publish(req::bridge("new", &["inside"]), &["80"]),
            Code::InvalidArgument,
            "internal",
        ),
    ];
    for (case, r, code, mentions) in cases {
        expect(st.client.sandboxes.create_sandbox(r).await, code, mentions, case);
    }
    // Connect with ports to an internal network.
    let c = pb::ConnectRequest {
        sandbox: "holder".into(),
        network: "inside".into(),
        ipv4_address: None,
        ipv6_address: None,
        publish: vec!["81".into()],
        interface_name: None,
        mac_address: None,
    };
    expect(
        st.client.sandboxes.connect(c).await,
        Code::InvalidArgument,
        "internal",
        "connect internal with ports",
    );
    assert_eq!(kernel_and_state(&mut st).await, before, "nothing changed");

    // The listener really is there, and still answers: DNAT did not steal it.
    assert_eq!(net::tcp_roundtrip(&st.host, Ipv4Addr::LOCALHOST, 7777, "mine").unwrap(), "mine");
    listener.peers();
    st.delete("holder").await;
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "inside".into() })
        .await
        .unwrap();
    st.finish().await;
}

#[tokio::test]
async fn connect_publishes_to_the_new_interface_and_disconnect_removes_it() {
    let mut st = Stack::start().await;
    let ext = st.add_external();
    st.client.networks.create_network(req::network("second", "198.19.41.0/24")).await.unwrap();
    st.create(req::bridge("s", &[])).await;
    let c = pb::ConnectRequest {
        sandbox: "s".into(),
        network: "second".into(),
        ipv4_address: None,
        ipv6_address: None,
        publish: vec!["8300:80".into()],
        interface_name: None,
        mac_address: None,
    };
    let s = st.client.sandboxes.connect(c).await.unwrap().into_inner();
    assert_eq!(s.ports.len(), 1);
    assert_eq!(
        (s.ports[0].interface.as_str(), s.ports[0].container_ip.as_str()),
        ("eth1", "198.19.41.2")
    );
    let echo = Echo::start_on(
        &Stack::pin_of(&s),
        "198.19.41.2".parse::<std::net::Ipv4Addr>().unwrap(),
        80,
        1,
    );
    assert_eq!(
        net::tcp_roundtrip(&ext.pin, ctnet_tests::HOST_OUTSIDE, 8300, "eth1").unwrap(),
        "eth1"
    );
    echo.peers();
    let d = pb::DisconnectRequest { sandbox: "s".into(), network: "second".into() };
    let s = st.client.sandboxes.disconnect(d).await.unwrap().into_inner();
    assert!(s.ports.is_empty());
    assert!(st.nft_elements("ports_any").is_empty());
    st.delete("s").await;
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "second".into() })
        .await
        .unwrap();
    st.finish().await;
}

/// Peak resident memory of a process, from /proc (kB).
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_small_request_for_a_huge_expansion_is_refused_unexpanded() {
    // 5,000 entries of the whole port range (a 40 KB request) once took
    // ctnet-api to 4.5 GB before the 1024-port limit was checked.
    let mut st = Stack::start().await;
    let before = kernel_and_state(&mut st).await;
    let huge: Vec<&str> = vec!["1-65535"; 5000];
    let err = st
        .client
        .sandboxes
        .create_sandbox(publish(req::bridge("huge", &[]), &huge))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("publish:"), "{}", err.message());
    let hwm = vm_hwm_kb(st.api_pid());
    assert!(hwm < 64 * 1024, "ctnet-api peaked at {hwm} kB");
    assert_eq!(kernel_and_state(&mut st).await, before);
    st.finish().await;
}
