//! The nftables firewall: ruleset text piped to `nft -f -`, which applies it
//! as one atomic transaction. Running the nft binary keeps a process
//! boundary between netexec and GPL libnftables.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{render, Delta, Firewall, FwNetwork, FwState, Proto};
use crate::error::{Cause, ExecError, Result};

pub struct NftFirewall {
    nft: PathBuf,
    conntrack: PathBuf,
    /// The desired table as last synced and updated; None until the first
    /// sync, so drift repair never "restores" an empty table.
    mirror: Mutex<Option<FwState>>,
    /// Pids of our recent nft children: their generations are not drift.
    own: Mutex<VecDeque<u32>>,
    /// One truth for the table: deltas share it (they touch disjoint
    /// elements), a full rebuild or a restore holds it alone, so a rebuild
    /// from an older mirror can never land after a newer delta.
    order: tokio::sync::RwLock<()>,
}

const OWN_PIDS_KEPT: usize = 256;

impl NftFirewall {
    pub fn new(nft: PathBuf, conntrack: PathBuf) -> Self {
        Self {
            nft,
            conntrack,
            mirror: Mutex::new(None),
            own: Mutex::new(VecDeque::new()),
            order: tokio::sync::RwLock::new(()),
        }
    }

    pub fn is_own(&self, pid: u32) -> bool {
        lock(&self.own).contains(&pid)
    }

    /// Rebuilds the table from the mirror, if there is one yet.
    pub async fn restore(&self) -> Result<()> {
        let _alone = self.order.write().await;
        let Some(state) = lock(&self.mirror).clone() else {
            return Ok(());
        };
        self.run(&render::full(&state)).await?;
        tracing::warn!(
            ports = state.ports.len(),
            "nftables changed behind ctnet's back: table restored"
        );
        Ok(())
    }

    async fn run(&self, script: &str) -> Result<()> {
        let mut child = Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ExecError::step("run nft", e))?;
        if let Some(pid) = child.id() {
            let mut own = lock(&self.own);
            own.push_back(pid);
            if own.len() > OWN_PIDS_KEPT {
                own.pop_front();
            }
        }
        let Some(mut stdin) = child.stdin.take() else {
            return Err(ExecError::Internal("nft started without its stdin".into()));
        };
        stdin.write_all(script.as_bytes()).await.map_err(|e| ExecError::step("write to nft", e))?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(|e| ExecError::step("wait for nft", e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            tracing::error!(stderr = %err, "nft transaction refused");
            let cause = Cause::Message(err.trim().to_string());
            return Err(ExecError::step("nft transaction", cause));
        }
        Ok(())
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
            let (port, ip) = (p.host_port, p.host_ip);
            let done = tokio::task::spawn_blocking(move || super::conntrack::flush_udp(port, ip))
                .await
                .map_err(|e| ExecError::step("conntrack flush task", e))?;
            match done {
                Ok(()) => continue,
                Err(e) => {
                    tracing::warn!(port, error = %e, "conntrack flush over netlink refused; running conntrack -D")
                }
            }
            let mut cmd = Command::new(&self.conntrack);
            cmd.args(["-D", "-p", "udp", "--orig-port-dst", &p.host_port.to_string()]);
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
                self.run(&render::one_table(table, &FwState::default())).await?;
                tracing::info!(table, "nftables table created");
            }
        }
        Ok(())
    }

    async fn update(&self, delta: &Delta) -> Result<()> {
        let _shared = self.order.read().await;
        let script = render::delta(delta);
        if !script.is_empty() {
            self.run(&script).await?;
        }
        if let Some(m) = lock(&self.mirror).as_mut() {
            m.apply(delta);
        }
        self.enable_routing(&delta.add_networks)?;
        self.flush_udp_flows(delta).await
    }

    async fn sync(&self, state: &FwState) -> Result<()> {
        let _alone = self.order.write().await;
        self.run(&render::full(state)).await?;
        *lock(&self.mirror) = Some(state.clone());
        self.enable_routing(&state.networks)?;
        tracing::info!(
            networks = state.networks.len(),
            ports = state.ports.len(),
            "nftables table rebuilt"
        );
        Ok(())
    }
}

/// The lock's data; the mirror and the pid list hold no invariant that a
/// panic elsewhere could leave half-made.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
