//! What a tenant may do and how much it may hold, checked under the state
//! lock together with the decision it guards (so two requests never both
//! take the last unit of a quota). The admin (no rules) passes every check.
use super::host::{host_conflict, own_bridges, Range};
use crate::domain::network::{Addressing, Ipv4Ask, Ipv6Ask, NetworkSpec, DEFAULT_MTU};
use crate::domain::ports::{Bind, HostPort, PortRequest};
use crate::domain::Subnet;
use crate::error::{Error, Result};
use crate::executor::HostRoutes;
use crate::model::SandboxRecord;
use crate::policy::{Caller, TenantRules};
use crate::state::State;

fn over_quota(tenant: &str, quota: &str, value: usize) -> Error {
    Error::Exhausted(format!(
        "tenant {tenant}: quota {quota} = {value} is reached; delete some first or ask for more"
    ))
}

fn denied(tenant: &str, permission: &str, what: &str) -> Error {
    Error::Denied(format!(
        "tenant {tenant} may not {what} (policy permission allow.{permission} is off)"
    ))
}

/// Counts of what a tenant holds now.
pub struct Usage {
    pub networks: usize,
    pub sandboxes: usize,
    pub owned_netns: usize,
    pub published_ports: usize,
    pub attachments: usize,
}

pub fn usage(st: &State, tenant: &str) -> Usage {
    // A released sandbox is the tenant's no more; the global limits still
    // count it until the kernel is done with it.
    let mine = |s: &&SandboxRecord| s.tenant == tenant && s.phase.visible();
    let sandboxes: Vec<_> = st.sandboxes.values().filter(mine).collect();
    Usage {
        networks: st.networks.values().filter(|n| n.tenant == tenant).count(),
        sandboxes: sandboxes.len(),
        owned_netns: sandboxes
            .iter()
            .filter(|s| matches!(s.netns, crate::model::Netns::Owned(_)))
            .count(),
        published_ports: sandboxes.iter().flat_map(|s| &s.endpoints).map(|e| e.ports.len()).sum(),
        attachments: sandboxes.iter().map(|s| s.endpoints.len()).sum(),
    }
}

/// A new network's quota and permissions.
pub fn check_network(caller: &Caller, st: &State, spec: &NetworkSpec) -> Result<()> {
    let Some(r) = &caller.rules else { return Ok(()) };
    let t = r.name.as_str();
    if usage(st, t).networks >= r.quota.networks {
        return Err(over_quota(t, "networks", r.quota.networks));
    }
    if spec.bridge_name.is_some() && !r.allow.bridge_name {
        return Err(denied(t, "bridge_name", "name its bridge (bridge_name)"));
    }
    if spec.mtu > DEFAULT_MTU && !r.allow.mtu_above_host {
        return Err(denied(t, "mtu_above_host", "set an MTU above the host's 1500"));
    }
    if let Ipv4Ask::Given(a) = spec.ipv4 {
        let inside = |range: &Subnet| range.prefix <= a.subnet.prefix && range.overlaps(&a.subnet);
        if !r.subnets.iter().any(inside) {
            return Err(Error::Denied(format!(
                "subnet: {} is outside tenant {t}'s ranges ({}); omit it to get one from its pool",
                a.subnet,
                list(&r.subnets)
            )));
        }
    }
    // A policy names IPv4 ranges only: a tenant's IPv6 comes from the
    // host's ULA prefix, so no tenant can take a routed prefix.
    if matches!(spec.ipv6, Some(Ipv6Ask::Given(_))) {
        return Err(Error::Denied(format!(
            "ipv6_subnet: tenant {t} may not name an IPv6 subnet; set enable_ipv6 for one from the host's ULA prefix"
        )));
    }
    Ok(())
}

fn list(s: &[Subnet]) -> String {
    if s.is_empty() {
        return "none".into();
    }
    s.iter().map(Subnet::to_string).collect::<Vec<_>>().join(", ")
}

/// The subnet of a network created without one: the first of the tenant's
/// pool, in its pool_prefix steps, that overlaps no network and nothing on
/// the host.
pub fn pick_subnet(caller: &Caller, st: &State, host: &HostRoutes) -> Result<Addressing> {
    let none = || Error::invalid("subnet", "required, e.g. \"172.31.5.0/24\"");
    let r = caller.rules.as_ref().ok_or_else(none)?;
    let pool = r.pool.ok_or_else(none)?;
    let own = own_bridges(st);
    let step = 1u64 << (32 - u32::from(r.pool_prefix));
    let size = 1u64 << (32 - u32::from(pool.prefix));
    let base = u64::from(u32::from(pool.base));
    (0..size / step)
        .filter_map(|i| u32::try_from(base + i * step).ok())
        .map(|b| Subnet { base: b.into(), prefix: r.pool_prefix })
        .find(|s| {
            !st.networks.values().any(|n| n.overlaps4(s))
                && host_conflict(host, &Range::V4(*s), &own).is_none()
        })
        .map(Addressing::of)
        .ok_or_else(|| {
            Error::Exhausted(format!("tenant {}: its address pool {pool} is used up", r.name))
        })
}

/// What a new sandbox of `caller` asks for.
pub struct SandboxAsk<'a> {
    pub host_mode: bool,
    pub netns_path: Option<&'a std::path::Path>,
    pub owns_netns: bool,
    pub attachments: usize,
    pub publish: &'a [PortRequest],
}

/// A new sandbox's (or a Connect's) quotas and permissions.
pub fn check_sandbox(caller: &Caller, st: &State, ask: &SandboxAsk, new: bool) -> Result<()> {
    let Some(r) = &caller.rules else { return Ok(()) };
    let t = r.name.as_str();
    let u = usage(st, t);
    let q = &r.quota;
    if new && u.sandboxes >= q.sandboxes {
        return Err(over_quota(t, "sandboxes", q.sandboxes));
    }
    if ask.owns_netns && u.owned_netns >= q.owned_netns {
        return Err(over_quota(t, "owned_netns", q.owned_netns));
    }
    if u.attachments + ask.attachments > q.attachments {
        return Err(over_quota(t, "attachments", q.attachments));
    }
    if u.published_ports + ask.publish.len() > q.published_ports {
        return Err(over_quota(t, "published_ports", q.published_ports));
    }
    if ask.host_mode && !r.allow.host_mode {
        return Err(denied(t, "host_mode", "use host mode"));
    }
    if let Some(p) = ask.netns_path {
        if !r.allow.netns_path_dirs.iter().any(|d| p.parent() == Some(d.as_path())) {
            return Err(Error::Denied(format!(
                "netns_path: tenant {t} may name namespaces only in its allow.netns_path_dirs"
            )));
        }
    }
    check_ports(r, ask.publish)
}

/// A tenant's ports without a host port come from its own range.
pub fn fit_ports(caller: &Caller, publish: &mut [PortRequest]) {
    let Some(range) = caller.rules.as_ref().and_then(|r| r.allow.host_ports) else { return };
    for p in publish.iter_mut().filter(|p| p.host_port == HostPort::Any) {
        p.host_port = HostPort::Within(range.0, range.1);
    }
}

fn check_ports(r: &TenantRules, publish: &[PortRequest]) -> Result<()> {
    let t = r.name.as_str();
    for p in publish {
        if matches!(p.bind, Bind::Addr(_)) && !r.allow.host_ip_ports {
            return Err(denied(t, "host_ip_ports", "bind a published port to one host address"));
        }
        let (lo, hi) = match p.host_port {
            HostPort::Fixed(p) => (p, p),
            HostPort::Within(a, b) => (a, b),
            HostPort::Any => (0, 0),
        };
        if lo < 1024 && !r.allow.ports_below_1024 {
            return Err(denied(t, "ports_below_1024", "publish host ports below 1024"));
        }
        let within = r.allow.host_ports.is_some_and(|(a, b)| a <= lo && hi <= b);
        if !within {
            let range = r.allow.host_ports.map_or("none".into(), |(a, b)| format!("{a}-{b}"));
            return Err(Error::Denied(format!(
                "publish: host ports {lo}-{hi} are outside tenant {t}'s allow.host_ports ({range})"
            )));
        }
    }
    Ok(())
}
