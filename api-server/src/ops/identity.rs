//! A store that never forgets silently. Every link ctnet makes carries the
//! making store's identity in its tag. At the first contact with netexec,
//! before anything is made or collected, an empty store facing tagged
//! objects, or any store facing another store's objects, stops the start
//! unless the operator said what to do with them. Garbage collection never
//! deletes what another store made. Tags of the release before identities
//! carry none: the store that holds their records adopts them.
use super::Ops;
use crate::error::{Error, Result};
use crate::executor::{Inventory, LinkKind, TaggedLink};
use crate::model::Owner;
use crate::state::State;

/// What to do with kernel objects another store made (`--foreign-objects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// Refuse to start while they exist, or while the store is empty and
    /// any tagged object exists.
    Refuse,
    /// Take over those this store holds records of; leave the rest alone.
    Adopt,
    /// Take over those with records; delete every other one.
    Discard,
}

impl Foreign {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "refuse" => Some(Foreign::Refuse),
            "adopt" => Some(Foreign::Adopt),
            "discard" => Some(Foreign::Discard),
            _ => None,
        }
    }
}

/// Whose, seen from this store, a tagged link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Ours,
    /// Made before stores had identities.
    Legacy,
    Foreign,
    /// A tag format this version does not know.
    Unknown,
}

pub fn provenance(owner: &Owner, ours: &crate::domain::StoreId) -> Provenance {
    match (owner, owner.store()) {
        (Owner::Other(_), _) => Provenance::Unknown,
        (_, None) => Provenance::Legacy,
        (_, Some(s)) if s == ours => Provenance::Ours,
        (_, Some(_)) => Provenance::Foreign,
    }
}

/// True when the link is one a record of `st` implies (id and name match).
pub fn has_record(st: &State, l: &TaggedLink) -> bool {
    match &l.owner {
        Owner::Sandbox(id, _) => st
            .sandboxes
            .get(id)
            .is_some_and(|s| s.endpoints.iter().any(|e| e.host_ifname.as_str() == l.name)),
        Owner::Network(id, _) => st.networks.get(id).is_some_and(|n| n.bridge.as_str() == l.name),
        Owner::Other(_) => false,
    }
}

impl Ops {
    /// The start check: Conflict (which stops ctnet-api) when the store
    /// would otherwise treat what it does not know as garbage.
    pub async fn check_identity(&self) -> Result<()> {
        if self.settings.foreign != Foreign::Refuse {
            return Ok(());
        }
        let inv = self.exec.inventory().await?;
        let st = self.lock().await;
        let ours = self.store.id();
        let foreign: Vec<&TaggedLink> = inv
            .links
            .iter()
            .filter(|l| provenance(&l.owner, ours) == Provenance::Foreign)
            .collect();
        let how = "restore the right state store, or start ctnet-api with \
                   --foreign-objects adopt (keep them) or discard (delete those without records)";
        if let Some(first) = foreign.first() {
            return Err(Error::Conflict(format!(
                "this host holds {} links made by another state store (e.g. {} tagged {}); {how}",
                foreign.len(),
                first.name,
                first.owner
            )));
        }
        let empty = st.networks.is_empty() && st.sandboxes.is_empty();
        let tagged = inv.links.iter().filter(|l| !matches!(l.owner, Owner::Other(_))).count();
        if empty && tagged + inv.pins.len() > 0 {
            return Err(Error::Conflict(format!(
                "the state store is empty but this host holds {tagged} ctnet links and {} \
                 namespace pins; {how}",
                inv.pins.len()
            )));
        }
        Ok(())
    }

    /// Gives this store's tag to the links it holds records of that carry
    /// an older or (when the operator said so) another store's tag.
    pub(super) async fn adopt_links(&self, inv: &Inventory) -> Result<()> {
        let ours = self.store.id();
        let adopt = |p| match p {
            Provenance::Legacy => true,
            Provenance::Foreign => self.settings.foreign != Foreign::Refuse,
            Provenance::Ours | Provenance::Unknown => false,
        };
        let todo: Vec<TaggedLink> = {
            let st = self.lock().await;
            let wanted = |l: &&TaggedLink| adopt(provenance(&l.owner, ours)) && has_record(&st, l);
            inv.links.iter().filter(wanted).cloned().collect()
        };
        for l in todo {
            let Ok(name) =
                crate::domain::LinkName::parse("link", &l.name, &self.settings.link_prefix)
            else {
                continue;
            };
            let to = l.owner.with_store(ours);
            self.exec.retag(&name, l.kind, &l.owner, &to).await?;
            tracing::info!(link = %l.name, from = %l.owner, to = %to, "link adopted by this store");
        }
        Ok(())
    }

    /// Whether garbage collection may delete an orphan link.
    pub(super) fn collectable(&self, l: &TaggedLink) -> bool {
        match provenance(&l.owner, self.store.id()) {
            Provenance::Ours => true,
            Provenance::Legacy => self.settings.foreign != Foreign::Adopt,
            Provenance::Foreign => self.settings.foreign == Foreign::Discard,
            Provenance::Unknown => false,
        }
    }

    /// Whether garbage collection may delete orphan pins (they carry no
    /// tag: under `adopt` another store's may be among them).
    pub(super) fn pins_collectable(&self) -> bool {
        self.settings.foreign != Foreign::Adopt
    }
}

impl LinkKind {
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Bridge => "bridge",
            LinkKind::Veth => "veth",
            LinkKind::Other => "link",
        }
    }
}
