//! Prometheus metrics, written by prometheus-client in the OpenMetrics text
//! format: ctnet-api's own figures, and netexec's relayed (netexec has no
//! listener). Counters and histograms are updated where things happen;
//! the figures of the records (IPAM, ports, sandboxes) and netexec's
//! reachability are read at each scrape. Labels carry ids, never names;
//! tenant labels only when the admin asks (`--metrics-tenant-labels`).
//! Served on a listener of its own (`serve`), off unless configured.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::{NetworkRecord, Phase};
use crate::ops::Ops;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rpc {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pool {
    network_id: String,
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Held {
    state: String,
    /// Empty unless tenant labels are on.
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Owner {
    tenant: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;
type Level = Gauge<f64, AtomicU64>;

/// 0.5 ms to about 16 s.
fn timing() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub rpc: Timings<Rpc>,
    pub executor: Timings<Operation>,
    pub store_commit: Histogram,
    pub reconciliations: Family<Kind, Counter>,
    pub repairs: Family<Kind, Counter>,
    pub drift_repairs: Counter,
    pub events: Family<Kind, Counter>,
    ipam_used: Family<Pool, Level>,
    ipam_size: Family<Pool, Level>,
    ports: Family<Owner, Gauge>,
    sandboxes: Family<Held, Gauge>,
    netexec_up: Gauge,
    /// The RPC paths ctnet serves: any other path a caller sends is
    /// counted as "unknown" (a label per random path would grow forever).
    known: HashSet<String>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (made at first use).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Every "/package.Service/Method" of the public API.
fn served_paths() -> HashSet<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(ctnet_proto::PUBLIC_FILE_DESCRIPTOR_SET);
    let mut out = HashSet::new();
    for file in set.map(|s| s.file).unwrap_or_default() {
        for s in &file.service {
            for m in &s.method {
                out.insert(format!("/{}.{}/{}", file.package(), s.name(), m.name()));
            }
        }
    }
    out.insert("/grpc.health.v1.Health/Check".into());
    out.insert("/grpc.health.v1.Health/Watch".into());
    out
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("ctnet"),
            rpc: Family::new_with_constructor(timing),
            executor: Family::new_with_constructor(timing),
            store_commit: timing(),
            reconciliations: Family::default(),
            repairs: Family::default(),
            drift_repairs: Counter::default(),
            events: Family::default(),
            ipam_used: Family::default(),
            ipam_size: Family::default(),
            ports: Family::default(),
            sandboxes: Family::default(),
            netexec_up: Gauge::default(),
            known: served_paths(),
        };
        let r = &mut m.registry;
        r.register("rpc_duration_seconds", "ctnet.v1 calls by method and gRPC code", m.rpc.clone());
        r.register(
            "executor_call_duration_seconds",
            "Calls to netexec by operation",
            m.executor.clone(),
        );
        r.register(
            "store_commit_duration_seconds",
            "Store transactions (one fsync each)",
            m.store_commit.clone(),
        );
        r.register(
            "reconciliations",
            "Reconciliation runs: full (start, netexec back) or periodic",
            m.reconciliations.clone(),
        );
        r.register(
            "repairs",
            "Kernel objects reconciliation re-created, by kind",
            m.repairs.clone(),
        );
        r.register(
            "drift_repairs",
            "Firewall table rebuilds by netexec after changes made outside ctnet",
            m.drift_repairs.clone(),
        );
        r.register("events", "Events recorded, by kind", m.events.clone());
        r.register(
            "ipam_addresses_used",
            "Addresses held by interfaces, per network and family",
            m.ipam_used.clone(),
        );
        r.register(
            "ipam_addresses",
            "Addresses a network's subnet can hand out, per family",
            m.ipam_size.clone(),
        );
        r.register(
            "published_ports",
            "Published port mappings in use (one per family)",
            m.ports.clone(),
        );
        r.register("sandboxes", "Sandboxes by state", m.sandboxes.clone());
        r.register(
            "netexec_up",
            "1 when netexec answered this scrape's ping",
            m.netexec_up.clone(),
        );
        m
    }

    /// Records one answered call.
    pub fn rpc_done(&self, path: &str, code: &str, took: Duration) {
        let method = if self.known.contains(path) {
            ctnet_proto::request_id::method(path)
        } else {
            "unknown"
        };
        let labels = Rpc { method: method.into(), code: code.into() };
        self.rpc.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn count(family: &Family<Kind, Counter>, kind: &str, n: u64) {
        family.get_or_create(&Kind { kind: kind.into() }).inc_by(n);
    }

    /// The figures of the records and of netexec, as of now.
    async fn refresh(&self, ops: &Ops, tenant_labels: bool) {
        let up = tokio::time::timeout(Duration::from_secs(1), ops.ping()).await;
        self.netexec_up.set(i64::from(matches!(up, Ok(Ok(_)))));
        let st = ops.lock().await;
        for f in [&self.ipam_used, &self.ipam_size] {
            f.clear();
        }
        self.ports.clear();
        self.sandboxes.clear();
        // One pass over the interfaces, under the lock operations wait for.
        let mut held: HashMap<&crate::domain::NetworkId, (usize, usize)> = HashMap::new();
        for e in st.sandboxes.values().flat_map(|s| &s.endpoints) {
            let n = held.entry(&e.network_id).or_default();
            n.0 += usize::from(e.address.is_some());
            n.1 += usize::from(e.address6.is_some());
        }
        for n in st.networks.values() {
            let (v4, v6) = held.get(&n.id).copied().unwrap_or_default();
            for (family, used, size) in pools(n, v4, v6) {
                let pool = Pool { network_id: n.id.to_string(), family: family.into() };
                self.ipam_used.get_or_create(&pool).set(used as f64);
                self.ipam_size.get_or_create(&pool).set(size);
            }
        }
        let tenant = |t: &str| if tenant_labels { t.to_string() } else { String::new() };
        for s in st.sandboxes.values() {
            let state = match &s.phase {
                Phase::Creating => "creating",
                Phase::Ready => "ready",
                Phase::Deleting => "deleting",
                Phase::Failed(_) => "failed",
                Phase::Releasing => "releasing",
            };
            let held = Held { state: state.into(), tenant: tenant(&s.tenant) };
            self.sandboxes.get_or_create(&held).inc();
            let ports = s.endpoints.iter().map(|e| e.ports.len()).sum::<usize>();
            let owner = Owner { tenant: tenant(&s.tenant) };
            self.ports.get_or_create(&owner).inc_by(ports as i64);
        }
    }

    /// The exposition, refreshed.
    pub async fn render(&self, ops: &Ops, tenant_labels: bool) -> String {
        self.refresh(ops, tenant_labels).await;
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics could not be encoded");
        }
        out
    }
}

/// (family, used, size) of a network's address pools: the usable host
/// addresses without the gateway.
fn pools(n: &NetworkRecord, v4: usize, v6: usize) -> Vec<(&'static str, usize, f64)> {
    let mut out = Vec::new();
    if let Some(a) = n.ipv4 {
        let hosts = 2f64.powi(32 - i32::from(a.subnet.prefix)) - 3.0;
        out.push(("ipv4", v4, hosts));
    }
    if let Some(a) = n.ipv6 {
        let hosts = 2f64.powi(128 - i32::from(a.subnet.prefix)) - 2.0;
        out.push(("ipv6", v6, hosts));
    }
    out
}

/// Scrapes served at once; more connections wait in the backlog.
const SCRAPES_AT_ONCE: usize = 4;
/// A request head larger than this is refused.
const MAX_HEAD: usize = 8 << 10;

/// Serves GET /metrics (HTTP/1.1, one request per connection) on
/// `listener`: the only thing it answers.
pub async fn serve(listener: tokio::net::TcpListener, ops: Arc<Ops>, tenant_labels: bool) {
    let slots = Arc::new(tokio::sync::Semaphore::new(SCRAPES_AT_ONCE));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ops = ops.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answered =
                tokio::time::timeout(Duration::from_secs(10), answer(conn, &ops, tenant_labels));
            if let Ok(Err(e)) = answered.await {
                tracing::debug!(error = %e, "metrics request failed");
            }
        });
    }
}

async fn answer(
    mut conn: tokio::net::TcpStream,
    ops: &Ops,
    tenant_labels: bool,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let (status, kind, body) =
        if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
            let body = get().render(ops, tenant_labels).await;
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
        } else {
            ("404 Not Found", "text/plain", "only GET /metrics is served here\n".to_string())
        };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        let m = get();
        m.rpc_done("/ctnet.v1.SandboxService/CreateSandbox", "Ok", Duration::from_millis(3));
        m.rpc_done("/x.Y/Random1", "Unimplemented", Duration::from_millis(1));
        m.rpc_done("/x.Y/Random2", "Unimplemented", Duration::from_millis(1));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(
            out.contains(
                "ctnet_rpc_duration_seconds_count{method=\"CreateSandbox\",code=\"Ok\"} 1"
            ),
            "{out}"
        );
        assert!(out.contains("method=\"unknown\",code=\"Unimplemented\"} 2"), "{out}");
        assert!(!out.contains("Random"), "{out}");
    }
}
