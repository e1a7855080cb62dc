//! Deletes acknowledged at once. A sandbox with endpoints is recorded as
//! Releasing (the delete's intent), and the delete is answered as soon as
//! its effect is certain: its ports unpublished, its own namespace unpinned
//! (the kernel destroys it and its veths asynchronously, batching many into
//! one RCU grace period) or a runtime namespace's veths taken off their
//! bridge. The record stays, invisible, as Releasing until the kernel
//! confirms the old endpoints gone: until then nobody else gets its
//! addresses or MACs, so a reused address is never answered by two
//! interfaces, and it counts against the global limits and its bridge's
//! ports, so a create/delete loop cannot outrun the kernel. A request that
//! needs what a releasing sandbox holds waits for it, briefly (a create at
//! a limit too: ResourceExhausted comes only if the wait was in vain).
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::MutexGuard;

use super::claims::Claim;
use super::firewall;
use super::Ops;
use crate::error::{Error, Result};
use crate::model::{Netns, Phase, SandboxRecord};
use crate::state::State;
use crate::store::Change;

/// How long a request waits for releasing sandboxes that hold what it needs.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl State {
    pub fn releasing(&self) -> impl Iterator<Item = &SandboxRecord> {
        self.sandboxes.values().filter(|s| s.phase == Phase::Releasing)
    }
}

impl Ops {
    /// Decides under the lock; while the decision fails only because a
    /// releasing sandbox holds something (`held`), waits for releases, up
    /// to RELEASE_WAIT, and decides again. Returns the lock with the result.
    pub(super) async fn after_releases<T>(
        &self,
        mut decide: impl FnMut(&State) -> Result<T>,
        held: impl Fn(&State, &Error) -> bool,
    ) -> Result<(MutexGuard<'_, State>, T)> {
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        loop {
            // Registered before looking, so no release between is missed.
            let released = self.released.notified();
            let st = self.lock().await;
            match decide(&st) {
                Ok(t) => return Ok((st, t)),
                Err(e) if held(&st, &e) && tokio::time::Instant::now() < deadline => {
                    drop(st);
                    let _ = tokio::time::timeout_at(deadline, released).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The part of a delete that makes it certain: ports unpublished, then
    /// the owned namespace unpinned or the runtime's veths unplugged.
    async fn cut_off(&self, rec: &SandboxRecord) -> Result<()> {
        self.remove_ports(firewall::all_ports(rec)).await?;
        match &rec.netns {
            Netns::Owned(_) => self.exec.delete_netns(&rec.id).await,
            _ => {
                let owner = rec.owner(self.store.id());
                for ep in &rec.endpoints {
                    self.exec.unplug(&ep.host_ifname, &owner).await?;
                }
                Ok(())
            }
        }
    }

    /// Acknowledges a delete whose intent is recorded (under `claim`) once
    /// it is certain, and finishes it in the background. A sandbox with
    /// endpoints was recorded Releasing already, so the caller's answer
    /// costs one store write, like a create's.
    pub(super) async fn delete_now(
        self: &Arc<Self>,
        claim: Claim,
        rec: SandboxRecord,
    ) -> Result<()> {
        if rec.phase != Phase::Releasing {
            // Nothing the kernel destroys later: done in one go.
            self.teardown(&rec).await?;
            return self.record_outcome(claim, Change::DelSandbox(rec.id.clone())).await;
        }
        // On failure the error is the caller's; the record stays Releasing
        // (gone for callers) and reconciliation finishes it.
        self.cut_off(&rec).await?;
        let ops = self.clone();
        tokio::spawn(async move { ops.release(claim, rec).await });
        Ok(())
    }

    /// Waits for the kernel to destroy the endpoints (deleting what is left
    /// after the grace), removes their guards, then frees the record. If a
    /// step fails the record stays Releasing and reconciliation finishes it.
    pub(super) async fn release(&self, claim: Claim, rec: SandboxRecord) {
        let id = rec.id.clone();
        match self.teardown(&rec).await {
            Ok(()) => match self.record_outcome(claim, Change::DelSandbox(id.clone())).await {
                Ok(()) => tracing::debug!(sandbox = %id, "endpoints released"),
                Err(e) => tracing::warn!(sandbox = %id, error = %e, "could not record the release"),
            },
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "release incomplete; reconciliation finishes it")
            }
        }
        self.released.notify_waiters();
    }
}
