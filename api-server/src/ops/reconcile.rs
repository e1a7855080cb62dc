//! Brings the kernel in line with the store: at start, and whenever netexec
//! becomes reachable again or restarts. Interrupted operations end all or
//! nothing: Creating sandboxes are rolled back, Deleting ones finished;
//! networks are (re)ensured or finished deleting; endpoints of a Connect
//! that never completed are removed; acknowledged sandboxes get missing
//! endpoints back or are marked failed; orphans are removed and the nft
//! table is rebuilt. Resources with an operation in flight are skipped.
use tonic::Status;

use super::Ops;
use crate::model::{Phase, SandboxRecord};

impl Ops {
    pub async fn reconcile(&self) -> Result<(), Status> {
        let (nets, sbs) = {
            let st = self.lock().await;
            let nets: Vec<_> = st.networks.values().filter(|n| !st.busy.contains(&n.id)).cloned().collect();
            let sbs: Vec<_> = st.sandboxes.values().filter(|s| !st.busy.contains(&s.id)).cloned().collect();
            (nets, sbs)
        };
        // Networks before sandboxes: endpoints need their bridges.
        for n in nets.iter().filter(|n| n.phase != Phase::Deleting) {
            self.with_claim(&n.id, self.restore_network(n.clone())).await?;
        }
        // One atomic rebuild of the table from the records; interrupted
        // operations below then remove their own elements.
        self.sync_firewall().await?;
        let inv = self.exec.inventory().await?;
        for s in sbs {
            let id = s.id.clone();
            self.with_claim(&id, self.reconcile_sandbox(s)).await?;
            // Whatever the step above left of it.
            let current = self.lock().await.sandboxes.get(&id).cloned();
            if let Some(s) = current {
                self.with_claim(&id, self.restore_sandbox(s, &inv)).await?;
            }
        }
        for n in nets.into_iter().filter(|n| n.phase == Phase::Deleting) {
            self.with_claim(&n.id.clone(), self.finish_network_delete(n)).await?;
        }
        // Orphans last (this also rebuilds the table once more, without the
        // ports of sandboxes that just failed).
        self.garbage_collect().await?;
        Ok(())
    }

    async fn reconcile_sandbox(&self, mut rec: SandboxRecord) -> Result<(), Status> {
        match rec.phase {
            Phase::Creating | Phase::Deleting => {
                self.teardown(&rec).await?;
                tracing::info!(sandbox = %rec.id, phase = ?rec.phase, "interrupted operation undone");
                self.drop_sandbox(&mut *self.lock().await, &rec.id).await
            }
            Phase::Ready | Phase::Failed(_) => {
                let stale: Vec<_> = rec.endpoints.iter().filter(|e| !e.attached).cloned().collect();
                if stale.is_empty() {
                    return Ok(());
                }
                for ep in &stale {
                    self.exec.detach(&ep.host_ifname, 0).await?;
                }
                rec.endpoints.retain(|e| e.attached);
                self.put_sandbox(&mut *self.lock().await, rec).await
            }
        }
    }

    /// Runs `work` with the resource claimed; skips it if a request holds it.
    async fn with_claim(&self, id: &str, work: impl std::future::Future<Output = Result<(), Status>>) -> Result<(), Status> {
        if self.lock().await.claim(id, "resource").is_err() {
            return Ok(());
        }
        let out = work.await;
        self.lock().await.release(id);
        out
    }
}
