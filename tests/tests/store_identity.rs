//! A store that never forgets silently, with the real daemons. Before, an
//! emptied store started silently with a new default network and its
//! garbage collection deleted every pin and veth on the host; a failed
//! write (a full disk) made every later write fail, health still SERVING.
use std::io::Write;
use std::time::{Duration, Instant};

use ctnet_tests::{ip_of, net, pb, req, Options, Stack};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn store_file(st: &Stack) -> std::path::PathBuf {
    st.state_dir.join("ctnet.redb")
}

/// Every ctnet tag on the fake host's links, by link name.
fn tags(st: &Stack) -> Vec<(String, String)> {
    let links = net::ip_json(&st.host, &["link", "show"]);
    let mut out: Vec<(String, String)> = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let alias = l.get("ifalias")?.as_str()?;
            Some((l["ifname"].as_str()?.to_string(), alias.to_string()))
        })
        .filter(|(_, a)| a.starts_with("ctnet:"))
        .collect();
    out.sort();
    out
}

/// Waits for a child to exit (generously) and returns its exit code.
async fn exit_code(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "ctnet-api kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_emptied_store_refuses_to_start_and_touches_nothing() {
    let mut st = Stack::start().await;
    let a = st.create(req::bridge("a", &[])).await;
    let b = st.create(req::bridge("b", &[])).await;
    st.kill_api();
    let (links, pins, before) = (net::link_names(&st.host), st.sandbox_pins(), tags(&st));
    let saved = std::fs::read(store_file(&st)).unwrap();
    std::fs::OpenOptions::new().write(true).open(store_file(&st)).unwrap().set_len(0).unwrap();

    let mut cmd = st.api_command(&st.api_socket, &st.state_dir);
    cmd.args(["--default-subnet", ctnet_tests::DEFAULT_SUBNET]);
    let mut api = st.spawn_in_host(cmd, "emptied-api.log");
    assert_eq!(exit_code(&mut api).await, Some(1));
    let log = std::fs::read_to_string(st.dir.join("emptied-api.log")).unwrap();
    assert!(
        log.contains("the state store is empty") || log.contains("another state store"),
        "{log}"
    );
    assert!(log.contains("--foreign-objects"), "{log}");
    assert_eq!(net::link_names(&st.host), links, "links untouched");
    assert_eq!(st.sandbox_pins(), pins, "pins untouched");
    assert_eq!(tags(&st), before, "tags untouched");

    // The right store back: everything is there.
    std::fs::write(store_file(&st), saved).unwrap();
    st.start_api().await;
    assert_eq!(st.get("a").await.state, pb::SandboxState::Ready as i32);
    assert!(net::ping(&Stack::pin_of(&a), ip_of(&b, "eth0"), 3), "and passes traffic");
    st.delete("a").await;
    st.delete("b").await;
    st.finish().await;
}

/// The state of the release before store identities: no identity in the
/// store, tags without one on the links.
fn make_previous_release(st: &Stack) {
    for (link, alias) in tags(st) {
        let parts: Vec<&str> = alias.split(':').collect();
        assert_eq!(parts.len(), 4, "ctnet:KIND:ID:STORE, got {alias}");
        let legacy = parts[..3].join(":");
        net::ip_do(&st.host, &["link", "set", "dev", &link, "alias", &legacy]);
    }
    let db = redb::Database::create(store_file(st)).unwrap();
    let txn = db.begin_write().unwrap();
    let meta: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");
    assert!(txn.delete_table(meta).unwrap(), "the store had an identity");
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_state_directory_of_the_previous_release_is_adopted_intact() {
    let mut st = Stack::start().await;
    let a = st.create(req::published("a", &[], &["8080:80"])).await;
    let b = st.create(req::bridge("b", &[])).await;
    st.kill_api();
    make_previous_release(&st);
    assert!(tags(&st).iter().all(|(_, t)| t.split(':').count() == 3));

    st.start_api().await;
    for name in ["a", "b"] {
        assert_eq!(st.get(name).await.state, pb::SandboxState::Ready as i32, "{name}");
    }
    let now = tags(&st);
    assert!(now.iter().all(|(_, t)| t.split(':').count() == 4), "adopted: {now:?}");
    assert!(net::ping(&Stack::pin_of(&a), ip_of(&b, "eth0"), 3), "traffic passes");
    assert_eq!(st.nft_elements("ports_any").len(), 1, "the published port is kept");
    st.delete("a").await;
    st.delete("b").await;
    st.finish().await;
}

fn host_req(name: &str, label: usize) -> pb::CreateSandboxRequest {
    let mut r = req::mode(name, pb::create_sandbox_request::Mode::Host(pb::HostMode {}));
    // 64 KiB of labels a record: the store file has to grow.
    r.labels = (0..64).map(|i| (format!("k{label}-{i}"), "x".repeat(1024))).collect();
    r
}

#[tokio::test]
async fn after_a_full_disk_writes_succeed_again_without_a_restart() {
    let opts = Options { state_tmpfs: Some("8m".into()), ..Default::default() };
    let mut st = Stack::start_with(opts).await;
    // The api's tmpfs, seen through its mount namespace.
    let dir = format!("/proc/{}/root{}", st.api_pid(), st.state_dir.display());
    let filler = std::path::Path::new(&dir).join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    drop(f);

    let mut made = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let name = format!("h{i}");
        match st.client.sandboxes.create_sandbox(host_req(&name, i)).await {
            Ok(_) => made.push(name),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("a create failed on the full disk");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(!e.message().contains(&st.dir.display().to_string()), "no host path: {}", e.message());
    st.wait_health(ServingStatus::NotServing).await;

    std::fs::remove_file(&filler).unwrap();
    st.wait_health(ServingStatus::Serving).await;
    st.client.sandboxes.create_sandbox(host_req("after", 999)).await.expect("writes work again");
    made.push("after".into());
    for name in made {
        st.delete(&name).await;
    }
    st.finish().await;
}
