//! ctnet-cni driven as a runtime drives it: a subprocess with CNI_* in its
//! environment and the configuration on stdin, against real daemons in a
//! fake host. Every claim is read back from the kernel or shown by packets.
use std::net::{IpAddr, Ipv4Addr};

use ctnet_tests::cni::{plus, with, Cni, Container};
use ctnet_tests::net::{self, Echo, UdpEcho};
use ctnet_tests::{req, Options, Stack, EXTERNAL, HOST_OUTSIDE};
use serde_json::{json, Value};

type Env = Vec<(String, String)>;

async fn stack_with_network(name: &str, subnet: &str) -> Stack {
    let mut st = Stack::start().await;
    st.client.networks.create_network(req::network(name, subnet)).await.expect("network");
    st
}

fn ports(list: &[(u16, u16, &str)]) -> Value {
    let l: Vec<Value> = list
        .iter()
        .map(|(h, c, p)| json!({ "hostPort": h, "containerPort": c, "protocol": p }))
        .collect();
    json!({ "runtimeConfig": { "portMappings": l } })
}

/// The sandboxes ctnet holds, as (container label, interface names).
async fn attachments(st: &Stack) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<_> = st
        .list_sandboxes()
        .await
        .sandboxes
        .into_iter()
        .map(|s| {
            let id = s.labels.get("cni.dev/container-id").cloned().unwrap_or_default();
            (id, s.interfaces.into_iter().map(|i| i.name).collect())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn add_publishes_and_check_and_del_are_as_the_spec_says() {
    let mut st = stack_with_network("cni1", "198.19.41.0/24").await;
    let ext = st.add_external();
    let cni = Cni::new(&st);
    let c = Container::new(&st, "web");
    let conf = with(&cni.conf("cni1"), ports(&[(18080, 80, "tcp"), (15353, 53, "udp")]));
    let env = plus(
        &c.env("eth0"),
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAME=web;IP=198.19.41.7;MAC=02:00:00:00:41:07",
    );
    let version = cni.run("VERSION", &[], &json!({"cniVersion": "1.0.0"})).result();
    assert!(version["supportedVersions"].as_array().unwrap().contains(&json!("1.1.0")));

    let r = cni.run("ADD", &env, &conf).result();
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["ips"][0]["address"], "198.19.41.7/24");
    assert_eq!(r["ips"][0]["gateway"], "198.19.41.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert_eq!(r["routes"], json!([{ "dst": "0.0.0.0/0", "gw": "198.19.41.1" }]));
    let inside = &r["interfaces"][1];
    assert_eq!(
        (inside["name"].as_str(), inside["mac"].as_str()),
        (Some("eth0"), Some("02:00:00:00:41:07"))
    );
    assert_eq!(inside["sandbox"], c.netns.display().to_string());
    // The kernel agrees: the address, MAC and default route in the runtime's
    // namespace, the host end on the host.
    assert_eq!(net::addresses(&c.netns, "eth0"), vec!["198.19.41.7/24".to_string()]);
    assert_eq!(net::link(&c.netns, "eth0").unwrap()["address"], "02:00:00:00:41:07");
    let default = net::routes(&c.netns).into_iter().find(|r| r["dst"] == "default");
    assert_eq!(default.unwrap()["gateway"], "198.19.41.1");
    let host_if = r["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert!(net::link(&st.host, &host_if).is_some(), "host veth {host_if}");

    // Packets: an external client reaches both published ports, seen with
    // its own address.
    let echo = Echo::start_on(&c.netns, Ipv4Addr::UNSPECIFIED, 80, 1);
    assert_eq!(net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 18080, "tcp").unwrap(), "tcp");
    assert_eq!(echo.peers()[0].ip(), IpAddr::V4(EXTERNAL));
    let udp = UdpEcho::start(&c.netns, Ipv4Addr::UNSPECIFIED, 53, 1, 10);
    assert_eq!(net::udp_roundtrip(&ext.pin, HOST_OUTSIDE, 15353, "udp").unwrap(), "udp");
    udp.peers();

    // A repeated ADD with identical input: the same result, nothing new.
    let before = st.list_sandboxes().await;
    assert_eq!(cni.run("ADD", &env, &conf).result(), r);
    // Different input for the existing attachment fails and changes nothing.
    let other_ip = plus(&c.env("eth0"), "CNI_ARGS", "IP=198.19.41.8");
    let other_ports = with(&cni.conf("cni1"), ports(&[(18081, 80, "tcp")]));
    for (e, cf) in [(&other_ip, &conf), (&env, &other_ports)] {
        let out = cni.run("ADD", e, cf);
        assert_eq!(out.code(), 101, "{out:?}");
        assert!(out.json["msg"].as_str().unwrap().contains("DEL it first"), "{out:?}");
    }
    assert_eq!(st.list_sandboxes().await, before, "a refused ADD changed nothing");

    // CHECK: as recorded; then against a result that says otherwise.
    let checked = with(&conf, json!({ "prevResult": r }));
    assert_eq!(cni.run("CHECK", &c.env("eth0"), &checked).code(), 0);
    let mut wrong = r.clone();
    wrong["ips"][0]["address"] = json!("198.19.41.9/24");
    let out = cni.run("CHECK", &c.env("eth0"), &with(&conf, json!({ "prevResult": wrong })));
    assert_eq!(out.code(), 101, "{out:?}");
    // The kernel state is checked too: the address removed behind ctnet's back.
    net::ip_do(&c.netns, &["addr", "del", "198.19.41.7/24", "dev", "eth0"]);
    let out = cni.run("CHECK", &c.env("eth0"), &checked);
    assert_eq!(out.code(), 101, "{out:?}");
    assert!(out.json["details"].as_str().unwrap().contains("198.19.41.7"), "{out:?}");

    // DEL (with prevResult, as podman sends it), then again: both succeed.
    for _ in 0..2 {
        assert_eq!(cni.run("DEL", &c.env("eth0"), &checked).code(), 0);
    }
    assert!(st.list_sandboxes().await.sandboxes.is_empty());
    // A DEL is answered once the veth is unplugged; its deletion follows.
    st.wait_for_releases();
    assert!(net::link(&st.host, &host_if).is_none(), "host veth gone");
    assert!(st.nft_elements("ports_any").is_empty(), "published ports gone");
    assert_eq!(
        net::link_names(&c.netns),
        vec!["lo".to_string()],
        "the runtime's namespace is as it was"
    );
    // DEL of a container ctnet never saw.
    let stranger = Container { id: "never-added".into(), netns: c.netns.clone() };
    assert_eq!(cni.run("DEL", &stranger.env("eth0"), &conf).code(), 0);
    c.unpin();
    st.finish().await;
}

#[tokio::test]
async fn two_networks_make_one_sandbox_and_gc_removes_what_is_not_listed() {
    let st = stack_with_network("cnia", "198.19.42.0/24").await;
    let mut st = st;
    st.client.networks.create_network(req::network("cnib", "198.19.43.0/24")).await.unwrap();
    let cni = Cni::new(&st);
    let (a, b) = (Container::new(&st, "a"), Container::new(&st, "b"));
    let first = cni.run("ADD", &a.env("eth0"), &cni.conf("cnia")).result();
    let second = cni.run("ADD", &a.env("net1"), &cni.conf("cnib")).result();
    cni.run("ADD", &b.env("eth0"), &cni.conf("cnia")).result();
    assert_eq!(first["routes"].as_array().unwrap().len(), 1, "the first carries the default route");
    assert_eq!(second["routes"], json!([]));
    assert_eq!(second["ips"][0]["gateway"], "198.19.43.1");
    assert_eq!(
        attachments(&st).await,
        vec![
            (a.id.clone(), vec!["eth0".into(), "net1".into()]),
            (b.id.clone(), vec!["eth0".into()])
        ]
    );
    let addr = |j: &Value| j["ips"][0]["address"].as_str().unwrap().to_string();
    assert_eq!(net::addresses(&a.netns, "eth0"), vec![addr(&first)]);
    assert_eq!(net::addresses(&a.netns, "net1"), vec![addr(&second)]);
    let gw = |dst: &str| net::routes(&a.netns).into_iter().filter(|r| r["dst"] == dst).count();
    assert_eq!(gw("default"), 1, "one default route");
    // Packets: the second interface reaches its own gateway.
    assert!(net::ping(&a.netns, "198.19.43.1".parse::<std::net::Ipv4Addr>().unwrap(), 3));

    // GC of cnia keeping only a's eth0: b goes, a stays whole.
    let gc = |keep: Value, key: &str| {
        with(&cni.conf("cnia"), json!({ "cniVersion": "1.1.0", key: keep }))
    };
    let keep_a = json!([{ "containerID": a.id, "ifname": "eth0" }]);
    assert_eq!(cni.run("GC", &[], &gc(keep_a, "cni.dev/valid-attachments")).code(), 0);
    assert_eq!(attachments(&st).await, vec![(a.id.clone(), vec!["eth0".into(), "net1".into()])]);
    // GC of cnib with nothing listed (the older key): a keeps only eth0.
    let conf_b =
        with(&cni.conf("cnib"), json!({ "cniVersion": "1.1.0", "cni.dev/attachments": [] }));
    assert_eq!(cni.run("GC", &[], &conf_b).code(), 0);
    assert_eq!(attachments(&st).await, vec![(a.id.clone(), vec!["eth0".into()])]);
    assert_eq!(net::link_names(&a.netns), vec!["eth0".to_string(), "lo".into()]);
    assert_eq!(cni.run("DEL", &a.env("eth0"), &cni.conf("cnia")).code(), 0);
    a.unpin();
    b.unpin();
    st.finish().await;
}

#[tokio::test]
async fn del_after_the_namespace_is_gone_succeeds_and_leaves_nothing() {
    let st = stack_with_network("cnid", "198.19.44.0/24").await;
    let cni = Cni::new(&st);
    let c = Container::new(&st, "gone");
    let r = cni
        .run("ADD", &c.env("eth0"), &with(&cni.conf("cnid"), ports(&[(18082, 80, "tcp")])))
        .result();
    c.unpin();
    let mut env = c.env("eth0");
    env.retain(|(k, _)| k != "CNI_NETNS");
    let out = cni.run("DEL", &env, &with(&cni.conf("cnid"), json!({ "prevResult": r })));
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(st.nft_elements("ports_any").is_empty());
    st.finish().await;
}

#[tokio::test]
async fn a_namespace_gone_without_del_is_released_and_its_address_reused() {
    let opts = Options {
        api_args: ["--release-vanished-after-ms", "300", "--reconcile-interval-ms", "100"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let mut st = Stack::start_with(opts).await;
    st.client.networks.create_network(req::network("cniv", "198.19.45.0/24")).await.unwrap();
    let cni = Cni::new(&st);
    let c = Container::new(&st, "lost");
    let env = plus(&c.env("eth0"), "CNI_ARGS", "IP=198.19.45.9");
    let conf = with(&cni.conf("cniv"), ports(&[(18083, 80, "tcp")]));
    cni.run("ADD", &env, &conf).result();
    // Control: while the namespace lives, the same address is taken.
    let d = Container::new(&st, "next");
    let taken = cni.run("ADD", &plus(&d.env("eth0"), "CNI_ARGS", "IP=198.19.45.9"), &conf);
    assert_ne!(taken.code(), 0, "{taken:?}");
    c.unpin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !st.list_sandboxes().await.sandboxes.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "never released: {:?}",
            st.list_sandboxes().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = cni.run("ADD", &plus(&d.env("eth0"), "CNI_ARGS", "IP=198.19.45.9"), &conf).result();
    assert_eq!(r["ips"][0]["address"], "198.19.45.9/24", "address, MAC and port reusable");
    assert_eq!(cni.run("DEL", &d.env("eth0"), &conf).code(), 0);
    d.unpin();
    st.finish().await;
}

/// Each error code of the spec from a matching bad input, nothing recorded.
#[tokio::test]
async fn every_error_code_from_a_matching_bad_input() {
    let mut st = stack_with_network("cnie", "198.19.46.0/24").await;
    let cni = Cni::new(&st);
    let c = Container::new(&st, "err");
    let conf = cni.conf("cnie");
    let env = c.env("eth0");
    let set = |k: &str, v: Value| with(&conf, json!({ k: v }));
    let no_id: Vec<_> = env.iter().filter(|(k, _)| k != "CNI_CONTAINERID").cloned().collect();
    let tls = set("api", json!("tls://127.0.0.1:1"));
    let tls = with(
        &tls,
        json!({ "tls": { "ca": "/nonexistent/ca.pem", "cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem" } }),
    );
    let cases: Vec<(u64, &str, Env, Value)> = vec![
        (1, "ADD", env.clone(), set("cniVersion", json!("0.2.0"))),
        (1, "STATUS", vec![], conf.clone()),
        (2, "ADD", env.clone(), set("capabilities", json!({ "ipRanges": true }))),
        (2, "ADD", env.clone(), set("ipam", json!({ "type": "host-local" }))),
        (3, "CHECK", env.clone(), set("prevResult", json!({}))),
        (4, "ADD", no_id, conf.clone()),
        (4, "ADD", plus(&env, "CNI_ARGS", "IP=not-an-ip"), conf.clone()),
        (4, "ADD", plus(&env, "CNI_ARGS", "FOO=bar"), conf.clone()),
        (5, "ADD", env.clone(), tls),
        (7, "ADD", env.clone(), set("type", json!("bridge"))),
        (7, "ADD", env.clone(), set("network", json!("no-such-network"))),
        (7, "ADD", env.clone(), with(&conf, ports(&[(0, 80, "tcp")]))),
        (
            50,
            "STATUS",
            vec![],
            with(&set("cniVersion", json!("1.1.0")), json!({ "api": "/nonexistent.sock" })),
        ),
        (
            50,
            "STATUS",
            vec![],
            with(&set("cniVersion", json!("1.1.0")), json!({ "network": "no-such-network" })),
        ),
    ];
    for (code, verb, env, conf) in &cases {
        let out = cni.run(verb, env, conf);
        assert_eq!(out.code(), *code, "{verb} {conf}: {out:?}");
        assert!(!out.json["msg"].as_str().unwrap_or_default().is_empty(), "{out:?}");
    }
    // 6: stdin that is not JSON.
    let out = cni.run_raw("ADD", &env, b"{\"cniVersion\": ");
    assert_eq!(out.code(), 6, "{out:?}");
    assert!(st.list_sandboxes().await.sandboxes.is_empty(), "no bad input made a sandbox");
    // Control for STATUS: 0 while ctnet serves.
    let status = set("cniVersion", json!("1.1.0"));
    assert_eq!(cni.run("STATUS", &[], &status).code(), 0);
    // 11 and 51: netexec down, so ctnet cannot change the kernel.
    st.kill_netexec();
    st.wait_health(tonic_health::pb::health_check_response::ServingStatus::NotServing).await;
    let out = cni.run("ADD", &env, &conf);
    assert_eq!(out.code(), 11, "{out:?}");
    assert_eq!(cni.run("STATUS", &[], &status).code(), 51);
    st.start_netexec();
    st.wait_health(tonic_health::pb::health_check_response::ServingStatus::Serving).await;
    assert!(st.list_sandboxes().await.sandboxes.is_empty());
    c.unpin();
    st.finish().await;
}

/// The qdiscs on a host link, as `tc -j` prints their kinds.
fn qdiscs(st: &Stack, dev: &str) -> Vec<String> {
    let mut cmd = std::process::Command::new("tc");
    cmd.args(["-j", "qdisc", "show", "dev", dev]);
    let out = ctnet_tests::cni::in_namespace(&st.host, cmd, b"");
    assert!(out.status.success(), "tc: {}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("tc -j");
    list.iter().filter_map(|q| q["kind"].as_str().map(str::to_string)).collect()
}

/// ctnet first in a chain: the reference bandwidth plugin gets ctnet's
/// result as prevResult, shapes the host veth, and its changes stay.
#[tokio::test]
async fn the_reference_bandwidth_plugin_chains_after_ctnet() {
    let st = stack_with_network("cnibw", "198.19.47.0/24").await;
    let cni = Cni::new(&st);
    let c = Container::new(&st, "bw");
    let links_before = net::link_names(&st.host);
    let r = cni.run("ADD", &c.env("eth0"), &cni.conf("cnibw")).result();
    let host_if = r["interfaces"][0]["name"].as_str().unwrap().to_string();
    let bandwidth = std::path::Path::new(ctnet_tests::cni::REFERENCE_PLUGINS).join("bandwidth");
    let bw_conf = |prev: &Value| {
        json!({
            "cniVersion": "1.0.0", "name": "cnibw", "type": "bandwidth",
            "ingressRate": 8_000_000, "ingressBurst": 64_000,
            "egressRate": 8_000_000, "egressBurst": 64_000,
            "prevResult": prev,
        })
    };
    let run_bw = |verb: &str, prev: &Value| {
        let stdin = bw_conf(prev).to_string();
        ctnet_tests::cni::run_plugin(&st.host, &bandwidth, verb, &c.env("eth0"), stdin.as_bytes())
    };
    assert!(!qdiscs(&st, &host_if).contains(&"tbf".to_string()), "control: no shaping yet");
    let chained = run_bw("ADD", &r).result();
    assert_eq!(chained["ips"], r["ips"], "prevResult reached the next plugin and came back");
    assert!(qdiscs(&st, &host_if).contains(&"tbf".to_string()), "{:?}", qdiscs(&st, &host_if));
    let ifb: Vec<String> = net::link_names(&st.host)
        .into_iter()
        .filter(|l| !links_before.contains(l) && *l != host_if)
        .collect();
    assert_eq!(ifb.len(), 1, "the egress mirror device: {ifb:?}");
    // ctnet's own check and repair leave the plugin's changes alone.
    let checked = with(&cni.conf("cnibw"), json!({ "prevResult": chained }));
    assert_eq!(cni.run("CHECK", &c.env("eth0"), &checked).code(), 0);
    assert!(qdiscs(&st, &host_if).contains(&"tbf".to_string()));
    // DEL runs the chain backwards: bandwidth, then ctnet.
    assert!(run_bw("DEL", &chained).ok);
    assert_eq!(cni.run("DEL", &c.env("eth0"), &checked).code(), 0);
    // The DEL is answered once the veth is unplugged; it is deleted just after.
    st.wait_for_releases();
    assert_eq!(net::link_names(&st.host), links_before, "veth and mirror device gone");
    c.unpin();
    st.finish().await;
}

/// The plugin's identity is its uid: the policy puts it in a tenant, which
/// needs the netns_path permission for the runtime's directory; what it
/// makes is that tenant's.
#[tokio::test]
async fn the_plugin_acts_as_the_tenant_its_uid_maps_to() {
    let t = ctnet_tests::tenants::Tenants::new("");
    let pins = t.dir.join("pins");
    std::fs::create_dir_all(&pins).unwrap();
    let p = pins.display();
    t.write(&format!(
        "[tenants.alpha]\nuids = [{{a}}]\nshared_networks = [\"cnit\"]\n\
         [tenants.alpha.allow]\nnetns_path_dirs = [\"{p}\"]\n\n\
         [tenants.beta]\nuids = [{{b}}]\nshared_networks = [\"cnit\"]\n"
    ));
    let opts = Options {
        api_args: t.args(),
        netexec_args: vec!["--netns-allow-dir".into(), p.to_string()],
        ..Default::default()
    };
    let mut st = Stack::start_with(opts).await;
    ctnet_tests::tenants::open_socket(&st);
    st.client.networks.create_network(req::network("cnit", "198.19.49.0/24")).await.unwrap();
    let cni = Cni::new(&st);
    let c = Container::pinned_in(&pins, "tenant");
    let conf = cni.conf("cnit");
    // beta may not use a runtime's namespace: refused, nothing made.
    let out = cni.run_as(t.b, "ADD", &c.env("eth0"), &conf);
    assert_eq!(out.code(), 100, "{out:?}");
    assert!(out.json["msg"].as_str().unwrap().contains("netns_path"), "{out:?}");
    assert!(st.list_sandboxes().await.sandboxes.is_empty());
    // alpha may: the sandbox is alpha's.
    let r = cni.run_as(t.a, "ADD", &c.env("eth0"), &conf).result();
    assert_eq!(
        net::addresses(&c.netns, "eth0"),
        vec![r["ips"][0]["address"].as_str().unwrap().to_string()]
    );
    let list = st.list_sandboxes().await.sandboxes;
    assert_eq!(list.iter().map(|s| s.tenant.as_str()).collect::<Vec<_>>(), vec!["alpha"]);
    // beta's DEL does not reach alpha's container (it sees no such sandbox).
    assert_eq!(cni.run_as(t.b, "DEL", &c.env("eth0"), &conf).code(), 0);
    assert_eq!(st.list_sandboxes().await.sandboxes.len(), 1);
    assert_eq!(cni.run_as(t.a, "DEL", &c.env("eth0"), &conf).code(), 0);
    assert!(st.list_sandboxes().await.sandboxes.is_empty());
    c.unpin();
    st.finish().await;
}

/// Dual stack through CNI: IP= with an address per family, a port mapping
/// published on both families, the result with an address and a default
/// route per family, a repeated ADD and CHECK that agree, and an IPv6
/// hostIP; an external client reaches the port over IPv6.
#[tokio::test]
async fn a_dual_stack_add_has_both_families_in_the_kernel_and_the_result() {
    let mut st = Stack::start().await;
    let ds = ctnet_tests::pb::CreateNetworkRequest {
        ipv6_subnet: Some("2001:db8:43::/64".into()),
        ..req::network("cni6", "198.19.43.0/24")
    };
    st.client.networks.create_network(ds).await.expect("network");
    let ext = st.add_external();
    let (host6, ext6) = ("2001:db8:fc::1", "2001:db8:fc::2");
    net::ip_do(&st.host, &["addr", "add", &format!("{host6}/64"), "dev", "ext0", "nodad"]);
    net::ip_do(&ext.pin, &["addr", "add", &format!("{ext6}/64"), "dev", "eth0", "nodad"]);
    let cni = Cni::new(&st);
    let c = Container::new(&st, "web6");
    let conf = with(&cni.conf("cni6"), ports(&[(18090, 80, "tcp")]));
    let env = plus(&c.env("eth0"), "CNI_ARGS", "IP=198.19.43.7,2001:db8:43::7");
    let r = cni.run("ADD", &env, &conf).result();
    assert_eq!(r["ips"][0]["address"], "198.19.43.7/24");
    assert_eq!(r["ips"][1]["address"], "2001:db8:43::7/64");
    assert_eq!(r["ips"][1]["gateway"], "2001:db8:43::1");
    let routes = json!([{ "dst": "0.0.0.0/0", "gw": "198.19.43.1" }, { "dst": "::/0", "gw": "2001:db8:43::1" }]);
    assert_eq!(r["routes"], routes);
    assert_eq!(net::addresses6_text(&c.netns, "eth0"), vec!["2001:db8:43::7/64".to_string()]);
    // Published on both families; the client's own IPv6 address is seen.
    let echo = Echo::start_on(&c.netns, std::net::Ipv6Addr::UNSPECIFIED, 80, 1);
    assert_eq!(
        net::tcp_roundtrip(&ext.pin, host6.parse::<IpAddr>().unwrap(), 18090, "v6").unwrap(),
        "v6"
    );
    assert_eq!(echo.peers()[0].ip(), ext6.parse::<IpAddr>().unwrap());
    // The same ADD again is the same result (the mapping is one record per
    // family in ctnet, one in CNI); CHECK agrees.
    assert_eq!(cni.run("ADD", &env, &conf).result(), r);
    let checked = with(&conf, json!({ "prevResult": r }));
    assert_eq!(cni.run("CHECK", &c.env("eth0"), &checked).code(), 0);
    // Another IPv6 address for the same attachment is a difference.
    let other = plus(&c.env("eth0"), "CNI_ARGS", "IP=198.19.43.7,2001:db8:43::8");
    assert_eq!(cni.run("ADD", &other, &conf).code(), 101);
    // Two addresses of one family: unsupported (code 2).
    let c2 = Container::new(&st, "two6");
    let two = plus(&c2.env("eth0"), "CNI_ARGS", "IP=2001:db8:43::9,2001:db8:43::a");
    assert_eq!(cni.run("ADD", &two, &conf).code(), 2);
    // An IPv6 hostIP binds that address only.
    let c3 = Container::new(&st, "bound6");
    let bound = json!({ "runtimeConfig": { "portMappings": [
        { "hostPort": 18091, "containerPort": 80, "protocol": "tcp", "hostIP": host6 }
    ] } });
    let r3 = cni.run("ADD", &c3.env("eth0"), &with(&cni.conf("cni6"), bound)).result();
    assert_eq!(r3["ips"].as_array().unwrap().len(), 2);
    let addr6 = st.nft_elements("ports_addr6");
    assert_eq!(addr6.len(), 1, "{addr6:?}");
    for (cont, e) in [(&c, &c.env("eth0")), (&c3, &c3.env("eth0"))] {
        assert_eq!(cni.run("DEL", e, &cni.conf("cni6")).code(), 0, "{:?}", cont.netns);
    }
    st.wait_for_releases();
    for cont in [c, c2, c3] {
        cont.unpin();
    }
    st.finish().await;
}

/// An IPv6-only network through CNI: the result has the IPv6 address and
/// route only, CHECK agrees with it, DEL leaves nothing.
#[tokio::test]
async fn an_ipv6_only_add_has_one_family_and_check_agrees() {
    let mut st = Stack::start().await;
    let v6 = ctnet_tests::pb::CreateNetworkRequest {
        name: "cni6o".into(),
        ipv6_subnet: Some("2001:db8:44::/64".into()),
        enable_ipv4: Some(false),
        ..Default::default()
    };
    st.client.networks.create_network(v6).await.expect("network");
    let cni = Cni::new(&st);
    let c = Container::new(&st, "only6");
    let r = cni.run("ADD", &c.env("eth0"), &cni.conf("cni6o")).result();
    assert_eq!(r["ips"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["ips"][0]["address"], "2001:db8:44::2/64");
    assert_eq!(r["ips"][0]["gateway"], "2001:db8:44::1");
    assert_eq!(r["routes"], json!([{ "dst": "::/0", "gw": "2001:db8:44::1" }]));
    assert!(net::addresses(&c.netns, "eth0").is_empty(), "no IPv4 inside");
    assert_eq!(net::addresses6_text(&c.netns, "eth0"), vec!["2001:db8:44::2/64".to_string()]);
    let checked = with(&cni.conf("cni6o"), json!({ "prevResult": r }));
    assert_eq!(cni.run("CHECK", &c.env("eth0"), &checked).code(), 0);
    // Control: a prevResult with another address is a difference.
    let mut other = r.clone();
    other["ips"][0]["address"] = json!("2001:db8:44::9/64");
    let other = with(&cni.conf("cni6o"), json!({ "prevResult": other }));
    assert_ne!(cni.run("CHECK", &c.env("eth0"), &other).code(), 0);
    assert_eq!(cni.run("DEL", &c.env("eth0"), &cni.conf("cni6o")).code(), 0);
    st.wait_for_releases();
    c.unpin();
    st.finish().await;
}
