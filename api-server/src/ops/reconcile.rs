//! Brings the kernel and the records in line, in one place.
//!
//! - `finish_interrupted` runs periodically: operations that were cut off in
//!   this process (their task dropped) end all or nothing. Creating
//!   sandboxes are rolled back, Deleting ones finished; endpoints of a
//!   Connect that never completed, or of a Disconnect that did not finish,
//!   are removed; Creating networks are finished, Deleting ones deleted.
//! - `reconcile` runs at start and whenever netexec becomes reachable again
//!   or restarts: all of the above, plus missing bridges and endpoints of
//!   acknowledged resources re-created (or the sandbox marked failed), the
//!   firewall table rebuilt and orphans removed (`garbage_collect`).
//!
//! Both act only on records no live operation claims, so they never undo a
//! create that is about to be acknowledged. Order: networks before
//! sandboxes (endpoints need their bridges), network deletes after sandboxes
//! (a bridge goes only once its ports are gone), orphans last.
use super::claims::Claim;
use super::Ops;
use crate::domain::{LinkName, NetworkId, SandboxId};
use crate::error::Result;
use crate::events::{Event, Kind};
use crate::executor::{Inventory, LinkKind, TaggedLink};
use crate::model::{Netns, NetworkRecord, Phase, SandboxRecord};
use crate::state::State;
use crate::store::Change;

impl Ops {
    /// Finishes whatever interrupted operations left behind.
    pub async fn finish_interrupted(&self) -> Result<()> {
        self.restore_networks(|n| n.phase == Phase::Creating, Elements::Add).await?;
        self.finish_sandboxes(None).await?;
        self.release_vanished().await?;
        self.finish_network_deletes().await
    }

    /// The full reconciliation.
    pub async fn reconcile(&self) -> Result<()> {
        self.ensure_default_network().await?;
        // Links this store has records of but that carry an older tag
        // (or another store's, when the operator said adopt) become ours
        // first: every later step asks for this store's exact tag.
        self.adopt_links(&self.exec.inventory().await?).await?;
        // Told to discard another store's objects: they go before this
        // store's own are restored, as they may hold the names it needs.
        if self.settings.foreign == super::identity::Foreign::Discard {
            self.garbage_collect().await?;
        }
        self.restore_networks(|n| n.phase != Phase::Deleting, Elements::Rebuilt).await?;
        // One atomic rebuild of the table from the records; interrupted
        // operations below then remove their own elements.
        self.sync_firewall().await?;
        let inv = self.exec.inventory().await?;
        self.finish_sandboxes(Some(&inv)).await?;
        self.release_vanished().await?;
        self.finish_network_deletes().await?;
        // Orphans last (this also rebuilds the table once more, without the
        // ports of sandboxes that just failed).
        self.garbage_collect().await?;
        Ok(())
    }

    async fn network_ids(&self, pick: impl Fn(&NetworkRecord) -> bool) -> Vec<NetworkId> {
        self.lock().await.networks.values().filter(|n| pick(n)).map(|n| n.id.clone()).collect()
    }

    /// The record with its claim, unless a live operation holds it. Read
    /// after claiming: it may have changed since the caller listed it.
    async fn claim_network(&self, id: &NetworkId) -> Option<(Claim, NetworkRecord)> {
        let claim = self.claims.try_take(id.as_str())?;
        let rec = self.lock().await.networks.get(id).cloned()?;
        Some((claim, rec))
    }

    /// Sandboxes reconciliation has work on. The others are never claimed,
    /// so a caller's delete or connect never meets a busy claim because a
    /// reconciliation pass happened to be looking at them.
    async fn sandboxes_needing_work(&self, inv: Option<&Inventory>) -> Vec<SandboxId> {
        let st = self.lock().await;
        let needs = |s: &&SandboxRecord| {
            matches!(s.phase, Phase::Creating | Phase::Deleting | Phase::Releasing)
                || s.endpoints.iter().any(|e| !e.attached)
                || (s.phase == Phase::Ready && inv.is_some_and(|i| missing_something(s, i)))
        };
        st.sandboxes.values().filter(needs).map(|s| s.id.clone()).collect()
    }

    async fn claim_sandbox(&self, id: &SandboxId) -> Option<(Claim, SandboxRecord)> {
        let claim = self.claims.try_take(id.as_str())?;
        let rec = self.lock().await.sandboxes.get(id).cloned()?;
        Some((claim, rec))
    }

    /// Makes sure each picked network's bridge (and, with `Elements::Add`,
    /// its firewall elements) exist; a Creating network becomes Ready.
    async fn restore_networks(
        &self,
        pick: impl Fn(&NetworkRecord) -> bool,
        elements: Elements,
    ) -> Result<()> {
        for id in self.network_ids(&pick).await {
            let Some((claim, mut rec)) = self.claim_network(&id).await else { continue };
            if !pick(&rec) {
                continue;
            }
            self.exec
                .ensure_bridge(&super::network::bridge_args(&rec, self.store.id(), true))
                .await?;
            if elements == Elements::Add {
                self.add_network_elements(&rec).await?;
            }
            if rec.phase == Phase::Creating {
                rec.phase = Phase::Ready;
                self.record_outcome(claim, Change::PutNetwork(rec)).await?;
                tracing::info!(network = %id, "interrupted network create finished");
            }
        }
        Ok(())
    }

    async fn finish_network_deletes(&self) -> Result<()> {
        for id in self.network_ids(|n| n.phase == Phase::Deleting).await {
            let Some((claim, rec)) = self.claim_network(&id).await else { continue };
            if rec.phase != Phase::Deleting {
                continue;
            }
            self.unbuild_network(&rec).await?;
            self.record_outcome(claim, Change::DelNetwork(id.clone())).await?;
            tracing::info!(network = %id, "interrupted network delete finished");
        }
        Ok(())
    }

    /// Every unclaimed sandbox: interrupted work finished; with an inventory
    /// (full reconciliation), acknowledged ones restored too.
    async fn finish_sandboxes(&self, inv: Option<&Inventory>) -> Result<()> {
        let mut ids = self.sandboxes_needing_work(inv).await;
        // The inventory may predate creates that finished since: look
        // again, once, before claiming anything on its word.
        let fresh;
        let mut inv = inv;
        if inv.is_some() && !ids.is_empty() {
            fresh = self.exec.inventory().await?;
            inv = Some(&fresh);
            ids = self.sandboxes_needing_work(inv).await;
        }
        for id in ids {
            let Some((claim, rec)) = self.claim_sandbox(&id).await else { continue };
            let Some(rec) = self.finish_sandbox(&claim, rec).await? else { continue };
            if let Some(inv) = inv {
                self.restore_sandbox(&claim, rec, inv).await?;
            }
        }
        Ok(())
    }

    /// Ends an interrupted create or delete (the sandbox goes), or removes
    /// endpoints that are not attached. Returns the record if it stays.
    async fn finish_sandbox(
        &self,
        _claim: &Claim,
        mut rec: SandboxRecord,
    ) -> Result<Option<SandboxRecord>> {
        if matches!(rec.phase, Phase::Creating | Phase::Deleting | Phase::Releasing) {
            self.teardown(&rec).await?;
            tracing::info!(sandbox = %rec.id, phase = ?rec.phase, "interrupted operation undone");
            self.commit(self.lock().await, Change::DelSandbox(rec.id.clone())).await?;
            self.released.notify_waiters();
            return Ok(None);
        }
        let stale: Vec<_> = rec.endpoints.iter().filter(|e| !e.attached).cloned().collect();
        if stale.is_empty() {
            return Ok(Some(rec));
        }
        for ep in &stale {
            self.unbuild_endpoint(&rec, ep).await?;
        }
        rec.endpoints.retain(|e| e.attached);
        self.commit(self.lock().await, Change::PutSandbox(rec.clone())).await?;
        tracing::info!(sandbox = %rec.id, removed = stale.len(), "unfinished endpoints removed");
        Ok(Some(rec))
    }

    /// An acknowledged sandbox: a missing endpoint is re-created; a sandbox
    /// whose namespace is gone is marked failed, with the reason, and kept
    /// (its address and ports reserved) until deleted.
    async fn restore_sandbox(
        &self,
        _claim: &Claim,
        rec: SandboxRecord,
        inv: &Inventory,
    ) -> Result<()> {
        if rec.phase != Phase::Ready {
            return Ok(());
        }
        // The inventory may predate the record: a create that finished
        // while this reconciliation ran. Under the claim nothing changes
        // this sandbox, so a fresh look is the truth.
        let fresh;
        let inv = if missing_something(&rec, inv) {
            fresh = self.exec.inventory().await?;
            &fresh
        } else {
            inv
        };
        if matches!(rec.netns, Netns::Owned(_)) && !inv.pins.contains(&rec.id) {
            let why = "its network namespace is gone (host rebooted, or it was removed behind ctnet's back)";
            return self.mark_failed(rec, why).await;
        }
        // A runtime's namespace that is gone is release_vanished's.
        if self.namespace_gone(&rec).await? {
            return Ok(());
        }
        let target = super::sandbox::endpoint_target(&rec);
        let mut repaired = Vec::new();
        for ep in rec.endpoints.iter().filter(|e| e.attached) {
            if inv.link(&ep.host_ifname).is_some() {
                continue;
            }
            if let Err(e) = self.attach_endpoint(&rec, ep, &target).await {
                let reason = format!("{} could not be re-created: {e}", ep.ifname);
                return self.mark_failed(rec, &reason).await;
            }
            tracing::info!(sandbox = %rec.id, ifname = %ep.ifname, "missing endpoint re-created");
            repaired.push(ep.ifname.clone());
        }
        if repaired.is_empty() {
            return Ok(());
        }
        let metrics = crate::metrics::get();
        crate::metrics::Metrics::count(&metrics.repairs, "endpoint", repaired.len() as u64);
        let detail = format!("re-created {}", repaired.join(", "));
        self.emit(vec![Event::sandbox(Kind::SandboxRepaired, &rec).with_detail(detail)]).await
    }

    async fn mark_failed(&self, mut rec: SandboxRecord, reason: &str) -> Result<()> {
        tracing::warn!(sandbox = %rec.id, reason, "sandbox marked failed");
        rec.phase = Phase::Failed(reason.to_string());
        self.commit(self.lock().await, Change::PutSandbox(rec)).await
    }

    /// Removes tagged links and pins that no record owns (CNI's GC), then
    /// rebuilds the firewall table from the records.
    pub async fn garbage_collect(&self) -> Result<Vec<String>> {
        let inv = self.exec.inventory().await?;
        let (links, pins) = orphans(&*self.lock().await, &inv);
        let links: Vec<_> = links.into_iter().filter(|l| self.collectable(l)).collect();
        let pins = if self.pins_collectable() { pins } else { Vec::new() };
        let mut removed = Vec::new();
        // Veths before bridges: a bridge goes only once its ports are gone.
        let (bridges, others): (Vec<_>, Vec<_>) =
            links.into_iter().partition(|l| l.kind == LinkKind::Bridge);
        for l in others.iter().chain(&bridges) {
            let Ok(name) = LinkName::parse("link", &l.name, &self.settings.link_prefix) else {
                continue;
            };
            let kind = l.kind.name();
            match l.kind {
                LinkKind::Bridge => self.exec.delete_bridge(&name, &l.owner).await?,
                _ => self.exec.detach(&name, &l.owner, 0).await?,
            }
            removed.push(format!("{kind} {} (owner {})", l.name, l.owner));
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
}

/// Whether restoring a network adds its firewall elements, or leaves them
/// to the full rebuild that follows (the table may be gone: a flush).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Elements {
    Add,
    Rebuilt,
}

/// True when the inventory lacks the sandbox's pin or one of its veths.
fn missing_something(rec: &SandboxRecord, inv: &Inventory) -> bool {
    let pin = matches!(rec.netns, Netns::Owned(_)) && !inv.pins.contains(&rec.id);
    pin || rec.endpoints.iter().any(|e| e.attached && inv.link(&e.host_ifname).is_none())
}

/// Tagged links and pins that no record owns.
fn orphans(st: &State, inv: &Inventory) -> (Vec<TaggedLink>, Vec<SandboxId>) {
    let links = inv.links.iter().filter(|l| !super::identity::has_record(st, l)).cloned().collect();
    let owned_pin =
        |id: &&SandboxId| st.sandboxes.get(id).is_some_and(|s| matches!(s.netns, Netns::Owned(_)));
    let pins = inv.pins.iter().filter(|p| !owned_pin(p)).cloned().collect();
    (links, pins)
}
