//! Tenants with the real daemons: two uids in two tenants of a policy file,
//! through the CLI. A tenant does not see or touch the other's sandbox; the
//! admin sees both; every mutating and refused call has its audit line; a
//! broken policy on SIGHUP keeps the old one enforcing; an unwritable audit
//! log makes mutating calls fail with Unavailable.
use std::time::{Duration, Instant};

use ctnet_tests::net::{self, Echo};
use ctnet_tests::tenants::{as_uid, open_socket, reload, Tenants};
use ctnet_tests::{pb, Options, Stack};
use serde_json::Value;
use std::net::Ipv4Addr;
use tonic_health::pb::health_check_response::ServingStatus;

const POLICY: &str = "[tenants.alpha]\nuids = [{a}]\naddress_pool = \"198.19.32.0/20\"\n\
    [tenants.alpha.allow]\nhost_ports = \"30000-30099\"\n\n\
    [tenants.beta]\nuids = [{b}]\naddress_pool = \"198.19.48.0/20\"\n\
    [tenants.beta.allow]\nhost_ports = \"30000-30099\"\n";

/// Waits until ctnet-api's log holds `text` at least `n` times.
async fn wait_logged(st: &Stack, text: &str, n: usize) {
    let log = st.dir.join("api-1.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log).unwrap_or_default().matches(text).count() < n {
        assert!(Instant::now() < deadline, "{text:?} never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn audit_lines(st: &Stack) -> Vec<Value> {
    let text = std::fs::read_to_string(st.state_dir.join("audit.log")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[tokio::test]
async fn tenants_are_isolated_audited_and_reloaded() {
    let t = Tenants::new(POLICY);
    let opts = Options { api_args: t.args(), ..Default::default() };
    let st = Stack::start_with(opts).await;
    open_socket(&st);
    let me = as_uid(&st, t.a, &["whoami"]).unwrap();
    assert_eq!(me["uid"], t.a);
    as_uid(&st, t.a, &["network", "create", "anet", "--subnet", ""]).unwrap();
    let made = as_uid(
        &st,
        t.a,
        &["sandbox", "create", "--name", "web", "--net", "anet", "-p", "30001:80"],
    );
    let web = made.unwrap();
    let id = web["id"].as_str().unwrap().to_string();
    let before = as_uid(&st, t.a, &["sandbox", "inspect", "web"]).unwrap();
    as_uid(&st, t.b, &["network", "create", "bnet", "--subnet", ""]).unwrap();
    // Beta: alpha's sandbox is not found by name or id, for every call.
    for r in ["web", id.as_str()] {
        let target = format!("container:{r}");
        for args in [
            &["sandbox", "inspect", r][..],
            &["sandbox", "rm", r],
            &["sandbox", "check", r],
            &["sandbox", "connect", r, "bnet"],
            &["sandbox", "disconnect", r, "anet"],
            &["sandbox", "create", "--net", &target],
            &["sandbox", "create", "--net", "anet"],
            &["network", "rm", "anet"],
        ] {
            let e = as_uid(&st, t.b, args).unwrap_err();
            assert!(e.contains("NotFound"), "{args:?}: {e}");
        }
    }
    // A host port alpha holds: refused without naming alpha's sandbox.
    let e = as_uid(&st, t.b, &["sandbox", "create", "--net", "bnet", "-p", "30001:80"]);
    let e = e.unwrap_err();
    assert!(e.contains("AlreadyExists") && !e.contains("web") && !e.contains(&id), "{e}");
    // Alpha's sandbox is unchanged and its published port still answers.
    assert_eq!(as_uid(&st, t.a, &["sandbox", "inspect", "web"]).unwrap(), before);
    let pin = std::path::PathBuf::from(web["netns_path"].as_str().unwrap());
    let echo = Echo::start_on(&pin, Ipv4Addr::UNSPECIFIED, 80, 1);
    let gw: Ipv4Addr = web["interfaces"][0]["gateway"].as_str().unwrap().parse().unwrap();
    assert_eq!(net::tcp_roundtrip(&st.host, gw, 30001, "hi").as_deref(), Ok("hi"));
    echo.peers();
    let e =
        as_uid(&st, t.b, &["network", "create", "x", "--subnet", "198.19.32.0/24"]).unwrap_err();
    assert!(e.contains("PermissionDenied"), "outside beta's ranges: {e}");
    let listed = as_uid(&st, t.b, &["sandbox", "ls"]).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    // The admin (root, uid 0) sees alpha's sandbox.
    let all = st.list_sandboxes().await.sandboxes;
    assert_eq!(
        all.iter().map(|s| (s.tenant.as_str(), s.name.as_str())).collect::<Vec<_>>(),
        [("alpha", "web")]
    );

    // A broken policy on SIGHUP: the old one stays and still enforces.
    std::fs::write(&t.policy, "[tenants.beta\nbroken").unwrap();
    reload(&st);
    wait_logged(&st, "policy reload failed", 1).await;
    assert!(as_uid(&st, t.b, &["sandbox", "rm", "web"]).unwrap_err().contains("NotFound"));

    // The admin's tenant list: usage against quotas; a tenant may not see it.
    let quota = |list: &Value, tenant: &str, q: &str| {
        let t = list.as_array().unwrap().iter().find(|t| t["name"] == tenant).unwrap();
        (t["usage"][q]["used"].as_u64().unwrap(), t["usage"][q]["limit"].as_u64())
    };
    let list = as_uid(&st, 0, &["tenant", "ls"]).unwrap();
    assert_eq!(quota(&list, "alpha", "sandboxes"), (1, Some(64)), "{list}");
    assert_eq!(quota(&list, "alpha", "published_ports"), (1, Some(64)));
    assert_eq!(quota(&list, "beta", "networks"), (1, Some(4)));
    assert_eq!(quota(&list, "beta", "sandboxes"), (0, Some(64)), "nothing half-made");
    assert_eq!(quota(&list, "admin", "networks"), (1, None), "the default network");
    let e = as_uid(&st, t.a, &["tenant", "ls"]).unwrap_err();
    assert!(e.contains("PermissionDenied"), "{e}");

    // A changed policy applies without a restart: alpha's sandboxes quota
    // drops to 1, so its next create is refused naming the quota.
    t.write(&POLICY.replace(
        "[tenants.alpha.allow]",
        "[tenants.alpha.quota]\nsandboxes = 1\n[tenants.alpha.allow]",
    ));
    reload(&st);
    wait_logged(&st, "policy reloaded", 1).await;
    let e = as_uid(&st, t.a, &["sandbox", "create", "--name", "two", "--net", "anet"]).unwrap_err();
    assert!(e.contains("ResourceExhausted") && e.contains("quota sandboxes = 1"), "{e}");
    let list = as_uid(&st, 0, &["tenant", "ls"]).unwrap();
    assert_eq!(quota(&list, "alpha", "sandboxes"), (1, Some(1)));

    // The audit file: a parseable line for each mutating and refused call.
    let lines = audit_lines(&st);
    let of = |uid: u32, outcome: &str| {
        lines
            .iter()
            .filter(|l| l["identity"] == format!("uid:{uid}") && l["outcome"] == outcome)
            .count()
    };
    assert!(of(t.a, "Ok") >= 2, "alpha's two creates: {lines:?}");
    assert!(lines.iter().any(|l| l["tenant"] == "alpha"
        && l["method"].as_str().unwrap_or_default().ends_with("CreateSandbox")));
    assert!(of(t.b, "NotFound") >= 5, "beta's refused calls: {lines:?}");
    let named_web = |l: &&Value| {
        l["identity"] == format!("uid:{}", t.b)
            && l["resources"].as_array().is_some_and(|r| r.iter().any(|x| x == "web"))
    };
    assert!(lines.iter().filter(named_web).count() >= 3, "refusals name what was asked: {lines:?}");
    assert!(of(t.b, "PermissionDenied") >= 1);

    as_uid(&st, t.a, &["sandbox", "rm", "web"]).unwrap();
    as_uid(&st, t.a, &["network", "rm", "anet"]).unwrap();
    as_uid(&st, t.b, &["network", "rm", "bnet"]).unwrap();
    st.finish().await;
}

#[tokio::test]
async fn an_unwritable_audit_log_fails_mutating_calls_with_unavailable() {
    let opts =
        Options { api_args: vec!["--audit-log".into(), "/dev/full".into()], ..Default::default() };
    let mut st = Stack::start_with(opts).await;
    let before = st.list_sandboxes().await.sandboxes.len();
    let r = st.client.sandboxes.create_sandbox(ctnet_tests::req::bridge("x", &[])).await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unavailable);
    st.wait_health(ServingStatus::NotServing).await;
    // Refused up front now: nothing is made.
    let r = st.client.sandboxes.create_sandbox(ctnet_tests::req::bridge("y", &[])).await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unavailable);
    let after = st.list_sandboxes().await.sandboxes;
    assert!(after.iter().all(|s| s.name != "y"), "refused before any change");
    // The first one was made before its line failed (its reply said
    // Unavailable): removed with a writable log after a restart.
    assert_eq!(after.len(), before + 1);
    st.kill_api();
    st.options_mut().api_args.clear();
    st.start_api().await;
    for s in st.list_sandboxes().await.sandboxes {
        st.client
            .sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: s.id })
            .await
            .unwrap();
    }
    st.finish().await;
}
