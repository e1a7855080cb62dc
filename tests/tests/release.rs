//! Deletes answered before the kernel has destroyed the old endpoints: a
//! reused address is never on two interfaces, a delete's port elements are
//! gone when it is answered (its guards once the veth is), a create/delete
//! loop faster than the kernel meets the limit and leaks nothing.
use std::net::Ipv4Addr;

use ctnet_tests::{ip_of, net, netns, pb, req, Options, Stack};
use tonic::Code;

fn at(name: &str, addr: &str, netns_path: Option<String>) -> pb::CreateSandboxRequest {
    let mut r = req::at_address(name, addr);
    r.netns_path = netns_path;
    r
}

/// The MAC the fake host's neighbour table holds for `ip` after a ping.
fn neighbour_mac(host: &std::path::Path, ip: Ipv4Addr) -> Option<String> {
    let n = net::ip_json(host, &["neigh", "show", &ip.to_string()]);
    n.as_array()?.first()?["lladdr"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_reused_address_is_never_on_two_interfaces() {
    let mut st = Stack::start().await;
    let addr = "198.18.0.77";
    // Both kinds of namespace: ctnet's own, and a runtime's reused at once
    // (its old eth0 must be gone before the new one is made).
    let runtime = st.runtime_dir.join("runtime-ns");
    netns::create_pinned(&runtime, || {});
    for round in 0..6 {
        let path = (round % 2 == 1).then(|| runtime.display().to_string());
        let name = format!("r{round}");
        let old = st.create(at(&name, addr, path.clone())).await;
        st.delete(&name).await;
        let new = st.create(at(&format!("{name}b"), addr, path)).await;
        // Acknowledged: the old host end is gone, only the new one is there.
        let veths = st.host_veths();
        assert!(!veths.contains(&old.interfaces[0].host_interface), "round {round}: {veths:?}");
        assert!(veths.contains(&new.interfaces[0].host_interface), "round {round}: {veths:?}");
        let ip = ip_of(&new, "eth0");
        assert!(net::ping(&st.host, ip, 3), "round {round}: {ip} answers");
        assert_eq!(neighbour_mac(&st.host, ip), Some(new.interfaces[0].mac_address.clone()));
        st.delete(&format!("{name}b")).await;
    }
    st.wait_for_releases();
    assert_eq!(net::link_names(&runtime), vec!["lo".to_string()], "the runtime's pin is empty");
    netns::unpin(&runtime);
    st.finish().await;
}

#[tokio::test]
async fn a_deletes_elements_are_gone_at_once_and_its_host_port_reusable() {
    let mut st = Stack::start().await;
    let web = st.create(req::published("web", &[], &["8080:80"])).await;
    st.delete("web").await;
    // Unpublished before the answer; the next sandbox asking for the port
    // gets it (waiting for the release if it has to).
    assert!(st.nft_elements("ports_any").is_empty());
    let again = st.create(req::published("web", &[], &["8080:80"])).await;
    assert_eq!(st.nft_elements("ports_any").len(), 1);
    st.delete("web").await;
    st.wait_for_releases();
    let guards = net::nft_elements(&st.host, "guards");
    let hosts = [&web, &again].map(|s| s.interfaces[0].host_interface.clone());
    let left: Vec<_> =
        guards.iter().filter(|g| hosts.iter().any(|h| g.to_string().contains(h))).collect();
    assert!(left.is_empty(), "guards outlived their veths: {left:?}");
    st.finish().await;
}

#[tokio::test]
async fn a_create_delete_loop_faster_than_the_kernel_meets_the_limit_and_leaks_nothing() {
    let opts =
        Options { api_args: vec!["--max-sandboxes".into(), "3".into()], ..Options::default() };
    let st = Stack::start_with(opts).await;
    let loops: Vec<_> = (0..4)
        .map(|client| {
            let socket = st.api_socket.display().to_string();
            tokio::spawn(async move {
                let mut c = ctnet_client::connect(&socket).await.expect("connect");
                for i in 0..10 {
                    let name = format!("c{client}-{i}");
                    match c.sandboxes.create_sandbox(req::bridge(&name, &[])).await {
                        Ok(_) => {
                            let d = pb::DeleteSandboxRequest { sandbox: name };
                            c.sandboxes.delete_sandbox(d).await.expect("delete");
                        }
                        // At the limit, which counts sandboxes whose veths the
                        // kernel still destroys: how often depends on timing.
                        Err(e) if e.code() == Code::ResourceExhausted => {}
                        Err(e) => panic!("create {name}: {e:?}"),
                    }
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("client loop");
    }
    st.finish().await;
}
