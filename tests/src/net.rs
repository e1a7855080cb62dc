//! Traffic and kernel state, each inside a given namespace: TCP round trips,
//! pings, and `ip -j` read-backs (netlink, not /sys).
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::netns::run_in;

/// A TCP echo server on a thread inside `ns`, serving `conns` connections.
pub struct Echo {
    pub port: u16,
    thread: Option<JoinHandle<Vec<SocketAddr>>>,
}

impl Echo {
    /// On an ephemeral port.
    pub fn start(ns: &Path, addr: impl Into<IpAddr>, conns: usize) -> Echo {
        Self::start_on(ns, addr, 0, conns)
    }

    pub fn start_on(ns: &Path, addr: impl Into<IpAddr>, port: u16, conns: usize) -> Echo {
        let addr = addr.into();
        let (tx, rx) = mpsc::channel();
        let file = std::fs::File::open(ns).expect("open netns");
        let thread = std::thread::spawn(move || {
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&file),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .expect("setns");
            let l = bind_retrying(|| TcpListener::bind((addr, port)));
            tx.send(l.local_addr().unwrap().port()).unwrap();
            let mut peers = Vec::new();
            for _ in 0..conns {
                let (mut s, peer) = l.accept().expect("accept");
                peers.push(peer);
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).unwrap_or(0);
                let _ = s.write_all(&buf[..n]);
            }
            peers
        });
        Echo { port: rx.recv().expect("echo port"), thread: Some(thread) }
    }

    /// Waits for the served connections; returns the peers seen.
    pub fn peers(mut self) -> Vec<SocketAddr> {
        self.thread.take().unwrap().join().expect("echo thread")
    }
}

/// A fixed port can still be held by the previous test connection's
/// closing socket (FIN_WAIT2) for a moment: retry EADDRINUSE briefly.
fn bind_retrying<T>(bind: impl Fn() -> std::io::Result<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match bind() {
            Ok(s) => return s,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("bind: {e}"),
        }
    }
}

/// Connects from inside `ns`, sends `msg`, returns the reply (or the error).
pub fn tcp_roundtrip(
    ns: &Path,
    addr: impl Into<IpAddr>,
    port: u16,
    msg: &str,
) -> Result<String, String> {
    let (addr, msg) = (addr.into(), msg.to_string());
    run_in(ns, move || {
        let sa = SocketAddr::from((addr, port));
        let mut s =
            TcpStream::connect_timeout(&sa, Duration::from_secs(3)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// One ICMP echo from inside `ns`, waiting at most `secs` seconds.
pub fn ping(ns: &Path, addr: impl Into<IpAddr>, secs: u32) -> bool {
    let addr = addr.into();
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ping", "-n", "-q", "-c", "1", "-W", &secs.to_string(), &addr.to_string()])
        .output()
        .expect("run ping (apt install iputils-ping)")
        .status
        .success()
}

/// `ip -j ARGS` inside `ns`.
pub fn ip_json(ns: &Path, args: &[&str]) -> Value {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]))
}

/// Names of the links in `ns`.
pub fn link_names(ns: &Path) -> Vec<String> {
    let links = ip_json(ns, &["link", "show"]);
    let mut names: Vec<String> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The link named `name` in `ns`, with details (kind, master, alias).
pub fn link(ns: &Path, name: &str) -> Option<Value> {
    let links = ip_json(ns, &["-d", "link", "show"]);
    links.as_array().unwrap().iter().find(|l| l["ifname"] == name).cloned()
}

/// The global IPv6 addresses on `dev` in `ns`, as `ip -j` prints them
/// (with their flags, e.g. "tentative": true).
pub fn addresses6(ns: &Path, dev: &str) -> Vec<Value> {
    let a = ip_json(ns, &["-6", "addr", "show", "dev", dev, "scope", "global"]);
    let all = a[0]["addr_info"].as_array().cloned().unwrap_or_default();
    // ip -j prints the filtered-out ones as empty objects.
    all.into_iter().filter(|i| i.get("local").is_some()).collect()
}

/// "ADDR/len" of each global IPv6 address on `dev` in `ns`.
pub fn addresses6_text(ns: &Path, dev: &str) -> Vec<String> {
    let one = |i: &Value| format!("{}/{}", i["local"].as_str().unwrap_or_default(), i["prefixlen"]);
    addresses6(ns, dev).iter().map(one).collect()
}

/// IPv6 routes of the main table in `ns`.
pub fn routes6(ns: &Path) -> Vec<Value> {
    ip_json(ns, &["-6", "route", "show"]).as_array().cloned().unwrap_or_default()
}

/// IPv4 addresses with prefix on `dev` in `ns`, e.g. "198.18.0.2/16".
pub fn addresses(ns: &Path, dev: &str) -> Vec<String> {
    let a = ip_json(ns, &["-4", "addr", "show", "dev", dev]);
    a[0]["addr_info"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

/// IPv4 routes of the main table in `ns`.
pub fn routes(ns: &Path) -> Vec<Value> {
    ip_json(ns, &["-4", "route", "show"]).as_array().unwrap().clone()
}

/// True when `ns` holds no link with ctnet's veth prefix.
pub fn host_veths_is_empty(ns: &Path) -> bool {
    link_names(ns).iter().all(|n| !n.starts_with("ctv"))
}

/// `ip ARGS` inside `ns`; panics on failure.
pub fn ip_do(ns: &Path, args: &[&str]) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Elements of set or map `name` in ctnet's tables inside `ns` (the
/// anti-spoofing sets are in table bridge ctnet, the rest in inet ctnet).
pub fn nft_elements(ns: &Path, name: &str) -> Vec<Value> {
    let kind = if name.starts_with("ports_") { "map" } else { "set" };
    let family = if name.starts_with("guard") { "bridge" } else { "inet" };
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["nft", "-j", "list", kind, family, "ctnet", name])
        .output()
        .expect("run nft");
    assert!(out.status.success(), "nft list {name}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get(kind))
        .and_then(|m| m.get("elem").cloned())
        .and_then(|e| e.as_array().cloned())
        .unwrap_or_default()
}

/// Names of the nft tables in `ns`.
pub fn nft_tables(ns: &Path) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["nft", "list", "tables"])
        .output()
        .expect("run nft");
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// A UDP echo server on a thread inside `ns`: echoes datagrams until it has
/// seen `count` of them or `secs` pass; returns the senders seen.
pub struct UdpEcho {
    pub port: u16,
    thread: Option<JoinHandle<Vec<SocketAddr>>>,
}

impl UdpEcho {
    pub fn start(
        ns: &Path,
        addr: impl Into<IpAddr>,
        port: u16,
        count: usize,
        secs: u64,
    ) -> UdpEcho {
        let addr = addr.into();
        let (tx, rx) = mpsc::channel();
        let file = std::fs::File::open(ns).expect("open netns");
        let thread = std::thread::spawn(move || {
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&file),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .expect("setns");
            let s = bind_retrying(|| std::net::UdpSocket::bind((addr, port)));
            tx.send(s.local_addr().unwrap().port()).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(secs);
            let mut peers = Vec::new();
            let mut buf = [0u8; 512];
            while peers.len() < count && std::time::Instant::now() < deadline {
                if let Ok((n, peer)) = s.recv_from(&mut buf) {
                    peers.push(peer);
                    let _ = s.send_to(&buf[..n], peer);
                }
            }
            peers
        });
        UdpEcho { port: rx.recv().expect("udp port"), thread: Some(thread) }
    }

    pub fn peers(mut self) -> Vec<SocketAddr> {
        self.thread.take().unwrap().join().expect("udp echo thread")
    }
}

/// Sends one datagram from inside `ns` and waits for the echo.
pub fn udp_roundtrip(
    ns: &Path,
    addr: impl Into<IpAddr>,
    port: u16,
    msg: &str,
) -> Result<String, String> {
    let (addr, msg) = (addr.into(), msg.to_string());
    run_in(ns, move || {
        let any = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        let s = std::net::UdpSocket::bind((any, 0)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 512];
        for _ in 0..4 {
            s.send_to(msg.as_bytes(), (addr, port)).map_err(|e| e.to_string())?;
            if let Ok(n) = s.recv(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err("no UDP reply".into())
    })
}

/// The comment (owner tag) of a set or map element as nft -j prints it: a
/// map element is [key, value] with the comment on the key.
pub fn element_comment(e: &Value) -> String {
    let key = if e.is_array() { &e[0] } else { e };
    key["elem"]["comment"].as_str().unwrap_or_default().to_string()
}

/// The host port of a `ports_*` map element as nft -j prints it: the key is
/// the concatenation `proto . host_port` (with a comment, wrapped in "elem").
pub fn element_host_port(e: &Value) -> u32 {
    fn concat(v: &Value) -> Option<&Vec<Value>> {
        v.get("concat").and_then(Value::as_array).or_else(|| {
            let inner = v.get("elem").and_then(|e| e.get("val"))?;
            concat(inner)
        })
    }
    let key = if e.is_array() { &e[0] } else { e };
    let parts = concat(key).unwrap_or_else(|| panic!("no proto . port key in {e}"));
    let port = parts.iter().find_map(Value::as_u64).unwrap_or_else(|| panic!("no port in {e}"));
    port as u32
}
