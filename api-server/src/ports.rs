//! Host port allocation. A host port is free for a mapping when no other
//! mapping holds the same protocol and port on an overlapping host address,
//! and no host process listens on it. Decided under the state lock, from the
//! records themselves, so two requests never get one port.
use std::collections::HashMap;
use std::net::IpAddr;

use crate::domain::ports::{Family, HostPort, PortRequest, Proto};
use crate::error::{Error, Result};
use crate::executor::HostListener;
use crate::model::{PublishedPort, SandboxRecord};
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

/// Host ports for `requests`, on an interface whose network has IPv6 or
/// not: a mapping without a host address is published on every family the
/// network has, on one host port free on all of them.
pub fn allocate(
    st: &State,
    viewer: &Caller,
    requests: &[PortRequest],
    listeners: &[HostListener],
    range: EphemeralRange,
    ipv6: bool,
) -> Result<Vec<PublishedPort>> {
    let mut taken = Taken::new(st, viewer, listeners);
    for r in requests {
        let binds = r.bind.resolve(ipv6).ok_or_else(|| {
            let why = "an IPv6 host address, but the sandbox's published interface is on an IPv4-only network";
            Error::invalid("publish", why)
        })?;
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
            });
        }
    }
    Ok(taken.granted)
}
