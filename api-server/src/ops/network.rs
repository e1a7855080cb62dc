//! Network operations: create, delete, and the default network.
use super::claims::Claim;
use super::host::{host_conflict, own_bridges, Range};
use super::tenancy;
use super::Ops;
use crate::domain::ipv6::ula_prefix;
use crate::domain::network::{Addressing, Ipv4Ask, Ipv6Ask, NetworkSpec, DEFAULT_MTU};
use crate::domain::sandbox::DEFAULT_NETWORK;
use crate::domain::{
    Addressing6, GatewayMode, LinkName, Name, NetworkId, Ref, StoreId, Subnet, Subnet6,
};
use crate::error::{Error, Result};
use crate::executor::BridgeArgs;
use crate::executor::HostRoutes;
use crate::model::{now, NetworkRecord, Phase};
use crate::policy::Caller;
use crate::state::State;
use crate::store::Change;

/// What netexec needs to make the network's bridge; `adopt_untagged` only
/// when reconciling a record whose bridge may be half-made.
pub fn bridge_args(n: &NetworkRecord, store: &StoreId, adopt_untagged: bool) -> BridgeArgs {
    BridgeArgs {
        name: n.bridge.clone(),
        address: n
            .ipv4
            .filter(|_| n.mode4 != GatewayMode::Isolated)
            .map(|a| (a.gateway, a.subnet.prefix)),
        address6: n
            .ipv6
            .filter(|_| n.mode6 != GatewayMode::Isolated)
            .map(|a| (a.gateway, a.subnet.prefix)),
        mtu: n.mtu,
        owner: n.owner(store),
        adopt_untagged,
    }
}

/// Refuses a name the caller's tenant already uses, or a bridge or subnet
/// any network has; another tenant's network is not named.
fn check_conflicts(
    st: &State,
    caller: &Caller,
    name: &Name,
    bridge: &LinkName,
    subnet: Option<&Subnet>,
    subnet6: Option<&Subnet6>,
) -> Result<()> {
    for n in st.networks.values() {
        let shown = if caller.sees(&n.tenant) {
            format!("network {}", n.name)
        } else {
            "another tenant's network".to_string()
        };
        if &n.name == name && n.tenant == caller.tenant {
            return Err(Error::AlreadyExists(format!(
                "name: network {name:?} already exists ({})",
                n.id
            )));
        }
        if &n.bridge == bridge {
            let why = format!("bridge_name: bridge {bridge} is used by {shown}");
            return Err(Error::AlreadyExists(why));
        }
        if let Some(s) = subnet.filter(|s| n.overlaps4(s)) {
            return Err(Error::Conflict(format!(
                "subnet: {s} overlaps {shown}; choose a range that does not"
            )));
        }
        let theirs = n.ipv6.map(|a| a.subnet);
        if let Some(s6) = subnet6.filter(|s| theirs.is_some_and(|t| t.overlaps(s))) {
            return Err(Error::Conflict(format!(
                "ipv6_subnet: {s6} overlaps {shown}; choose a range that does not"
            )));
        }
    }
    Ok(())
}

/// Subnets a ULA /48 holds: 2^16 /64s.
const ULA_SUBNETS: u128 = 1 << 16;

/// The first /64 of the host's ULA prefix that no network has and the host
/// does not use. Bounded by the networks that exist, never by the prefix.
fn pick_ula(st: &State, host: &HostRoutes, store: &StoreId) -> Result<Addressing6> {
    let ula = ula_prefix(store.as_str());
    let own = own_bridges(st);
    let taken: Vec<Subnet6> =
        st.networks.values().filter_map(|n| n.ipv6.map(|a| a.subnet)).collect();
    (0..ULA_SUBNETS)
        .map(|i| ula.child(64, i))
        .find(|s| {
            !taken.iter().any(|t| t.overlaps(s))
                && host_conflict(host, &Range::V6(*s), &own).is_none()
        })
        .map(Addressing6::of)
        .ok_or_else(|| {
            Error::Exhausted(format!("ipv6_subnet: every /64 of {ula} is taken; name a subnet"))
        })
}

/// A new id whose short form is unique: it names the network's bridge.
fn fresh_network_id(st: &State) -> NetworkId {
    loop {
        let id = NetworkId::random();
        if !st.networks.keys().any(|k| k.short() == id.short()) {
            return id;
        }
    }
}

impl Ops {
    pub async fn create_network(
        &self,
        caller: &Caller,
        spec: NetworkSpec,
    ) -> Result<NetworkRecord> {
        let host = self.exec.host_routes().await?;
        let (mut rec, claim) = {
            let st = self.lock().await;
            let id = fresh_network_id(&st);
            let prefix = &self.settings.link_prefix;
            let bridge =
                spec.bridge_name.clone().unwrap_or_else(|| LinkName::for_network(prefix, &id));
            tenancy::check_network(caller, &st, &spec)?;
            let ipv4 = match spec.ipv4 {
                Ipv4Ask::Given(a) => Some(a),
                Ipv4Ask::Pool => Some(tenancy::pick_subnet(caller, &st, &host)?),
                Ipv4Ask::Off => None,
            };
            let ipv6 = match spec.ipv6 {
                None => None,
                Some(Ipv6Ask::Given(a)) => Some(a),
                Some(Ipv6Ask::Ula) => Some(pick_ula(&st, &host, self.store.id())?),
            };
            let (subnet, subnet6) = (ipv4.map(|a| a.subnet), ipv6.map(|a| a.subnet));
            check_conflicts(&st, caller, &spec.name, &bridge, subnet.as_ref(), subnet6.as_ref())?;
            if let Some(s) = subnet {
                self.check_host(&st, &host, "subnet", &Range::V4(s))?;
            }
            if let Some(s6) = subnet6 {
                self.check_host(&st, &host, "ipv6_subnet", &Range::V6(s6))?;
            }
            let rec = NetworkRecord {
                id,
                name: spec.name,
                tenant: caller.tenant.clone(),
                ipv4,
                ipv6,
                bridge,
                mtu: spec.mtu,
                internal: spec.internal,
                icc: spec.icc,
                labels: spec.labels,
                mode4: spec.mode4,
                mode6: spec.mode6,
                created_at: now(),
                is_default: false,
                phase: Phase::Creating,
            };
            let intent = Change::PutNetwork(rec.clone());
            let claim = self.record_intent(st, rec.id.as_str(), "network", intent).await?;
            (rec, claim)
        };
        // A refused bridge was not made by this request (a foreign link may
        // hold the name): there is nothing of ours to undo. When netexec was
        // unreachable the bridge may exist, so it is rolled back.
        match self.exec.ensure_bridge(&bridge_args(&rec, self.store.id(), false)).await {
            Err(e) if !e.is_unavailable() => {
                self.record_outcome(claim, Change::DelNetwork(rec.id.clone())).await?;
                return Err(e);
            }
            Err(e) => {
                self.roll_back_network(claim, rec).await;
                return Err(e);
            }
            Ok(()) => {}
        }
        if let Err(e) = self.add_network_elements(&rec).await {
            self.roll_back_network(claim, rec).await;
            return Err(e);
        }
        rec.phase = Phase::Ready;
        self.record_outcome(claim, Change::PutNetwork(rec.clone())).await?;
        tracing::info!(network = %rec.id, name = %rec.name, bridge = %rec.bridge, "network created");
        Ok(rec)
    }

    /// Removes a network's kernel objects: elements first, then the bridge.
    pub(super) async fn unbuild_network(&self, rec: &NetworkRecord) -> Result<()> {
        self.remove_network_elements(rec).await?;
        self.exec.delete_bridge(&rec.bridge, &rec.owner(self.store.id())).await
    }

    /// Undoes a failed create. If the undo fails too, the record stays as
    /// Deleting and reconciliation finishes it; the claim goes either way.
    async fn roll_back_network(&self, claim: Claim, mut rec: NetworkRecord) {
        let undone = self.unbuild_network(&rec).await;
        let dropped = Change::DelNetwork(rec.id.clone());
        rec.phase = Phase::Deleting;
        self.record_rollback(claim, undone, dropped, Change::PutNetwork(rec)).await;
    }

    pub async fn delete_network(&self, caller: &Caller, reference: &Ref) -> Result<()> {
        let (rec, claim) = {
            // Interfaces of just-deleted sandboxes are waited for.
            let (st, mut rec) = self
                .after_releases(
                    |st| deletable(st, caller, reference),
                    |st, e| {
                        matches!(e, Error::Conflict(_))
                            && st.releasing().any(|s| {
                                s.endpoints.iter().any(|e| {
                                    st.network(caller, reference)
                                        .is_ok_and(|n| n.id == e.network_id)
                                })
                            })
                    },
                )
                .await?;
            rec.phase = Phase::Deleting;
            let intent = Change::PutNetwork(rec.clone());
            let claim = self.record_intent(st, rec.id.as_str(), "network", intent).await?;
            (rec, claim)
        };
        // On failure the record stays Deleting: reconciliation finishes it.
        self.unbuild_network(&rec).await?;
        self.record_outcome(claim, Change::DelNetwork(rec.id.clone())).await?;
        tracing::info!(network = %rec.id, name = %rec.name, "network deleted");
        Ok(())
    }

    /// Once netexec answers: the default network "bridge" exists in the
    /// store, on a subnet the host does not use (its bridge is made by the
    /// reconciliation that follows).
    pub async fn ensure_default_network(&self) -> Result<()> {
        if self.has_default_network().await {
            return Ok(());
        }
        let host = self.exec.host_routes().await?;
        let st = self.lock().await;
        if st.networks.values().any(|n| n.is_default) {
            return Ok(());
        }
        let subnet = self.default_subnet(&st, &host)?;
        let name = Name::parse("name", DEFAULT_NETWORK)?;
        let bridge = &self.settings.default_bridge;
        check_conflicts(&st, &Caller::admin(), &name, bridge, Some(&subnet), None)?;
        let rec = NetworkRecord {
            id: fresh_network_id(&st),
            name,
            tenant: crate::policy::ADMIN.into(),
            ipv4: Some(Addressing::of(subnet)),
            ipv6: None,
            bridge: self.settings.default_bridge.clone(),
            mtu: DEFAULT_MTU,
            internal: false,
            icc: true,
            labels: Default::default(),
            mode4: GatewayMode::Nat,
            mode6: GatewayMode::Nat,
            created_at: now(),
            is_default: true,
            phase: Phase::Creating,
        };
        tracing::info!(%subnet, bridge = %rec.bridge, "default network recorded");
        self.commit(st, Change::PutNetwork(rec)).await
    }

    async fn has_default_network(&self) -> bool {
        let st = self.lock().await;
        let Some(n) = st.networks.values().find(|n| n.is_default) else {
            return false;
        };
        let stored = n.ipv4.map(|a| a.subnet);
        if let Some(flag) = self.settings.default_subnet.filter(|f| Some(*f) != stored) {
            tracing::warn!(?stored, %flag,
                "the default network keeps its stored subnet; delete the state to change it");
        }
        true
    }
}

/// The network `caller` asks to delete, if nothing is attached to it.
fn deletable(st: &State, caller: &Caller, reference: &Ref) -> Result<NetworkRecord> {
    let rec = st.own_network(caller, reference)?.clone();
    if rec.is_default {
        let why = format!("network {} is the default network and cannot be deleted", rec.name);
        return Err(Error::Conflict(why));
    }
    let attached = st.attached_to(&rec.id);
    let shown: Vec<String> =
        attached.iter().filter(|s| s.phase.visible()).map(|s| s.to_string()).collect();
    if !shown.is_empty() {
        return Err(Error::Conflict(format!(
            "network {} has sandboxes attached: {}; delete or disconnect them first",
            rec.name,
            shown.join(", ")
        )));
    }
    if !attached.is_empty() {
        return Err(Error::Conflict(format!(
            "network {}: the kernel is still destroying interfaces of deleted sandboxes; try again",
            rec.name
        )));
    }
    Ok(rec)
}
