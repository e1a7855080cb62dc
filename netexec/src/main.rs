//! ctnet-netexec: the only privileged ctnet process. It serves the executor
//! API (ctnet.exec.v1) on a Unix socket and does the kernel work: namespaces,
//! veth pairs, bridges, addresses and routes.
mod checks;
mod error;
mod firewall;
mod kernel;
mod listeners;
mod netns;
mod service;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use ctnet_proto::exec::executor_server::ExecutorServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

#[derive(Parser, Debug)]
#[command(name = "ctnet-netexec", version, about = "ctnet's privileged network executor")]
struct Args {
    /// Unix socket to serve the executor API on.
    #[arg(long, default_value = "/run/ctnet/netexec.sock")]
    socket: PathBuf,
    /// Directory where sandbox namespaces are pinned (made a shared mount).
    #[arg(long, default_value = "/run/ctnet/netns")]
    netns_dir: PathBuf,
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


#[tokio::main]
async fn main() {
    let args = Args::parse();
    ctnet_proto::daemon::init_logging(&args.log_format);
    if let Err(e) = run(args).await {
        tracing::error!(error = %e, "ctnet-netexec failed");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    netns::make_shared_dir(&args.netns_dir)?;
    let host_pin = args.netns_dir.join("host");
    netns::pin_own(&host_pin)?;
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);

    let cfg = service::Config { prefix: args.prefix.clone(), netns_dir: args.netns_dir.clone(), host_pin };
    let fw = firewall::nft::NftFirewall::new(args.nft.clone(), args.conntrack.clone());
    firewall::Firewall::ensure_table(&fw).await?;
    let svc = service::ExecService::new(cfg, handle, Arc::new(fw));

    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))?;
    tracing::info!(socket = %args.socket.display(), netns_dir = %args.netns_dir.display(), "serving executor API");

    tonic::transport::Server::builder()
        .add_service(ExecutorServer::new(svc))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), ctnet_proto::daemon::shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

