//! ctnet-api: the unprivileged API server. It validates requests, runs IPAM,
//! keeps state in an embedded crash-safe store and asks ctnet-netexec, over
//! the executor API, for every kernel change.
mod api;
mod domain;
mod executor;
mod model;
mod ops;
mod ports;
mod privilege;
mod state;
mod store;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ctnet_proto::v1::maintenance_service_server::MaintenanceServiceServer;
use ctnet_proto::v1::network_service_server::NetworkServiceServer;
use ctnet_proto::v1::sandbox_service_server::SandboxServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::executor::{Executor, GrpcExecutor};
use crate::ops::Ops;

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
    /// Subnet of the default network "bridge", used when it is first created.
    #[arg(long, default_value = "172.30.0.0/16")]
    default_subnet: String,
    /// Bridge name of the default network.
    #[arg(long, default_value = "ctnet0")]
    default_bridge: String,
    /// Name prefix of the links netexec owns; must match netexec's --prefix.
    #[arg(long, default_value = "ct")]
    link_prefix: String,
    /// Host ports handed out when a published port names none: LO-HI.
    #[arg(long, default_value = "49153-60999")]
    ephemeral_ports: String,
    /// Ports allowed per bridge (at most 1023, the kernel's limit).
    #[arg(long, default_value_t = state::BRIDGE_MAX_PORTS)]
    bridge_max_ports: usize,
    /// How often netexec's reachability is checked, in milliseconds.
    #[arg(long, default_value_t = 500)]
    health_interval_ms: u64,
    /// Run as this user ("NAME", "UID" or "UID:GID"): started as root, ctnet-api
    /// binds its socket, hands its state directory over, then becomes it.
    #[arg(long)]
    user: Option<String>,
    /// Allow running as root (not recommended: ctnet-api needs no privilege).
    #[arg(long)]
    allow_root: bool,
    /// Log format: "text" or "json".
    #[arg(long, default_value = "text")]
    log_format: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;


fn main() {
    let args = Args::parse();
    ctnet_proto::daemon::init_logging(&args.log_format);
    if let Err(e) = start(args) {
        tracing::error!(error = %e, "ctnet-api failed");
        std::process::exit(1);
    }
}

/// Root's work first (socket, state directory), then the switch to the
/// unprivileged account, then the runtime: no thread ever runs as root.
fn start(args: Args) -> Result<(), BoxError> {
    let account = args.user.as_deref().map(privilege::parse_account).transpose()?;
    let listener = match ctnet_proto::daemon::inherited_listener() {
        Some(l) => l,
        None => bind_socket(&args, account)?,
    };
    if let Some(to) = account.filter(|_| nix::unistd::Uid::current().is_root()) {
        privilege::hand_over_state(&args.state_dir, to)?;
        privilege::become_account(to)?;
    }
    privilege::verify(args.allow_root)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args, listener))
}

fn settings(args: &Args) -> Result<ops::Settings, BoxError> {
    let default_subnet = domain::Subnet::parse("--default-subnet", &args.default_subnet).map_err(|s| s.message().to_string())?;
    domain::parse_bridge_name("--default-bridge", &args.default_bridge, &args.link_prefix).map_err(|s| s.message().to_string())?;
    let ephemeral = parse_port_range(&args.ephemeral_ports).ok_or("--ephemeral-ports: expected LO-HI with 1 <= LO <= HI <= 65535")?;
    Ok(ops::Settings {
        link_prefix: args.link_prefix.clone(),
        default_subnet,
        default_bridge: args.default_bridge.clone(),
        ephemeral,
    })
}

fn parse_port_range(s: &str) -> Option<ports::EphemeralRange> {
    let (lo, hi) = s.split_once('-')?;
    let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo >= 1 && lo <= hi).then_some(ports::EphemeralRange(lo, hi))
}

async fn run(args: Args, listener: std::os::unix::net::UnixListener) -> Result<(), BoxError> {
    let store = store::Store::open(&args.state_dir)?;
    let mut state = state::State::new(args.bridge_max_ports);
    let (networks, sandboxes) = store.load()?;
    state.networks = networks.into_iter().map(|n| (n.id.clone(), n)).collect();
    state.sandboxes = sandboxes.into_iter().map(|s| (s.id.clone(), s)).collect();
    tracing::info!(networks = state.networks.len(), sandboxes = state.sandboxes.len(), "state loaded");

    let exec: Arc<dyn Executor> = Arc::new(GrpcExecutor::new(&args.netexec_socket)?);
    let ops = Arc::new(Ops::new(state, store, exec.clone(), settings(&args)?));
    ops.ensure_default_network().await?;

    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    tokio::spawn(watch_executor(ops.clone(), exec, reporter, Duration::from_millis(args.health_interval_ms)));

    // Both reflection versions: grpcurl speaks v1, Python's grpcio-reflection v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ctnet_proto::PUBLIC_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let listener = UnixListener::from_std(listener)?;
    tracing::info!(socket = %args.socket.display(), uid = nix::unistd::getuid().as_raw(), "serving ctnet.v1");
    let api = api::Api { ops };
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(NetworkServiceServer::new(api.clone()))
        .add_service(SandboxServiceServer::new(api.clone()))
        .add_service(MaintenanceServiceServer::new(api))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), ctnet_proto::daemon::shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// The socket is the first gate: mode 0660, owned by ctnet-api's account,
/// group of the clients (like docker.sock's group).
fn bind_socket(args: &Args, owner: Option<privilege::Account>) -> Result<std::os::unix::net::UnixListener, BoxError> {
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&args.socket);
    let listener = std::os::unix::net::UnixListener::bind(&args.socket)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))?;
    let group = (!args.socket_group.is_empty()).then(|| privilege::group_id(&args.socket_group)).transpose()?;
    if owner.is_some() || group.is_some() {
        nix::unistd::chown(&args.socket, owner.map(|o| o.uid), group)?;
    }
    Ok(listener)
}

const SERVICES: [&str; 4] = ["", "ctnet.v1.NetworkService", "ctnet.v1.SandboxService", "ctnet.v1.MaintenanceService"];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for s in SERVICES {
        reporter.set_service_status(s, status).await;
    }
}

/// Health follows netexec: NOT_SERVING while it is unreachable. Each time it
/// becomes reachable (at start, after a netexec restart) the kernel is
/// reconciled with the store before SERVING is reported.
async fn watch_executor(ops: Arc<Ops>, exec: Arc<dyn Executor>, reporter: HealthReporter, every: Duration) {
    let mut serving = false;
    let mut instance = None;
    loop {
        match exec.ping().await {
            // A new instance is a netexec restart, even one too quick to be
            // seen as unreachable: its firewall mirror is empty until synced.
            Ok(p) if !serving || instance != Some(p.instance) => match ops.reconcile().await {
                Ok(()) => {
                    serving = true;
                    instance = Some(p.instance);
                    set_health(&reporter, ServingStatus::Serving).await;
                    tracing::info!("netexec reachable, state reconciled: serving");
                }
                Err(e) => tracing::warn!(error = %e.message(), "reconciliation failed; will retry"),
            },
            Ok(_) => {}
            Err(e) if serving => {
                serving = false;
                set_health(&reporter, ServingStatus::NotServing).await;
                tracing::warn!(error = %e.message(), "netexec unreachable: not serving");
            }
            Err(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

