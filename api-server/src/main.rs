//! ctnet-api: the unprivileged API server. It validates requests, runs IPAM,
//! keeps state in an embedded crash-safe store and asks ctnet-netexec, over
//! the executor API, for every kernel change.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::string_slice)]
mod confine;
mod privilege;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ctnet_api::domain::{LinkName, Subnet};
use ctnet_api::executor::GrpcExecutor;
use ctnet_api::limits::{ConnLimits, Limits, BRIDGE_MAX_PORTS};
use ctnet_api::ops::identity::Foreign;
use ctnet_api::ports::EphemeralRange;
use ctnet_api::store::Store;
use tokio::net::UnixListener;

#[derive(Parser, Debug)]
#[command(name = "ctnet-api", version, about = "ctnet's API server")]
struct Args {
    /// Unix socket to serve the public API (ctnet.v1) on.
    #[arg(long, default_value = "/run/ctnet/ctnet.sock")]
    socket: PathBuf,
    /// Group that owns the API socket (mode 0660), like docker.sock's group.
    /// An empty value keeps the server's own group.
    #[arg(long, default_value = "ctnet")]
    socket_group: String,
    /// netexec's Unix socket.
    #[arg(long, default_value = "/run/ctnet/netexec.sock")]
    netexec_socket: PathBuf,
    /// Directory of the state store.
    #[arg(long, default_value = "/var/lib/ctnet")]
    state_dir: PathBuf,
    /// Subnet of the default network "bridge", used when it is first created;
    /// refused (ctnet-api exits naming the route) if the host uses any of it.
    /// Without it: the first /16 of 172.17.0.0-172.31.255.255 the host leaves free.
    #[arg(long)]
    default_subnet: Option<String>,
    /// Let networks overlap the host's addresses and routes (not recommended:
    /// such a network takes traffic from the host's own LAN).
    #[arg(long)]
    allow_host_overlap: bool,
    /// Links made by another state store, or any ctnet object while the
    /// store is empty: "refuse" to start, "adopt" (take those with records,
    /// keep the rest untouched) or "discard" (take those with records,
    /// delete the rest).
    #[arg(long, default_value = "refuse")]
    foreign_objects: String,
    /// Bridge name of the default network.
    #[arg(long, default_value = "ctnet0")]
    default_bridge: String,
    /// Name prefix of the links netexec owns; must match netexec's --prefix.
    #[arg(long, default_value = "ct")]
    link_prefix: String,
    /// Host ports handed out when a published port names none: LO-HI.
    #[arg(long, default_value = "49153-60999")]
    ephemeral_ports: String,
    /// A sandbox in a runtime's namespace (netns_path, CNI) whose namespace
    /// vanished without a delete is marked failed, then released (address,
    /// MAC, ports, record) this long after it was first seen gone.
    #[arg(long, default_value_t = 30_000)]
    release_vanished_after_ms: u64,
    /// Events kept in the store for subscribers that resume (`Watch` with
    /// `since`); older ones are dropped as new ones come.
    #[arg(long, default_value_t = ctnet_api::store::EVENTS_KEPT)]
    events_kept: u64,
    /// Interfaces allowed per network (at most 1023, the kernel's limit).
    #[arg(long, default_value_t = BRIDGE_MAX_PORTS)]
    bridge_max_ports: usize,
    /// Sandboxes in all.
    #[arg(long, default_value_t = Limits::default().sandboxes)]
    max_sandboxes: usize,
    /// Sandboxes whose namespace ctnet owns.
    #[arg(long, default_value_t = Limits::default().owned_netns)]
    max_owned_netns: usize,
    /// Mutating operations in flight (including those whose client left).
    #[arg(long, default_value_t = Limits::default().inflight_ops)]
    max_inflight_ops: usize,
    /// Connections of one peer uid; more are closed when accepted.
    #[arg(long, default_value_t = ConnLimits::default().per_uid)]
    max_connections_per_uid: usize,
    /// Connections in all; at the limit the oldest idle one is closed.
    #[arg(long, default_value_t = ConnLimits::default().global)]
    max_connections: usize,
    /// Time a connection has to finish the HTTP/2 handshake, in milliseconds.
    #[arg(long, default_value_t = millis(ConnLimits::default().handshake))]
    handshake_timeout_ms: u64,
    /// Time a connection may stay without an RPC, in milliseconds.
    #[arg(long, default_value_t = millis(ConnLimits::default().idle))]
    idle_timeout_ms: u64,
    /// Deadline of every RPC, in milliseconds.
    #[arg(long, default_value_t = millis(ConnLimits::default().rpc))]
    rpc_timeout_ms: u64,
    /// How often netexec's reachability is checked, in milliseconds.
    #[arg(long, default_value_t = 500)]
    health_interval_ms: u64,
    /// How often operations cut off in this process (a task dropped) are
    /// finished, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    reconcile_interval_ms: u64,
    /// Run as this user ("NAME", "UID" or "UID:GID"): started as root, ctnet-api
    /// binds its socket, hands its state directory over, then becomes it.
    #[arg(long)]
    user: Option<String>,
    /// Allow running as root (not recommended: ctnet-api needs no privilege).
    #[arg(long)]
    allow_root: bool,
    /// Diagnostics: run the seccomp probes under the filter ("on") or
    /// without it ("off", the control), print the results, exit.
    #[arg(long, hide = true)]
    probe_seccomp: Option<String>,
    /// Also serve on this TCP address ("ADDR:PORT"), TLS only with a client
    /// certificate signed by --tls-client-ca. Under systemd the socket comes
    /// from ctnet-api-remote.socket instead.
    #[arg(long)]
    listen: Option<String>,
    /// The remote listener's certificate chain (PEM), readable by ctnet-api.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM), readable by ctnet-api.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates must chain to.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// New TLS connections a second from one source address (twice that as burst).
    #[arg(long, default_value_t = ConnLimits::default().handshakes_per_addr)]
    tls_handshakes_per_address: u32,
    /// Tenancy policy (TOML): tenants, their members, quotas and
    /// permissions. Without it every caller is the admin.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The audit log (one JSON line per mutating or refused call).
    /// Default: audit.log in the state directory.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Serve Prometheus metrics on this TCP address ("ADDR:PORT", e.g.
    /// 127.0.0.1:9464): GET /metrics, plain HTTP, no authentication, so keep
    /// it on loopback. Under systemd the socket comes from
    /// ctnet-api-metrics.socket instead. Off by default.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Label sandbox and port series with the tenant's name (per-tenant
    /// series, for the admin's own scrape configuration).
    #[arg(long)]
    metrics_tenant_labels: bool,
    /// Log format: "text" or "json".
    #[arg(long, default_value = "text")]
    log_format: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();
    ctnet_proto::daemon::init_logging(&args.log_format);
    if let Some(mode) = &args.probe_seccomp {
        std::process::exit(confine::run_probe(mode == "on"));
    }
    if let Err(e) = start(args) {
        tracing::error!(error = %e, "ctnet-api failed");
        std::process::exit(1);
    }
}

/// Root's work first (socket, state directory), then the switch to the
/// unprivileged account, then the runtime: no thread ever runs as root.
fn start(args: Args) -> Result<(), BoxError> {
    // The state directory and the store are the service's alone (0700/0600).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let account = args.user.as_deref().map(privilege::parse_account).transpose()?;
    let inherited = ctnet_proto::daemon::inherited_sockets();
    let listener = match inherited.unix {
        Some(l) => l,
        None => bind_socket(&args, account)?,
    };
    // Bound before the filter (which has no bind): a port below 1024 works too.
    let tcp = match (inherited.tcp, &args.listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(bind_tcp("--listen", addr)?),
        (None, None) => None,
    };
    let tls = tcp.as_ref().map(|_| tls_files(&args)).transpose()?;
    let metrics = match (inherited.metrics, &args.metrics_listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(bind_tcp("--metrics-listen", addr)?),
        (None, None) => None,
    };
    if let Some(to) = account.filter(|_| nix::unistd::Uid::current().is_root()) {
        privilege::hand_over_state(&args.state_dir, to)?;
        privilege::become_account(to)?;
    }
    privilege::verify(args.allow_root)?;
    // Single-threaded still: every thread the runtime makes inherits it.
    confine::install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args, listener, tcp.zip(tls), metrics))
}

fn bind_tcp(flag: &str, addr: &str) -> Result<std::net::TcpListener, BoxError> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| format!("{flag} {addr}: {e}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The remote listener exists only with TLS and client certificates.
fn tls_files(args: &Args) -> Result<ctnet_api::tls::TlsFiles, BoxError> {
    match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(ctnet_api::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: ca.clone(),
        }),
        _ => {
            Err("a TCP listener needs --tls-cert, --tls-key and --tls-client-ca: it is TLS only, \
                  with client certificates"
                .into())
        }
    }
}

fn settings(args: &Args) -> Result<ctnet_api::Settings, BoxError> {
    let default_subnet = args
        .default_subnet
        .as_deref()
        .map(|s| Subnet::parse("", s).map_err(|e| e.for_field("--default-subnet")))
        .transpose()?;
    let default_bridge = LinkName::parse("", &args.default_bridge, &args.link_prefix)
        .map_err(|e| e.for_field("--default-bridge"))?;
    let ephemeral = parse_port_range(&args.ephemeral_ports)
        .ok_or("--ephemeral-ports: expected LO-HI with 1 <= LO <= HI <= 65535")?;
    Ok(ctnet_api::Settings {
        ops: ctnet_api::ops::Settings {
            link_prefix: args.link_prefix.clone(),
            default_subnet,
            allow_host_overlap: args.allow_host_overlap,
            foreign: Foreign::parse(&args.foreign_objects)
                .ok_or("--foreign-objects: expected refuse, adopt or discard")?,
            default_bridge,
            ephemeral,
            release_vanished_after: Duration::from_millis(args.release_vanished_after_ms),
            limits: Limits {
                sandboxes: args.max_sandboxes,
                owned_netns: args.max_owned_netns,
                inflight_ops: args.max_inflight_ops,
                bridge_ports: args.bridge_max_ports.min(BRIDGE_MAX_PORTS),
            },
        },
        health_interval: Duration::from_millis(args.health_interval_ms),
        reconcile_interval: Duration::from_millis(args.reconcile_interval_ms),
        conn: ConnLimits {
            per_uid: args.max_connections_per_uid,
            global: args.max_connections.max(1),
            handshake: Duration::from_millis(args.handshake_timeout_ms),
            idle: Duration::from_millis(args.idle_timeout_ms),
            rpc: Duration::from_millis(args.rpc_timeout_ms),
            handshakes_per_addr: args.tls_handshakes_per_address,
            ..ConnLimits::default()
        },
        policy: Arc::new(ctnet_api::policy::PolicyHolder::new(args.policy.clone())?),
        audit: ctnet_api::audit::Audit::open(Some(
            args.audit_log.clone().unwrap_or_else(|| args.state_dir.join("audit.log")),
        ))?,
        metrics: None,
    })
}

const fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn parse_port_range(s: &str) -> Option<EphemeralRange> {
    let (lo, hi) = s.split_once('-')?;
    let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo >= 1 && lo <= hi).then_some(EphemeralRange(lo, hi))
}

async fn run(
    args: Args,
    listener: std::os::unix::net::UnixListener,
    tcp: Option<(std::net::TcpListener, ctnet_api::tls::TlsFiles)>,
    metrics: Option<std::net::TcpListener>,
) -> Result<(), BoxError> {
    ctnet_proto::seccomp::verify_threads(0)
        .map_err(|e| format!("refusing to serve, confinement incomplete: {e}"))?;
    let mut settings = settings(&args)?;
    if let Some(listener) = metrics {
        tracing::info!(address = %listener.local_addr()?, "serving metrics (GET /metrics)");
        let tenant_labels = args.metrics_tenant_labels;
        settings.metrics = Some(ctnet_api::MetricsEndpoint { listener, tenant_labels });
    }
    let store = Store::open_keeping(&args.state_dir, args.events_kept)?;
    let exec = Arc::new(GrpcExecutor::new(&args.netexec_socket)?);
    let listener = UnixListener::from_std(listener)?;
    tracing::info!(socket = %args.socket.display(), uid = nix::unistd::getuid().as_raw(), "serving ctnet.v1");
    let shutdown = ctnet_proto::daemon::shutdown_signal();
    // Read as ctnet-api's account, as a SIGHUP reload will.
    let remote = match tcp {
        Some((l, files)) => {
            let tls = ctnet_api::tls::ServerTls::load(files)?;
            let listener = tokio::net::TcpListener::from_std(l)?;
            tracing::info!(address = %listener.local_addr()?, "serving ctnet.v1 over TLS (client certificates required)");
            Some(ctnet_api::Remote { listener, tls: Arc::new(tls) })
        }
        None => None,
    };
    ctnet_api::run(listener, remote, exec, store, settings, shutdown).await?;
    Ok(())
}

/// The socket is the first gate: mode 0660, owned by ctnet-api's account,
/// group of the clients (like docker.sock's group).
fn bind_socket(
    args: &Args,
    owner: Option<privilege::Account>,
) -> Result<std::os::unix::net::UnixListener, BoxError> {
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&args.socket);
    let listener = std::os::unix::net::UnixListener::bind(&args.socket)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))?;
    let group = (!args.socket_group.is_empty())
        .then(|| privilege::group_id(&args.socket_group))
        .transpose()?;
    if owner.is_some() || group.is_some() {
        nix::unistd::chown(&args.socket, owner.map(|o| o.uid), group)?;
    }
    Ok(listener)
}
