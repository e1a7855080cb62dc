//! The verbs, each as ctnet calls. A container is one sandbox, named from
//! its CNI_CONTAINERID and labelled with it; each network the runtime adds
//! is one interface of it (the first carries the default route).
use std::collections::HashMap;

use ctnet_client::{pb, Client};
use serde_json::Value;
use tonic::Code;

use crate::config::{Container, Ips, NetConf, PortMapping};
use crate::error::{from_status, unreachable, CniError, Kind, Result};
use crate::result;

/// The label holding the runtime's container id.
pub const LABEL_CONTAINER: &str = "cni.dev/container-id";
/// The label every sandbox this plugin made carries (GC lists by it).
pub const LABEL_PLUGIN: &str = "cni.dev/plugin";
const PLUGIN: &str = "ctnet";

pub async fn connect(conf: &NetConf) -> Result<Client> {
    let api = &conf.api;
    if let Some(t) = &api.tls {
        for p in [&t.ca, &t.cert, &t.key] {
            std::fs::metadata(p)
                .map_err(|e| CniError::new(Kind::Io, format!("tls file {}: {e}", p.display())))?;
        }
    }
    ctnet_client::connect_to(&api.address, api.tls.as_ref())
        .await
        .map_err(|e| unreachable(&api.address, e))
}

/// A sandbox name from any container id (names are at most 64 of
/// [A-Za-z0-9_.-]; ids may be longer): a 64-bit FNV-1a digest. The label
/// holds the full id and is compared on every use.
pub fn sandbox_name(container_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("cni-{h:016x}")
}

/// What an ADD asks for one attachment; a repeated ADD must ask the same.
struct Want {
    network: String,
    ifname: String,
    ips: Ips,
    mac: Option<String>,
    ports: Vec<PortMapping>,
}

impl Want {
    fn new(conf: &NetConf, c: &Container) -> Self {
        let mut ports = conf.ports.clone();
        ports.sort();
        Self {
            network: conf.network.clone(),
            ifname: c.ifname.clone(),
            // The capability (runtimeConfig) is the newer way; CNI_ARGS the older.
            ips: conf.ips.or(c.args.ips),
            mac: conf.mac.clone().or_else(|| c.args.mac.clone()),
            ports,
        }
    }

    fn attachment(&self) -> pb::NetworkAttachment {
        pb::NetworkAttachment {
            network: self.network.clone(),
            ipv4_address: self.ips.v4.map(|i| i.to_string()),
            ipv6_address: self.ips.v6.map(|i| i.to_string()),
            interface_name: Some(self.ifname.clone()),
            mac_address: self.mac.clone(),
        }
    }

    fn publish(&self) -> Vec<String> {
        self.ports.iter().map(PortMapping::publish).collect()
    }

    /// How an existing interface differs from this request.
    fn differences(&self, sb: &pb::Sandbox, iface: &pb::Interface) -> Vec<String> {
        let mut out = Vec::new();
        if iface.network_name != self.network && iface.network_id != self.network {
            out.push(format!("it is on network {:?}, not {:?}", iface.network_name, self.network));
        }
        let address = iface.address.split('/').next().unwrap_or_default();
        if let Some(ip) = self.ips.v4.filter(|ip| ip.to_string() != address) {
            out.push(format!("its address is {address}, not {ip}"));
        }
        let address6 = iface.ipv6_address.split('/').next().unwrap_or_default();
        if let Some(ip) = self.ips.v6.filter(|ip| ip.to_string() != address6) {
            out.push(format!("its IPv6 address is {address6:?}, not {ip}"));
        }
        if let Some(mac) = self.mac.as_ref().filter(|m| **m != iface.mac_address) {
            out.push(format!("its MAC is {}, not {mac}", iface.mac_address));
        }
        let mut have: Vec<PortMapping> =
            sb.ports.iter().filter(|p| p.interface == iface.name).filter_map(mapping).collect();
        // A mapping on every address is one record per family.
        have.sort();
        have.dedup();
        if have != self.ports {
            let show = |l: &[PortMapping]| l.iter().map(PortMapping::publish).collect::<Vec<_>>();
            out.push(format!("its ports are {:?}, not {:?}", show(&have), show(&self.ports)));
        }
        out
    }
}

fn mapping(p: &pb::PortMapping) -> Option<PortMapping> {
    Some(PortMapping {
        protocol: p.protocol.clone(),
        host_ip: Some(p.host_ip.parse().ok()?).filter(|ip: &std::net::IpAddr| !ip.is_unspecified()),
        host_port: u16::try_from(p.host_port).ok()?,
        container_port: u16::try_from(p.container_port).ok()?,
    })
}

/// The container's sandbox, if ctnet has one with its label.
async fn find(client: &mut Client, container: &Container) -> Result<Option<pb::Sandbox>> {
    let name = sandbox_name(&container.id);
    match client.sandboxes.get_sandbox(pb::GetSandboxRequest { sandbox: name }).await {
        Ok(r) => {
            let sb = r.into_inner();
            let ours = sb.labels.get(LABEL_CONTAINER) == Some(&container.id);
            Ok(ours.then_some(sb))
        }
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(from_status("looking up the container's sandbox", &s)),
    }
}

pub async fn add(conf: &NetConf, c: &Container) -> Result<Value> {
    let mut client = connect(conf).await?;
    let want = Want::new(conf, c);
    let netns = c.netns.clone().unwrap_or_default();
    let sb = match find(&mut client, c).await? {
        Some(sb) if sb.netns_path != netns && sb.state == pb::SandboxState::Failed as i32 => {
            // The runtime's old namespace is gone and it starts anew.
            remove(&mut client, &sb.name, None).await?;
            create(&mut client, c, &want).await?
        }
        Some(sb) => attach(&mut client, sb, c, &want).await?,
        None => create(&mut client, c, &want).await?,
    };
    let iface = sb
        .interfaces
        .iter()
        .find(|i| i.name == c.ifname)
        .ok_or_else(|| CniError::new(Kind::Refused, "ctnet answered without the interface"))?;
    let gateways = gateways(&mut client, iface).await?;
    Ok(result::attachment(conf.version, &sb, iface, &gateways))
}

async fn create(client: &mut Client, c: &Container, want: &Want) -> Result<pb::Sandbox> {
    let labels = HashMap::from([
        (LABEL_CONTAINER.to_string(), c.id.clone()),
        (LABEL_PLUGIN.to_string(), PLUGIN.to_string()),
    ]);
    let req = pb::CreateSandboxRequest {
        name: Some(sandbox_name(&c.id)),
        labels,
        mode: Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode {
            networks: vec![want.attachment()],
        })),
        netns_path: c.netns.clone(),
        publish: want.publish(),
        ..Default::default()
    };
    match client.sandboxes.create_sandbox(req).await {
        Ok(r) => Ok(r.into_inner()),
        // Another ADD for this container (its other network) won the name.
        Err(s) if s.code() == Code::AlreadyExists => match find(client, c).await? {
            Some(sb) => attach(client, sb, c, want).await,
            None => Err(from_status("creating the container's sandbox", &s)),
        },
        Err(s) => Err(from_status("creating the container's sandbox", &s)),
    }
}

/// One more network on the container's sandbox, or the same one again.
async fn attach(
    client: &mut Client,
    sb: pb::Sandbox,
    c: &Container,
    want: &Want,
) -> Result<pb::Sandbox> {
    let netns = c.netns.as_deref().unwrap_or_default();
    if sb.netns_path != netns {
        return Err(CniError::new(
            Kind::Mismatch,
            format!(
                "container {} is attached in namespace {}, not {netns}; DEL it first",
                c.id, sb.netns_path
            ),
        ));
    }
    if let Some(iface) = sb.interfaces.iter().find(|i| i.name == c.ifname) {
        let diffs = want.differences(&sb, iface);
        if diffs.is_empty() {
            return Ok(sb);
        }
        return Err(CniError::new(
            Kind::Mismatch,
            format!(
                "container {} already has {} with other settings; DEL it first",
                c.id, c.ifname
            ),
        )
        .details(diffs.join("; ")));
    }
    let req = pb::ConnectRequest {
        sandbox: sb.id.clone(),
        network: want.network.clone(),
        ipv4_address: want.ips.v4.map(|i| i.to_string()),
        ipv6_address: want.ips.v6.map(|i| i.to_string()),
        publish: want.publish(),
        interface_name: Some(want.ifname.clone()),
        mac_address: want.mac.clone(),
    };
    match client.sandboxes.connect(req).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) => Err(from_status(&format!("attaching network {:?}", want.network), &s)),
    }
}

/// The interface carries its gateways only with its default routes; the
/// others come from the network.
async fn gateways(client: &mut Client, iface: &pb::Interface) -> Result<result::Gateways> {
    let v6_needed = !iface.ipv6_address.is_empty() && iface.ipv6_gateway.is_empty();
    if !iface.gateway.is_empty() && !v6_needed {
        let v6 = iface.ipv6_gateway.clone();
        return Ok(result::Gateways { v4: iface.gateway.clone(), v6 });
    }
    let req = pb::GetNetworkRequest { network: iface.network_id.clone() };
    match client.networks.get_network(req).await {
        Ok(n) => {
            let n = n.into_inner();
            Ok(result::Gateways { v4: n.gateway, v6: n.ipv6_gateway })
        }
        Err(s) => Err(from_status("reading the network's gateway", &s)),
    }
}

/// Removes one interface, or the sandbox with its last one. Gone already
/// is done.
async fn remove(client: &mut Client, sandbox: &str, network: Option<&str>) -> Result<()> {
    let out = match network {
        None => {
            let req = pb::DeleteSandboxRequest { sandbox: sandbox.to_string() };
            client.sandboxes.delete_sandbox(req).await.map(drop)
        }
        Some(n) => {
            let req =
                pb::DisconnectRequest { sandbox: sandbox.to_string(), network: n.to_string() };
            client.sandboxes.disconnect(req).await.map(drop)
        }
    };
    match out {
        Err(s) if s.code() != Code::NotFound => Err(from_status("removing the attachment", &s)),
        _ => Ok(()),
    }
}

/// Removes `ifname` from `sb` (the whole sandbox if it is the last).
async fn detach(client: &mut Client, sb: &pb::Sandbox, ifname: &str) -> Result<()> {
    let Some(iface) = sb.interfaces.iter().find(|i| i.name == ifname) else { return Ok(()) };
    let last = sb.interfaces.len() == 1;
    remove(client, &sb.id, (!last).then_some(iface.network_id.as_str())).await
}

/// DEL: whatever is left of the attachment goes; nothing left is success.
pub async fn del(conf: &NetConf, c: &Container) -> Result<()> {
    let mut client = connect(conf).await?;
    match find(&mut client, c).await? {
        Some(sb) => detach(&mut client, &sb, &c.ifname).await,
        None => Ok(()),
    }
}

/// CHECK: the attachment is as the previous result says and as ctnet
/// recorded it, in the kernel too.
pub async fn check(conf: &NetConf, c: &Container) -> Result<()> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(Kind::InvalidConfig, "CHECK needs prevResult (the ADD's result)")
    })?;
    let mut client = connect(conf).await?;
    let unknown = |what: String| CniError::new(Kind::UnknownContainer, what);
    let sb = find(&mut client, c)
        .await?
        .ok_or_else(|| unknown(format!("ctnet has no sandbox for container {}", c.id)))?;
    let iface = sb
        .interfaces
        .iter()
        .find(|i| i.name == c.ifname)
        .ok_or_else(|| unknown(format!("container {} has no interface {}", c.id, c.ifname)))?;
    let mut diffs = Want::new(conf, c).differences(&sb, iface);
    if c.netns.as_deref() != Some(sb.netns_path.as_str()) {
        diffs.push(format!("its namespace is {}", sb.netns_path));
    }
    // A result lists the IPv4 address first; an IPv6-only one has none.
    let first = [&iface.address, &iface.ipv6_address].into_iter().find(|a| !a.is_empty());
    let first = first.cloned().unwrap_or_default();
    match result::previous_address(prev, &c.ifname) {
        Some(a) if a == first => {}
        other => diffs.push(format!("prevResult says {other:?}, ctnet has {first}")),
    }
    let req = pb::CheckRequest { sandbox: sb.id.clone() };
    let kernel = client.sandboxes.check(req).await.map_err(|s| from_status("checking", &s))?;
    diffs.extend(kernel.into_inner().differences);
    if diffs.is_empty() {
        return Ok(());
    }
    Err(CniError::new(Kind::Mismatch, format!("container {} differs from its record", c.id))
        .details(diffs.join("; ")))
}

/// STATUS: 0 when ctnet can serve an ADD on this network now.
pub async fn status(conf: &NetConf) -> Result<()> {
    let mut client = connect(conf).await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(client.channel.clone());
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    match health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
        Ok(r) if r.get_ref().status == serving => {}
        other => {
            let why = other.map_or_else(|s| s.message().to_string(), |_| "not serving".into());
            return Err(CniError::new(
                Kind::NotAvailableLimited,
                format!("ctnet is up but cannot change the kernel now ({why}); existing containers keep their addresses but are not repaired"),
            ));
        }
    }
    let req = pb::GetNetworkRequest { network: conf.network.clone() };
    client.networks.get_network(req).await.map(drop).map_err(|s| {
        CniError::new(
            Kind::NotAvailable,
            format!("network {:?} is not usable: {}", conf.network, s.message()),
        )
    })
}

/// GC: every attachment this plugin made on this network that the runtime
/// no longer lists goes.
pub async fn gc(conf: &NetConf) -> Result<()> {
    let valid = conf
        .valid
        .as_ref()
        .ok_or_else(|| CniError::new(Kind::InvalidConfig, "GC needs cni.dev/valid-attachments"))?;
    let mut client = connect(conf).await?;
    let selector = HashMap::from([(LABEL_PLUGIN.to_string(), PLUGIN.to_string())]);
    let list = client
        .sandboxes
        .list_sandboxes(pb::ListSandboxesRequest { label_selector: selector })
        .await
        .map_err(|s| from_status("listing sandboxes", &s))?
        .into_inner()
        .sandboxes;
    for sb in list {
        let id = sb.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
        let stale = sb.interfaces.iter().find(|i| {
            (i.network_name == conf.network || i.network_id == conf.network)
                && !valid.iter().any(|(c, ifname)| *c == id && *ifname == i.name)
        });
        if let Some(iface) = stale {
            detach(&mut client, &sb, &iface.name).await?;
        }
    }
    Ok(())
}
