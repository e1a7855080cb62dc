//! Tenants: who belongs to which, what each may do and how much. One TOML
//! file (`--policy PATH`), parsed here into checked types once; SIGHUP
//! rereads it, and a file that does not parse keeps the old policy. Without
//! a policy every caller is the admin, as before tenants existed.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;

use crate::domain::Subnet;
use crate::error::{Error, Result};
use crate::identity::Identity;

/// The admin's tenant: it owns the default network and sees every tenant.
pub const ADMIN: &str = "admin";

/// Who belongs to a tenant (or to the admin role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Members {
    uids: BTreeSet<u32>,
    groups: BTreeSet<u32>,
    certificates: BTreeSet<String>,
}

impl Members {
    /// Exact (uid, certificate) before group membership.
    fn exact(&self, id: &Identity) -> bool {
        match id {
            Identity::Local { uid, .. } => self.uids.contains(uid),
            Identity::Certificate { name } => self.certificates.contains(name),
        }
    }

    fn by_group(&self, id: &Identity) -> bool {
        match id {
            Identity::Local { gid, groups, .. } => {
                self.groups.contains(gid) || groups.iter().any(|g| self.groups.contains(g))
            }
            Identity::Certificate { .. } => false,
        }
    }
}

/// How much a tenant may hold; over a quota the answer is ResourceExhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    pub networks: usize,
    pub sandboxes: usize,
    pub owned_netns: usize,
    pub published_ports: usize,
    /// Interfaces on networks, over all its sandboxes (creates and Connects).
    pub attachments: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Self { networks: 4, sandboxes: 64, owned_netns: 32, published_ports: 64, attachments: 128 }
    }
}

/// How fast a tenant may call: a token bucket over all its calls and a
/// bound on its mutating calls in flight, so one tenant's flood leaves the
/// others served. Over either the answer carries a retry hint.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Calls per second, sustained.
    pub rate: f64,
    /// Calls at once after a quiet spell.
    pub burst: u32,
    /// Mutating calls in flight at once.
    pub mutating: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { rate: 100.0, burst: 200, mutating: 16 }
    }
}

impl Eq for Limits {}

/// What a tenant may do; everything is off unless the policy says so.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allow {
    pub host_mode: bool,
    /// Directories a `netns_path` may name; empty: no `netns_path` at all.
    pub netns_path_dirs: Vec<PathBuf>,
    /// Published ports bound to one host address (not the wildcard).
    pub host_ip_ports: bool,
    pub ports_below_1024: bool,
    /// The host ports it may publish on, LO-HI.
    pub host_ports: Option<(u16, u16)>,
    pub bridge_name: bool,
    /// An MTU above the host's default (1500).
    pub mtu_above_host: bool,
}

/// One tenant's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRules {
    pub name: String,
    members: Members,
    pub quota: Quota,
    pub limits: Limits,
    pub allow: Allow,
    /// The admin's networks it may attach to (e.g. the default "bridge").
    pub shared_networks: Vec<String>,
    /// Where its networks' subnets come from when a create names none.
    pub pool: Option<Subnet>,
    pub pool_prefix: u8,
    /// The ranges an explicit subnet must lie in.
    pub subnets: Vec<Subnet>,
}

/// Who is calling, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    /// None for the admin: no quota, every permission, sees every tenant.
    pub rules: Option<Arc<TenantRules>>,
}

impl Caller {
    pub fn admin() -> Self {
        Caller { tenant: ADMIN.into(), rules: None }
    }

    pub fn is_admin(&self) -> bool {
        self.rules.is_none()
    }

    /// Whether this caller may see a resource of `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.is_admin() || self.tenant == tenant
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// False without a policy file: every caller is the admin.
    enforced: bool,
    admins: Members,
    tenants: BTreeMap<String, Arc<TenantRules>>,
}

impl Policy {
    pub fn open() -> Self {
        Self::default()
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Arc<TenantRules>> {
        self.tenants.values()
    }

    /// The caller an identity is: the admin, or the one tenant it belongs
    /// to (by uid or certificate first, else by group); PermissionDenied
    /// when it belongs to none, or by group to more than one.
    pub fn caller(&self, id: &Identity) -> Result<Caller> {
        if !self.enforced || self.admins.exact(id) || self.admins.by_group(id) {
            return Ok(Caller::admin());
        }
        let tenant =
            |t: &Arc<TenantRules>| Caller { tenant: t.name.clone(), rules: Some(t.clone()) };
        if let Some(t) = self.tenants.values().find(|t| t.members.exact(id)) {
            return Ok(tenant(t));
        }
        let by_group: Vec<&Arc<TenantRules>> =
            self.tenants.values().filter(|t| t.members.by_group(id)).collect();
        match by_group.as_slice() {
            [t] => Ok(tenant(t)),
            [] => Err(Error::Denied(format!("{id} belongs to no tenant of the policy"))),
            _ => Err(Error::Denied(format!(
                "{id} belongs to several tenants by group; the policy must name it in one"
            ))),
        }
    }

    /// Parses a policy file's text; errors name the place to fix.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |m: &Members, owner: &str| {
            let keys = m.uids.iter().map(|u| format!("uid {u}"));
            for k in keys.chain(m.certificates.iter().map(|c| format!("certificate {c}"))) {
                if let Some(first) = seen.insert(k.clone(), owner.to_string()) {
                    return Err(format!("{k} is in both {first} and {owner}"));
                }
            }
            Ok(())
        };
        let admins = raw.admin.members();
        claim(&admins, "[admin]")?;
        let mut tenants = BTreeMap::new();
        for (name, t) in raw.tenants {
            if name == ADMIN || crate::domain::Name::parse("tenant", &name).is_err() {
                return Err(format!(
                    "[tenants.{name}]: not a valid tenant name (and not {ADMIN:?})"
                ));
            }
            let rules = t.rules(&name).map_err(|e| format!("[tenants.{name}]: {e}"))?;
            claim(&rules.members, &format!("[tenants.{name}]"))?;
            tenants.insert(name, Arc::new(rules));
        }
        Ok(Policy { enforced: true, admins, tenants })
    }

    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The policy in force, swapped whole by a reload.
pub struct PolicyHolder {
    path: Option<PathBuf>,
    current: RwLock<Arc<Policy>>,
}

impl PolicyHolder {
    pub fn new(path: Option<PathBuf>) -> std::result::Result<Self, String> {
        let policy = match &path {
            Some(p) => Policy::load(p)?,
            None => Policy::open(),
        };
        Ok(Self { path, current: RwLock::new(Arc::new(policy)) })
    }

    pub fn fixed(policy: Policy) -> Self {
        Self { path: None, current: RwLock::new(Arc::new(policy)) }
    }

    pub fn get(&self) -> Arc<Policy> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Rereads the file; on failure the old policy stays.
    pub fn reload(&self) -> std::result::Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let policy = Policy::load(path)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
        Ok(())
    }

    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    admin: RawMembers,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMembers {
    uids: Vec<u32>,
    groups: Vec<u32>,
    certificates: Vec<String>,
}

impl RawMembers {
    fn members(&self) -> Members {
        Members {
            uids: self.uids.iter().copied().collect(),
            groups: self.groups.iter().copied().collect(),
            certificates: self.certificates.iter().cloned().collect(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAllow {
    host_mode: bool,
    netns_path_dirs: Vec<PathBuf>,
    host_ip_ports: bool,
    ports_below_1024: bool,
    host_ports: Option<String>,
    bridge_name: bool,
    mtu_above_host: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTenant {
    uids: Vec<u32>,
    groups: Vec<u32>,
    certificates: Vec<String>,
    quota: Quota,
    limits: Limits,
    allow: RawAllow,
    shared_networks: Vec<String>,
    address_pool: Option<String>,
    pool_prefix: Option<u8>,
    subnets: Vec<String>,
}

impl RawTenant {
    fn rules(self, name: &str) -> std::result::Result<TenantRules, String> {
        let subnet = |field: &str, s: &str| Subnet::parse(field, s).map_err(|e| e.to_string());
        let pool = self.address_pool.as_deref().map(|p| subnet("address_pool", p)).transpose()?;
        let pool_prefix = self.pool_prefix.unwrap_or(24);
        if let Some(p) = pool {
            if !(p.prefix..=30).contains(&pool_prefix) {
                return Err(format!(
                    "pool_prefix {pool_prefix} must be between {} and 30",
                    p.prefix
                ));
            }
        }
        let mut subnets: Vec<Subnet> = self
            .subnets
            .iter()
            .map(|s| subnet("subnets", s))
            .collect::<std::result::Result<_, _>>()?;
        if subnets.is_empty() {
            subnets.extend(pool);
        }
        let host_ports = self.allow.host_ports.as_deref().map(parse_range).transpose()?;
        let l = self.limits;
        if !(l.rate > 0.0 && l.rate.is_finite()) || l.burst == 0 || l.mutating == 0 {
            return Err("limits: rate, burst and mutating must all be above 0".into());
        }
        let members =
            RawMembers { uids: self.uids, groups: self.groups, certificates: self.certificates };
        Ok(TenantRules {
            name: name.to_string(),
            members: members.members(),
            quota: self.quota,
            limits: self.limits,
            allow: Allow {
                host_mode: self.allow.host_mode,
                netns_path_dirs: self.allow.netns_path_dirs,
                host_ip_ports: self.allow.host_ip_ports,
                ports_below_1024: self.allow.ports_below_1024,
                host_ports,
                bridge_name: self.allow.bridge_name,
                mtu_above_host: self.allow.mtu_above_host,
            },
            shared_networks: self.shared_networks,
            pool,
            pool_prefix,
            subnets,
        })
    }
}

fn parse_range(s: &str) -> std::result::Result<(u16, u16), String> {
    let bad = || format!("allow.host_ports {s:?}: expected LO-HI with 1 <= LO <= HI <= 65535");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
    (lo >= 1 && lo <= hi).then_some((lo, hi)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"
[admin]
uids = [0]

[tenants.alpha]
uids = [1001]
groups = [2001]
certificates = ["spiffe://example.org/alpha"]
shared_networks = ["bridge"]
address_pool = "10.210.0.0/16"
[tenants.alpha.quota]
networks = 2
sandboxes = 3
[tenants.alpha.allow]
host_ports = "30000-30999"

[tenants.beta]
groups = [2002]
"#;

    fn local(uid: u32, groups: &[u32]) -> Identity {
        Identity::Local { uid, gid: uid, groups: groups.to_vec() }
    }

    #[test]
    fn identities_map_to_the_admin_or_one_tenant() {
        let p = Policy::parse(EXAMPLE).unwrap();
        assert!(p.caller(&local(0, &[])).unwrap().is_admin());
        let a = p.caller(&local(1001, &[])).unwrap();
        assert_eq!(a.tenant, "alpha");
        let rules = a.rules.unwrap();
        assert_eq!(
            (rules.quota.networks, rules.quota.sandboxes, rules.quota.owned_netns),
            (2, 3, 32)
        );
        assert_eq!(rules.allow.host_ports, Some((30000, 30999)));
        assert!(!rules.allow.host_mode, "off unless said");
        assert_eq!(rules.subnets, vec![Subnet::parse("s", "10.210.0.0/16").unwrap()]);
        assert_eq!(p.caller(&local(5, &[2002])).unwrap().tenant, "beta");
        let cert = Identity::Certificate { name: "spiffe://example.org/alpha".into() };
        assert_eq!(p.caller(&cert).unwrap().tenant, "alpha");
        assert!(matches!(p.caller(&local(5, &[])), Err(Error::Denied(_))));
        assert!(matches!(p.caller(&local(5, &[2001, 2002])), Err(Error::Denied(_))), "ambiguous");
        assert!(Policy::open().caller(&local(5, &[])).unwrap().is_admin(), "no policy: admin");
    }

    #[test]
    fn bad_policies_are_refused_naming_the_place() {
        for (text, names) in [
            ("[tenants.a]\nuids=[1]\n[tenants.b]\nuids=[1]", "uid 1 is in both"),
            ("[tenants.a]\nbogus = 1", "bogus"),
            ("[tenants.admin]", "not a valid tenant name"),
            ("[tenants.a]\naddress_pool = \"10.0.0.0/33\"", "address_pool"),
            ("[tenants.a.allow]\nhost_ports = \"9-1\"", "host_ports"),
            ("[tenants.a.limits]\nrate = 0", "limits"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(names), "{text}: {e}");
        }
    }
}
