//! The sandbox resource at the edge: CreateSandbox, Connect and Disconnect
//! requests become typed specs, or an InvalidArgument naming the field.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ctnet_proto::v1::{self as pb, create_sandbox_request::Mode};

use super::common::*;
use super::ids::Ref;
use super::ipv6::parse_ipv6;
use super::ports::{parse_publish, PortRequest};
use crate::error::{Error, Result};

/// Name of the network that bridge mode uses when none is given.
pub const DEFAULT_NETWORK: &str = "bridge";
/// eth0 .. eth15: the host end's name holds the index in one hex digit.
pub const MAX_INTERFACES: usize = 16;

/// One network to attach, by id or name, with an optional static address.
#[derive(Debug, Clone)]
pub struct AttachSpec {
    pub network: Ref,
    pub address: Option<Ipv4Addr>,
    /// Only on a dual-stack network.
    pub address6: Option<Ipv6Addr>,
    /// The name inside the sandbox; None: the first free ethN.
    pub ifname: Option<String>,
    /// None: derived from the address.
    pub mac: Option<Mac>,
}

/// A requested interface name: what the kernel takes (1-15 bytes) in the
/// characters ctnet allows, and not the loopback.
fn parse_ifname(field: &str, s: &str) -> Result<String> {
    let ok = (1..=15).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !matches!(s, "." | ".." | "lo");
    if !ok {
        return Err(Error::invalid(
            field,
            format!("{s:?} is not an interface name: 1-15 of [A-Za-z0-9_.-], not \"lo\""),
        ));
    }
    Ok(s.to_string())
}

#[derive(Debug, Clone)]
pub enum ModeSpec {
    Bridge { networks: Vec<AttachSpec>, netns: Option<PathBuf> },
    Host,
    None { netns: Option<PathBuf> },
    Container { target: Ref },
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub name: Option<Name>,
    pub labels: Labels,
    pub mode: ModeSpec,
    /// Published ports (bridge mode only).
    pub publish: Vec<PortRequest>,
}

impl SandboxSpec {
    pub fn parse(r: &pb::CreateSandboxRequest) -> Result<Self> {
        let name = r.name.as_deref().map(|n| Name::parse("name", n)).transpose()?;
        let labels = parse_labels("labels", &r.labels)?;
        let mac = r.mac_address.as_deref().map(|m| Mac::parse("mac_address", m)).transpose()?;
        let netns = r.netns_path.as_deref().map(parse_netns_path).transpose()?;
        let mode = match &r.mode {
            None => {
                ModeSpec::Bridge { networks: first_mac(vec![default_attachment()], mac)?, netns }
            }
            Some(Mode::Bridge(b)) => ModeSpec::Bridge {
                networks: first_mac(parse_attachments(&b.networks)?, mac)?,
                netns,
            },
            Some(Mode::None(_)) => ModeSpec::None { netns },
            Some(Mode::Host(_)) => {
                refuse_netns(&netns, "host")?;
                ModeSpec::Host
            }
            Some(Mode::Container(c)) => {
                refuse_netns(&netns, "container")?;
                ModeSpec::Container { target: Ref::parse("container.target", &c.target)? }
            }
        };
        if mac.is_some() && !matches!(mode, ModeSpec::Bridge { .. }) {
            return Err(Error::invalid(
                "mac_address",
                "only bridge mode has an interface to set a MAC on",
            ));
        }
        let publish = parse_publish("publish", &r.publish)?;
        if !publish.is_empty() {
            refuse_ports(&mode)?;
        }
        Ok(Self { name, labels, mode, publish })
    }
}

/// `mac_address` is the first interface's, unless that names its own.
fn first_mac(mut networks: Vec<AttachSpec>, mac: Option<Mac>) -> Result<Vec<AttachSpec>> {
    let Some(mac) = mac else { return Ok(networks) };
    if networks.first_mut().and_then(|a| a.mac.replace(mac)).is_some() {
        return Err(Error::invalid(
            "mac_address",
            "give the first interface's MAC here or in bridge.networks[0].mac_address, not both",
        ));
    }
    Ok(networks)
}

/// Docker drops ports in these modes silently; we refuse and say why.
fn refuse_ports(mode: &ModeSpec) -> Result<()> {
    let why = match mode {
        ModeSpec::Bridge { .. } => return Ok(()),
        ModeSpec::Host => "host mode uses the host's ports directly; publishing is for bridge mode",
        ModeSpec::None { .. } => {
            "none mode has no network to publish to; publishing is for bridge mode"
        }
        ModeSpec::Container { .. } => {
            "container mode shares the target's namespace; publish on the target instead"
        }
    };
    Err(Error::invalid("publish", why))
}

fn default_attachment() -> AttachSpec {
    AttachSpec {
        network: Ref::from_static(DEFAULT_NETWORK),
        address: None,
        address6: None,
        ifname: None,
        mac: None,
    }
}

fn parse_attachments(list: &[pb::NetworkAttachment]) -> Result<Vec<AttachSpec>> {
    if list.is_empty() {
        return Ok(vec![default_attachment()]);
    }
    if list.len() > MAX_INTERFACES {
        return Err(Error::invalid(
            "bridge.networks",
            format!("at most {MAX_INTERFACES} networks"),
        ));
    }
    let mut out: Vec<AttachSpec> = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let field = format!("bridge.networks[{i}]");
        let spec = AttachSpec {
            network: Ref::parse(&format!("{field}.network"), &a.network)?,
            address: a
                .ipv4_address
                .as_deref()
                .map(|s| parse_ipv4(&format!("{field}.ipv4_address"), s))
                .transpose()?,
            address6: a
                .ipv6_address
                .as_deref()
                .map(|s| parse_ipv6(&format!("{field}.ipv6_address"), s))
                .transpose()?,
            ifname: a
                .interface_name
                .as_deref()
                .map(|s| parse_ifname(&format!("{field}.interface_name"), s))
                .transpose()?,
            mac: a
                .mac_address
                .as_deref()
                .map(|m| Mac::parse(&format!("{field}.mac_address"), m))
                .transpose()?,
        };
        if spec.ifname.is_some() && out.iter().any(|o| o.ifname == spec.ifname) {
            return Err(Error::invalid(&field, "interface_name is given twice"));
        }
        if out.iter().any(|o| o.network == spec.network) {
            return Err(Error::invalid(
                &field,
                format!("network {:?} is listed twice", spec.network),
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

fn refuse_netns(netns: &Option<PathBuf>, mode: &str) -> Result<()> {
    match netns {
        Some(_) => Err(Error::invalid(
            "netns_path",
            format!(
                "{mode} mode uses an existing namespace; netns_path is for bridge and none modes"
            ),
        )),
        None => Ok(()),
    }
}

/// A runtime's pin: absolute, no `..`, no NUL. netexec checks again that it
/// is a real namespace file and not the host's.
fn parse_netns_path(s: &str) -> Result<PathBuf> {
    let p = PathBuf::from(s);
    if !p.is_absolute() || s.len() > 4096 || s.contains('\0') {
        return Err(Error::invalid("netns_path", format!("{s:?} must be an absolute path")));
    }
    if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::invalid("netns_path", format!("{s:?} must not contain '..'")));
    }
    Ok(p)
}

#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub sandbox: Ref,
    pub attach: AttachSpec,
    pub publish: Vec<PortRequest>,
}

impl ConnectSpec {
    pub fn parse(r: &pb::ConnectRequest) -> Result<Self> {
        Ok(Self {
            sandbox: Ref::parse("sandbox", &r.sandbox)?,
            attach: AttachSpec {
                network: Ref::parse("network", &r.network)?,
                address: r
                    .ipv4_address
                    .as_deref()
                    .map(|s| parse_ipv4("ipv4_address", s))
                    .transpose()?,
                address6: r
                    .ipv6_address
                    .as_deref()
                    .map(|s| parse_ipv6("ipv6_address", s))
                    .transpose()?,
                ifname: r
                    .interface_name
                    .as_deref()
                    .map(|s| parse_ifname("interface_name", s))
                    .transpose()?,
                mac: r.mac_address.as_deref().map(|m| Mac::parse("mac_address", m)).transpose()?,
            },
            publish: parse_publish("publish", &r.publish)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DisconnectSpec {
    pub sandbox: Ref,
    pub network: Ref,
}

impl DisconnectSpec {
    pub fn parse(r: &pb::DisconnectRequest) -> Result<Self> {
        Ok(Self {
            sandbox: Ref::parse("sandbox", &r.sandbox)?,
            network: Ref::parse("network", &r.network)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_mode_is_bridge_on_default() {
        let s = SandboxSpec::parse(&pb::CreateSandboxRequest::default()).unwrap();
        match s.mode {
            ModeSpec::Bridge { networks, netns: None } => {
                assert_eq!(networks[0].network.as_str(), DEFAULT_NETWORK)
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn netns_path_only_for_bridge_and_none() {
        let r = pb::CreateSandboxRequest {
            mode: Some(Mode::Host(pb::HostMode {})),
            netns_path: Some("/run/netns/x".into()),
            ..Default::default()
        };
        assert!(SandboxSpec::parse(&r).unwrap_err().to_string().starts_with("netns_path"));
        let r =
            pb::CreateSandboxRequest { netns_path: Some("relative".into()), ..Default::default() };
        assert!(SandboxSpec::parse(&r).is_err());
        let r = pb::CreateSandboxRequest {
            netns_path: Some("/run/../etc".into()),
            ..Default::default()
        };
        assert!(SandboxSpec::parse(&r).is_err());
    }

    #[test]
    fn duplicate_networks_refused() {
        let a = pb::NetworkAttachment {
            network: "n".into(),
            ipv4_address: None,
            ipv6_address: None,
            interface_name: None,
            mac_address: None,
        };
        let r = pb::CreateSandboxRequest {
            mode: Some(Mode::Bridge(pb::BridgeMode { networks: vec![a.clone(), a] })),
            ..Default::default()
        };
        assert!(SandboxSpec::parse(&r).is_err());
    }

    #[test]
    fn interface_names_are_checked_and_unique() {
        let a = |n: &str, i: &str| pb::NetworkAttachment {
            network: n.into(),
            ipv4_address: None,
            ipv6_address: None,
            interface_name: Some(i.into()),
            mac_address: None,
        };
        let with = |list: Vec<pb::NetworkAttachment>| pb::CreateSandboxRequest {
            mode: Some(Mode::Bridge(pb::BridgeMode { networks: list })),
            ..Default::default()
        };
        assert!(SandboxSpec::parse(&with(vec![a("n", "net1"), a("m", "eth0")])).is_ok());
        for bad in ["", "lo", "..", "a/b", "sixteen-chars-xx", "eth 0"] {
            let e = SandboxSpec::parse(&with(vec![a("n", bad)])).unwrap_err().to_string();
            assert!(e.starts_with("bridge.networks[0].interface_name"), "{bad:?}: {e}");
        }
        let e = SandboxSpec::parse(&with(vec![a("n", "x"), a("m", "x")])).unwrap_err();
        assert!(e.to_string().contains("interface_name is given twice"), "{e}");
    }

    #[test]
    fn a_mac_per_attachment_but_not_twice_for_the_first() {
        let a = |mac: Option<&str>| pb::NetworkAttachment {
            network: "n".into(),
            mac_address: mac.map(Into::into),
            ..Default::default()
        };
        let with = |first: Option<&str>, top: Option<&str>| pb::CreateSandboxRequest {
            mac_address: top.map(Into::into),
            mode: Some(Mode::Bridge(pb::BridgeMode { networks: vec![a(first)] })),
            ..Default::default()
        };
        let first_mac = |s: SandboxSpec| match s.mode {
            ModeSpec::Bridge { networks, .. } => networks[0].mac.map(|m| m.to_string()),
            m => panic!("{m:?}"),
        };
        let mac = "02:00:00:00:00:07";
        assert_eq!(first_mac(SandboxSpec::parse(&with(Some(mac), None)).unwrap()).unwrap(), mac);
        assert_eq!(first_mac(SandboxSpec::parse(&with(None, Some(mac))).unwrap()).unwrap(), mac);
        let e = SandboxSpec::parse(&with(Some(mac), Some(mac))).unwrap_err().to_string();
        assert!(e.starts_with("mac_address"), "{e}");
        let e = SandboxSpec::parse(&with(Some("01:00:00:00:00:01"), None)).unwrap_err();
        assert!(e.to_string().starts_with("bridge.networks[0].mac_address"), "{e}");
    }
}
