//! The crash-safe store: one redb file under the state directory. Every
//! change is one durable transaction; records are JSON so a human can read a
//! dump and the format can grow.
use std::path::Path;
use std::sync::Arc;

use crate::domain::{NetworkId, SandboxId};
use crate::error::{Error, Result};
use crate::model::{NetworkRecord, SandboxRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const SANDBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("sandboxes");

#[derive(Debug, Clone)]
pub enum Change {
    PutNetwork(NetworkRecord),
    DelNetwork(NetworkId),
    PutSandbox(SandboxRecord),
    DelSandbox(SandboxId),
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::store("create the state directory", e))?;
        let db = Database::create(dir.join("ctnet.redb")).map_err(|e| Error::store("open", e))?;
        create_tables(&db).map_err(|e| Error::store("create tables", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    pub fn load(&self) -> Result<(Vec<NetworkRecord>, Vec<SandboxRecord>)> {
        let read = || -> Result<_, BoxError> {
            let txn = self.db.begin_read()?;
            Ok((read_all(&txn.open_table(NETWORKS)?)?, read_all(&txn.open_table(SANDBOXES)?)?))
        };
        read().map_err(|e| Error::store("load", e))
    }

    /// Applies the change in one durable transaction. The commit's fsync
    /// blocks, so it runs off the async workers; once started it finishes
    /// even if the caller is dropped.
    pub async fn apply(&self, change: Change) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || write(&db, change))
            .await
            .map_err(|e| Error::store("write task", e))?
            .map_err(|e| Error::store("write", e))
    }
}

fn read_all<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>, BoxError> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, v) = entry?;
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

fn create_tables(db: &Database) -> Result<(), BoxError> {
    let txn = db.begin_write()?;
    txn.open_table(NETWORKS)?;
    txn.open_table(SANDBOXES)?;
    txn.commit()?;
    Ok(())
}

fn write(db: &Database, change: Change) -> Result<(), BoxError> {
    let txn = db.begin_write()?;
    {
        let mut nets = txn.open_table(NETWORKS)?;
        let mut sbs = txn.open_table(SANDBOXES)?;
        {
            match change {
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
