//! The spec's result for one attachment, from what ctnet reports.
use ctnet_client::pb;
use serde_json::{json, Value};

use crate::version::Version;

/// interfaces: the host end of the veth (index 0) and the sandbox's
/// interface (index 1, with its namespace path); its address with the
/// network's gateway; the default route when this interface carries it.
/// ctnet runs no resolver, so dns stays empty.
pub fn attachment(
    version: Version,
    sb: &pb::Sandbox,
    iface: &pb::Interface,
    gateway: &str,
) -> Value {
    let mut ip = json!({ "address": iface.address, "gateway": gateway, "interface": 1 });
    if version.ips_carry_family() {
        ip["version"] = json!("4");
    }
    let routes: Vec<Value> = if iface.gateway.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "dst": "0.0.0.0/0", "gw": iface.gateway })]
    };
    json!({
        "cniVersion": version.to_string(),
        "interfaces": [
            { "name": iface.host_interface },
            { "name": iface.name, "mac": iface.mac_address, "sandbox": sb.netns_path },
        ],
        "ips": [ip],
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
        let v1 = attachment(Version::parse("1.0.0").unwrap(), &sb, &iface, "172.31.5.1");
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["routes"][0]["gw"], "172.31.5.1");
        assert_eq!(v1["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(previous_address(&v1, "eth0").as_deref(), Some("172.31.5.2/24"));
        assert_eq!(previous_address(&v1, "eth1"), None);
        let old = attachment(Version::parse("0.4.0").unwrap(), &sb, &iface, "172.31.5.1");
        assert_eq!(old["ips"][0]["version"], "4");
        let second = pb::Interface { gateway: String::new(), ..iface };
        let r = attachment(Version::parse("1.1.0").unwrap(), &sb, &second, "172.31.5.1");
        assert_eq!(r["routes"], json!([]), "only the first attachment routes by default");
        assert_eq!(r["ips"][0]["gateway"], "172.31.5.1");
    }
}
