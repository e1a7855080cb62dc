//! ctnet-netexec as a library: the executor service and the kernel work
//! behind it. `run` serves the executor API on a listener and a runtime the
//! caller made. The binary confines the process first (its seccomp filter
//! is installed before any runtime thread exists, so it covers all of
//! them); in-process tests of the service run unconfined, and confinement
//! stays tested through the binary.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::string_slice)
)]
pub mod checks;
pub mod confine;
pub mod error;
pub mod firewall;
pub mod forwarding;
pub mod gate;
pub mod kernel;
pub mod listeners;
pub mod netns;
pub mod probe;
pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ctnet_proto::exec::executor_server::ExecutorServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

pub struct Settings {
    pub config: service::Config,
    /// Uids allowed to call (checked per connection with SO_PEERCRED).
    pub allow_uid: Vec<u32>,
}

/// A deadline per request: a lost netlink reply becomes an error, never a
/// hang; every operation is idempotent, so a retry or reconciliation
/// finishes what was cut off.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves the executor API until `shutdown` resolves. `nl` holds the netlink
/// connections in the namespace netexec manages.
pub async fn run(
    listener: UnixListener,
    nl: kernel::Netlink,
    firewall: Arc<dyn firewall::Firewall>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let svc = service::ExecService::new(settings.config, nl, firewall);
    tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .layer(ctnet_proto::request_id::SpanLayer)
        .add_service(ExecutorServer::with_interceptor(svc, gate::PeerGate::new(settings.allow_uid)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
}
