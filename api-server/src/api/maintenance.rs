//! MaintenanceService.
use ctnet_proto::v1::{self as pb, maintenance_service_server::MaintenanceService};
use tonic::{Request, Response};

use super::{Api, Reply};

#[tonic::async_trait]
impl MaintenanceService for Api {
    async fn garbage_collect(
        &self,
        _: Request<pb::GarbageCollectRequest>,
    ) -> Reply<pb::GarbageCollectResponse> {
        let removed = self.ops.spawn(|ops| async move { ops.garbage_collect().await }).await?;
        Ok(Response::new(pb::GarbageCollectResponse { removed }))
    }
}
