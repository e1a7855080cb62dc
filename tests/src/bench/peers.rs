//! The peers, run as a runtime runs them, each in a fake host of its own:
//! netavark 1.4 `setup`/`teardown` on iptables-legacy and on iptables-nft,
//! the CNI bridge + host-local + portmap chain, and `/bin/true` as the
//! reference for what one spawn costs. Every command is exec'd directly
//! with a clean environment and its JSON on stdin (or in its file); the
//! container's namespace is made and pinned outside the timed region.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cni::{in_namespace, REFERENCE_PLUGINS};
use crate::netns;

/// Where Debian's netavark package puts the binary.
pub const NETAVARK: &str = "/usr/lib/podman/netavark";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// The peers' container subnet (each peer has a fake host of its own).
const SUBNET: &str = "10.88.0.0/16";
const GATEWAY: &str = "10.88.0.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    NetavarkLegacy,
    NetavarkNft,
    CniChain,
    True,
}

impl Tool {
    pub const ALL: [Tool; 4] =
        [Tool::NetavarkLegacy, Tool::NetavarkNft, Tool::CniChain, Tool::True];

    pub fn name(self) -> &'static str {
        match self {
            Tool::NetavarkLegacy => "netavark 1.4, iptables-legacy",
            Tool::NetavarkNft => "netavark 1.4, iptables-nft",
            Tool::CniChain => "CNI bridge + host-local + portmap",
            Tool::True => "/bin/true (one spawn)",
        }
    }

    /// The iptables backend a netavark run finds first on its PATH.
    fn iptables(self) -> Option<&'static str> {
        match self {
            Tool::NetavarkLegacy => Some("legacy"),
            Tool::NetavarkNft => Some("nft"),
            _ => None,
        }
    }
}

/// Whether the peers are installed (scripts/deps.sh installs them).
pub fn installed() -> bool {
    Path::new(NETAVARK).exists()
        && Path::new(REFERENCE_PLUGINS).join("portmap").exists()
        && Path::new("/usr/sbin/iptables-legacy").exists()
        && Path::new("/usr/sbin/iptables-nft").exists()
}

/// One peer in its fake host.
pub struct Peer {
    pub tool: Tool,
    host: PathBuf,
    dir: PathBuf,
}

impl Peer {
    /// Makes the peer's fake host and files under `base`.
    pub fn start(tool: Tool, base: &Path) -> Peer {
        let dir = base.join(format!("peer-{}", rand::random::<u32>()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("config")).unwrap();
        if let Some(backend) = tool.iptables() {
            // A PATH of its own picks the backend without touching the
            // machine's alternatives.
            for cmd in ["iptables", "iptables-save", "iptables-restore", "ip6tables"] {
                let real = format!(
                    "/usr/sbin/{}",
                    cmd.replacen("tables", &format!("tables-{backend}"), 1)
                );
                std::os::unix::fs::symlink(real, dir.join("bin").join(cmd)).unwrap();
            }
        }
        let host = dir.join("host");
        netns::create_pinned(&host, || {});
        Peer { tool, host, dir }
    }

    fn container(&self, i: usize) -> PathBuf {
        self.dir.join(format!("c{i}"))
    }

    /// Sets up container `i` (its namespace made first, untimed) with one
    /// published TCP port; returns how long the tool took.
    pub fn setup(&self, i: usize) -> Duration {
        let ns = self.container(i);
        netns::create_pinned(&ns, || {});
        match self.tool {
            Tool::NetavarkLegacy | Tool::NetavarkNft => self.netavark("setup", i),
            Tool::CniChain => {
                let t = Instant::now();
                let result = self.cni("ADD", i, "bridge", self.bridge_conf(), None);
                self.cni("ADD", i, "portmap", self.portmap_conf(i), Some(result.clone()));
                let d = t.elapsed();
                std::fs::write(self.dir.join(format!("c{i}.result")), result.to_string()).unwrap();
                d
            }
            Tool::True => self.spawn_true(),
        }
    }

    /// Tears container `i` down; its namespace is unpinned after, untimed.
    pub fn teardown(&self, i: usize) -> Duration {
        let d = match self.tool {
            Tool::NetavarkLegacy | Tool::NetavarkNft => self.netavark("teardown", i),
            Tool::CniChain => {
                let saved = self.dir.join(format!("c{i}.result"));
                let prev: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
                let t = Instant::now();
                self.cni("DEL", i, "portmap", self.portmap_conf(i), Some(prev.clone()));
                self.cni("DEL", i, "bridge", self.bridge_conf(), Some(prev));
                t.elapsed()
            }
            Tool::True => self.spawn_true(),
        };
        netns::unpin(&self.container(i));
        d
    }

    /// The exact commands one setup and one teardown run, for the report.
    pub fn commands(&self) -> String {
        match self.tool {
            Tool::NetavarkLegacy | Tool::NetavarkNft => format!(
                "PATH=<dir with iptables -> iptables-{b}>:{PATH} {NETAVARK} --config <dir> --file <options.json> setup|teardown <netns>",
                b = self.tool.iptables().unwrap_or_default()
            ),
            Tool::CniChain => format!(
                "CNI_COMMAND=ADD|DEL CNI_CONTAINERID=<id> CNI_NETNS=<netns> CNI_IFNAME=eth0 CNI_PATH={REFERENCE_PLUGINS} PATH={PATH} {REFERENCE_PLUGINS}/bridge < bridge.json (host-local IPAM, ipMasq), then {REFERENCE_PLUGINS}/portmap < portmap.json with prevResult (DEL in reverse order)"
            ),
            Tool::True => "/bin/true".into(),
        }
    }

    /// Tears down nothing more: the fake host goes, and with it its
    /// bridge, veths and rules; the files go too.
    pub fn finish(self) {
        netns::unpin(&self.host);
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn path(&self) -> String {
        format!("{}:{PATH}", self.dir.join("bin").display())
    }

    fn run(&self, cmd: Command, stdin: &[u8]) -> Value {
        let out = in_namespace(&self.host, cmd, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout} {}",
            self.tool.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or(Value::Null)
    }

    fn spawn_true(&self) -> Duration {
        let t = Instant::now();
        self.run(Command::new("/bin/true"), b"");
        t.elapsed()
    }

    fn netavark(&self, verb: &str, i: usize) -> Duration {
        let file = self.dir.join(format!("c{i}.json"));
        std::fs::write(&file, self.netavark_options(i).to_string()).unwrap();
        let mut cmd = Command::new(NETAVARK);
        cmd.env_clear().env("PATH", self.path());
        cmd.arg("--config").arg(self.dir.join("config")).arg("--file").arg(&file);
        cmd.arg(verb).arg(self.container(i));
        let t = Instant::now();
        self.run(cmd, b"");
        t.elapsed()
    }

    /// What podman would send for container `i`: a static address from
    /// its own IPAM, one published port.
    fn netavark_options(&self, i: usize) -> Value {
        json!({
            "container_id": format!("{:064x}", i + 1),
            "container_name": format!("c{i}"),
            "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": host_port(i), "range": 1, "protocol": "tcp"}],
            "networks": {"podman": {"static_ips": [address(i)], "interface_name": "eth0"}},
            "network_info": {"podman": {
                "name": "podman",
                "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
                "driver": "bridge",
                "network_interface": "podman0",
                "subnets": [{"subnet": SUBNET, "gateway": GATEWAY}],
                "ipv6_enabled": false,
                "internal": false,
                "dns_enabled": false,
                "ipam_options": {"driver": "host-local"}
            }}
        })
    }

    fn cni(
        &self,
        verb: &str,
        i: usize,
        plugin: &str,
        mut conf: Value,
        prev: Option<Value>,
    ) -> Value {
        if let Some(prev) = prev {
            conf["prevResult"] = prev;
        }
        let mut cmd = Command::new(Path::new(REFERENCE_PLUGINS).join(plugin));
        cmd.env_clear()
            .env("PATH", PATH)
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", format!("{:064x}", i + 1))
            .env("CNI_NETNS", self.container(i))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", REFERENCE_PLUGINS);
        self.run(cmd, conf.to_string().as_bytes())
    }

    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "bench",
            "type": "bridge",
            "bridge": "cni-bench0",
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.dir.join("ipam")
            }
        })
    }

    fn portmap_conf(&self, i: usize) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "bench",
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "snat": true,
            "runtimeConfig": {"portMappings": [{"hostPort": host_port(i), "containerPort": 80, "protocol": "tcp"}]}
        })
    }
}

fn host_port(i: usize) -> u16 {
    30000 + (i % 30000) as u16
}

fn address(i: usize) -> String {
    format!("10.88.{}.{}", 1 + i / 250, 2 + i % 250)
}
