//! Without a policy file ctnet behaves as before tenants: every caller is
//! the admin. The rest of the suite runs under a policy (root is its
//! admin), so this smoke test covers each service on the policy-less path.
use ctnet_tests::tenants::{as_uid, open_socket};
use ctnet_tests::{ip_of, net, pb, req, Options, Stack};

#[tokio::test]
async fn every_service_works_without_a_policy_and_every_caller_is_the_admin() {
    let mut st = Stack::start_with(Options { no_policy: true, ..Default::default() }).await;
    let log = std::fs::read_to_string(st.dir.join("api-1.log")).unwrap();
    assert!(!log.contains("policy"), "no policy loaded: {log}");

    // NetworkService.
    let n = st.client.networks.create_network(req::network("plain", "198.19.90.0/24")).await;
    assert_eq!(n.unwrap().into_inner().tenant, "admin");
    assert_eq!(st.network("plain").await.subnet, "198.19.90.0/24");

    // SandboxService: two sandboxes that talk, a connect, a check.
    let a = st.create(req::bridge("a", &["plain"])).await;
    st.create(req::bridge("b", &[])).await;
    let c =
        pb::ConnectRequest { sandbox: "b".into(), network: "plain".into(), ..Default::default() };
    let b = st.client.sandboxes.connect(c).await.unwrap().into_inner();
    assert!(net::ping(&Stack::pin_of(&a), ip_of(&b, "eth1"), 2), "a reaches b on plain");
    let check = pb::CheckRequest { sandbox: "a".into() };
    assert!(st.client.sandboxes.check(check).await.unwrap().into_inner().differences.is_empty());

    // MaintenanceService: an unprivileged uid is the admin too.
    open_socket(&st);
    let uid = st.api_uid + 1;
    let me = as_uid(&st, uid, &["whoami"]).unwrap();
    assert_eq!(me["tenant"], "admin", "{me}");
    let tenants = as_uid(&st, uid, &["tenant", "ls"]).unwrap();
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "only the admin: {tenants}");
    let listed = as_uid(&st, uid, &["sandbox", "ls"]).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "sees everyone's: {listed}");
    let gc = st.client.maintenance.garbage_collect(pb::GarbageCollectRequest {}).await;
    assert!(gc.unwrap().into_inner().removed.is_empty());

    st.delete("a").await;
    st.delete("b").await;
    let d = pb::DeleteNetworkRequest { network: "plain".into() };
    st.client.networks.delete_network(d).await.unwrap();
    st.finish().await;
}
