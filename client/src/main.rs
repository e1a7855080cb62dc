//! `ctnet`: the command-line client, shaped like docker's network commands.
mod render;

use clap::{Parser, Subcommand};
use ctnet_client::{pb, Client};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "ctnet", version, about = "Container networking as a service")]
struct Cli {
    /// Server address: a Unix socket path, unix://PATH, or tls://HOST:PORT.
    #[arg(short = 'H', long, global = true, env = ctnet_client::HOST_ENV, default_value = ctnet_client::DEFAULT_SOCKET)]
    host: String,
    /// For tls://: the CA that signed the server's certificate (PEM).
    #[arg(long, global = true, env = ctnet_client::CACERT_ENV)]
    cacert: Option<std::path::PathBuf>,
    /// For tls://: this client's certificate (PEM).
    #[arg(long, global = true, env = ctnet_client::CERT_ENV)]
    cert: Option<std::path::PathBuf>,
    /// For tls://: this client's private key (PEM).
    #[arg(long, global = true, env = ctnet_client::KEY_ENV)]
    key: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The request id the server logs this call under (and passes to
    /// netexec): 1-64 of [A-Za-z0-9._-]; default: one the server makes.
    #[arg(long, global = true, env = "CTNET_REQUEST_ID")]
    request_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// Show whether the server is serving (exits 1 when it is not).
    Status,
    /// Follow the changes as they happen, one line each, until interrupted.
    Events {
        /// Resume after this sequence number (0: from the oldest kept);
        /// default: from now on.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Remove kernel objects carrying ctnet's tag that nothing owns; lists them.
    Gc,
    /// Show the identity the server sees for this caller.
    Whoami,
    /// Tenants of the server's policy (the admin's).
    #[command(subcommand)]
    Tenant(TenantCmd),
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Every tenant with what it holds against its quotas.
    #[command(alias = "list")]
    Ls,
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Create a bridge network.
    Create {
        name: String,
        /// IPv4 subnet; given again with an IPv6 subnet, a dual-stack network.
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway of either family; once per family.
        #[arg(long)]
        gateway: Vec<String>,
        /// Dual stack: with no IPv6 --subnet, a /64 of the host's ULA prefix.
        #[arg(long)]
        ipv6: bool,
        /// --ipv4=false: an IPv6-only network (needs --ipv6 or an IPv6
        /// --subnet).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        ipv4: bool,
        /// IPv4 gateway mode: nat (default), routed or isolated.
        #[arg(long, default_value = "")]
        gateway_mode_ipv4: String,
        /// IPv6 gateway mode: nat (default), routed or isolated.
        #[arg(long, default_value = "")]
        gateway_mode_ipv6: String,
        #[arg(long)]
        bridge_name: Option<String>,
        #[arg(long, default_value_t = 0)]
        mtu: u32,
        /// No outbound NAT, no published ports.
        #[arg(long)]
        internal: bool,
        /// Whether sandboxes on the network may talk to each other.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        icc: bool,
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List networks.
    Ls {
        /// Only networks with this label (key=value); repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Show networks in detail (JSON).
    Inspect { networks: Vec<String> },
    /// Remove networks.
    Rm { networks: Vec<String> },
}

#[derive(Subcommand)]
enum SandboxCmd {
    /// Create a sandbox; prints its id.
    Create {
        /// bridge | host | none | container:<id|name> | <network name>; repeat for more networks.
        #[arg(long = "net", alias = "network")]
        net: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// Static IPv4 address on the first network.
        #[arg(long)]
        ip: Option<String>,
        /// Static IPv6 address on the first network (a dual-stack one).
        #[arg(long)]
        ip6: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Use a namespace a runtime already pinned (bridge and none modes).
        #[arg(long)]
        netns: Option<String>,
        /// Publish a port: [host_ip:][host_port[-end]:]container_port[-end][/tcp|udp|sctp].
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
    },
    /// List sandboxes.
    Ls {
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Show sandboxes in detail (JSON).
    Inspect { sandboxes: Vec<String> },
    /// Remove sandboxes.
    Rm { sandboxes: Vec<String> },
    /// Attach a bridge-mode sandbox to one more network.
    Connect {
        sandbox: String,
        network: String,
        #[arg(long)]
        ip: Option<String>,
        /// Static IPv6 address on the network (a dual-stack one).
        #[arg(long)]
        ip6: Option<String>,
        /// The interface's name inside the sandbox (default: the first free ethN).
        #[arg(long)]
        ifname: Option<String>,
        /// The interface's MAC address (default: derived from the address).
        #[arg(long)]
        mac: Option<String>,
        /// Publish a port to the address on this network.
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
    },
    /// List a sandbox's published ports, like `docker port`.
    Port { sandbox: String },
    /// Compare a sandbox's kernel state with what it should be (exits 1 on drift).
    Check { sandbox: String },
    /// Detach a sandbox from a network.
    Disconnect { sandbox: String, network: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => write_out(&out),
        Err(msg) => {
            eprintln!("Error: {msg}");
            std::process::exit(1);
        }
    }
}

/// Writes the output; a reader that went away (`ctnet ls | head -1`) ends
/// the program quietly, as it does for other shell tools, instead of a panic.
fn write_out(out: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: writing the output: {e}");
            std::process::exit(1);
        }
    }
}

/// At most one value of each family, as `docker network create` takes
/// --subnet and --gateway: IPv6 is whatever holds a ':'.
fn by_family(flag: &str, values: Vec<String>) -> Result<(Option<String>, Option<String>), String> {
    let (v6, v4): (Vec<String>, Vec<String>) = values.into_iter().partition(|v| v.contains(':'));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(format!("{flag} is given at most once per address family"));
    }
    Ok((v4.into_iter().next(), v6.into_iter().next()))
}

fn status_msg(s: tonic::Status) -> String {
    format!("{} ({:?})", s.message(), s.code())
}

fn pretty(v: Value) -> String {
    serde_json::to_string_pretty(&v).expect("JSON") + "\n"
}

async fn run(cli: Cli) -> Result<String, String> {
    let tls = match (&cli.cacert, &cli.cert, &cli.key) {
        (Some(ca), Some(cert), Some(key)) => {
            Some(ctnet_client::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
        }
        _ => None,
    };
    let mut client = ctnet_client::connect_to(&cli.host, tls.as_ref())
        .await
        .map_err(|e| format!("cannot reach ctnet at {}: {e}", cli.host))?;
    if let Some(id) = &cli.request_id {
        client = client.sending_request_id(id)?;
    }
    match cli.command {
        Command::Network(cmd) => network(client, cmd, cli.json).await,
        Command::Sandbox(cmd) => sandbox(client, cmd, cli.json).await,
        Command::Status => status(client).await,
        Command::Events { since } => events(client, since, cli.json).await,
        Command::Whoami => whoami(client, cli.json).await,
        Command::Tenant(TenantCmd::Ls) => tenants(client, cli.json).await,
        Command::Gc => {
            let mut c = client;
            let removed = c
                .maintenance
                .garbage_collect(pb::GarbageCollectRequest {})
                .await
                .map_err(status_msg)?
                .into_inner()
                .removed;
            Ok(if cli.json {
                pretty(Value::from(removed))
            } else {
                removed.iter().map(|r| format!("removed {r}\n")).collect()
            })
        }
    }
}

/// Prints each event as it comes (written at once, so a pipe sees it); the
/// stream only ends with an error, which says where to resume.
async fn events(mut c: Client, since: Option<u64>, json: bool) -> Result<String, String> {
    let mut stream =
        c.events.watch(pb::WatchRequest { since }).await.map_err(status_msg)?.into_inner();
    loop {
        let e = match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(String::new()),
            Err(s) => return Err(status_msg(s)),
        };
        write_out(&(render::event_line(&e, json) + "\n"));
    }
}

async fn whoami(mut c: Client, json: bool) -> Result<String, String> {
    let me = c.maintenance.who_am_i(pb::WhoAmIRequest {}).await.map_err(status_msg)?.into_inner();
    if json {
        return Ok(pretty(serde_json::json!({
            "kind": me.kind, "name": me.name, "uid": me.uid, "gid": me.gid, "groups": me.groups,
            "tenant": me.tenant,
        })));
    }
    let mut out = format!("{} ({}), tenant {}\n", me.name, me.kind, me.tenant);
    if let (Some(uid), Some(gid)) = (me.uid, me.gid) {
        let groups: Vec<String> = me.groups.iter().map(u32::to_string).collect();
        out += &format!("uid {uid} gid {gid} groups {}\n", groups.join(","));
    }
    Ok(out)
}

async fn tenants(mut c: Client, json: bool) -> Result<String, String> {
    let req = pb::ListTenantsRequest {};
    let list = c.maintenance.list_tenants(req).await.map_err(status_msg)?.into_inner().tenants;
    if json {
        return Ok(pretty(Value::Array(list.iter().map(render::tenant_json).collect())));
    }
    let cell = |t: &pb::Tenant, q: &str| {
        let u = t.usage.iter().find(|u| u.quota == q);
        match u.map(|u| (u.used, u.limit)) {
            Some((used, Some(limit))) => format!("{used}/{limit}"),
            Some((used, None)) => used.to_string(),
            None => String::new(),
        }
    };
    const QUOTAS: [&str; 5] =
        ["networks", "sandboxes", "owned_netns", "published_ports", "attachments"];
    let rows = list
        .iter()
        .map(|t| std::iter::once(t.name.clone()).chain(QUOTAS.map(|q| cell(t, q))).collect())
        .collect();
    let header = ["TENANT", "NETWORKS", "SANDBOXES", "OWNED NETNS", "PORTS", "ATTACHMENTS"];
    Ok(render::table(&header, rows))
}

/// grpc.health.v1: SERVING once netexec is reachable and state reconciled.
async fn status(c: Client) -> Result<String, String> {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let reply = HealthClient::new(c.channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(status_msg)?;
    let s = ServingStatus::try_from(reply.into_inner().status).unwrap_or(ServingStatus::Unknown);
    match s {
        ServingStatus::Serving => Ok("SERVING\n".into()),
        other => Err(format!(
            "{} (netexec unreachable or state not yet reconciled)",
            other.as_str_name()
        )),
    }
}

async fn network(mut c: Client, cmd: NetworkCmd, json: bool) -> Result<String, String> {
    match cmd {
        NetworkCmd::Create {
            name,
            subnet,
            gateway,
            ipv6,
            ipv4,
            gateway_mode_ipv4,
            gateway_mode_ipv6,
            bridge_name,
            mtu,
            internal,
            icc,
            labels,
        } => {
            let (subnet, ipv6_subnet) = by_family("--subnet", subnet)?;
            let (gateway, ipv6_gateway) = by_family("--gateway", gateway)?;
            let req = pb::CreateNetworkRequest {
                name,
                driver: "bridge".into(),
                subnet: subnet.unwrap_or_default(),
                gateway,
                ipv6_subnet,
                ipv6_gateway,
                enable_ipv6: ipv6,
                enable_ipv4: Some(ipv4),
                gateway_mode_ipv4,
                gateway_mode_ipv6,
                bridge_name,
                mtu,
                internal,
                icc: Some(icc),
                labels: ctnet_client::parse_labels(&labels)?,
            };
            let n = c.networks.create_network(req).await.map_err(status_msg)?.into_inner();
            Ok(if json { pretty(render::network_json(&n)) } else { format!("{}\n", n.id) })
        }
        NetworkCmd::Ls { labels } => {
            let req =
                pb::ListNetworksRequest { label_selector: ctnet_client::parse_labels(&labels)? };
            let list =
                c.networks.list_networks(req).await.map_err(status_msg)?.into_inner().networks;
            Ok(if json {
                pretty(Value::Array(list.iter().map(render::network_json).collect()))
            } else {
                render::networks_table(&list)
            })
        }
        NetworkCmd::Inspect { networks } => {
            let mut out = Vec::new();
            for network in networks {
                out.push(render::network_json(
                    &c.networks
                        .get_network(pb::GetNetworkRequest { network })
                        .await
                        .map_err(status_msg)?
                        .into_inner(),
                ));
            }
            Ok(pretty(Value::Array(out)))
        }
        NetworkCmd::Rm { networks } => {
            let mut out = String::new();
            for network in networks {
                c.networks
                    .delete_network(pb::DeleteNetworkRequest { network: network.clone() })
                    .await
                    .map_err(status_msg)?;
                out += &format!("{network}\n");
            }
            Ok(out)
        }
    }
}

async fn sandbox(mut c: Client, cmd: SandboxCmd, json: bool) -> Result<String, String> {
    let one = |s: pb::Sandbox| {
        if json {
            pretty(render::sandbox_json(&s))
        } else {
            format!("{}\n", s.id)
        }
    };
    match cmd {
        SandboxCmd::Create { net, name, ip, ip6, mac, labels, netns, publish } => {
            let req = pb::CreateSandboxRequest {
                name,
                labels: ctnet_client::parse_labels(&labels)?,
                mac_address: mac,
                mode: Some(ctnet_client::mode_from_net(&net, ip, ip6)?),
                netns_path: netns,
                publish,
            };
            Ok(one(c.sandboxes.create_sandbox(req).await.map_err(status_msg)?.into_inner()))
        }
        SandboxCmd::Ls { labels } => {
            let req =
                pb::ListSandboxesRequest { label_selector: ctnet_client::parse_labels(&labels)? };
            let list =
                c.sandboxes.list_sandboxes(req).await.map_err(status_msg)?.into_inner().sandboxes;
            Ok(if json {
                pretty(Value::Array(list.iter().map(render::sandbox_json).collect()))
            } else {
                render::sandboxes_table(&list)
            })
        }
        SandboxCmd::Inspect { sandboxes } => {
            let mut out = Vec::new();
            for sandbox in sandboxes {
                out.push(render::sandbox_json(
                    &c.sandboxes
                        .get_sandbox(pb::GetSandboxRequest { sandbox })
                        .await
                        .map_err(status_msg)?
                        .into_inner(),
                ));
            }
            Ok(pretty(Value::Array(out)))
        }
        SandboxCmd::Rm { sandboxes } => {
            let mut out = String::new();
            for sandbox in sandboxes {
                c.sandboxes
                    .delete_sandbox(pb::DeleteSandboxRequest { sandbox: sandbox.clone() })
                    .await
                    .map_err(status_msg)?;
                out += &format!("{sandbox}\n");
            }
            Ok(out)
        }
        SandboxCmd::Connect { sandbox, network, ip, ip6, ifname, mac, publish } => {
            let req = pb::ConnectRequest {
                sandbox,
                network,
                ipv4_address: ip,
                ipv6_address: ip6,
                publish,
                interface_name: ifname,
                mac_address: mac,
            };
            Ok(one(c.sandboxes.connect(req).await.map_err(status_msg)?.into_inner()))
        }
        SandboxCmd::Check { sandbox } => {
            let diffs = c
                .sandboxes
                .check(pb::CheckRequest { sandbox })
                .await
                .map_err(status_msg)?
                .into_inner()
                .differences;
            if diffs.is_empty() {
                return Ok(if json { "[]\n".into() } else { "ok\n".into() });
            }
            Err(format!("drift:\n  {}", diffs.join("\n  ")))
        }
        SandboxCmd::Port { sandbox } => {
            let s = c
                .sandboxes
                .get_sandbox(pb::GetSandboxRequest { sandbox })
                .await
                .map_err(status_msg)?
                .into_inner();
            Ok(if json {
                pretty(Value::Array(s.ports.iter().map(render::port_json).collect()))
            } else {
                render::ports_lines(&s.ports)
            })
        }
        SandboxCmd::Disconnect { sandbox, network } => {
            let req = pb::DisconnectRequest { sandbox, network };
            Ok(one(c.sandboxes.disconnect(req).await.map_err(status_msg)?.into_inner()))
        }
    }
}
