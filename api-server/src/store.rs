//! The crash-safe store: one redb file under the state directory. Every
//! change is one durable transaction; records are JSON so a human can read a
//! dump and the format can grow.
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tonic::Status;

use crate::model::{NetworkRecord, SandboxRecord};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const SANDBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("sandboxes");

pub enum Change {
    PutNetwork(NetworkRecord),
    DelNetwork(String),
    PutSandbox(SandboxRecord),
    DelSandbox(String),
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Store {
    pub fn open(dir: &Path) -> Result<Self, BoxError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("ctnet.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(NETWORKS)?;
        txn.open_table(SANDBOXES)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    pub fn load(&self) -> Result<(Vec<NetworkRecord>, Vec<SandboxRecord>), BoxError> {
        let txn = self.db.begin_read()?;
        Ok((read_all(&txn.open_table(NETWORKS)?)?, read_all(&txn.open_table(SANDBOXES)?)?))
    }

    /// Applies the changes in one durable transaction. The commit's fsync
    /// blocks, so it runs off the async workers.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), Status> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || write(&db, changes))
            .await
            .map_err(|e| Status::internal(format!("store task: {e}")))?
            .map_err(|e| Status::internal(format!("state store write failed: {e}")))
    }
}

fn read_all<T: serde::de::DeserializeOwned>(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<T>, BoxError> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, v) = entry?;
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

fn write(db: &Database, changes: Vec<Change>) -> Result<(), BoxError> {
    let txn = db.begin_write()?;
    {
        let mut nets = txn.open_table(NETWORKS)?;
        let mut sbs = txn.open_table(SANDBOXES)?;
        for c in changes {
            match c {
                Change::PutNetwork(n) => {
                    nets.insert(n.id.as_str(), serde_json::to_vec(&n)?.as_slice())?;
                }
                Change::DelNetwork(id) => {
                    nets.remove(id.as_str())?;
                }
                Change::PutSandbox(s) => {
                    sbs.insert(s.id.as_str(), serde_json::to_vec(&s)?.as_slice())?;
                }
                Change::DelSandbox(id) => {
                    sbs.remove(id.as_str())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}
