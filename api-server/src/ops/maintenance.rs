//! Kernel state against desired state: Check (CNI's CHECK), GarbageCollect
//! (CNI's GC) and the restoring half of reconciliation. "Ours" is always
//! listable: links carry the owner tag in their alias, pins are named by
//! sandbox id, nft elements carry the owner in their comment.
use ctnet_proto::exec as pb;
use tonic::Status;

use super::sandbox::endpoint_target;
use super::Ops;
use crate::model::{Netns, Phase, SandboxRecord};
use crate::state::State;

/// Tagged links and pins that no record owns.
fn orphans(st: &State, inv: &pb::InventoryResponse) -> (Vec<pb::OwnedLink>, Vec<String>) {
    let owned_link = |l: &pb::OwnedLink| match l.owner.split_once(':') {
        Some(("sb", id)) => st.sandboxes.get(id).is_some_and(|s| s.endpoints.iter().any(|e| e.host_ifname == l.name)),
        Some(("net", id)) => st.networks.get(id).is_some_and(|n| n.bridge == l.name),
        // A tag format this version does not know: not ours to judge.
        _ => true,
    };
    let links = inv.links.iter().filter(|l| !owned_link(l)).cloned().collect();
    let owned_pin = |id: &String| st.sandboxes.get(id).is_some_and(|s| matches!(s.netns, Netns::Owned(_)));
    let pins = inv.netns_pins.iter().filter(|p| !owned_pin(p)).cloned().collect();
    (links, pins)
}

impl Ops {
    pub async fn garbage_collect(&self) -> Result<Vec<String>, Status> {
        let inv = self.exec.inventory().await?;
        let (links, pins) = orphans(&*self.lock().await, &inv);
        let mut removed = Vec::new();
        // Veths before bridges: a bridge goes only once its ports are gone.
        for l in links.iter().filter(|l| l.kind != "bridge").chain(links.iter().filter(|l| l.kind == "bridge")) {
            if l.kind == "bridge" {
                self.exec.delete_bridge(&l.name).await?;
            } else {
                self.exec.detach(&l.name, 0).await?;
            }
            removed.push(format!("{} {} (owner {})", if l.kind.is_empty() { "link" } else { &l.kind }, l.name, l.owner));
        }
        for id in pins {
            self.exec.delete_netns(&id).await?;
            removed.push(format!("netns pin {id}"));
        }
        // Stale firewall elements go with a rebuild from the records.
        self.sync_firewall().await?;
        for r in &removed {
            tracing::info!(removed = %r, "garbage collected");
        }
        Ok(removed)
    }

    pub async fn check(&self, reference: &str) -> Result<Vec<String>, Status> {
        let (rec, nets) = {
            let st = self.lock().await;
            let rec = st.sandbox(reference)?.clone();
            let nets: Vec<_> = rec.endpoints.iter().map(|e| st.networks.get(&e.network_id).cloned()).collect();
            (rec, nets)
        };
        let inv = self.exec.inventory().await?;
        let mut diffs = Vec::new();
        if rec.phase != Phase::Ready {
            diffs.push(format!("state: {:?}", rec.phase));
        }
        if let Netns::Owned(p) = &rec.netns {
            if !inv.netns_pins.contains(&rec.id) {
                diffs.push(format!("netns: pin {} is missing", p.display()));
                return Ok(diffs);
            }
        }
        for (ep, net) in rec.endpoints.iter().zip(&nets) {
            let bridge = net.as_ref().map(|n| n.bridge.as_str()).unwrap_or("?");
            match inv.links.iter().find(|l| l.name == ep.host_ifname) {
                None => diffs.push(format!("{}: host veth {} is missing", ep.ifname, ep.host_ifname)),
                Some(l) if l.owner != rec.owner_tag() => {
                    diffs.push(format!("{}: host veth {} is tagged {:?}", ep.ifname, ep.host_ifname, l.owner))
                }
                Some(l) if l.master != bridge => {
                    diffs.push(format!("{}: host veth {} is not a port of {bridge} (master {:?})", ep.ifname, ep.host_ifname, l.master))
                }
                Some(_) => {}
            }
        }
        if !rec.endpoints.is_empty() {
            let seen = self.exec.inspect_netns(&endpoint_target(&rec)).await?;
            for (ep, net) in rec.endpoints.iter().zip(&nets) {
                let Some(net) = net else { continue };
                let want = format!("{}/{}", ep.address, net.subnet.prefix);
                match seen.interfaces.iter().find(|i| i.name == ep.ifname) {
                    None => diffs.push(format!("{}: missing inside the sandbox", ep.ifname)),
                    Some(i) if !i.addresses.contains(&want) => {
                        diffs.push(format!("{}: address {want} missing (has {:?})", ep.ifname, i.addresses))
                    }
                    Some(i) if !i.up => diffs.push(format!("{}: down", ep.ifname)),
                    Some(_) => {}
                }
                if ep.default_route && seen.default_gateway != net.gateway.to_string() {
                    diffs.push(format!("default route: via {:?}, expected {}", seen.default_gateway, net.gateway));
                }
            }
        }
        Ok(diffs)
    }

    /// Reconciliation of an acknowledged sandbox: a missing endpoint is
    /// re-created; a sandbox whose namespace is gone is marked failed, with
    /// the reason, and kept until deleted.
    pub(super) async fn restore_sandbox(&self, rec: SandboxRecord, inv: &pb::InventoryResponse) -> Result<(), Status> {
        if rec.phase != Phase::Ready {
            return Ok(());
        }
        if matches!(rec.netns, Netns::Owned(_)) && !inv.netns_pins.contains(&rec.id) {
            return self.mark_failed(rec, "its network namespace is gone (host rebooted, or it was removed behind ctnet's back)").await;
        }
        let target = endpoint_target(&rec);
        for ep in rec.endpoints.iter().filter(|e| e.attached) {
            if inv.links.iter().any(|l| l.name == ep.host_ifname) {
                continue;
            }
            if let Err(e) = self.attach_endpoint(&rec, ep, &target).await {
                let reason = format!("{} could not be re-created: {}", ep.ifname, e.message());
                return self.mark_failed(rec, &reason).await;
            }
            tracing::info!(sandbox = %rec.id, ifname = %ep.ifname, "missing endpoint re-created");
        }
        Ok(())
    }

    async fn mark_failed(&self, mut rec: SandboxRecord, reason: &str) -> Result<(), Status> {
        tracing::warn!(sandbox = %rec.id, reason, "sandbox marked failed");
        rec.phase = Phase::Failed(reason.to_string());
        self.put_sandbox(&mut *self.lock().await, rec).await
    }
}
