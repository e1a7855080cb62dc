//! MaintenanceService.
use ctnet_proto::v1::{self as pb, maintenance_service_server::MaintenanceService};
use tonic::{Request, Response};

use super::{Api, Reply};
use crate::identity::Identity;
use crate::ops::tenancy::usage;
use crate::policy::{Quota, ADMIN};
use crate::state::State;

#[tonic::async_trait]
impl MaintenanceService for Api {
    async fn garbage_collect(
        &self,
        req: Request<pb::GarbageCollectRequest>,
    ) -> Reply<pb::GarbageCollectResponse> {
        if !self.caller(&req)?.is_admin() {
            return Err(tonic::Status::permission_denied("garbage collection is the admin's"));
        }
        let removed = self.ops.spawn(|ops| async move { ops.garbage_collect().await }).await?;
        Ok(Response::new(pb::GarbageCollectResponse { removed }))
    }

    async fn who_am_i(&self, req: Request<pb::WhoAmIRequest>) -> Reply<pb::WhoAmIResponse> {
        let who = req.extensions().get::<Identity>().cloned();
        let Some(who) = who else {
            return Err(tonic::Status::unauthenticated("no caller identity"));
        };
        let name = who.to_string();
        let tenant = self.policy.get().caller(&who).map(|c| c.tenant).unwrap_or_default();
        let reply = match who {
            Identity::Local { uid, gid, groups } => pb::WhoAmIResponse {
                kind: "unix".into(),
                name,
                uid: Some(uid),
                gid: Some(gid),
                groups,
                tenant,
            },
            Identity::Certificate { .. } => {
                let kind = "certificate".into();
                pb::WhoAmIResponse { kind, name, tenant, ..Default::default() }
            }
        };
        Ok(Response::new(reply))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Reply<pb::ListTenantsResponse> {
        if !self.caller(&req)?.is_admin() {
            return Err(tonic::Status::permission_denied("the tenant list is the admin's"));
        }
        let policy = self.policy.get();
        let st = self.ops.lock().await;
        let mut tenants = vec![tenant_view(&st, ADMIN, None)];
        tenants.extend(policy.tenants().map(|t| tenant_view(&st, &t.name, Some(&t.quota))));
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }
}

/// A tenant's holdings against its quota (None: the admin, unlimited).
fn tenant_view(st: &State, name: &str, quota: Option<&Quota>) -> pb::Tenant {
    let u = usage(st, name);
    let rows = [
        ("networks", u.networks, quota.map(|q| q.networks)),
        ("sandboxes", u.sandboxes, quota.map(|q| q.sandboxes)),
        ("owned_netns", u.owned_netns, quota.map(|q| q.owned_netns)),
        ("published_ports", u.published_ports, quota.map(|q| q.published_ports)),
        ("attachments", u.attachments, quota.map(|q| q.attachments)),
    ];
    pb::Tenant {
        name: name.to_string(),
        usage: rows
            .into_iter()
            .map(|(quota, used, limit)| pb::QuotaUsage {
                quota: quota.into(),
                used: used as u64,
                limit: limit.map(|l| l as u64),
            })
            .collect(),
    }
}
