//! The event stream with the real daemons: every change of a scenario in
//! order with its request id; a subscriber that leaves and resumes from its
//! last sequence number misses nothing, across a ctnet-api restart too; one
//! that never reads is ended while another subscriber and the API go on;
//! a tenant sees none of another tenant's events.
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ctnet_tests::tenants::{as_uid, open_socket, Tenants};
use ctnet_tests::{bin, net, netns, pb, req, Options, Stack};
use pb::EventKind::*;
use serde_json::Value;
use tonic::Streaming;

async fn watch(c: &mut ctnet_tests::Client, since: Option<u64>) -> Streaming<pb::Event> {
    c.events.watch(pb::WatchRequest { since }).await.expect("watch").into_inner()
}

async fn next(s: &mut Streaming<pb::Event>) -> pb::Event {
    let got = tokio::time::timeout(Duration::from_secs(20), s.message()).await;
    got.expect("an event in time").expect("no error").expect("the stream goes on")
}

async fn take(s: &mut Streaming<pb::Event>, n: usize) -> Vec<pb::Event> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(s).await);
    }
    out
}

fn kinds(events: &[pb::Event]) -> Vec<(pb::EventKind, String)> {
    let name = |e: &pb::Event| {
        if e.sandbox_name.is_empty() {
            e.network_name.clone()
        } else {
            format!("{}@{}", e.sandbox_name, e.network_name)
        }
    };
    events.iter().map(|e| (e.kind(), name(e))).collect()
}

fn consecutive(events: &[pb::Event]) -> bool {
    events.windows(2).all(|w| w[1].seq == w[0].seq + 1)
}

#[tokio::test]
async fn every_change_in_order_and_a_resume_misses_nothing_across_a_restart() {
    let mut st = Stack::start().await;
    let mut live = watch(&mut st.client, None).await;
    let mut c =
        ctnet_tests::Client::on(st.client.channel.clone()).sending_request_id("ev-1").unwrap();
    c.networks.create_network(req::network("evn", "198.19.77.0/24")).await.unwrap();
    c.sandboxes.create_sandbox(req::bridge("a", &["evn"])).await.unwrap();
    let on = |n: &str| pb::ConnectRequest {
        sandbox: "a".into(),
        network: n.into(),
        ..Default::default()
    };
    c.sandboxes.connect(on("bridge")).await.unwrap();
    let off = pb::DisconnectRequest { sandbox: "a".into(), network: "bridge".into() };
    c.sandboxes.disconnect(off).await.unwrap();
    c.sandboxes.delete_sandbox(pb::DeleteSandboxRequest { sandbox: "a".into() }).await.unwrap();
    c.networks.delete_network(pb::DeleteNetworkRequest { network: "evn".into() }).await.unwrap();
    let seen = take(&mut live, 6).await;
    let want = [
        (NetworkCreated, "evn"),
        (SandboxCreated, "a@"),
        (SandboxConnected, "a@bridge"),
        (SandboxDisconnected, "a@bridge"),
        (SandboxDeleted, "a@"),
        (NetworkDeleted, "evn"),
    ];
    let want: Vec<_> = want.iter().map(|(k, n)| (*k, n.to_string())).collect();
    assert_eq!(kinds(&seen), want);
    assert!(consecutive(&seen), "{seen:?}");
    assert!(seen.iter().all(|e| e.request_id == "ev-1" && e.tenant == "admin"), "{seen:?}");

    // A second subscriber replays from the first event, reads two, leaves.
    let first = seen[0].seq;
    let mut s = watch(&mut st.client, Some(first - 1)).await;
    let two = take(&mut s, 2).await;
    assert_eq!(two, seen[..2].to_vec(), "replayed from the store as they were sent live");
    drop(s);
    // More changes, then a ctnet-api restart before the resume.
    st.create(req::bridge("b", &[])).await;
    st.delete("b").await;
    st.kill_api();
    st.start_api().await;
    let mut s = watch(&mut st.client, Some(two[1].seq)).await;
    let rest = take(&mut s, 6).await;
    assert_eq!(rest[..4].to_vec(), seen[2..].to_vec(), "nothing missed");
    assert_eq!(
        kinds(&rest[4..]),
        vec![(SandboxCreated, "b@".into()), (SandboxDeleted, "b@".into())]
    );
    assert!(consecutive(&rest) && rest[0].seq == two[1].seq + 1, "{rest:?}");

    // Too old: a store that keeps fewer events refuses, naming where to follow from.
    st.finish().await;
}

#[tokio::test]
async fn a_resume_older_than_what_is_kept_is_told_to_list_again() {
    let opts = Options { api_args: vec!["--events-kept".into(), "3".into()], ..Default::default() };
    let mut st = Stack::start_with(opts).await;
    // With the default network's, five events: the first two are dropped.
    for i in 0..4 {
        st.create(req::bridge(&format!("k{i}"), &[])).await;
    }
    let kept = st.client.events.watch(pb::WatchRequest { since: Some(0) }).await;
    let mut kept = kept.unwrap().into_inner();
    let three = take(&mut kept, 3).await;
    assert!(consecutive(&three), "{three:?}");
    let too_old = st.client.events.watch(pb::WatchRequest { since: Some(three[0].seq - 2) }).await;
    let e = too_old.expect_err("older than the oldest kept");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let follow = format!("since={}", three[0].seq - 1);
    assert!(
        e.message().contains("list the resources again") && e.message().contains(&follow),
        "{e:?}"
    );
    // Control: from just before the oldest kept is fine.
    let ok = st.client.events.watch(pb::WatchRequest { since: Some(three[0].seq - 1) }).await;
    assert_eq!(take(&mut ok.unwrap().into_inner(), 1).await[0], three[0]);
    for i in 0..4 {
        st.delete(&format!("k{i}")).await;
    }
    st.finish().await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_ended_and_no_one_else_waits() {
    let mut st = Stack::start().await;
    // The stalled subscriber's own connection takes 1 KiB before the
    // server has to hold on to what it sends.
    let small =
        tonic::transport::Endpoint::from_shared(format!("unix://{}", st.api_socket.display()))
            .unwrap()
            .initial_stream_window_size(1024)
            .initial_connection_window_size(1024);
    let mut slow = ctnet_tests::Client::on(small.connect().await.unwrap());
    let mut stalled = watch(&mut slow, None).await;
    let mut reader = watch(&mut st.client, None).await;
    // Big events (long names and request ids) fill the server's buffers
    // for the stalled one sooner.
    let id = "r".repeat(64);
    let mut c = ctnet_tests::Client::on(st.client.channel.clone()).sending_request_id(&id).unwrap();
    let host = |name: String| pb::CreateSandboxRequest {
        name: Some(name),
        mode: Some(pb::create_sandbox_request::Mode::Host(pb::HostMode {})),
        ..Default::default()
    };
    let pairs = 2000;
    let mut read = Vec::new();
    for i in 0..pairs {
        let name = format!("{i:04}{}", "s".repeat(56));
        c.sandboxes.create_sandbox(host(name.clone())).await.expect("the API keeps answering");
        c.sandboxes.delete_sandbox(pb::DeleteSandboxRequest { sandbox: name }).await.unwrap();
        read.extend(take(&mut reader, 2).await);
    }
    assert_eq!(read.len(), 2 * pairs);
    assert!(consecutive(&read), "the reading subscriber got every event in order");
    // The stalled one gets what was buffered for it, then the end.
    let mut got = Vec::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(20), stalled.message()).await.unwrap() {
            Ok(Some(e)) => got.push(e),
            Ok(None) => panic!("ended without a status after {} events", got.len()),
            Err(s) => break s,
        }
    };
    assert_eq!(end.code(), tonic::Code::ResourceExhausted, "{end:?}");
    let last = got.last().map_or(0, |e| e.seq);
    assert!(end.message().contains(&format!("resume with since={last}")), "{end:?}");
    assert!(got.len() < read.len(), "ended before the end: {} of {}", got.len(), read.len());
    assert!(consecutive(&got) && got.first() == read.first());
    // It resumes where it was ended, missing nothing.
    let mut again = watch(&mut st.client, Some(last)).await;
    assert_eq!(next(&mut again).await.seq, last + 1);
    st.finish().await;
}

/// ctnet's own work makes events too: a missing veth re-created when
/// netexec comes back, the firewall table rebuilt after a flush from
/// outside (host-level), a sandbox whose namespace went while ctnet-api was
/// down marked failed at its start.
#[tokio::test]
async fn repairs_drift_and_failures_are_events_too() {
    let mut st = Stack::start().await;
    let fix = st.create(req::bridge("fix", &[])).await;
    let gone = st.create(req::bridge("gone", &[])).await;
    let mut s = watch(&mut st.client, None).await;
    net::ip_do(&st.host, &["link", "del", &fix.interfaces[0].host_interface]);
    st.kill_netexec();
    st.start_netexec();
    let e = next(&mut s).await;
    assert_eq!((e.kind(), e.sandbox_name.as_str()), (SandboxRepaired, "fix"), "{e:?}");
    assert!(e.detail.contains("re-created eth0") && e.request_id.is_empty(), "{e:?}");
    st.flush_ruleset();
    let e = next(&mut s).await;
    assert_eq!((e.kind(), e.tenant.as_str()), (DriftRepaired, ""), "{e:?}");
    let last = e.seq;
    st.kill_api();
    net::ip_do(&st.host, &["link", "del", &gone.interfaces[0].host_interface]);
    netns::unpin(&Stack::pin_of(&gone));
    st.start_api().await;
    let mut s = watch(&mut st.client, Some(last)).await;
    let e = next(&mut s).await;
    assert_eq!((e.kind(), e.sandbox_name.as_str()), (SandboxFailed, "gone"), "{e:?}");
    assert!(e.detail.contains("namespace is gone"), "{e:?}");
    st.delete("gone").await;
    st.delete("fix").await;
    st.finish().await;
}

/// The CLI's `events --json` as `uid`, each line sent on as it comes.
fn cli_events(st: &Stack, uid: u32) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", &uid.to_string(), "--regid", &uid.to_string(), "--clear-groups"])
        .arg(bin("ctnet"))
        .args(["--json", "-H"])
        .arg(&st.api_socket)
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

const POLICY: &str = "[tenants.alpha]\nuids = [{a}]\naddress_pool = \"198.19.32.0/20\"\n\n\
    [tenants.beta]\nuids = [{b}]\naddress_pool = \"198.19.48.0/20\"\n";

#[tokio::test]
async fn a_tenant_sees_none_of_another_tenants_events() {
    let t = Tenants::new(POLICY);
    let mut st = Stack::start_with(Options { api_args: t.args(), ..Default::default() }).await;
    open_socket(&st);
    let (mut a_cli, a_seen) = cli_events(&st, t.a);
    let (mut b_cli, b_seen) = cli_events(&st, t.b);
    let wait = |rx: &mpsc::Receiver<Value>| rx.recv_timeout(Duration::from_secs(20)).unwrap();
    // Each subscriber is following once it has seen its own tenant's probe.
    for (uid, rx, probe) in [(t.a, &a_seen, "aprobe"), (t.b, &b_seen, "bprobe")] {
        as_uid(&st, uid, &["network", "create", probe]).unwrap();
        assert_eq!(wait(rx)["network_name"], probe);
    }
    let mut admin = watch(&mut st.client, None).await;
    as_uid(&st, t.a, &["network", "create", "anet"]).unwrap();
    as_uid(&st, t.a, &["sandbox", "create", "--name", "aweb", "--net", "anet"]).unwrap();
    as_uid(&st, t.b, &["network", "create", "bnet"]).unwrap();
    let a: Vec<Value> = (0..2).map(|_| wait(&a_seen)).collect();
    assert_eq!(
        (a[0]["kind"].as_str(), a[0]["network_name"].as_str()),
        (Some("network_created"), Some("anet"))
    );
    assert_eq!(
        (a[1]["kind"].as_str(), a[1]["sandbox_name"].as_str()),
        (Some("sandbox_created"), Some("aweb"))
    );
    // Beta's next event is its own: none of alpha's came before it.
    let b = wait(&b_seen);
    assert_eq!(
        (b["kind"].as_str(), b["network_name"].as_str(), b["tenant"].as_str()),
        (Some("network_created"), Some("bnet"), Some("beta"))
    );
    // Control: the admin saw all three, alpha's first.
    let all = take(&mut admin, 3).await;
    let tenants: Vec<&str> = all.iter().map(|e| e.tenant.as_str()).collect();
    assert_eq!(tenants, ["alpha", "alpha", "beta"]);
    assert!(a_seen.try_recv().is_err(), "alpha saw none of beta's");
    for c in [&mut a_cli, &mut b_cli] {
        let _ = c.kill();
        let _ = c.wait();
    }
    as_uid(&st, t.a, &["sandbox", "rm", "aweb"]).unwrap();
    for (uid, net) in [(t.a, "anet"), (t.a, "aprobe"), (t.b, "bnet"), (t.b, "bprobe")] {
        as_uid(&st, uid, &["network", "rm", net]).unwrap();
    }
    st.finish().await;
}
