//! Request ids: one id, given to the CLI, is found in ctnet-api's log, in
//! netexec's log (passed on with every executor call the request made), in
//! the audit line and in the events; an invalid one is replaced by a fresh
//! id and never written anywhere.
use std::process::Command;

use ctnet_tests::{bin, pb, Stack};

fn cli(st: &Stack, id: &str, args: &[&str]) {
    let out = Command::new(bin("ctnet"))
        .arg("-H")
        .arg(&st.api_socket)
        .args(["--request-id", id])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ctnet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn logs(st: &Stack) -> (String, String, String) {
    let read = |f: &str| std::fs::read_to_string(st.dir.join(f)).unwrap_or_default();
    let audit = std::fs::read_to_string(st.state_dir.join("audit.log")).unwrap_or_default();
    (read("api-1.log"), read("netexec.log"), audit)
}

#[tokio::test]
async fn one_request_id_is_followed_through_both_daemons_and_bad_ones_are_replaced() {
    let mut st = Stack::start().await;
    let events = st.client.events.watch(pb::WatchRequest { since: None }).await.unwrap();
    let mut events = events.into_inner();
    let id = format!("cli-{:016x}", rand::random::<u64>());
    cli(&st, &id, &["sandbox", "create", "--name", "traced"]);
    let (api, netexec, audit) = logs(&st);
    let in_api: Vec<&str> = api.lines().filter(|l| l.contains(&id)).collect();
    assert!(in_api.iter().any(|l| l.contains("sandbox created")), "ctnet-api's log: {api}");
    let in_netexec: Vec<&str> = netexec.lines().filter(|l| l.contains(&id)).collect();
    for method in ["CreateNetns", "AttachEndpoint"] {
        assert!(
            in_netexec.iter().any(|l| l.contains(method)),
            "{method} in netexec's log: {netexec}"
        );
    }
    let line = audit.lines().find(|l| l.contains("CreateSandbox")).expect("an audit line");
    assert!(line.contains(&format!("\"request_id\":\"{id}\"")), "{line}");
    let created = events.message().await.unwrap().unwrap();
    assert_eq!(
        (created.sandbox_name.as_str(), created.request_id.as_str()),
        ("traced", id.as_str())
    );

    // Invalid ids (a space and a bang, 65 characters) are replaced.
    let long = "x".repeat(65);
    for (i, bad) in ["bad id!", long.as_str()].into_iter().enumerate() {
        cli(&st, bad, &["sandbox", "create", "--name", &format!("bad{i}")]);
        let e = events.message().await.unwrap().unwrap();
        assert_eq!(e.sandbox_name, format!("bad{i}"));
        assert!(ctnet_proto::request_id::valid(&e.request_id) && e.request_id != bad, "{e:?}");
        let (api, netexec, audit) = logs(&st);
        assert!(
            api.contains(&e.request_id) && netexec.contains(&e.request_id),
            "the fresh id is used"
        );
        for (what, text) in
            [("ctnet-api's log", &api), ("netexec's log", &netexec), ("the audit log", &audit)]
        {
            assert!(!text.contains(bad), "{bad:?} written to {what}");
        }
    }
    for name in ["traced", "bad0", "bad1"] {
        st.delete(name).await;
    }
    st.finish().await;
}
