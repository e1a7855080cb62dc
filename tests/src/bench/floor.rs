//! The physical floor of a bridge sandbox: the kernel work it needs, done by
//! the shortest code path, in-process, no gRPC, no store. The same steps as
//! netexec: unshare + pin on a dedicated thread; one RTM_NEWLINK creating the
//! veth with its peer born in the namespace as eth0, the host end up on the
//! bridge; inside, lo up, address, link up, default route; one port-map
//! element as one nf_tables batch over a socket kept open (what netexec
//! does, with its own encoder).
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctnet_netexec::firewall::element::{Element, Part};
use ctnet_netexec::firewall::{nfnl, Proto};
use futures_util::TryStreamExt;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

/// Per-step durations of one floor iteration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    pub netns: Duration,
    pub veth: Duration,
    pub inside: Duration,
    pub nft: Duration,
}

impl Steps {
    pub fn total(&self) -> Duration {
        self.netns + self.veth + self.inside + self.nft
    }
}

/// One floor sequence's own bridge, table and addresses, so that several
/// can run at once in one fake host: lane n has 198.19.(64 n).0/18.
#[derive(Clone, Copy)]
struct Lane {
    n: u8,
    /// Whether an iteration adds the port element.
    port: bool,
}

impl Lane {
    fn name(self) -> String {
        format!("ctfloor{}", self.n)
    }
    fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, 64 * self.n, 1)
    }
    fn address(self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, 64 * self.n + 1 + (i / 250) as u8, 2 + (i % 250) as u8)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn handle() -> Handle {
    let (conn, handle, _) = rtnetlink::new_connection().unwrap();
    tokio::spawn(conn);
    handle
}

async fn index_of(h: &Handle, name: &str) -> u32 {
    let mut l = h.link().get().match_name(name.to_string()).execute();
    l.try_next().await.unwrap().unwrap().header.index
}

fn nft(script: &str) {
    let mut child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft: {script}");
}

/// Runs `iterations` floor sequences inside the fake host `host`, pinning
/// under `dir`; returns each iteration's steps. Cleans up after itself.
pub fn measure(host: &Path, dir: &Path, iterations: usize) -> Vec<Steps> {
    in_lane(host, dir, Lane { n: 0, port: true }, iterations)
}

/// Create+delete pairs (no port) on `threads` threads at once, each doing
/// `iterations`: operations (a create or a delete) per second.
pub fn throughput(host: &Path, dir: &Path, threads: u8, iterations: usize) -> f64 {
    let t = Instant::now();
    let lanes: Vec<_> = (0..threads)
        .map(|n| {
            let (host, dir) = (host.to_path_buf(), dir.to_path_buf());
            std::thread::spawn(move || in_lane(&host, &dir, Lane { n, port: false }, iterations))
        })
        .collect();
    for lane in lanes {
        lane.join().unwrap();
    }
    (2 * threads as usize * iterations) as f64 / t.elapsed().as_secs_f64()
}

fn in_lane(host: &Path, dir: &Path, lane: Lane, iterations: usize) -> Vec<Steps> {
    let (host, dir) = (host.to_path_buf(), dir.to_path_buf());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&host).unwrap();
        setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        runtime().block_on(run(lane, dir, iterations))
    })
    .join()
    .unwrap()
}

async fn run(lane: Lane, dir: PathBuf, iterations: usize) -> Vec<Steps> {
    let h = handle().await;
    let name = lane.name();
    h.link().add(LinkBridge::new(&name).up().build()).execute().await.unwrap();
    let br = index_of(&h, &name).await;
    h.address().add(br, IpAddr::V4(lane.gateway()), 18).execute().await.unwrap();
    nft(&format!("table inet {name} {{\n map ports_any {{\n type inet_proto . inet_service : ipv4_addr . inet_service\n }}\n}}\n"));
    let mut nl = nfnl::Socket::open().unwrap();
    let mut out = Vec::with_capacity(iterations);
    for i in 0..iterations {
        out.push(iteration(&h, &mut nl, br, lane, &dir, i).await);
    }
    nft(&format!("delete table inet {name}\n"));
    h.link().del(br).execute().await.unwrap();
    out
}

async fn iteration(
    h: &Handle,
    nl: &mut nfnl::Socket,
    br: u32,
    lane: Lane,
    dir: &Path,
    i: usize,
) -> Steps {
    let pin = dir.join(format!("floor-{}-{i}", lane.n));
    let addr = lane.address(i);
    let host_end = format!("ctf{}-{i}", lane.n);
    let gateway = lane.gateway();
    let mut s = Steps::default();

    let t = Instant::now();
    let p = pin.clone();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        std::fs::File::create(&p).unwrap();
        mount(Some("/proc/thread-self/ns/net"), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .unwrap();
    })
    .join()
    .unwrap();
    s.netns = t.elapsed();

    let t = Instant::now();
    let ns = std::fs::File::open(&pin).unwrap();
    let o = addr.octets();
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0".to_string())
        .address(vec![2, 0x42, o[0], o[1], o[2], o[3]])
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(host_end.clone())
        .controller(br)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link().add(msg).execute().await.unwrap();
    s.veth = t.elapsed();

    let t = Instant::now();
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        runtime().block_on(async move {
            let h = handle().await;
            h.link().set(LinkUnspec::new_with_name("lo").up().build()).execute().await.unwrap();
            let eth0 = index_of(&h, "eth0").await;
            h.address().add(eth0, IpAddr::V4(addr), 18).execute().await.unwrap();
            h.link().set(LinkUnspec::new_with_index(eth0).up().build()).execute().await.unwrap();
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(eth0)
                .build();
            h.route().add(route).execute().await.unwrap();
        })
    })
    .join()
    .unwrap();
    s.inside = t.elapsed();

    let t = Instant::now();
    if lane.port {
        add_port(nl, &lane.name(), addr, i);
    }
    s.nft = t.elapsed();

    let idx = index_of(h, &host_end).await;
    h.link().del(idx).execute().await.unwrap();
    umount2(&pin, MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_file(&pin).unwrap();
    s
}

/// One port-map element as one nf_tables batch.
fn add_port(nl: &mut nfnl::Socket, table: &str, addr: Ipv4Addr, i: usize) {
    let element = Element {
        set: "ports_any",
        key: vec![Part::Proto(Proto::Tcp), Part::Port(30000 + i as u16)],
        data: vec![Part::Ip(addr), Part::Port(80)],
        comment: None,
    };
    let mut batch = nl.batch();
    batch.add_to_inet_table(table, &element);
    assert_eq!(nl.commit(batch).unwrap(), nfnl::Outcome::Committed);
}
