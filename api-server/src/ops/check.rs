//! Check (CNI's CHECK): a sandbox's kernel state against its record. "Ours"
//! is always listable: links carry the owner tag in their alias, pins are
//! named by sandbox id.
use super::sandbox::endpoint_target;
use super::Ops;
use crate::domain::Ref;
use crate::error::Result;
use crate::executor::{Inventory, NetnsView};
use crate::model::{Endpoint, Netns, NetworkRecord, Owner, Phase};
use crate::policy::Caller;

impl Ops {
    /// The differences found; empty when the sandbox is as recorded.
    pub async fn check(&self, caller: &Caller, reference: &Ref) -> Result<Vec<String>> {
        let (rec, nets) = {
            let st = self.lock().await;
            let rec = st.sandbox(caller, reference)?.clone();
            let nets: Vec<_> =
                rec.endpoints.iter().map(|e| st.networks.get(&e.network_id).cloned()).collect();
            (rec, nets)
        };
        let inv = self.exec.inventory().await?;
        let mut diffs = Vec::new();
        if rec.phase != Phase::Ready {
            diffs.push(format!("state: {:?}", rec.phase));
        }
        if let Netns::Owned(p) = &rec.netns {
            if !inv.pins.contains(&rec.id) {
                diffs.push(format!("netns: pin {} is missing", p.display()));
                return Ok(diffs);
            }
        }
        for (ep, net) in rec.endpoints.iter().zip(&nets) {
            diffs.extend(host_end(&rec.owner(self.store.id()), ep, net.as_ref(), &inv));
        }
        if !rec.endpoints.is_empty() {
            let seen = self.exec.inspect_netns(&endpoint_target(&rec)).await?;
            for (ep, net) in rec.endpoints.iter().zip(&nets) {
                if let Some(net) = net {
                    diffs.extend(inside(ep, net, &seen));
                }
            }
        }
        Ok(diffs)
    }
}

/// What is wrong with an endpoint's host end.
fn host_end(
    owner: &Owner,
    ep: &Endpoint,
    net: Option<&NetworkRecord>,
    inv: &Inventory,
) -> Option<String> {
    let bridge = net.map_or("?", |n| n.bridge.as_str());
    let (ifname, host) = (&ep.ifname, &ep.host_ifname);
    match inv.link(host) {
        None => Some(format!("{ifname}: host veth {host} is missing")),
        Some(l) if &l.owner != owner => {
            Some(format!("{ifname}: host veth {host} is tagged {:?}", l.owner.to_string()))
        }
        Some(l) if l.master != bridge => Some(format!(
            "{ifname}: host veth {host} is not a port of {bridge} (master {:?})",
            l.master
        )),
        Some(_) => None,
    }
}

/// What is wrong with an endpoint inside the sandbox.
fn inside(ep: &Endpoint, net: &NetworkRecord, seen: &NetnsView) -> Vec<String> {
    let mut diffs = Vec::new();
    let v4 = ep.address.zip(net.ipv4).map(|(a, n)| format!("{a}/{}", n.subnet.prefix));
    let v6 = ep.address6.zip(net.ipv6).map(|(a, n)| format!("{a}/{}", n.subnet.prefix));
    let want: Vec<String> = v4.into_iter().chain(v6).collect();
    match seen.interfaces.iter().find(|i| i.name == ep.ifname) {
        None => diffs.push(format!("{}: missing inside the sandbox", ep.ifname)),
        Some(i) => {
            for w in want.iter().filter(|w| !i.addresses.contains(w)) {
                diffs.push(format!("{}: address {w} missing (has {:?})", ep.ifname, i.addresses));
            }
            if !i.up {
                diffs.push(format!("{}: down", ep.ifname));
            }
        }
    }
    let gw = super::sandbox::default_gateway(ep, net);
    if let Some(expected) = gw.filter(|g| seen.default_gateway != Some(*g)) {
        let via = seen.default_gateway.map(|g| g.to_string()).unwrap_or_default();
        diffs.push(format!("default route: via {via:?}, expected {expected}"));
    }
    let gw6 = super::sandbox::default_gateway6(ep, net);
    if gw6.is_some() && seen.default_gateway6 != gw6 {
        let via = seen.default_gateway6.map(|g| g.to_string()).unwrap_or_default();
        diffs.push(format!(
            "IPv6 default route: via {via:?}, expected {}",
            gw6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED)
        ));
    }
    diffs
}
