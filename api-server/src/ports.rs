//! Host port allocation. A host port is free for a mapping when no other
//! mapping holds the same protocol and port on an overlapping host address,
//! and no host process listens on it. Decided under the state lock, from the
//! records themselves, so two requests never get one port.
use std::collections::HashMap;
use std::net::IpAddr;

use crate::domain::ports::{Family, HostPort, PortRequest, Proto};
use crate::domain::GatewayMode;
use crate::error::{Error, Result};
use crate::executor::HostListener;
use crate::model::{NetworkRecord, PublishedPort, SandboxRecord};
use crate::policy::Caller;
use crate::state::State;

/// Where ports come from when a request does not name one.
#[derive(Debug, Clone, Copy)]
pub struct EphemeralRange(pub u16, pub u16);

struct Taken<'a> {
    /// Every published port, indexed once per request (an ephemeral search
    /// probes many ports), with its holder.
    published: HashMap<(Proto, u16), Vec<(&'a PublishedPort, &'a SandboxRecord)>>,
    listeners: &'a [HostListener],
    /// Ports granted earlier in the same request.
    granted: Vec<PublishedPort>,
    /// Who asks: another tenant's sandbox is not named to it.
    viewer: &'a Caller,
}

impl<'a> Taken<'a> {
    fn new(st: &'a State, viewer: &'a Caller, listeners: &'a [HostListener]) -> Self {
        let mut published: HashMap<(Proto, u16), Vec<_>> = HashMap::new();
        for s in st.sandboxes.values() {
            for p in s.endpoints.iter().flat_map(|e| &e.ports) {
                published.entry((p.proto, p.host_port)).or_default().push((p, s));
            }
        }
        Self { published, listeners, granted: Vec::new(), viewer }
    }

    /// Why the port is not free on every one of `binds`, if it is not.
    fn holder(&self, proto: Proto, binds: &[Bound], port: u16) -> Option<String> {
        binds.iter().find_map(|&(family, ip)| self.holder_of(proto, family, ip, port))
    }

    fn holder_of(
        &self,
        proto: Proto,
        family: Family,
        ip: Option<IpAddr>,
        port: u16,
    ) -> Option<String> {
        let clash = |p: &PublishedPort| p.clashes(proto, family, ip, port);
        let holders = self.published.get(&(proto, port)).into_iter().flatten();
        if let Some((_, s)) = holders.into_iter().find(|(p, _)| clash(p)) {
            if !self.viewer.sees(&s.tenant) {
                return Some("already published by another tenant's sandbox".into());
            }
            return Some(format!("already published by sandbox {s}"));
        }
        if self.granted.iter().any(clash) {
            return Some("asked for twice in this request".into());
        }
        let l = self
            .listeners
            .iter()
            .find(|l| l.proto == proto && l.port == port && l.covers(family, ip))?;
        Some(format!(
            "in use on the host: a process listens on {} (address already in use)",
            l.shown
        ))
    }

    fn first_free(&self, proto: Proto, binds: &[Bound], lo: u16, hi: u16) -> Option<u16> {
        (lo..=hi).find(|p| self.holder(proto, binds, *p).is_none())
    }
}

/// One family a mapping is published on, and its host address (None:
/// every address of the family).
type Bound = (Family, Option<IpAddr>);

fn shown(proto: Proto, binds: &[Bound], port: u16) -> String {
    let one = |&(f, ip): &Bound| match ip.unwrap_or(f.unspecified()) {
        IpAddr::V4(a) => format!("{a}:{port}/{proto}"),
        IpAddr::V6(a) => format!("[{a}]:{port}/{proto}"),
    };
    binds.iter().map(one).collect::<Vec<_>>().join(" and ")
}

/// The gateway mode of each family an interface has.
#[derive(Debug, Clone, Copy)]
pub struct Families {
    /// None: the interface has no IPv4 (an IPv6-only network).
    pub v4: Option<GatewayMode>,
    /// None: the interface has no IPv6.
    pub v6: Option<GatewayMode>,
}

impl Families {
    pub fn of(net: &NetworkRecord, ep: &crate::model::Endpoint) -> Self {
        Self { v4: ep.address.map(|_| net.mode4), v6: ep.address6.map(|_| net.mode6) }
    }

    fn mode(&self, f: Family) -> GatewayMode {
        let m = match f {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        };
        m.unwrap_or(GatewayMode::Isolated)
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// Host ports for `requests`, on an interface with these families: a
/// mapping without a host address is published on every family the
/// network has, on one host port free on all of its NAT families; a routed
/// family opens the container port instead, an isolated one publishes
/// nothing.
pub fn allocate(
    st: &State,
    viewer: &Caller,
    requests: &[PortRequest],
    listeners: &[HostListener],
    range: EphemeralRange,
    families: Families,
) -> Result<Vec<PublishedPort>> {
    let mut taken = Taken::new(st, viewer, listeners);
    for r in requests {
        let binds = r.bind.resolve(families.v4.is_some(), families.v6.is_some()).map_err(|f| {
            let (has, lacks) = match f {
                Family::V4 => ("IPv4", "IPv6-only"),
                Family::V6 => ("IPv6", "IPv4-only"),
            };
            let why = format!(
                "an {has} host address, but the sandbox's published interface is on an {lacks} network"
            );
            Error::invalid("publish", why)
        })?;
        let (mut nat, mut opened) = (Vec::new(), false);
        for (family, host_ip) in binds {
            match families.mode(family) {
                GatewayMode::Nat => nat.push((family, host_ip)),
                GatewayMode::Routed => {
                    taken.open_routed(r, family, host_ip)?;
                    opened = true;
                }
                GatewayMode::Isolated => {}
            }
        }
        if nat.is_empty() {
            if !opened {
                let why = "the network's gateway mode is isolated for every family this mapping binds: nothing can be published";
                return Err(Error::invalid("publish", why));
            }
            continue;
        }
        let binds = nat;
        let port = match r.host_port {
            HostPort::Fixed(p) => {
                if let Some(why) = taken.holder(r.proto, &binds, p) {
                    return Err(Error::AlreadyExists(format!(
                        "publish: {} is {why}",
                        shown(r.proto, &binds, p)
                    )));
                }
                p
            }
            HostPort::Within(lo, hi) => {
                taken.first_free(r.proto, &binds, lo, hi).ok_or_else(|| {
                    Error::AlreadyExists(format!(
                        "publish: every {} port in {lo}-{hi} is taken",
                        r.proto
                    ))
                })?
            }
            HostPort::Any => {
                taken.first_free(r.proto, &binds, range.0, range.1).ok_or_else(|| {
                    Error::Exhausted(format!(
                        "publish: no free {} port left in the ephemeral range {}-{}",
                        r.proto, range.0, range.1
                    ))
                })?
            }
        };
        for (family, host_ip) in binds {
            taken.granted.push(PublishedPort {
                proto: r.proto,
                family,
                host_ip,
                host_port: port,
                container_port: r.container_port,
                routed: false,
            });
        }
    }
    Ok(taken.granted)
}

impl Taken<'_> {
    /// A routed family: the container port is opened on the sandbox's own
    /// address; naming a host port or address would be a promise the
    /// kernel does not keep (no NAT), so it is refused.
    fn open_routed(
        &mut self,
        r: &PortRequest,
        family: Family,
        host_ip: Option<IpAddr>,
    ) -> Result<()> {
        if host_ip.is_some() || r.host_port != HostPort::Any {
            let why = format!(
                "{}/{}: the network's {} gateway mode is routed (no NAT): publish the container port alone (e.g. {}/{}), which opens it on the sandbox's own address",
                r.container_port, r.proto, family_name(family), r.container_port, r.proto
            );
            return Err(Error::invalid("publish", why));
        }
        let same = |p: &PublishedPort| {
            p.routed
                && p.family == family
                && p.proto == r.proto
                && p.container_port == r.container_port
        };
        if !self.granted.iter().any(same) {
            self.granted.push(PublishedPort {
                proto: r.proto,
                family,
                host_ip: None,
                host_port: r.container_port,
                container_port: r.container_port,
                routed: true,
            });
        }
        Ok(())
    }
}
