//! MaintenanceService.
use ctnet_proto::v1::{self as pb, maintenance_service_server::MaintenanceService};
use tonic::{Request, Response};

use super::{Api, Reply};
use crate::identity::Identity;

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
        let reply = match who {
            Identity::Local { uid, gid, groups } => pb::WhoAmIResponse {
                kind: "unix".into(),
                name,
                uid: Some(uid),
                gid: Some(gid),
                groups,
            },
            Identity::Certificate { .. } => {
                pb::WhoAmIResponse { kind: "certificate".into(), name, ..Default::default() }
            }
        };
        Ok(Response::new(reply))
    }
}
