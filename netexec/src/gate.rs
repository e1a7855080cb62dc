//! The second gate on the executor socket: whoever got past its file mode
//! must also be an allowed uid, checked per connection with SO_PEERCRED.
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct PeerGate {
    allowed: Arc<Vec<u32>>,
}

impl PeerGate {
    pub fn new(allowed: Vec<u32>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }
}

impl Interceptor for PeerGate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let cred = req.extensions().get::<UdsConnectInfo>().and_then(|i| i.peer_cred);
        match cred {
            Some(c) if self.allowed.contains(&c.uid()) => Ok(req),
            Some(c) => {
                tracing::warn!(pid = ?c.pid(), uid = c.uid(), gid = c.gid(), "executor call refused: uid not allowed");
                Err(Status::permission_denied(format!("uid {} may not use the executor", c.uid())))
            }
            None => {
                tracing::warn!("executor call refused: no peer credentials");
                Err(Status::permission_denied("no peer credentials on this connection"))
            }
        }
    }
}
