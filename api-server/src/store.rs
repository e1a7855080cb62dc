//! The crash-safe store: one redb file under the state directory. Every
//! change is one durable transaction; records are JSON so a human can read a
//! dump and the format can grow.
//!
//! The store has an identity, made with it and written into the tag of
//! every kernel object it creates, so an emptied or foreign store is seen
//! for what it is. A failed write (a full disk) closes the database; the
//! next write or `probe` opens it again, so the service recovers by itself
//! once writes succeed, and `is_healthy` says meanwhile that it cannot.
//!
//! Group commit: changes queue up (in the order they were submitted) for
//! one writer thread, which writes everything queued in one transaction
//! and one fsync, then answers each submitter. A change is acknowledged
//! only once its transaction is durable; under load many share one.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use crate::domain::{NetworkId, SandboxId, StoreId};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{NetworkRecord, SandboxRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const SANDBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("sandboxes");
/// "store_id": the identity; "probe": written to find out whether writes work.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// The latest events by sequence number, JSON (events.rs).
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// Events kept for subscribers that resume, unless told otherwise.
pub const EVENTS_KEPT: u64 = 10_000;
/// Live events buffered for each subscriber; one that falls further
/// behind is ended (it resumes from its last sequence number).
const EVENTS_BUFFERED: usize = 1024;
/// Subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 64;

#[derive(Debug, Clone)]
pub enum Change {
    PutNetwork(NetworkRecord),
    DelNetwork(NetworkId),
    PutSandbox(SandboxRecord),
    DelSandbox(SandboxId),
}

/// At most this many changes share one transaction (the queue itself is
/// bounded by the operations in flight, each waiting for its answer).
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub struct Store {
    writer: Arc<Writer>,
    inner: Arc<Inner>,
}

/// The writer thread's queue. Dropping the last store closes it and waits
/// for the thread, so the database is closed when the store is gone (a
/// store reopened at once finds the file free).
struct Writer {
    queue: Option<mpsc::Sender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One queued change (or none: events alone), the events it makes, and
/// where its outcome goes.
struct Write {
    change: Option<Change>,
    events: Vec<Event>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// A submitted change; `durable` waits for its transaction.
pub struct Pending(tokio::sync::oneshot::Receiver<Result<(), String>>);

impl Pending {
    pub async fn durable(self) -> Result<()> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::store("write", e)),
            Err(_) => Err(Error::store("write", "the store writer stopped")),
        }
    }
}

struct Inner {
    path: PathBuf,
    /// None after a failed write: reopened by the next one.
    db: Mutex<Option<Database>>,
    id: StoreId,
    healthy: AtomicBool,
    /// The next event's sequence number; taken together with the queue
    /// slot, so the numbers follow the order of the writes.
    next_seq: Mutex<u64>,
    kept: u64,
    /// Durable events, in order, for subscribers.
    published: tokio::sync::broadcast::Sender<Arc<Event>>,
    subscribers: Arc<std::sync::atomic::AtomicUsize>,
}

/// A live subscription; it counts against MAX_SUBSCRIBERS until dropped.
pub struct Subscription {
    pub live: tokio::sync::broadcast::Receiver<Arc<Event>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stored events after a sequence number, and the oldest one kept.
pub struct History {
    pub events: Vec<Event>,
    /// None: no event stored yet.
    pub oldest: Option<u64>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_keeping(dir, EVENTS_KEPT)
    }

    /// A store that keeps the latest `kept` events.
    pub fn open_keeping(dir: &Path, kept: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::store("create the state directory", e))?;
        let path = dir.join("ctnet.redb");
        let db = Database::create(&path).map_err(|e| Error::store("open", e))?;
        let id = identity(&db).map_err(|e| Error::store("create tables", e))?;
        let last = last_event(&db).map_err(|e| Error::store("read the events", e))?;
        let inner = Inner {
            path,
            db: Mutex::new(Some(db)),
            id,
            healthy: AtomicBool::new(true),
            next_seq: Mutex::new(last + 1),
            kept: kept.max(1),
            published: tokio::sync::broadcast::channel(EVENTS_BUFFERED).0,
            subscribers: Arc::default(),
        };
        let inner = Arc::new(inner);
        let (writes, queue) = mpsc::channel();
        let db = inner.clone();
        let thread = std::thread::Builder::new()
            .name("ctnet-store".into())
            .spawn(move || write_queued(&db, &queue))
            .map_err(|e| Error::store("start the writer", e))?;
        let writer = Writer { queue: Some(writes), thread: Some(thread) };
        Ok(Self { writer: Arc::new(writer), inner })
    }

    /// The identity written into the tags of the objects this store owns.
    pub fn id(&self) -> &StoreId {
        &self.inner.id
    }

    /// False from a failed write until a write succeeds again.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::SeqCst)
    }

    pub fn load(&self) -> Result<(Vec<NetworkRecord>, Vec<SandboxRecord>)> {
        let read = |db: &Database| -> Result<_, BoxError> {
            let txn = db.begin_read()?;
            Ok((read_all(&txn.open_table(NETWORKS)?)?, read_all(&txn.open_table(SANDBOXES)?)?))
        };
        self.inner.with_db(read).map_err(|e| Error::store("load", e))
    }

    /// Queues the change behind those submitted before it; it is written
    /// even if the caller stops waiting. Never blocks.
    pub fn submit(&self, change: Change) -> Pending {
        self.submit_with(Some(change), Vec::new())
    }

    /// Queues a change (or none) with the events it makes, numbered here
    /// in queue order; they are published once their transaction is
    /// durable.
    pub fn submit_with(&self, change: Option<Change>, mut events: Vec<Event>) -> Pending {
        let (done, answer) = tokio::sync::oneshot::channel();
        let mut next = self.inner.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
        for e in &mut events {
            e.seq = *next;
            *next += 1;
        }
        // A send fails only once the writer is gone: `durable` says so.
        if let Some(q) = &self.writer.queue {
            let _ = q.send(Write { change, events, done });
        }
        Pending(answer)
    }

    /// Follows the durable events from now on; None when MAX_SUBSCRIBERS
    /// are following already.
    pub fn subscribe(&self) -> Option<Subscription> {
        let more = |n: usize| (n < MAX_SUBSCRIBERS).then_some(n + 1);
        let count = &self.inner.subscribers;
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, more).ok()?;
        Some(Subscription { live: self.inner.published.subscribe(), count: count.clone() })
    }

    /// Up to `limit` stored events after `after`, read off the async
    /// workers.
    pub async fn events_after(&self, after: u64, limit: usize) -> Result<History> {
        let inner = self.inner.clone();
        let read = move |db: &Database| -> Result<History, BoxError> {
            let txn = db.begin_read()?;
            let table = txn.open_table(EVENTS)?;
            let oldest = table.first()?.map(|(k, _)| k.value());
            let mut events = Vec::new();
            for entry in table.range(after.saturating_add(1)..)?.take(limit) {
                events.push(serde_json::from_slice(entry?.1.value())?);
            }
            Ok(History { events, oldest })
        };
        tokio::task::spawn_blocking(move || inner.with_db(read))
            .await
            .map_err(|e| Error::store("read task", e))?
            .map_err(|e| Error::store("read the events", e))
    }

    /// One small durable write: does the store take writes again?
    pub async fn probe(&self) -> Result<()> {
        let inner = self.inner.clone();
        let probe = |db: &Database| -> Result<(), BoxError> {
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert("probe", crate::model::now().to_string().as_str())?;
            txn.commit()?;
            Ok(())
        };
        tokio::task::spawn_blocking(move || inner.with_db(probe))
            .await
            .map_err(|e| Error::store("write task", e))?
            .map_err(|e| Error::store("write", e))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Option<Database>> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the database, reopening it first if a failure closed it.
    /// A failure closes it (redb refuses every write after a failed commit)
    /// and marks the store unhealthy; a success marks it healthy.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, BoxError>) -> Result<T, BoxError> {
        let mut db = self.lock();
        if db.is_none() {
            *db = Some(Database::create(&self.path).inspect_err(|_| self.failed())?);
            tracing::info!("state store reopened");
        }
        let Some(open) = db.as_ref() else {
            return Err("state store not open".into());
        };
        match f(open) {
            Ok(v) => {
                self.healthy.store(true, Ordering::SeqCst);
                Ok(v)
            }
            Err(e) => {
                *db = None;
                self.failed();
                Err(e)
            }
        }
    }

    fn failed(&self) {
        if self.healthy.swap(false, Ordering::SeqCst) {
            tracing::error!("state store write failed: not serving until writes succeed again");
        }
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

/// Makes the tables and returns the store's identity, made now if the store
/// has none (a new store, or one of a release before identities).
fn identity(db: &Database) -> Result<StoreId, BoxError> {
    let txn = db.begin_write()?;
    txn.open_table(NETWORKS)?;
    txn.open_table(SANDBOXES)?;
    txn.open_table(EVENTS)?;
    let id = {
        let mut meta = txn.open_table(META)?;
        let stored = meta.get("store_id")?.and_then(|v| StoreId::parse(v.value()));
        match stored {
            Some(id) => id,
            None => {
                let id = StoreId::random();
                meta.insert("store_id", id.as_str())?;
                tracing::info!(store = %id, "state store identity made");
                id
            }
        }
    };
    txn.commit()?;
    Ok(id)
}

/// The writer thread: each round takes everything queued (up to
/// MAX_BATCH) and writes it in one transaction, then answers every change
/// of the round with the transaction's outcome.
fn write_queued(inner: &Inner, queue: &mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut round = vec![first];
        round.extend(queue.try_iter().take(MAX_BATCH - 1));
        let start = std::time::Instant::now();
        let outcome = inner.with_db(|db| write(db, &round, inner.kept));
        let metrics = crate::metrics::get();
        metrics.store_commit.observe(start.elapsed().as_secs_f64());
        if round.len() > 1 {
            tracing::trace!(changes = round.len(), "one store transaction for several changes");
        }
        for w in round {
            if outcome.is_ok() {
                // In queue order, which is sequence order; a subscriber
                // that lags is told so by its receiver, never waited for.
                for e in w.events {
                    crate::metrics::Metrics::count(&metrics.events, e.kind.as_str(), 1);
                    let _ = inner.published.send(Arc::new(e));
                }
            }
            let _ = w.done.send(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

fn write(db: &Database, round: &[Write], kept: u64) -> Result<(), BoxError> {
    let txn = db.begin_write()?;
    {
        let mut nets = txn.open_table(NETWORKS)?;
        let mut sbs = txn.open_table(SANDBOXES)?;
        let mut events = txn.open_table(EVENTS)?;
        for w in round {
            if let Some(change) = &w.change {
                put(&mut nets, &mut sbs, change)?;
            }
            for e in &w.events {
                events.insert(e.seq, serde_json::to_vec(e)?.as_slice())?;
                // One in, one out: the table holds the latest `kept`.
                if let Some(old) = e.seq.checked_sub(kept) {
                    events.remove(old)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// The sequence number of the latest stored event, 0 if none.
fn last_event(db: &Database) -> Result<u64, BoxError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(EVENTS)?;
    let last = table.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    Ok(last)
}

type Table<'t> = redb::Table<'t, &'static str, &'static [u8]>;

fn put(nets: &mut Table<'_>, sbs: &mut Table<'_>, change: &Change) -> Result<(), BoxError> {
    match change {
        Change::PutNetwork(n) => {
            nets.insert(n.id.as_str(), serde_json::to_vec(n)?.as_slice())?;
        }
        Change::DelNetwork(id) => {
            nets.remove(id.as_str())?;
        }
        Change::PutSandbox(s) => {
            sbs.insert(s.id.as_str(), serde_json::to_vec(s)?.as_slice())?;
        }
        Change::DelSandbox(id) => {
            sbs.remove(id.as_str())?;
        }
    }
    Ok(())
}
