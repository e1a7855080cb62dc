//! ctnet-api as a library: the unprivileged API server. It validates
//! requests, runs IPAM, keeps state in an embedded crash-safe store and asks
//! the executor (ctnet-netexec, or a fake in tests) for every kernel change.
//! `run` serves it on a listener the caller made; the binary adds only
//! flags and privilege handling.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::string_slice)
)]
pub mod api;
pub mod audit;
pub mod conn;
pub mod domain;
pub mod error;
pub mod events;
pub mod executor;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod policy;
pub mod ports;
pub mod request_id;
pub mod state;
pub mod store;
pub mod throttle;
pub mod tls;

#[cfg(any(test, feature = "fake"))]
pub mod contract;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ctnet_proto::v1::event_service_server::EventServiceServer;
use ctnet_proto::v1::maintenance_service_server::MaintenanceServiceServer;
use ctnet_proto::v1::network_service_server::NetworkServiceServer;
use ctnet_proto::v1::sandbox_service_server::SandboxServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::ops::Ops;
use crate::state::State;
use crate::store::Store;

pub struct Settings {
    pub ops: ops::Settings,
    /// How often netexec's reachability is checked.
    pub health_interval: Duration,
    /// How often operations interrupted in this process are finished.
    pub reconcile_interval: Duration,
    /// Bounds on connections and requests.
    pub conn: limits::ConnLimits,
    /// The tenancy policy (the open one without --policy).
    pub policy: Arc<policy::PolicyHolder>,
    /// The audit log.
    pub audit: Arc<audit::Audit>,
    /// The Prometheus endpoint, when configured.
    pub metrics: Option<MetricsEndpoint>,
}

/// Where metrics are served (`--metrics-listen` or the metrics socket).
pub struct MetricsEndpoint {
    pub listener: std::net::TcpListener,
    /// Per-tenant series (the admin's choice: tenants' names become labels).
    pub tenant_labels: bool,
}

/// Loads the state from the store and makes the operations layer.
pub async fn open(
    store: Store,
    exec: Arc<dyn Executor>,
    settings: ops::Settings,
) -> Result<Arc<Ops>> {
    let mut state = State::new(settings.limits.bridge_ports);
    let (networks, sandboxes) = store.load()?;
    state.networks = networks.into_iter().map(|n| (n.id.clone(), n)).collect();
    state.sandboxes = sandboxes.into_iter().map(|s| (s.id.clone(), s)).collect();
    tracing::info!(
        networks = state.networks.len(),
        sandboxes = state.sandboxes.len(),
        "state loaded"
    );
    Ok(Arc::new(Ops::new(state, store, exec, settings)))
}

/// The optional remote listener: TCP, TLS only, client certificates required.
pub struct Remote {
    pub listener: tokio::net::TcpListener,
    pub tls: Arc<tls::ServerTls>,
}

/// Serves ctnet.v1 on `listener` (and `remote`) until `shutdown` resolves.
pub async fn run(
    listener: UnixListener,
    remote: Option<Remote>,
    exec: Arc<dyn Executor>,
    store: Store,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let ops = open(store, exec, settings.ops).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let audit = settings.audit.clone();
    let watcher = Watcher { ops: ops.clone(), audit, reporter, every: settings.health_interval };
    let mut watch = tokio::spawn(watcher.run(settings.reconcile_interval));

    // Both reflection versions: grpcurl speaks v1, Python's grpcio-reflection v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ctnet_proto::PUBLIC_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_err = |e| Error::Internal(format!("reflection: {e}"));
    let reflection_v1 = reflection().build_v1().map_err(reflection_err)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_err)?;

    let policy = settings.policy.clone();
    let metrics = match settings.metrics {
        Some(m) => {
            let listener = tokio::net::TcpListener::from_std(m.listener)
                .map_err(|e| Error::Internal(format!("metrics listener: {e}")))?;
            Some(tokio::spawn(metrics::serve(listener, ops.clone(), m.tenant_labels)))
        }
        None => None,
    };
    let api = api::Api { ops, policy: policy.clone() };
    let limits = settings.conn;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let registry = conn::Registry::new(limits);
    let mut tasks = vec![
        tokio::spawn(conn::sweep_loop(registry.clone())),
        tokio::spawn(conn::accept_unix(listener, registry.clone(), tx.clone())),
    ];
    tasks.push(tokio::spawn(reload_on_sighup(remote.as_ref().map(|r| r.tls.clone()), policy)?));
    tasks.extend(metrics);
    if let Some(r) = remote {
        tasks.push(tokio::spawn(conn::accept_tls(r.listener, r.tls, registry, tx)));
    }
    let max = limits.max_message;
    let served = tonic::transport::Server::builder()
        // Dead peers are found by PINGs; idle ones by the accept stream.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .timeout(limits.rpc)
        .concurrency_limit_per_connection(limits.per_connection_rpcs)
        .max_concurrent_streams(u32::try_from(limits.per_connection_rpcs).unwrap_or(u32::MAX))
        .layer(conn::RequestLayer {
            max_message: max,
            audit: settings.audit.clone(),
            policy: settings.policy.clone(),
        })
        // Inside the request layer: it has the identity, and audits refusals.
        .layer(throttle::ThrottleLayer(throttle::Throttle::new()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(NetworkServiceServer::new(api.clone()).max_decoding_message_size(max))
        .add_service(SandboxServiceServer::new(api.clone()).max_decoding_message_size(max))
        .add_service(EventServiceServer::new(api.clone()).max_decoding_message_size(max))
        .add_service(MaintenanceServiceServer::new(api).max_decoding_message_size(max))
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown);
    // The watcher ends only when the service cannot go on (no default network).
    let outcome = tokio::select! {
        served = served => served.map_err(|e| Error::Internal(format!("server: {e}"))),
        fatal = &mut watch => Err(fatal.unwrap_or_else(|e| Error::Internal(format!("watcher: {e}")))),
    };
    watch.abort();
    tasks.iter().for_each(|t| t.abort());
    outcome?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP reloads the TLS certificate, key and CA bundle (new connections
/// get them, established ones keep theirs) and the policy file; whatever
/// fails to reload keeps its old version and the log says why.
fn reload_on_sighup(
    tls: Option<Arc<tls::ServerTls>>,
    policy: Arc<policy::PolicyHolder>,
) -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| Error::Internal(format!("SIGHUP: {e}")))?;
    Ok(async move {
        while hup.recv().await.is_some() {
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate, key and CA reloaded"),
                    Err(e) => {
                        tracing::warn!(error = %e, "SIGHUP: TLS reload failed; the old certificate stays")
                    }
                }
            }
            if policy.has_file() {
                match policy.reload() {
                    Ok(()) => tracing::info!("SIGHUP: policy reloaded"),
                    Err(e) => {
                        tracing::warn!(error = %e, "SIGHUP: policy reload failed; the old policy stays")
                    }
                }
            }
        }
    })
}

const SERVICES: [&str; 4] =
    ["", "ctnet.v1.NetworkService", "ctnet.v1.SandboxService", "ctnet.v1.MaintenanceService"];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for s in SERVICES {
        reporter.set_service_status(s, status).await;
    }
}

/// Health follows netexec: NOT_SERVING while it is unreachable. Each time it
/// becomes reachable (at start, after a netexec restart) the kernel is
/// reconciled with the store before SERVING is reported; while serving,
/// interrupted operations are finished every `reconcile_every`.
/// netexec's drift repairs as last seen, per netexec process: each new one
/// becomes a host-level event.
#[derive(Default)]
struct Drift {
    instance: u64,
    repairs: u64,
}

impl Drift {
    async fn seen(&mut self, ops: &Ops, p: &executor::PingInfo) {
        // A restarted netexec counts from 0; at ctnet-api's start what
        // happened before is not known (and was not this process's).
        let before = match self.instance {
            i if i == p.instance => self.repairs,
            0 => p.drift_repairs,
            _ => 0,
        };
        if p.drift_repairs > before {
            let n = p.drift_repairs - before;
            metrics::get().drift_repairs.inc_by(n);
            let detail = format!(
                "netexec rebuilt the firewall table after a change made outside ctnet ({n} time(s))"
            );
            let event = events::Event::host(events::Kind::DriftRepaired, detail);
            if let Err(e) = ops.emit(vec![event]).await {
                tracing::warn!(error = %e, "could not record the drift repair event");
                return;
            }
        }
        (self.instance, self.repairs) = (p.instance, p.drift_repairs);
    }
}

struct Watcher {
    ops: Arc<Ops>,
    audit: Arc<audit::Audit>,
    reporter: HealthReporter,
    every: Duration,
}

impl Watcher {
    /// After a failed write (a full disk), a probe write each round: the
    /// store takes writes again once space is freed, without a restart.
    async fn store_writable(&self) -> bool {
        // An unwritable audit log stops mutating calls: not serving either.
        if self.audit.ready().is_err() {
            return false;
        }
        let store = self.ops.store();
        if store.is_healthy() {
            return true;
        }
        match store.probe().await {
            Ok(()) => {
                tracing::info!("state store writable again");
                true
            }
            Err(_) => false,
        }
    }

    /// Returns only the error that stops the service: the default network
    /// has no subnet the host leaves free (or the named one overlaps it).
    async fn run(self, reconcile_every: Duration) -> Error {
        let mut serving = false;
        let mut instance = None;
        let mut repairs = Drift::default();
        let mut last_finish = tokio::time::Instant::now();
        loop {
            if !self.store_writable().await {
                if serving {
                    serving = false;
                    set_health(&self.reporter, ServingStatus::NotServing).await;
                }
                tokio::time::sleep(self.every).await;
                continue;
            }
            let ping = self.ops.ping().await;
            if let Ok(p) = &ping {
                repairs.seen(&self.ops, p).await;
            }
            match ping {
                // A new instance is a netexec restart, even one too quick to be
                // seen as unreachable: its firewall mirror is empty until synced.
                Ok(p) if !serving || instance != Some(p.instance) => {
                    // Only at the first contact: what the store says it
                    // owns is checked against the host before anything is
                    // made or collected.
                    if instance.is_none() {
                        let checked = self.ops.check_identity().await;
                        if let Err(e @ Error::Conflict(_)) = checked {
                            return e;
                        }
                    }
                    let placed = self.ops.ensure_default_network().await;
                    if let Err(e @ (Error::Conflict(_) | Error::Exhausted(_))) = placed {
                        return e;
                    }
                    metrics::Metrics::count(&metrics::get().reconciliations, "full", 1);
                    match self.ops.reconcile().await {
                        Ok(()) => {
                            serving = true;
                            instance = Some(p.instance);
                            set_health(&self.reporter, ServingStatus::Serving).await;
                            tracing::info!("netexec reachable, state reconciled: serving");
                        }
                        Err(e) => tracing::warn!(error = %e, "reconciliation failed; will retry"),
                    }
                }
                Ok(_) if last_finish.elapsed() >= reconcile_every => {
                    last_finish = tokio::time::Instant::now();
                    metrics::Metrics::count(&metrics::get().reconciliations, "periodic", 1);
                    if let Err(e) = self.ops.finish_interrupted().await {
                        tracing::warn!(error = %e, "finishing interrupted operations failed; will retry");
                    }
                }
                Ok(_) => {}
                Err(e) if serving => {
                    serving = false;
                    set_health(&self.reporter, ServingStatus::NotServing).await;
                    tracing::warn!(error = %e, "netexec unreachable: not serving");
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.every).await;
        }
    }
}
