//! The event stream: what changed, derived in one place from each record
//! change (`of_change`) or said by the work that made it (repairs). Events
//! are stored with the change that made them, in its transaction, under a
//! sequence number the store hands out in commit order (store.rs), and are
//! published to subscribers once durable; `Watch` (api/events.rs) replays
//! the stored ones and follows the live ones.
use serde::{Deserialize, Serialize};

use crate::model::{NetworkRecord, Phase, SandboxRecord};
use crate::state::State;
use crate::store::Change;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SandboxCreated,
    SandboxDeleted,
    SandboxConnected,
    SandboxDisconnected,
    SandboxFailed,
    SandboxRepaired,
    NetworkCreated,
    NetworkDeleted,
    DriftRepaired,
}

impl Kind {
    /// As stored and as metrics label it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::SandboxCreated => "sandbox_created",
            Kind::SandboxDeleted => "sandbox_deleted",
            Kind::SandboxConnected => "sandbox_connected",
            Kind::SandboxDisconnected => "sandbox_disconnected",
            Kind::SandboxFailed => "sandbox_failed",
            Kind::SandboxRepaired => "sandbox_repaired",
            Kind::NetworkCreated => "network_created",
            Kind::NetworkDeleted => "network_deleted",
            Kind::DriftRepaired => "drift_repaired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 0 until the store numbers it.
    pub seq: u64,
    pub time_ms: i64,
    pub kind: Kind,
    /// Empty: host-level (the admin's).
    pub tenant: String,
    pub request_id: String,
    pub sandbox_id: String,
    pub sandbox_name: String,
    pub network_id: String,
    pub network_name: String,
    pub detail: String,
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    d.map(|d| d.as_millis() as i64).unwrap_or_default()
}

impl Event {
    fn new(kind: Kind, tenant: &str) -> Self {
        Event {
            seq: 0,
            time_ms: now_ms(),
            kind,
            tenant: tenant.to_string(),
            request_id: crate::request_id::current().unwrap_or_default(),
            sandbox_id: String::new(),
            sandbox_name: String::new(),
            network_id: String::new(),
            network_name: String::new(),
            detail: String::new(),
        }
    }

    pub fn sandbox(kind: Kind, s: &SandboxRecord) -> Self {
        Event {
            sandbox_id: s.id.to_string(),
            sandbox_name: s.display_name(),
            ..Self::new(kind, &s.tenant)
        }
    }

    pub fn network(kind: Kind, n: &NetworkRecord) -> Self {
        Event {
            network_id: n.id.to_string(),
            network_name: n.name.to_string(),
            ..Self::new(kind, &n.tenant)
        }
    }

    /// A host-level event: only the admin sees it.
    pub fn host(kind: Kind, detail: String) -> Self {
        Event { detail, ..Self::new(kind, "") }
    }

    pub fn with_detail(self, detail: impl Into<String>) -> Self {
        Event { detail: detail.into(), ..self }
    }
}

/// What a network change means: created once it is Ready, deleted once a
/// network callers could see is gone (a rolled-back create never existed).
fn of_network(before: Option<&NetworkRecord>, change: &Change) -> Vec<Event> {
    let was = before.map(|n| &n.phase);
    match change {
        Change::PutNetwork(n) if n.phase == Phase::Ready && was != Some(&Phase::Ready) => {
            vec![Event::network(Kind::NetworkCreated, n)]
        }
        Change::DelNetwork(_) => match before {
            Some(old) if old.phase != Phase::Creating => {
                vec![Event::network(Kind::NetworkDeleted, old)]
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The networks a sandbox is attached to (kernel work done).
fn attached(s: &SandboxRecord) -> Vec<&crate::domain::NetworkId> {
    s.endpoints.iter().filter(|e| e.attached).map(|e| &e.network_id).collect()
}

/// What a sandbox change means. Creates count once Ready, deletes once the
/// sandbox is invisible or gone (whichever comes first), connects and
/// disconnects once the endpoint's kernel work is done or undone.
fn of_sandbox(st: &State, before: Option<&SandboxRecord>, change: &Change) -> Vec<Event> {
    let after = match change {
        Change::PutSandbox(s) => Some(s),
        _ => None,
    };
    let seen = |s: Option<&SandboxRecord>| s.is_some_and(|s| s.phase.visible());
    let (was, is) = (before.map(|s| &s.phase), after.map(|s| &s.phase));
    let existed = seen(before) && was != Some(&Phase::Creating);
    let mut out = Vec::new();
    match (before, after) {
        (_, Some(s)) if s.phase == Phase::Ready && !existed => {
            out.push(Event::sandbox(Kind::SandboxCreated, s));
        }
        (Some(old), _) if existed && !seen(after) => {
            out.push(Event::sandbox(Kind::SandboxDeleted, old));
        }
        (Some(old), Some(s)) if existed => {
            let newly_failed = !matches!(was, Some(Phase::Failed(_)));
            if let Some(Phase::Failed(why)) = is.filter(|_| newly_failed) {
                out.push(Event::sandbox(Kind::SandboxFailed, s).with_detail(why.clone()));
            }
            if matches!(was, Some(Phase::Failed(_))) && s.phase == Phase::Ready {
                out.push(Event::sandbox(Kind::SandboxRepaired, s));
            }
            let (then, now) = (attached(old), attached(s));
            let name = |id: &crate::domain::NetworkId| {
                st.networks.get(id).map(|n| n.name.to_string()).unwrap_or_default()
            };
            let on = |kind, id: &crate::domain::NetworkId| Event {
                network_id: id.to_string(),
                network_name: name(id),
                ..Event::sandbox(kind, s)
            };
            out.extend(
                now.iter().filter(|n| !then.contains(n)).map(|n| on(Kind::SandboxConnected, n)),
            );
            out.extend(
                then.iter().filter(|n| !now.contains(n)).map(|n| on(Kind::SandboxDisconnected, n)),
            );
        }
        _ => {}
    }
    out
}

/// The events of `change`, applied to `st` already; `undo` is what
/// applying it returned (it holds the record as it was).
pub fn of_change(st: &State, undo: &Change, change: &Change) -> Vec<Event> {
    match (undo, change) {
        (Change::PutNetwork(old), _) => of_network(Some(old), change),
        (Change::DelNetwork(_), _) => of_network(None, change),
        (Change::PutSandbox(old), _) => of_sandbox(st, Some(old), change),
        (Change::DelSandbox(_), _) => of_sandbox(st, None, change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_snake_case_in_the_store() {
        let e = Event::host(Kind::DriftRepaired, "x".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "drift_repaired");
        assert_eq!(e.kind.as_str(), "drift_repaired");
        assert_eq!(e.tenant, "", "host-level: the admin's alone");
    }
}
