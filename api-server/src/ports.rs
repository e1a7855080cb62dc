//! Host port allocation. A host port is free for a mapping when no other
//! mapping holds the same protocol and port on an overlapping host address,
//! and no host process listens on it. Decided under the state lock, from the
//! records themselves, so two requests never get one port.
use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::domain::ports::{HostPort, PortRequest, Proto};
use crate::error::{Error, Result};
use crate::executor::HostListener;
use crate::model::{overlap, PublishedPort, SandboxRecord};
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

    /// Why the port is not free, if it is not.
    fn holder(&self, proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> Option<String> {
        let holders = self.published.get(&(proto, port)).into_iter().flatten();
        if let Some((_, s)) = holders.into_iter().find(|(p, _)| p.clashes(proto, ip, port)) {
            if !self.viewer.sees(&s.tenant) {
                return Some("already published by another tenant's sandbox".into());
            }
            return Some(format!("already published by sandbox {s}"));
        }
        if self.granted.iter().any(|p| p.clashes(proto, ip, port)) {
            return Some("asked for twice in this request".into());
        }
        let l = self
            .listeners
            .iter()
            .find(|l| l.proto == proto && l.port == port && overlap(l.address, ip))?;
        Some(format!(
            "in use on the host: a process listens on {} (address already in use)",
            l.shown
        ))
    }

    fn first_free(&self, proto: Proto, ip: Option<Ipv4Addr>, lo: u16, hi: u16) -> Option<u16> {
        (lo..=hi).find(|p| self.holder(proto, ip, *p).is_none())
    }
}

fn shown(proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> String {
    format!("{}:{port}/{proto}", ip.unwrap_or(Ipv4Addr::UNSPECIFIED))
}

pub fn allocate(
    st: &State,
    viewer: &Caller,
    requests: &[PortRequest],
    listeners: &[HostListener],
    range: EphemeralRange,
) -> Result<Vec<PublishedPort>> {
    let mut taken = Taken::new(st, viewer, listeners);
    for r in requests {
        let port = match r.host_port {
            HostPort::Fixed(p) => {
                if let Some(why) = taken.holder(r.proto, r.host_ip, p) {
                    return Err(Error::AlreadyExists(format!(
                        "publish: {} is {why}",
                        shown(r.proto, r.host_ip, p)
                    )));
                }
                p
            }
            HostPort::Within(lo, hi) => {
                taken.first_free(r.proto, r.host_ip, lo, hi).ok_or_else(|| {
                    Error::AlreadyExists(format!(
                        "publish: every {} port in {lo}-{hi} is taken",
                        r.proto
                    ))
                })?
            }
            HostPort::Any => {
                taken.first_free(r.proto, r.host_ip, range.0, range.1).ok_or_else(|| {
                    Error::Exhausted(format!(
                        "publish: no free {} port left in the ephemeral range {}-{}",
                        r.proto, range.0, range.1
                    ))
                })?
            }
        };
        taken.granted.push(PublishedPort {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port: port,
            container_port: r.container_port,
        });
    }
    Ok(taken.granted)
}
