//! Host-safe networks against a fake host with a default route, a VPN's
//! 0.0.0.0/1 and a LAN: what overlaps the host is refused and changes
//! nothing; what does not is accepted (the control).
use super::*;
use crate::error::Error;
use crate::executor::{HostAddress, HostPrefix, HostRoute, HostRoutes};
use crate::fake::Op;

fn lan_host(k: &mut Kernel) {
    let p = |s: &str| HostPrefix::parse(s).unwrap();
    let route = |d: &str, via: Option<&str>| HostRoute {
        destination: p(d),
        interface: "eth0".into(),
        gateway: via.map(|g| g.parse().unwrap()),
    };
    k.host = HostRoutes {
        addresses: vec![HostAddress { interface: "eth0".into(), prefix: p("10.80.0.5/24") }],
        routes: vec![
            route("0.0.0.0/0", Some("10.80.0.1")),
            route("0.0.0.0/1", Some("10.80.0.1")),
            route("10.80.0.0/24", None),
            route("10.90.0.0/16", Some("10.80.0.1")),
        ],
    };
}

async fn lan_env(allow_host_overlap: bool) -> Env {
    Env::with_settings(Settings { allow_host_overlap, ..settings() }, lan_host).await
}

#[tokio::test]
async fn a_subnet_over_the_hosts_lan_or_routes_is_refused_without_change() {
    let env = lan_env(false).await;
    let before = env.fake.kernel();
    for (subnet, names) in [
        ("10.80.0.0/25", "10.80.0.5/24 on eth0"),
        ("10.0.0.0/8", "10.80.0.5/24 on eth0"),
        ("10.90.4.0/24", "route 10.90.0.0/16 via 10.80.0.1 dev eth0"),
    ] {
        let e = env.network("lan", subnet).await.unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{subnet}: {e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with("subnet: ") && msg.contains(names), "{subnet}: {msg}");
        assert_eq!(env.fake.kernel(), before, "{subnet} changed the kernel");
    }
    env.agree().await;
    assert_eq!(env.ops.lock().await.networks.len(), 1, "only the default network");
    // The control: beside the LAN, under the catch-alls.
    env.network("beside", "10.81.0.0/24").await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn a_reserved_subnet_is_invalid_before_the_host_is_asked() {
    let env = lan_env(false).await;
    let asked = env.fake.count(Op::HostRoutes);
    let e = env.network("ll", "169.254.0.0/16").await.unwrap_err();
    assert!(matches!(e, Error::Invalid { ref field, .. } if field == "subnet"), "{e:?}");
    assert_eq!(env.fake.count(Op::HostRoutes), asked);
}

#[tokio::test]
async fn the_daemons_flag_lets_an_admin_overlap_the_host() {
    let env = lan_env(true).await;
    env.network("lan", "10.80.0.0/25").await.unwrap();
    env.agree().await;
}

#[tokio::test]
async fn without_a_flag_the_default_network_takes_the_first_free_pool_subnet() {
    let taken = |k: &mut Kernel| {
        lan_host(k);
        let p = HostPrefix::parse("172.17.0.0/16").unwrap();
        k.host.addresses.push(HostAddress { interface: "docker0".into(), prefix: p });
    };
    let env = Env::with_settings(Settings { default_subnet: None, ..settings() }, taken).await;
    let st = env.ops.lock().await;
    let default = st.networks.values().find(|n| n.is_default).unwrap();
    assert_eq!(default.ipv4.unwrap().subnet.to_string(), "172.18.0.0/16");
}

#[tokio::test]
async fn a_default_subnet_flag_over_the_host_stops_the_start_naming_the_route() {
    let fixed = Some(Subnet::parse("s", "10.90.0.0/16").unwrap());
    let env = Env::unreconciled(Settings { default_subnet: fixed, ..settings() }, lan_host).await;
    let e = env.ops.ensure_default_network().await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("--default-subnet: 10.90.0.0/16 overlaps the host's route 10.90.0.0/16"),
        "{e}"
    );
    assert!(env.ops.lock().await.networks.is_empty());
    assert!(env.fake.kernel().bridges.is_empty());
}
