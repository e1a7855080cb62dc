//! How the CLI shows resources: tables for people, JSON for scripts.
use ctnet_client::pb;
use serde_json::{json, Value};

pub fn network_json(n: &pb::Network) -> Value {
    json!({
        "id": n.id, "name": n.name, "driver": n.driver, "subnet": n.subnet, "gateway": n.gateway,
        "bridge_name": n.bridge_name, "mtu": n.mtu, "internal": n.internal, "icc": n.icc,
        "default": n.default, "labels": n.labels, "created_at": n.created_at,
        "ipv6_subnet": n.ipv6_subnet, "ipv6_gateway": n.ipv6_gateway,
        "gateway_mode_ipv4": n.gateway_mode_ipv4, "gateway_mode_ipv6": n.gateway_mode_ipv6,
        "sandboxes": n.sandboxes.iter().map(|s| json!({
            "sandbox_id": s.sandbox_id, "sandbox_name": s.sandbox_name, "interface": s.interface,
            "address": s.address, "ipv6_address": s.ipv6_address, "mac_address": s.mac_address,
        })).collect::<Vec<_>>(),
    })
}

pub fn mode_name(s: &pb::Sandbox) -> String {
    match pb::SandboxMode::try_from(s.mode).unwrap_or(pb::SandboxMode::Unspecified) {
        pb::SandboxMode::Bridge => "bridge".into(),
        pb::SandboxMode::Host => "host".into(),
        pb::SandboxMode::None => "none".into(),
        pb::SandboxMode::Container => format!("container:{}", s.container_target),
        pb::SandboxMode::Unspecified => "?".into(),
    }
}

fn state_name(s: &pb::Sandbox) -> &'static str {
    match pb::SandboxState::try_from(s.state).unwrap_or(pb::SandboxState::Unspecified) {
        pb::SandboxState::Creating => "creating",
        pb::SandboxState::Ready => "ready",
        pb::SandboxState::Failed => "failed",
        pb::SandboxState::Unspecified => "?",
    }
}

pub fn sandbox_json(s: &pb::Sandbox) -> Value {
    json!({
        "id": s.id, "name": s.name, "mode": mode_name(s), "netns_path": s.netns_path,
        "netns_owned": s.netns_owned, "state": state_name(s), "state_reason": s.state_reason,
        "labels": s.labels, "created_at": s.created_at,
        "ports": s.ports.iter().map(port_json).collect::<Vec<_>>(),
        "interfaces": s.interfaces.iter().map(|i| json!({
            "name": i.name, "network_id": i.network_id, "network_name": i.network_name,
            "mac_address": i.mac_address, "address": i.address, "gateway": i.gateway,
            "ipv6_address": i.ipv6_address, "ipv6_gateway": i.ipv6_gateway,
            "host_interface": i.host_interface,
        })).collect::<Vec<_>>(),
    })
}

pub fn tenant_json(t: &pb::Tenant) -> Value {
    let usage: serde_json::Map<String, Value> = t
        .usage
        .iter()
        .map(|u| (u.quota.clone(), json!({"used": u.used, "limit": u.limit})))
        .collect();
    json!({"name": t.name, "usage": usage})
}

/// Left-aligned columns separated by three spaces, like docker's tables.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("   ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

pub fn networks_table(list: &[pb::Network]) -> String {
    let rows = list
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.name.clone(),
                n.driver.clone(),
                [n.subnet.as_str(), n.ipv6_subnet.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(","),
                n.bridge_name.clone(),
                n.sandboxes.len().to_string(),
            ]
        })
        .collect();
    table(&["NETWORK ID", "NAME", "DRIVER", "SUBNET", "BRIDGE", "SANDBOXES"], rows)
}

pub fn sandboxes_table(list: &[pb::Sandbox]) -> String {
    let rows = list
        .iter()
        .map(|s| {
            let addrs: Vec<String> = s
                .interfaces
                .iter()
                .flat_map(|i| [&i.address, &i.ipv6_address].map(|a| (&i.name, a)))
                .filter(|(_, a)| !a.is_empty())
                .map(|(n, a)| format!("{n}={a}"))
                .collect();
            vec![s.id.clone(), s.name.clone(), mode_name(s), state_name(s).into(), addrs.join(",")]
        })
        .collect();
    table(&["SANDBOX ID", "NAME", "MODE", "STATE", "ADDRESSES"], rows)
}

pub fn port_json(p: &pb::PortMapping) -> Value {
    json!({
        "protocol": p.protocol, "host_ip": p.host_ip, "host_port": p.host_port,
        "interface": p.interface, "container_ip": p.container_ip, "container_port": p.container_port,
    })
}

/// `docker port` style: "80/tcp -> 0.0.0.0:8080".
pub fn ports_lines(ports: &[pb::PortMapping]) -> String {
    ports
        .iter()
        .map(|p| format!("{}/{} -> {}:{}\n", p.container_port, p.protocol, p.host_ip, p.host_port))
        .collect()
}

/// One event: `SEQ KIND tenant=T sandbox=NAME(ID) network=NAME(ID) request=R detail`,
/// or one JSON object.
pub fn event_line(e: &pb::Event, json: bool) -> String {
    let kind = pb::EventKind::try_from(e.kind)
        .map(|k| k.as_str_name().trim_start_matches("EVENT_KIND_").to_lowercase())
        .unwrap_or_else(|_| e.kind.to_string());
    if json {
        let v = serde_json::json!({
            "seq": e.seq, "time_ms": e.time_ms, "kind": kind, "tenant": e.tenant,
            "request_id": e.request_id, "sandbox_id": e.sandbox_id, "sandbox_name": e.sandbox_name,
            "network_id": e.network_id, "network_name": e.network_name, "detail": e.detail,
        });
        return v.to_string();
    }
    let mut line = format!("{} {kind}", e.seq);
    let named = |name: &str, id: &str| {
        if name.is_empty() {
            id.to_string()
        } else {
            format!("{name}({id})")
        }
    };
    if !e.tenant.is_empty() {
        line += &format!(" tenant={}", e.tenant);
    }
    if !e.sandbox_id.is_empty() {
        line += &format!(" sandbox={}", named(&e.sandbox_name, &e.sandbox_id));
    }
    if !e.network_id.is_empty() {
        line += &format!(" network={}", named(&e.network_name, &e.network_id));
    }
    if !e.request_id.is_empty() {
        line += &format!(" request={}", e.request_id);
    }
    if !e.detail.is_empty() {
        line += &format!(" {}", e.detail);
    }
    line
}
