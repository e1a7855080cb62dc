//! The CNI model: a runtime pins a namespace, ctnet only configures it.
use ctnet_tests::net::{self, Echo};
use ctnet_tests::{ip_of, netns, pb, req, Stack};

#[tokio::test]
async fn runtime_pinned_namespace_joins_the_bridge_and_is_left_alone() {
    let mut st = Stack::start().await;
    let pin = st.runtime_dir.join("runtime-ns");
    netns::create_pinned(&pin, || {});
    let mut r = req::bridge("ext", &[]);
    r.netns_path = Some(pin.display().to_string());
    let ext = st.create(r).await;
    assert_eq!(Stack::pin_of(&ext), pin);
    assert!(!ext.netns_owned);
    assert_eq!(net::addresses(&pin, "eth0"), vec![ext.interfaces[0].address.clone()]);
    let other = st.create(req::bridge("other", &[])).await;
    let echo = Echo::start(&pin, ip_of(&ext, "eth0"), 1);
    let reply =
        net::tcp_roundtrip(&Stack::pin_of(&other), ip_of(&ext, "eth0"), echo.port, "to runtime ns");
    assert_eq!(reply.unwrap(), "to runtime ns");
    echo.peers();
    assert!(net::ping(&pin, ip_of(&other, "eth0"), 3));

    st.delete("ext").await;
    st.delete("other").await;
    // The runtime's pin survives, its eth0 and our host end go (the delete
    // was answered once the veth was off the bridge).
    st.wait_for_releases();
    assert!(netns::is_pin(&pin), "the runtime's pin is still mounted");
    assert_eq!(net::link_names(&pin), vec!["lo".to_string()]);
    netns::unpin(&pin);
    st.finish().await;
}

#[tokio::test]
async fn external_paths_that_are_not_namespaces_are_refused() {
    let mut st = Stack::start().await;
    let plain = st.runtime_dir.join("plain-file");
    std::fs::write(&plain, "").unwrap();
    // A symlink inside the allowed directory, pointing at the host's namespace.
    let link = st.runtime_dir.join("sneaky");
    std::os::unix::fs::symlink(&st.host, &link).unwrap();
    let links = net::link_names(&st.host);
    let paths = [
        plain.display().to_string(),
        link.display().to_string(),
        st.host.display().to_string(),
        "/nonexistent/ns".into(),
        format!("{}/../host.ns", st.runtime_dir.display()),
    ];
    for path in paths {
        let mut r = req::bridge("bad", &[]);
        r.netns_path = Some(path.clone());
        let err = st.client.sandboxes.create_sandbox(r).await.unwrap_err();
        assert!(
            matches!(err.code(), tonic::Code::InvalidArgument | tonic::Code::PermissionDenied),
            "{path}: {err:?}"
        );
        assert!(err.message().contains("netns"), "{}", err.message());
    }
    assert_eq!(net::link_names(&st.host), links, "no link was created");
    let list = st.list_sandboxes().await;
    assert!(list.sandboxes.is_empty(), "no sandbox was recorded");
    st.finish().await;
}

#[tokio::test]
async fn a_fifo_netns_path_is_refused_without_blocking_anyone() {
    // open(2) of a FIFO waits for a writer: it used to block a tokio worker
    // of netexec, hang unrelated creates for 25 s and more and turn health
    // NOT_SERVING.
    let st = Stack::start().await;
    let fifo = st.runtime_dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut bad = req::bridge("fifo", &[]);
    bad.netns_path = Some(fifo.display().to_string());
    let mut c = st.client.clone();
    let refused = tokio::spawn(async move { c.sandboxes.create_sandbox(bad).await });
    let mut creates = Vec::new();
    for i in 0..10 {
        let mut c = st.client.clone();
        creates.push(tokio::spawn(async move {
            c.sandboxes.create_sandbox(req::bridge(&format!("u{i}"), &[])).await
        }));
    }
    let err = refused.await.unwrap().unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("not a network namespace"), "{}", err.message());
    let mut c = st.client.clone();
    for (i, t) in creates.into_iter().enumerate() {
        t.await.unwrap().unwrap_or_else(|e| panic!("create u{i}: {e:?}"));
        c.sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: format!("u{i}") })
            .await
            .unwrap();
    }
    std::fs::remove_file(&fifo).unwrap();
    st.finish().await;
}
