//! Tenants against the fake kernel: isolation (another tenant's resources
//! are NotFound, host-side conflicts name no other tenant's resource),
//! quotas and permissions at their edges, and the admin seeing everything.
use super::*;
use crate::domain::sandbox::SandboxSpec;
use crate::error::Error;
use crate::policy::{Caller, Policy};

const POLICY: &str = r#"
[tenants.alpha]
uids = [1001]
shared_networks = ["bridge"]
address_pool = "198.19.0.0/20"
[tenants.alpha.quota]
networks = 2
sandboxes = 2
published_ports = 2
[tenants.alpha.allow]
host_ports = "30000-30099"

[tenants.gamma]
uids = [1003]
address_pool = "198.19.32.0/20"
[tenants.gamma.quota]
owned_netns = 1
attachments = 2
[tenants.gamma.allow]
netns_path_dirs = ["/run/ctnet-test"]

[tenants.beta]
uids = [1002]
address_pool = "198.19.16.0/20"
[tenants.beta.allow]
host_ports = "30000-30099"
"#;

fn caller(uid: u32) -> Caller {
    let id = crate::identity::Identity::Local { uid, gid: uid, groups: vec![] };
    Policy::parse(POLICY).unwrap().caller(&id).unwrap()
}

async fn net(env: &Env, c: &Caller, name: &str) -> Result<crate::model::NetworkRecord> {
    let req = pb::CreateNetworkRequest { name: name.into(), ..Default::default() };
    env.ops.create_network(c, NetworkSpec::parse(&req, PREFIX).unwrap()).await
}

async fn sandbox(env: &Env, c: &Caller, req: pb::CreateSandboxRequest) -> Result<SandboxRecord> {
    env.ops.create_sandbox(c, SandboxSpec::parse(&req)?).await
}

fn on(name: &str, network: &str, publish: &[&str]) -> pb::CreateSandboxRequest {
    let mut r = bridge_req(name, publish);
    r.mode = Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode {
        networks: vec![pb::NetworkAttachment {
            network: network.into(),
            ipv4_address: None,
            ipv6_address: None,
            interface_name: None,
            mac_address: None,
        }],
    }));
    r
}

fn not_found(e: Error) {
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn another_tenants_resources_are_not_found_and_unchanged() {
    let env = Env::new().await;
    let (a, b, admin) = (caller(1001), caller(1002), Caller::admin());
    let an = net(&env, &a, "net").await.unwrap();
    assert_eq!(an.ipv4.unwrap().subnet.to_string(), "198.19.0.0/24", "from alpha's pool");
    let web = sandbox(&env, &a, on("web", "net", &["30001:80"])).await.unwrap();
    net(&env, &b, "net").await.expect("names are per tenant");
    let before = env.fake.kernel();
    let r = |s: &str| Ref::parse("r", s).unwrap();
    for name in ["web", web.id.as_str()] {
        not_found(env.ops.delete_sandbox(&b, &r(name)).await.unwrap_err());
        not_found(env.ops.check(&b, &r(name)).await.unwrap_err());
        let st = env.ops.lock().await;
        not_found(st.sandbox(&b, &r(name)).unwrap_err());
        drop(st);
        let c = pb::ConnectRequest {
            sandbox: name.into(),
            network: "net".into(),
            ..Default::default()
        };
        not_found(env.ops.connect(&b, ConnectSpec::parse(&c).unwrap()).await.unwrap_err());
        let d = pb::DisconnectRequest { sandbox: name.into(), network: "net".into() };
        not_found(env.ops.disconnect(&b, DisconnectSpec::parse(&d).unwrap()).await.unwrap_err());
        let join = pb::CreateSandboxRequest {
            mode: Some(pb::create_sandbox_request::Mode::Container(pb::ContainerMode {
                target: name.into(),
            })),
            ..Default::default()
        };
        not_found(sandbox(&env, &b, join).await.unwrap_err());
    }
    not_found(env.ops.delete_network(&b, &r(an.id.as_str())).await.unwrap_err());
    // B's create on A's network by id is NotFound.
    not_found(sandbox(&env, &b, on("x", an.id.as_str(), &[])).await.unwrap_err());
    // A port A holds: refused without naming A's sandbox.
    let e = sandbox(&env, &b, on("clash", "net", &["30001:80"])).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert!(e.to_string().contains("another tenant's") && !e.to_string().contains("web"), "{e}");
    assert_eq!(env.fake.kernel().endpoints.len(), before.endpoints.len(), "nothing made for B");
    // The admin sees both, by tenant/name.
    let st = env.ops.lock().await;
    assert_eq!(st.sandbox(&admin, &r("alpha/web")).unwrap().id, web.id);
    assert!(st.network(&admin, &r("beta/net")).is_ok());
    drop(st);
    // Alpha may use the shared default network; beta may not.
    let shared = sandbox(&env, &a, on("shared", "bridge", &[])).await.expect("shared with alpha");
    not_found(sandbox(&env, &b, on("shared", "bridge", &[])).await.unwrap_err());
    // Alpha's veth on the admin's network is guarded against spoofing; its
    // own network's and the admin's sandboxes are not.
    let ep = &shared.endpoints[0];
    let guard = ep.guard(&shared).expect("guarded on another tenant's network");
    assert_eq!(
        (guard.link.clone(), guard.mac, guard.ip),
        (ep.host_ifname.clone(), ep.mac, ep.address)
    );
    assert!(web.endpoints[0].guard(&web).is_none());
    let own = sandbox(&env, &admin, on("own", "bridge", &[])).await.unwrap();
    assert!(own.endpoints[0].guard(&own).is_none());
    assert_eq!(env.fake.kernel().fw_guards.len(), 1);
    env.agree().await;
    env.ops.delete_sandbox(&a, &r("shared")).await.unwrap();
    env.idle(false).await;
    assert!(env.fake.kernel().fw_guards.is_empty(), "the guard goes with the sandbox");
    env.agree().await;
}

#[tokio::test]
async fn quotas_and_permissions_hold_at_their_edges() {
    let env = Env::new().await;
    let a = caller(1001);
    net(&env, &a, "n1").await.unwrap();
    net(&env, &a, "n2").await.unwrap();
    let e = net(&env, &a, "n3").await.unwrap_err();
    assert!(
        matches!(e, Error::Exhausted(_)) && e.to_string().contains("quota networks = 2"),
        "{e}"
    );
    sandbox(&env, &a, on("s1", "n1", &["30010:80", "30011:81"])).await.unwrap();
    let e = sandbox(&env, &a, on("s2", "n1", &["30012:80"])).await.unwrap_err();
    assert!(e.to_string().contains("quota published_ports = 2"), "{e}");
    sandbox(&env, &a, on("s2", "n1", &[])).await.unwrap();
    let e = sandbox(&env, &a, on("s3", "n1", &[])).await.unwrap_err();
    assert!(e.to_string().contains("quota sandboxes = 2"), "{e}");
    let del = env.ops.delete_sandbox(&a, &Ref::parse("r", "s2").unwrap()).await;
    del.expect("its own sandbox");
    sandbox(&env, &a, on("s3", "n1", &[])).await.expect("the quota freed");
    for s in ["s1", "s3"] {
        env.ops.delete_sandbox(&a, &Ref::parse("r", s).unwrap()).await.unwrap();
    }

    let denied = |e: Error, what: &str| {
        assert!(matches!(e, Error::Denied(_)) && e.to_string().contains(what), "{what}: {e:?}");
    };
    let host = pb::CreateSandboxRequest {
        mode: Some(pb::create_sandbox_request::Mode::Host(pb::HostMode {})),
        ..Default::default()
    };
    denied(sandbox(&env, &a, host).await.unwrap_err(), "host_mode");
    denied(sandbox(&env, &a, on("p", "n1", &["80:80"])).await.unwrap_err(), "ports_below_1024");
    denied(sandbox(&env, &a, on("p", "n1", &["31000:80"])).await.unwrap_err(), "allow.host_ports");
    denied(
        sandbox(&env, &a, on("p", "n1", &["127.0.0.1:30020:80"])).await.unwrap_err(),
        "host_ip_ports",
    );
    let mut r = pb::CreateNetworkRequest { name: "b".into(), ..Default::default() };
    r.bridge_name = Some("ctmine".into());
    env.ops.delete_network(&a, &Ref::parse("r", "n2").unwrap()).await.unwrap();
    denied(
        env.ops.create_network(&a, NetworkSpec::parse(&r, PREFIX).unwrap()).await.unwrap_err(),
        "bridge_name",
    );
    r.bridge_name = None;
    r.subnet = "198.19.200.0/24".into();
    denied(
        env.ops.create_network(&a, NetworkSpec::parse(&r, PREFIX).unwrap()).await.unwrap_err(),
        "outside tenant alpha's ranges",
    );
    env.agree().await;
}

/// What a refusal must leave alone: the fake kernel's objects.
fn objects(env: &Env) -> (usize, usize, usize, usize) {
    let k = env.fake.kernel();
    (k.endpoints.len(), k.netns.len(), k.bridges.len(), k.fw_ports.len())
}

#[tokio::test]
async fn namespace_attachment_path_and_mtu_edges_hold_and_leave_nothing_half_made() {
    let env = Env::new().await;
    let g = caller(1003);
    env.fake.tamper(|k| {
        k.external.insert("/run/ctnet-test/e1".into());
    });
    net(&env, &g, "g1").await.unwrap();
    net(&env, &g, "g2").await.unwrap();
    sandbox(&env, &g, on("s1", "g1", &[])).await.expect("the last owned namespace");
    let made = objects(&env);
    let e = sandbox(&env, &g, on("s2", "g1", &[])).await.unwrap_err();
    assert!(matches!(e, Error::Exhausted(_)), "{e:?}");
    assert!(e.to_string().contains("quota owned_netns = 1"), "{e}");
    assert_eq!(objects(&env), made, "nothing half-made");

    let c = pb::ConnectRequest { sandbox: "s1".into(), network: "g2".into(), ..Default::default() };
    env.ops.connect(&g, ConnectSpec::parse(&c).unwrap()).await.expect("the last attachment");
    let made = objects(&env);
    let mut ext = on("e1", "g1", &[]);
    ext.netns_path = Some("/run/ctnet-test/e1".into());
    let e = sandbox(&env, &g, ext.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Exhausted(_)), "{e:?}");
    assert!(e.to_string().contains("quota attachments = 2"), "{e}");
    let e = env.ops.connect(&g, ConnectSpec::parse(&c).unwrap()).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_) | Error::Exhausted(_)), "{e:?}");
    assert_eq!(objects(&env), made, "nothing half-made");

    // A disconnect frees an attachment: the namespace of a runtime (in an
    // allowed directory) now fits; one elsewhere is PermissionDenied.
    let d = pb::DisconnectRequest { sandbox: "s1".into(), network: "g2".into() };
    env.ops.disconnect(&g, DisconnectSpec::parse(&d).unwrap()).await.unwrap();
    let mut elsewhere = ext.clone();
    elsewhere.netns_path = Some("/run/netns/e1".into());
    let e = sandbox(&env, &g, elsewhere).await.unwrap_err();
    assert!(matches!(e, Error::Denied(_)) && e.to_string().contains("netns_path"), "{e:?}");
    sandbox(&env, &g, ext).await.expect("the freed attachment");

    let made = objects(&env);
    let r = pb::CreateNetworkRequest { name: "jumbo".into(), mtu: 9000, ..Default::default() };
    let e = env.ops.create_network(&g, NetworkSpec::parse(&r, PREFIX).unwrap()).await.unwrap_err();
    assert!(matches!(e, Error::Denied(_)) && e.to_string().contains("mtu_above_host"), "{e:?}");
    assert_eq!(objects(&env), made, "nothing half-made");
    env.agree().await;
}
