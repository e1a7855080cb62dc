//! EventService: a subscriber gets the stored events after `since`, then
//! the live ones, those of its own tenant only (the admin: all). Nothing it
//! does slows anyone else: live events reach it through a bounded buffer,
//! and when that overflows it is ended with ResourceExhausted naming where
//! to resume.
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use ctnet_proto::v1::{self as pb, event_service_server::EventService};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::{self, error::TrySendError};
use tonic::{Request, Response, Status};

use super::Api;
use crate::events::{Event, Kind};
use crate::policy::Caller;
use crate::store::{Store, Subscription, MAX_SUBSCRIBERS};

/// Stored events read per store transaction while catching up.
const PAGE: usize = 256;
/// Events queued for one subscriber's stream.
const QUEUED: usize = 64;

fn kind(k: Kind) -> pb::EventKind {
    match k {
        Kind::SandboxCreated => pb::EventKind::SandboxCreated,
        Kind::SandboxDeleted => pb::EventKind::SandboxDeleted,
        Kind::SandboxConnected => pb::EventKind::SandboxConnected,
        Kind::SandboxDisconnected => pb::EventKind::SandboxDisconnected,
        Kind::SandboxFailed => pb::EventKind::SandboxFailed,
        Kind::SandboxRepaired => pb::EventKind::SandboxRepaired,
        Kind::NetworkCreated => pb::EventKind::NetworkCreated,
        Kind::NetworkDeleted => pb::EventKind::NetworkDeleted,
        Kind::DriftRepaired => pb::EventKind::DriftRepaired,
    }
}

pub fn view(e: &Event) -> pb::Event {
    pb::Event {
        seq: e.seq,
        time_ms: e.time_ms,
        kind: kind(e.kind).into(),
        tenant: e.tenant.clone(),
        request_id: e.request_id.clone(),
        sandbox_id: e.sandbox_id.clone(),
        sandbox_name: e.sandbox_name.clone(),
        network_id: e.network_id.clone(),
        network_name: e.network_name.clone(),
        detail: e.detail.clone(),
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// How a subscription ends, told after its last queued event.
type Ending = Arc<Mutex<Option<Status>>>;

fn end_with(ending: &Ending, s: Status) {
    *ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
}

fn fell_behind(ending: &Ending, last: u64) {
    let why = format!("this subscriber fell behind the events; resume with since={last}");
    end_with(ending, Status::resource_exhausted(why));
}

/// One subscriber's feeder: the stored events after `since` page by page,
/// then the live ones, each once (a live event already read from the
/// store is skipped), until the subscriber goes or falls behind.
struct Feed {
    store: Store,
    sub: Subscription,
    caller: Caller,
    tx: mpsc::Sender<Result<pb::Event, Status>>,
    ending: Ending,
    /// The last sequence number seen; the subscriber resumes after it.
    last: u64,
}

impl Feed {
    async fn catch_up(&mut self) -> bool {
        loop {
            let page = match self.store.events_after(self.last, PAGE).await {
                Ok(h) => h.events,
                Err(e) => {
                    end_with(&self.ending, super::status(e));
                    return false;
                }
            };
            if page.is_empty() {
                return true;
            }
            for e in page {
                if self.caller.sees(&e.tenant) && self.tx.send(Ok(view(&e))).await.is_err() {
                    return false;
                }
                self.last = e.seq;
            }
        }
    }

    async fn follow(mut self) {
        loop {
            let got = tokio::select! {
                () = self.tx.closed() => return,
                got = self.sub.live.recv() => got,
            };
            let e = match got {
                Ok(e) => e,
                Err(RecvError::Lagged(_)) => return fell_behind(&self.ending, self.last),
                Err(RecvError::Closed) => return,
            };
            if e.seq <= self.last {
                continue;
            }
            if self.caller.sees(&e.tenant) {
                match self.tx.try_send(Ok(view(&e))) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => return fell_behind(&self.ending, self.last),
                    Err(TrySendError::Closed(_)) => return,
                }
            }
            self.last = e.seq;
        }
    }
}

#[tonic::async_trait]
impl EventService for Api {
    type WatchStream = Events;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Events>, Status> {
        let caller = self.caller(&req)?;
        let store = self.ops.store().clone();
        let sub = store.subscribe().ok_or_else(|| {
            Status::resource_exhausted(format!(
                "{MAX_SUBSCRIBERS} subscribers follow the events already; try again later"
            ))
        })?;
        let since = req.get_ref().since;
        if let Some(s) = since.filter(|s| *s > 0) {
            let oldest = store.events_after(s, 0).await.map_err(super::status)?.oldest;
            if let Some(oldest) = oldest.filter(|o| s + 1 < *o) {
                return Err(Status::failed_precondition(format!(
                    "since: event {s} is older than the oldest kept ({oldest}); list the resources again, then follow with since={}",
                    oldest - 1
                )));
            }
        }
        let (tx, rx) = mpsc::channel(QUEUED);
        let ending = Ending::default();
        let busy = crate::conn::busy_while_streaming(&req);
        let mut feed =
            Feed { store, sub, caller, tx, ending: ending.clone(), last: since.unwrap_or(0) };
        tokio::spawn(async move {
            if since.is_none() || feed.catch_up().await {
                feed.follow().await;
            }
        });
        let last = futures_util::stream::once(async move {
            drop(busy);
            ending.lock().unwrap_or_else(PoisonError::into_inner).take()
        });
        let events = tokio_stream::wrappers::ReceiverStream::new(rx)
            .chain(last.filter_map(|s| async move { s.map(Err) }));
        Ok(Response::new(Box::pin(events)))
    }
}
