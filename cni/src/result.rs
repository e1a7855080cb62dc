//! The spec's result for one attachment, from what ctnet reports.
use ctnet_client::pb;
use serde_json::{json, Value};

use crate::version::Version;

/// The network's gateways: IPv4, and IPv6 (empty on an IPv4-only one).
pub struct Gateways {
    pub v4: String,
    pub v6: String,
}

/// interfaces: the host end of the veth (index 0) and the sandbox's
/// interface (index 1, with its namespace path); its addresses (IPv4, and
/// IPv6 on a dual-stack network) with the network's gateways; the default
/// routes when this interface carries them. ctnet runs no resolver, so dns
/// stays empty.
pub fn attachment(
    version: Version,
    sb: &pb::Sandbox,
    iface: &pb::Interface,
    gateways: &Gateways,
) -> Value {
    let families = [
        ("4", &iface.address, &gateways.v4, &iface.gateway, "0.0.0.0/0"),
        ("6", &iface.ipv6_address, &gateways.v6, &iface.ipv6_gateway, "::/0"),
    ];
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for (family, address, gateway, routed_via, default) in families {
        if address.is_empty() {
            continue;
        }
        let mut ip = json!({ "address": address, "gateway": gateway, "interface": 1 });
        if version.ips_carry_family() {
            ip["version"] = json!(family);
        }
        ips.push(ip);
        if !routed_via.is_empty() {
            routes.push(json!({ "dst": default, "gw": routed_via }));
        }
    }
    json!({
        "cniVersion": version.to_string(),
        "interfaces": [
            { "name": iface.host_interface },
            { "name": iface.name, "mac": iface.mac_address, "sandbox": sb.netns_path },
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    })
}

/// What a previous result says about `ifname`'s address, for CHECK.
pub fn previous_address(prev: &Value, ifname: &str) -> Option<String> {
    let interfaces = prev.get("interfaces")?.as_array()?;
    let index = interfaces.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname)
            && i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
    })?;
    prev.get("ips")?
        .as_array()?
        .iter()
        .find(|ip| ip.get("interface").and_then(Value::as_u64) == Some(index as u64))
        .and_then(|ip| ip.get("address")?.as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (pb::Sandbox, pb::Interface) {
        let iface = pb::Interface {
            name: "eth0".into(),
            mac_address: "02:42:ac:1f:05:02".into(),
            address: "172.31.5.2/24".into(),
            gateway: "172.31.5.1".into(),
            host_interface: "ctv0123456789ab0".into(),
            ..Default::default()
        };
        let sb = pb::Sandbox { netns_path: "/run/netns/x".into(), ..Default::default() };
        (sb, iface)
    }

    #[test]
    fn a_result_per_version_that_check_reads_back() {
        let (sb, iface) = sample();
        let gw = Gateways { v4: "172.31.5.1".into(), v6: String::new() };
        let v1 = attachment(Version::parse("1.0.0").unwrap(), &sb, &iface, &gw);
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["routes"][0]["gw"], "172.31.5.1");
        assert_eq!(v1["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(previous_address(&v1, "eth0").as_deref(), Some("172.31.5.2/24"));
        assert_eq!(previous_address(&v1, "eth1"), None);
        let old = attachment(Version::parse("0.4.0").unwrap(), &sb, &iface, &gw);
        assert_eq!(old["ips"][0]["version"], "4");
        let second = pb::Interface { gateway: String::new(), ..iface.clone() };
        let r = attachment(Version::parse("1.1.0").unwrap(), &sb, &second, &gw);
        assert_eq!(r["routes"], json!([]), "only the first attachment routes by default");
        assert_eq!(r["ips"][0]["gateway"], "172.31.5.1");
        assert_eq!(r["ips"].as_array().unwrap().len(), 1, "IPv4-only: one address");
    }

    #[test]
    fn a_dual_stack_attachment_has_an_address_and_a_route_per_family() {
        let (sb, iface) = sample();
        let iface = pb::Interface {
            ipv6_address: "2001:db8:5::2/64".into(),
            ipv6_gateway: "2001:db8:5::1".into(),
            ..iface
        };
        let gw = Gateways { v4: "172.31.5.1".into(), v6: "2001:db8:5::1".into() };
        let r = attachment(Version::parse("0.4.0").unwrap(), &sb, &iface, &gw);
        assert_eq!(r["ips"][1]["address"], "2001:db8:5::2/64");
        assert_eq!(
            (&r["ips"][1]["version"], &r["ips"][1]["gateway"]),
            (&json!("6"), &json!("2001:db8:5::1"))
        );
        assert_eq!(r["routes"][1], json!({ "dst": "::/0", "gw": "2001:db8:5::1" }));
    }
}
