//! What api-server does with a validated request. Each mutating operation
//! follows one pattern: under the state lock, decide, take the claim and
//! record the intent (addresses and names are taken here, atomically);
//! release the lock and do the kernel work through the executor; then
//! record the outcome, or undo the kernel work and drop the intent, or,
//! when the undo fails too, keep the record for reconciliation. A create is
//! acknowledged only once the kernel state exists and the store says so.
//!
//! Operations run in their own tasks (`Ops::spawn`): a client that gives up
//! never cuts one short. If a task is dropped anyway (runtime shutdown), its
//! claim goes with it and the periodic reconciliation finishes the record.
pub mod check;
pub mod claims;
pub mod firewall;
pub mod host;
pub mod identity;
pub mod network;
pub mod reconcile;
pub mod release;
pub mod sandbox;
pub mod tenancy;
pub mod vanished;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

use crate::domain::ports::PortRequest;
use crate::domain::{LinkName, SandboxId, Subnet};
use crate::error::{Error, Result};
use crate::executor::{Executor, HostListener};
use crate::limits::Limits;
use crate::ports::EphemeralRange;
use crate::state::State;
use crate::store::{Change, Store};
use claims::{Claim, Claims};

#[derive(Clone)]
pub struct Settings {
    /// Name prefix of the links netexec owns (bridges, veth host ends).
    pub link_prefix: String,
    /// None: the first free /16 of the pool (see `host::DEFAULT_POOL`).
    pub default_subnet: Option<Subnet>,
    /// Networks may overlap the host's addresses and routes (an admin's
    /// explicit choice).
    pub allow_host_overlap: bool,
    /// What to do with kernel objects another state store made.
    pub foreign: identity::Foreign,
    pub default_bridge: LinkName,
    /// Host ports handed out when a mapping names none.
    pub ephemeral: EphemeralRange,
    /// Grace before a vanished runtime namespace's sandbox is released.
    pub release_vanished_after: std::time::Duration,
    pub limits: Limits,
}

pub struct Ops {
    state: Mutex<State>,
    claims: Claims,
    /// Operation tasks running, whether or not their caller still waits.
    in_flight: Arc<AtomicUsize>,
    /// One firewall truth: deltas share it, a full rebuild holds it alone
    /// from computing the desired table until netexec applied it, so a
    /// rebuild from an older state never lands after a newer delta.
    firewall: tokio::sync::RwLock<()>,
    store: Store,
    exec: Arc<dyn Executor>,
    settings: Settings,
    /// Sandboxes whose runtime namespace was seen gone, and since when.
    vanished: std::sync::Mutex<HashMap<SandboxId, std::time::Instant>>,
    /// Signalled whenever a releasing sandbox is gone (release.rs).
    released: tokio::sync::Notify,
}

impl Ops {
    pub fn new(state: State, store: Store, exec: Arc<dyn Executor>, settings: Settings) -> Self {
        Self {
            state: Mutex::new(state),
            claims: Claims::default(),
            in_flight: Arc::default(),
            firewall: tokio::sync::RwLock::new(()),
            store,
            exec,
            settings,
            vanished: Default::default(),
            released: tokio::sync::Notify::new(),
        }
    }

    pub async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// How many operation tasks are running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Records the outcome of a failed create's undo: the record dropped
    /// when the undo worked, else kept (as Deleting) for reconciliation.
    /// Nothing is returned: the create's own error is what the caller sees.
    async fn record_rollback(
        &self,
        claim: Claim,
        undone: Result<()>,
        dropped: Change,
        kept: Change,
    ) {
        let what = change_subject(&dropped);
        let outcome = match undone {
            Ok(()) => dropped,
            Err(e) => {
                tracing::warn!(%what, error = %e, "rollback incomplete; kept for reconciliation");
                kept
            }
        };
        match self.record_outcome(claim, outcome).await {
            Ok(()) => tracing::warn!(%what, "create failed and was rolled back"),
            Err(e) => tracing::error!(%what, error = %e, "could not record the rollback"),
        }
    }

    /// Records events no record change makes (repairs), durably.
    pub async fn emit(&self, events: Vec<crate::events::Event>) -> Result<()> {
        self.store.submit_with(None, events).durable().await
    }

    /// Asks whether the executor answers.
    pub async fn ping(&self) -> Result<crate::executor::PingInfo> {
        self.exec.ping().await
    }

    /// Runs an operation to completion in its own task: dropping the
    /// returned future (a client that cancels or times out) does not stop it.
    pub async fn spawn<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T>
    where
        F: FnOnce(Arc<Ops>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let max = self.settings.limits.inflight_ops;
        let running = InFlight::enter(&self.in_flight, max)
            .ok_or_else(|| Limits::exhausted("operations in flight", "--max-inflight-ops", max))?;
        let fut = op(self.clone());
        // The task keeps the call's request id and log span.
        let task = tokio::spawn(crate::request_id::carry(
            async move {
                let _running = running;
                fut.await
            }
            .in_current_span(),
        ));
        task.await.map_err(|e| Error::Internal(format!("operation task ended: {e}")))?
    }

    /// Applies a change to memory and queues its durable write, both under
    /// the caller's lock, so the store takes changes in the order memory
    /// did; then lets the lock go while the write lands, so the changes of
    /// operations running together share one transaction (group commit).
    /// Returns once the change is durable. Memory goes first so a caller
    /// dropped during the write still leaves a record reconciliation can
    /// see. If the write fails, memory is put back unless a later change
    /// replaced the record meanwhile (records change under their claim, so
    /// that is a later change of the same operation, failed too).
    async fn commit(&self, mut st: MutexGuard<'_, State>, change: Change) -> Result<()> {
        let undo = apply(&mut st, &change);
        let events = crate::events::of_change(&st, &undo, &change);
        let pending = self.store.submit_with(Some(change.clone()), events);
        drop(st);
        let Err(e) = pending.durable().await else {
            return Ok(());
        };
        let mut st = self.lock().await;
        if holds(&st, &change) {
            apply(&mut st, &undo);
        }
        Err(e)
    }

    /// Takes the claim and records the intent, under the lock the caller
    /// decided under.
    async fn record_intent(
        &self,
        st: MutexGuard<'_, State>,
        key: &str,
        what: &str,
        intent: Change,
    ) -> Result<Claim> {
        let claim = self.claims.take(key, what)?;
        self.commit(st, intent).await?;
        Ok(claim)
    }

    /// Records an outcome; the claim is released once it is recorded.
    async fn record_outcome(&self, claim: Claim, outcome: Change) -> Result<()> {
        let done = self.commit(self.lock().await, outcome).await;
        drop(claim);
        done
    }

    /// Host listeners, asked for only when a request publishes ports.
    async fn listeners_for(&self, publish: &[PortRequest]) -> Result<Vec<HostListener>> {
        if publish.is_empty() {
            return Ok(Vec::new());
        }
        self.exec.list_listeners().await
    }
}

/// "network ID" or "sandbox ID", for logs.
fn change_subject(c: &Change) -> String {
    match c {
        Change::PutNetwork(n) => format!("network {}", n.id),
        Change::DelNetwork(id) => format!("network {id}"),
        Change::PutSandbox(s) => format!("sandbox {}", s.id),
        Change::DelSandbox(id) => format!("sandbox {id}"),
    }
}

/// Counts one running operation task until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// One more, unless `max` are running.
    fn enter(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        let more = |n: usize| (n < max).then_some(n + 1);
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, more).ok()?;
        Some(Self(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether memory still holds what `change` made.
fn holds(st: &State, change: &Change) -> bool {
    match change {
        Change::PutNetwork(n) => st.networks.get(&n.id) == Some(n),
        Change::DelNetwork(id) => !st.networks.contains_key(id),
        Change::PutSandbox(s) => st.sandboxes.get(&s.id) == Some(s),
        Change::DelSandbox(id) => !st.sandboxes.contains_key(id),
    }
}

/// Applies a change to the in-memory state; returns the change that undoes it.
fn apply(st: &mut State, change: &Change) -> Change {
    match change {
        Change::PutNetwork(n) => match st.networks.insert(n.id.clone(), n.clone()) {
            Some(old) => Change::PutNetwork(old),
            None => Change::DelNetwork(n.id.clone()),
        },
        Change::DelNetwork(id) => match st.networks.remove(id) {
            Some(old) => Change::PutNetwork(old),
            None => Change::DelNetwork(id.clone()),
        },
        Change::PutSandbox(s) => match st.sandboxes.insert(s.id.clone(), s.clone()) {
            Some(old) => Change::PutSandbox(old),
            None => Change::DelSandbox(s.id.clone()),
        },
        Change::DelSandbox(id) => match st.sandboxes.remove(id) {
            Some(old) => Change::PutSandbox(old),
            None => Change::DelSandbox(id.clone()),
        },
    }
}
