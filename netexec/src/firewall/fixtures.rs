//! Firewall objects for tests.
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::{FwGuard, FwNetwork, FwPort, FwState, GatewayMode, Proto};
use crate::checks::{Addr6Prefix, AddrPrefix, OwnedLinkName, Owner};

pub fn net(bridge: &str, subnet: &str, internal: bool, icc: bool) -> FwNetwork {
    FwNetwork {
        bridge: OwnedLinkName::parse("b", bridge, "ct").unwrap(),
        subnet: Some(AddrPrefix::parse_subnet("s", subnet).unwrap()),
        subnet6: None,
        internal,
        icc,
        mode4: GatewayMode::Nat,
        mode6: GatewayMode::Nat,
    }
}

/// A dual-stack network with one gateway mode on both families.
pub fn moded(bridge: &str, subnet: &str, subnet6: &str, mode: GatewayMode) -> FwNetwork {
    FwNetwork { mode4: mode, mode6: mode, ..dual(bridge, subnet, subnet6) }
}

/// An IPv6-only network: no IPv4 subnet, IPv4 isolated.
pub fn v6_only(bridge: &str, subnet6: &str) -> FwNetwork {
    let n = FwNetwork {
        subnet: None,
        mode4: GatewayMode::Isolated,
        ..net(bridge, "198.18.0.0/16", false, true)
    };
    FwNetwork { subnet6: Addr6Prefix::parse_subnet_opt("s", subnet6).unwrap(), ..n }
}

/// A routed port: the container port opened on the sandbox's address.
pub fn routed(proto: Proto, target: &str, target_port: u16) -> FwPort {
    FwPort { routed: true, ..port(proto, None, target_port, target, target_port) }
}

/// A dual-stack network.
pub fn dual(bridge: &str, subnet: &str, subnet6: &str) -> FwNetwork {
    let subnet6 = Addr6Prefix::parse_subnet_opt("s", subnet6).unwrap();
    FwNetwork { subnet6, ..net(bridge, subnet, false, true) }
}

pub fn port(
    proto: Proto,
    host_ip: Option<&str>,
    host_port: u16,
    target: &str,
    target_port: u16,
) -> FwPort {
    FwPort {
        proto,
        host_ip: host_ip.map(|s| s.parse().unwrap()),
        host_port,
        target_ip: target.parse::<IpAddr>().unwrap(),
        target_port,
        owner: Owner::parse("o", "sb:00000000000000a1").unwrap(),
        routed: false,
    }
}

pub fn guard(link: &str, mac: &str, ip: &str) -> FwGuard {
    let mac: Vec<u8> = mac.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    FwGuard {
        link: OwnedLinkName::parse("l", link, "ct").unwrap(),
        mac: mac.try_into().unwrap(),
        ip: Some(ip.parse().unwrap()),
        ip6: None,
        owner: Owner::parse("o", "sb:00000000000000a1").unwrap(),
    }
}

/// Seven networks (default, no icc, internal, dual stack, routed and
/// isolated dual stack, IPv6-only), ten ports of every kind and family
/// (two routed) and three guards (IPv4, dual stack, IPv6-only): every set and map of the table gets
/// an element.
pub fn sample() -> FwState {
    FwState {
        networks: vec![
            net("ctnet0", "198.18.0.0/16", false, true),
            net("ct-noicc", "198.19.1.0/24", false, false),
            net("ct-internal", "198.19.2.0/24", true, true),
            dual("ct-dual", "198.19.3.0/24", "2001:db8:3::/64"),
            moded("ct-routed", "198.19.4.0/24", "2001:db8:4::/64", GatewayMode::Routed),
            moded("ct-isolated", "198.19.5.0/24", "2001:db8:5::/64", GatewayMode::Isolated),
            v6_only("ct-v6only", "2001:db8:6::/64"),
        ],
        ports: vec![
            port(Proto::Tcp, None, 8080, "198.18.0.2", 80),
            port(Proto::Udp, None, 5353, "198.18.0.2", 53),
            port(Proto::Sctp, None, 9999, "198.18.0.3", 9999),
            port(Proto::Tcp, Some("127.0.0.1"), 8081, "198.18.0.3", 80),
            port(Proto::Tcp, Some("192.0.2.10"), 443, "198.19.1.2", 8443),
            port(Proto::Tcp, None, 8080, "2001:db8:3::2", 80),
            port(Proto::Udp, Some("2001:db8:ff::1"), 5353, "2001:db8:3::2", 53),
            port(Proto::Tcp, None, 8082, "2001:db8:6::2", 80),
            routed(Proto::Tcp, "198.19.4.2", 80),
            routed(Proto::Tcp, "2001:db8:4::2", 80),
        ],
        guards: vec![
            guard("ct-a1b2c3d4e0", "02:42:c6:12:00:02", "198.18.0.2"),
            FwGuard {
                ip6: Some("2001:db8:3::2".parse().unwrap()),
                ..guard("ct-a1b2c3d4e1", "02:42:c6:13:03:02", "198.19.3.2")
            },
            FwGuard {
                ip: None,
                ip6: Some("2001:db8:6::2".parse().unwrap()),
                ..guard("ct-a1b2c3d4e2", "06:1f:8a:00:00:02", "198.18.0.9")
            },
        ],
    }
}

/// Runs `f` on a thread of its own in a new network namespace; the
/// namespace goes with the thread.
pub fn scratch<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        f()
    })
    .join()
    .expect("scratch thread")
}

pub fn nft(script: &str) {
    let mut c = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "nft -f: {script}");
}

pub fn listing() -> String {
    let out = Command::new("nft").args(["list", "ruleset"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
