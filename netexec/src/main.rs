//! ctnet-netexec: the only privileged ctnet process. It serves the executor
//! API (ctnet.exec.v1) on a Unix socket and does the kernel work: namespaces,
//! veth pairs, bridges, addresses, routes and the nftables table.
//!
//! Started as root, it sets up what needs more than its final rights, then
//! confines itself (see `confine`) and refuses to serve unless every thread
//! holds exactly CAP_NET_ADMIN and CAP_SYS_ADMIN under its seccomp filter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::string_slice)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ctnet_netexec::checks::AllowedDir;
use ctnet_netexec::confine::{self, Profile};
use ctnet_netexec::{firewall, kernel, netns, probe, service};
use nix::fcntl::OFlag;

#[derive(Parser, Debug)]
#[command(name = "ctnet-netexec", version, about = "ctnet's privileged network executor")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs seccomp probes in a single-threaded helper under netexec's exact
    /// filter (or none, as a control) and prints one JSON object. Run it in
    /// a throwaway mount namespace: `unshare --mount ctnet-netexec probe-seccomp`.
    ProbeSeccomp {
        #[arg(long, value_enum, default_value = "creates")]
        profile: Profile,
        /// The control run: no filter.
        #[arg(long)]
        no_filter: bool,
        /// A scratch directory for the bind-mount probe.
        #[arg(long)]
        scratch: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Unix socket to serve the executor API on (mode 0660).
    #[arg(long, default_value = "/run/ctnet/netexec.sock")]
    socket: PathBuf,
    /// Group of the socket: the api-server's own group (a name or a number).
    #[arg(long, default_value = "ctnet-api")]
    socket_group: String,
    /// Uids allowed to call (checked on every connection with SO_PEERCRED).
    /// Default: the uid of the user ctnet-api.
    #[arg(long = "allow-uid")]
    allow_uid: Vec<u32>,
    /// Directory where sandbox namespaces are pinned (made a shared mount).
    #[arg(long, default_value = "/run/ctnet/netns")]
    netns_dir: PathBuf,
    /// Directories where runtimes pin namespaces that sandboxes may use via
    /// netns_path; repeatable. Made shared mounts, like the pin directory.
    #[arg(long = "netns-allow-dir", default_value = "/run/netns")]
    netns_allow_dirs: Vec<PathBuf>,
    /// creates: pins its own namespaces; join-only: only netns_path sandboxes.
    #[arg(long, value_enum, default_value = "creates")]
    profile: Profile,
    /// Name prefix of every host link netexec may create, change or delete.
    #[arg(long, default_value = "ct")]
    prefix: String,
    /// The nft binary (nftables).
    #[arg(long, default_value = "nft")]
    nft: PathBuf,
    /// The conntrack binary (conntrack-tools).
    #[arg(long, default_value = "conntrack")]
    conntrack: PathBuf,
    /// Log format: "text" or "json".
    #[arg(long, default_value = "text")]
    log_format: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let cli = Cli::parse();
    if let Some(Command::ProbeSeccomp { profile, no_filter, scratch }) = cli.command {
        std::process::exit(probe::run(profile, !no_filter, &scratch));
    }
    ctnet_proto::daemon::init_logging(&cli.serve.log_format);
    if let Err(e) = start(cli.serve) {
        tracing::error!(error = %e, "ctnet-netexec failed");
        std::process::exit(1);
    }
}

/// Everything before the runtime exists runs on this one thread, so the
/// filter installed at the end covers every thread the runtime starts.
fn start(args: Args) -> Result<(), BoxError> {
    if !nix::unistd::getuid().is_root() {
        return Err("ctnet-netexec must be started as root; it drops to CAP_NET_ADMIN + CAP_SYS_ADMIN itself".into());
    }
    let allow_uid = allowed_uids(&args.allow_uid)?;
    let host = std::fs::metadata("/proc/self/ns/net")?;
    let listener = match ctnet_proto::daemon::inherited_listener() {
        Some(l) => l,
        None => bind_socket(&args.socket, &args.socket_group)?,
    };
    // Join-only does no mount work at all: it neither pins nor needs to
    // share anything, so it can run in systemd's full filesystem sandbox.
    let pins = match args.profile {
        Profile::Creates => Some(Arc::new(prepare_pins(&args)?)),
        Profile::JoinOnly => None,
    };
    let allowed_dirs = open_allowed_dirs(&args.netns_allow_dirs)?;
    confine::drop_capabilities()?;
    confine::install(args.profile)?;

    let cfg = service::Config {
        prefix: args.prefix.clone(),
        pins,
        host_ns: (host.dev(), host.ino()),
        allowed_dirs,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args, cfg, listener, allow_uid))
}

/// On the confined runtime: the kernel connection, the firewall table and
/// its drift watch, then the executor API until SIGTERM.
async fn serve(
    args: Args,
    cfg: service::Config,
    listener: std::os::unix::net::UnixListener,
    allow_uid: Vec<u32>,
) -> Result<(), BoxError> {
    confine::verify().map_err(|e| format!("refusing to serve, confinement incomplete: {e}"))?;
    let nl = kernel::Netlink::open()?;
    let fw = Arc::new(firewall::nft::NftFirewall::new(args.nft.clone(), args.conntrack.clone())?);
    firewall::Firewall::ensure_table(fw.as_ref()).await?;
    firewall::drift::watch(fw.clone())?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    tracing::info!(
        socket = %args.socket.display(),
        netns_dir = %args.netns_dir.display(),
        profile = ?args.profile,
        allow_uid = ?allow_uid,
        "confined (CAP_NET_ADMIN + CAP_SYS_ADMIN, no_new_privs, seccomp); serving executor API"
    );
    let settings = ctnet_netexec::Settings { config: cfg, allow_uid };
    let shutdown = ctnet_proto::daemon::shutdown_signal();
    ctnet_netexec::run(listener, nl, fw, settings, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The shared pin directory, the host pin, then netexec's own mount
/// namespace; the directory is opened only afterwards, because a mount must
/// target a mount of the caller's own namespace.
fn prepare_pins(args: &Args) -> Result<netns::PinDir, BoxError> {
    netns::make_shared_dir(&args.netns_dir)?;
    for dir in &args.netns_allow_dirs {
        netns::make_shared_dir(dir)?;
    }
    netns::PinDir::open(&args.netns_dir)?.pin_own(service::HOST_PIN)?;
    confine::isolate_mounts(&confine::shared_dirs(&args.netns_dir, &args.netns_allow_dirs))?;
    Ok(netns::PinDir::open(&args.netns_dir)?)
}

fn allowed_uids(given: &[u32]) -> Result<Vec<u32>, BoxError> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let user = nix::unistd::User::from_name("ctnet-api")?
        .ok_or("--allow-uid not given and no user ctnet-api exists: name the api-server's uid")?;
    Ok(vec![user.uid.as_raw()])
}

/// The socket is the first gate: mode 0660 and the api-server's group.
fn bind_socket(path: &Path, group: &str) -> Result<std::os::unix::net::UnixListener, BoxError> {
    let gid = match group.parse::<u32>() {
        Ok(n) => nix::unistd::Gid::from_raw(n),
        Err(_) => {
            nix::unistd::Group::from_name(group)?
                .ok_or_else(|| format!("--socket-group: no group {group:?}"))?
                .gid
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    nix::unistd::chown(path, None, Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

fn open_allowed_dirs(dirs: &[PathBuf]) -> Result<Vec<AllowedDir>, BoxError> {
    dirs.iter()
        .map(|d| {
            let path = std::fs::canonicalize(d)?;
            let fd = nix::fcntl::open(
                &path,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            Ok(AllowedDir { path, fd })
        })
        .collect()
}
