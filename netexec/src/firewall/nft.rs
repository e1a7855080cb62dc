//! The nftables firewall. Every request's delta goes to the kernel as
//! nf_tables netlink messages, grouped with the deltas of requests in
//! flight at the same moment (`writer.rs`); full rebuilds (startup, sync,
//! drift repair) pipe ruleset text to `nft -f -`, which keeps a process
//! boundary between netexec and GPL libnftables for the rare big job.
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use super::writer::{lock, Job, Shared, Writer};
use super::{render, Delta, Firewall, FwNetwork, FwState, Proto};
use crate::error::{Cause, ExecError, Result};

pub struct NftFirewall {
    nft: PathBuf,
    conntrack: PathBuf,
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl NftFirewall {
    /// Starts the writer; its socket lives in the calling thread's network
    /// namespace, so call this where netexec's own is current.
    pub fn new(nft: PathBuf, conntrack: PathBuf) -> std::io::Result<Self> {
        let (jobs, shared) = Writer::start(nft.clone())?;
        Ok(Self { nft, conntrack, jobs, shared })
    }

    /// Whether a generation committed by netlink port `portid` (thread
    /// `pid`) was one of ours.
    pub fn is_own(&self, portid: u32, pid: u32) -> bool {
        self.shared.is_own(portid, pid)
    }

    /// Queues a job and waits for its answer. Once queued, the job runs
    /// whether or not this caller is still waiting.
    async fn submit(&self, job: impl FnOnce(oneshot::Sender<Result<()>>) -> Job) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let stopped = || ExecError::Internal("the firewall writer stopped".into());
        self.jobs.send(job(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Rebuilds the table from the mirror, if there is one yet.
    pub async fn restore(&self) -> Result<()> {
        self.submit(Job::Restore).await?;
        let ports = lock(&self.shared.mirror).as_ref().map_or(0, |m| m.ports.len());
        tracing::warn!(ports, "nftables changed behind ctnet's back: table restored");
        Ok(())
    }

    async fn run(&self, text: String, mirror: Option<FwState>) -> Result<()> {
        self.submit(|done| Job::Script { text, mirror, done }).await
    }

    async fn table_exists(&self, table: &str) -> Result<bool> {
        let status = Command::new(&self.nft)
            .arg("list")
            .arg("table")
            .args(table.split(' '))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| ExecError::step("run nft", e))?;
        Ok(status.success())
    }

    /// Outbound NAT needs forwarding; DNAT of 127.0.0.1 needs route_localnet
    /// on the bridge (the DNAT'ed packet keeps its loopback source).
    fn enable_routing(&self, nets: &[FwNetwork]) -> Result<()> {
        let routed: Vec<&FwNetwork> = nets.iter().filter(|n| !n.internal).collect();
        if routed.is_empty() {
            return Ok(());
        }
        write_sysctl("ipv4/ip_forward", "1")?;
        for n in routed {
            write_sysctl(&format!("ipv4/conf/{}/route_localnet", n.bridge.as_str()), "1")?;
        }
        Ok(())
    }

    /// A UDP flow keeps its conntrack entry, and with it its old DNAT target,
    /// as long as the client keeps sending: flush entries for a new
    /// mapping's host port so the next datagram meets the new mapping.
    async fn flush_udp_flows(&self, delta: &Delta) -> Result<()> {
        for p in delta.add_ports.iter().filter(|p| p.proto == Proto::Udp) {
            // The netlink request is laid out for IPv4; IPv6 flows go to
            // conntrack -D -f ipv6.
            let v4 = match p.host_ip {
                None if p.target_ip.is_ipv4() => Some(None),
                Some(std::net::IpAddr::V4(a)) => Some(Some(a)),
                _ => None,
            };
            if let Some(ip) = v4 {
                let port = p.host_port;
                let done =
                    tokio::task::spawn_blocking(move || super::conntrack::flush_udp(port, ip))
                        .await
                        .map_err(|e| ExecError::step("conntrack flush task", e))?;
                match done {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(port, error = %e, "conntrack flush over netlink refused; running conntrack -D")
                    }
                }
            }
            let mut cmd = Command::new(&self.conntrack);
            let family = if p.target_ip.is_ipv4() { "ipv4" } else { "ipv6" };
            cmd.args([
                "-D",
                "-f",
                family,
                "-p",
                "udp",
                "--orig-port-dst",
                &p.host_port.to_string(),
            ]);
            if let Some(ip) = p.host_ip {
                cmd.args(["--orig-dst", &ip.to_string()]);
            }
            let out = cmd.output().await.map_err(|e| ExecError::step("run conntrack", e))?;
            // conntrack -D exits 1 when nothing matched.
            if !matches!(out.status.code(), Some(0) | Some(1)) {
                let cause = Cause::Message(String::from_utf8_lossy(&out.stderr).trim().to_string());
                return Err(ExecError::step("conntrack -D", cause));
            }
        }
        Ok(())
    }
}

/// Writes under /proc/sys/net, which resolves to the namespace of the
/// calling thread: netexec's own, the host's (workers never switch).
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/net/{key}");
    let step = format!("set sysctl net.{}", key.replace('/', "."));
    std::fs::write(&path, value).map_err(|e| ExecError::step(&step, e))
}

#[tonic::async_trait]
impl Firewall for NftFirewall {
    async fn ensure_table(&self) -> Result<()> {
        for (table, _) in render::TABLES {
            if !self.table_exists(table).await? {
                self.run(render::one_table(table, &FwState::default()), None).await?;
                tracing::info!(table, "nftables table created");
            }
        }
        Ok(())
    }

    async fn update(&self, delta: &Delta) -> Result<()> {
        self.submit(|done| Job::Delta(delta.clone(), done)).await?;
        self.enable_routing(&delta.add_networks)?;
        self.flush_udp_flows(delta).await
    }

    async fn sync(&self, state: &FwState) -> Result<()> {
        self.run(render::full(state), Some(state.clone())).await?;
        self.enable_routing(&state.networks)?;
        tracing::info!(
            networks = state.networks.len(),
            ports = state.ports.len(),
            "nftables table rebuilt"
        );
        Ok(())
    }
}
