//! What api-server does with a validated request. Each mutating operation
//! follows one pattern: under the state lock, decide and record the intent in
//! the store (addresses and names are taken here, atomically); release the
//! lock and do the kernel work through the executor; then record the outcome,
//! or undo the kernel work and drop the intent. A create is acknowledged only
//! once the kernel state exists and the store says so.
pub mod firewall;
pub mod maintenance;
pub mod network;
pub mod reconcile;
pub mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};
use tonic::Status;

use crate::executor::Executor;
use crate::model::{NetworkRecord, SandboxRecord};
use crate::state::State;
use crate::store::{Change, Store};

pub struct Settings {
    /// Name prefix of the links netexec owns (bridges, veth host ends).
    pub link_prefix: String,
    pub default_subnet: crate::domain::Subnet,
    pub default_bridge: String,
    /// Host ports handed out when a mapping names none.
    pub ephemeral: crate::ports::EphemeralRange,
}

pub struct Ops {
    state: Mutex<State>,
    store: Store,
    exec: Arc<dyn Executor>,
    settings: Settings,
}

impl Ops {
    pub fn new(state: State, store: Store, exec: Arc<dyn Executor>, settings: Settings) -> Self {
        Self { state: Mutex::new(state), store, exec, settings }
    }

    pub async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    async fn put_network(&self, st: &mut State, rec: NetworkRecord) -> Result<(), Status> {
        self.store.apply(vec![Change::PutNetwork(rec.clone())]).await?;
        st.networks.insert(rec.id.clone(), rec);
        Ok(())
    }

    async fn drop_network(&self, st: &mut State, id: &str) -> Result<(), Status> {
        self.store.apply(vec![Change::DelNetwork(id.to_string())]).await?;
        st.networks.remove(id);
        Ok(())
    }

    async fn put_sandbox(&self, st: &mut State, rec: SandboxRecord) -> Result<(), Status> {
        self.store.apply(vec![Change::PutSandbox(rec.clone())]).await?;
        st.sandboxes.insert(rec.id.clone(), rec);
        Ok(())
    }

    async fn drop_sandbox(&self, st: &mut State, id: &str) -> Result<(), Status> {
        self.store.apply(vec![Change::DelSandbox(id.to_string())]).await?;
        st.sandboxes.remove(id);
        Ok(())
    }

    async fn host_netns(&self) -> Result<PathBuf, Status> {
        let path = self.exec.ping().await?.host_netns;
        if path.as_os_str().is_empty() {
            return Err(Status::failed_precondition(
                "host mode needs the host's namespace pin, and netexec runs join-only (it pins nothing)",
            ));
        }
        Ok(path)
    }

    /// Host listeners, asked for only when a request publishes ports.
    async fn listeners_for(&self, publish: &[crate::domain::ports::PortRequest]) -> Result<Vec<crate::ports::HostListener>, Status> {
        if publish.is_empty() {
            return Ok(Vec::new());
        }
        self.exec.list_listeners().await
    }
}

impl Ops {
    pub fn link_prefix(&self) -> String {
        self.settings.link_prefix.clone()
    }
}
