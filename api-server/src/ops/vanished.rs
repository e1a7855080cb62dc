//! Sandboxes in a runtime's namespace (netns_path: CNI, podman) whose
//! namespace disappeared without a delete. The reference CNI plugins leak
//! the address when DEL never comes; here the sandbox is marked failed when
//! first seen gone and released (address, MAC, ports, guards, record) once
//! `release_vanished_after` has passed, so its address can be taken again.
//!
//! Seen gone: every veth of the sandbox is missing (the kernel destroys a
//! veth pair with its namespace) and netexec can no longer open the path as
//! a network namespace. A namespace still pinned elsewhere keeps its veths
//! and is never released here; the runtime's DEL or GC removes it.
use std::time::Instant;

use super::Ops;
use crate::domain::SandboxId;
use crate::error::{Error, Refusal, Result};
use crate::executor::{Inventory, NetnsTarget};
use crate::model::{Netns, Phase, SandboxRecord};
use crate::store::Change;

/// The reason a vanished sandbox carries while it waits for release.
pub const VANISHED: &str = "its runtime's network namespace is gone (deleted without a delete of the sandbox); it is released after the grace period";

impl Ops {
    /// One pass: marks newly vanished sandboxes failed and releases those
    /// whose grace has passed. Asks netexec for nothing when no sandbox
    /// lives in a runtime's namespace.
    pub async fn release_vanished(&self) -> Result<()> {
        if self.runtime_sandboxes(None).await.is_empty() {
            self.vanished_since().clear();
            return Ok(());
        }
        let inv = self.exec.inventory().await?;
        let candidates = self.runtime_sandboxes(Some(&inv)).await;
        // Sandboxes deleted, or whose veths came back, since they were
        // first seen gone are forgotten.
        self.vanished_since().retain(|id, _| candidates.contains(id));
        for id in candidates {
            let Some(claim) = self.claims.try_take(id.as_str()) else { continue };
            let Some(rec) = self.lock().await.sandboxes.get(&id).cloned() else { continue };
            if !self.namespace_gone(&rec).await? {
                self.vanished_since().remove(&id);
                continue;
            }
            let since = *self.vanished_since().entry(id.clone()).or_insert_with(Instant::now);
            if since.elapsed() < self.settings.release_vanished_after {
                if rec.phase == Phase::Ready {
                    tracing::warn!(sandbox = %id, "runtime namespace gone: marked failed");
                    let mut failed = rec;
                    failed.phase = Phase::Failed(VANISHED.into());
                    self.commit(self.lock().await, Change::PutSandbox(failed)).await?;
                }
                continue;
            }
            self.teardown(&rec).await?;
            self.record_outcome(claim, Change::DelSandbox(id.clone())).await?;
            self.vanished_since().remove(&id);
            tracing::info!(sandbox = %id, "runtime namespace gone: sandbox released");
        }
        Ok(())
    }

    /// Bridge sandboxes in a runtime's namespace, acknowledged or failed;
    /// with an inventory, only those none of whose veths exist.
    async fn runtime_sandboxes(&self, inv: Option<&Inventory>) -> Vec<SandboxId> {
        let st = self.lock().await;
        let gone = |s: &SandboxRecord| {
            inv.is_none_or(|i| s.endpoints.iter().all(|e| i.link(&e.host_ifname).is_none()))
        };
        st.sandboxes
            .values()
            .filter(|s| matches!(s.netns, Netns::External(_)) && !s.endpoints.is_empty())
            .filter(|s| matches!(s.phase, Phase::Ready | Phase::Failed(_)))
            .filter(|s| gone(s))
            .map(|s| s.id.clone())
            .collect()
    }

    /// netexec refuses the path now (missing, not a namespace, replaced):
    /// it was a namespace file in an allowed directory when it was taken.
    pub(super) async fn namespace_gone(&self, rec: &SandboxRecord) -> Result<bool> {
        let Netns::External(path) = &rec.netns else { return Ok(false) };
        match self.exec.inspect_netns(&NetnsTarget::External(path.clone())).await {
            Ok(_) => Ok(false),
            Err(Error::ExecutorRefused {
                kind: Refusal::Invalid | Refusal::NotFound | Refusal::Denied,
                ..
            }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn vanished_since(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<SandboxId, Instant>> {
        self.vanished.lock().unwrap_or_else(|p| p.into_inner())
    }
}
