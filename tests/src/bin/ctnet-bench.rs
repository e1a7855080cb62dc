//! ctnet-bench: ctnet's latency against the kernel floor, its cost as
//! sandboxes and ports pile up, concurrency, memory and drift healing, all
//! measured in one run on a fake host of its own with the real daemons.
//!
//!   ctnet-bench            the full run (2000 sandboxes, 10,000 ports)
//!   ctnet-bench --smoke    tiny counts, so the benchmark cannot rot
//!   --out DIR              where results go (default target/bench)
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ctnet_tests::bench::peers::{self, Peer, Tool};
use ctnet_tests::bench::report::{self, Row};
use ctnet_tests::bench::{floor, median, pct, slow};
use ctnet_tests::{netns, pb, req, Stack, HOST_OUTSIDE};
use pb::create_sandbox_request::Mode;
use serde_json::json;

struct Sizes {
    floor: usize,
    e2e: usize,
    /// Reps of ctnet against the peers.
    peers: usize,
    sandboxes: usize,
    window: usize,
    port_sandboxes: usize,
    ports_each: u16,
    ends: usize,
    connects: usize,
    clients: Vec<usize>,
    ops_per_client: usize,
    /// Rounds of 16 clients without and with a slow one.
    slow_rounds: usize,
    heals: usize,
}

impl Sizes {
    fn full() -> Self {
        Sizes {
            floor: 200,
            e2e: 200,
            peers: 100,
            sandboxes: 2000,
            window: 50,
            port_sandboxes: 100,
            ports_each: 100,
            ends: 10,
            connects: 1000,
            clients: vec![1, 4, 16, 64],
            ops_per_client: 256,
            slow_rounds: 4,
            heals: 5,
        }
    }
    fn smoke() -> Self {
        Sizes {
            floor: 5,
            e2e: 5,
            peers: 3,
            sandboxes: 20,
            window: 5,
            port_sandboxes: 4,
            ports_each: 10,
            ends: 2,
            connects: 20,
            clients: vec![1, 4],
            ops_per_client: 8,
            slow_rounds: 1,
            heals: 1,
        }
    }
}

async fn timed_create(st: &mut Stack, r: pb::CreateSandboxRequest) -> (Duration, pb::Sandbox) {
    let t = Instant::now();
    let s = st.client.sandboxes.create_sandbox(r).await.expect("create").into_inner();
    (t.elapsed(), s)
}

async fn timed_delete(st: &mut Stack, id: &str) -> Duration {
    let t = Instant::now();
    st.client
        .sandboxes
        .delete_sandbox(pb::DeleteSandboxRequest { sandbox: id.into() })
        .await
        .expect("delete");
    t.elapsed()
}

/// Deletes many sandboxes with a few clients at once (teardown is RCU-bound).
async fn delete_all(st: &Stack, ids: Vec<String>) {
    let mut tasks = Vec::new();
    for chunk in ids.chunks(ids.len().div_ceil(8).max(1)) {
        let mut c = st.client.sandboxes.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                c.delete_sandbox(pb::DeleteSandboxRequest { sandbox: id }).await.expect("delete");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// VmRSS and VmHWM (peak) of a process, in MB.
/// Builds the request of the i-th sandbox of a benchmark round.
type MakeRequest = Box<dyn Fn(usize) -> pb::CreateSandboxRequest>;

fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// Accepts and drops connections on `port` inside `ns` until the process ends.
fn acceptor(ns: &Path, port: u16) {
    let file = std::fs::File::open(ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        tx.send(()).unwrap();
        for s in l.incoming() {
            drop(s);
        }
    });
    rx.recv().unwrap();
}

/// A thread inside `ns` that times TCP connects on request.
struct Connector {
    tx: std::sync::mpsc::Sender<(SocketAddr, std::sync::mpsc::Sender<Option<Duration>>)>,
}

impl Connector {
    fn new(ns: &Path) -> Self {
        let file = std::fs::File::open(ns).unwrap();
        let (tx, rx) =
            std::sync::mpsc::channel::<(SocketAddr, std::sync::mpsc::Sender<Option<Duration>>)>();
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            for (addr, reply) in rx {
                let t = Instant::now();
                let ok = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
                let _ = reply.send(ok.then(|| t.elapsed()));
            }
        });
        Connector { tx }
    }
    fn connect(&self, addr: SocketAddr) -> Option<Duration> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send((addr, tx)).unwrap();
        rx.recv().unwrap()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let out =
        args.iter().position(|a| a == "--out").map(|i| PathBuf::from(&args[i + 1])).unwrap_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(if smoke {
                    "../target/bench-smoke"
                } else {
                    "../target/bench"
                })
            },
        );
    let mut z = if smoke { Sizes::smoke() } else { Sizes::full() };
    // --sandboxes N: only the scaling run, for profiling.
    let only_scaling =
        args.iter().position(|a| a == "--sandboxes").map(|i| args[i + 1].parse::<usize>().unwrap());
    if let Some(n) = only_scaling {
        z.sandboxes = n;
    }
    std::fs::create_dir_all(&out).unwrap();
    // --dual-stack: only the dual-stack rows.
    if args.iter().any(|a| a == "--dual-stack") {
        let big = vec!["--max-owned-netns".to_string(), "4096".to_string()];
        let mut st =
            Stack::start_with(ctnet_tests::Options { api_args: big, ..Default::default() }).await;
        let (mut rows, mut j) = (Vec::new(), serde_json::Map::new());
        dual_stack(&mut st, z.e2e, z.sandboxes.min(1000), z.window, &mut rows, &mut j).await;
        for r in rows {
            println!("{}: {}", r.what, r.value);
        }
        st.finish().await;
        return;
    }
    // --tenant-flood: only the flood isolation ratio.
    if args.iter().any(|a| a == "--tenant-flood") {
        let (alone, flooded) = tenant_flood(40, 4).await;
        println!(
            "tenant B create p50: alone {alone:.2} ms, flooded {flooded:.2} ms ({:.2}x)",
            flooded / alone
        );
        return;
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut j = serde_json::Map::new();
    // 2,000 sandboxes own their namespaces: above the default bound.
    let big = vec!["--max-owned-netns".to_string(), "4096".to_string()];
    let mut st =
        Stack::start_with(ctnet_tests::Options { api_args: big, ..Default::default() }).await;
    let ext = st.add_external();
    let idle = (rss(st.api_pid()), rss(st.netexec_pid()));

    if only_scaling.is_some() {
        let mut lat = Vec::new();
        for i in 0..z.sandboxes {
            let (d, _) = timed_create(
                &mut st,
                req::published(&format!("s{i}"), &[], &[&format!("{}:80", 20000 + i)]),
            )
            .await;
            lat.push(d);
            if (i + 1) % 100 == 0 {
                println!(
                    "sandboxes {}: create p50 of last 100 {:.2} ms",
                    i + 1,
                    median(&lat[i - 99..=i])
                );
            }
        }
        println!("logs: {}", st.dir.display());
        std::process::exit(0);
    }
    // 1. Floor.
    eprintln!("floor ...");
    let steps = floor::measure(&st.host, &st.dir, z.floor);
    let totals: Vec<Duration> = steps.iter().map(|s| s.total()).collect();
    let floor_p50 = median(&totals);
    let part = |f: fn(&floor::Steps) -> Duration| median(&steps.iter().map(f).collect::<Vec<_>>());
    j.insert("floor_ms".into(), json!({"p50": floor_p50, "netns": part(|s| s.netns), "veth": part(|s| s.veth), "inside": part(|s| s.inside), "nft": part(|s| s.nft)}));
    rows.push(Row {
        what: "floor, p50 (netns + veth + inside + nft element)".into(),
        value: format!("{floor_p50:.2} ms"),
        target: String::new(),
        met: None,
    });

    // 2. End to end, per mode.
    eprintln!("end to end ...");
    st.create(req::bridge("target", &[])).await;
    let mut e2e = serde_json::Map::new();
    let mut bridge_port_p50 = f64::NAN;
    let runtime_dir = st.runtime_dir.clone();
    let modes: Vec<(&str, MakeRequest)> = vec![
        (
            "bridge+port",
            Box::new(|i| req::published(&format!("bp{i}"), &[], &[&format!("{}:80", 40000 + i)])),
        ),
        (
            // The CNI model: the runtime's namespace, pinned outside the
            // timed region; its delete detaches the veth.
            "bridge+port, runtime netns",
            Box::new(move |i| {
                let pin = runtime_dir.join(format!("rt{i}"));
                netns::create_pinned(&pin, || {});
                let mut r = req::published(&format!("rp{i}"), &[], &[&format!("{}:80", 41000 + i)]);
                r.netns_path = Some(pin.display().to_string());
                r
            }),
        ),
        ("bridge", Box::new(|i| req::bridge(&format!("b{i}"), &[]))),
        ("none", Box::new(|i| req::mode(&format!("n{i}"), Mode::None(pb::NoneMode {})))),
        ("host", Box::new(|i| req::mode(&format!("h{i}"), Mode::Host(pb::HostMode {})))),
        (
            "container",
            Box::new(|i| {
                req::mode(
                    &format!("c{i}"),
                    Mode::Container(pb::ContainerMode { target: "target".into() }),
                )
            }),
        ),
    ];
    for (mode, make) in &modes {
        let (mut creates, mut deletes) = (Vec::new(), Vec::new());
        for i in 0..z.e2e {
            let (d, s) = timed_create(&mut st, make(i)).await;
            creates.push(d);
            deletes.push(timed_delete(&mut st, &s.id).await);
        }
        for i in 0..z.e2e {
            let pin = st.runtime_dir.join(format!("rt{i}"));
            if pin.exists() {
                netns::unpin(&pin);
            }
        }
        let (p50, p95, p99) = (pct(&creates, 50.0), pct(&creates, 95.0), pct(&creates, 99.0));
        if *mode == "bridge+port" {
            bridge_port_p50 = p50;
        }
        e2e.insert(mode.to_string(), json!({"create": {"p50": p50, "p95": p95, "p99": p99}, "delete": {"p50": median(&deletes), "p99": pct(&deletes, 99.0)}}));
        rows.push(Row {
            what: format!("create {mode}: p50 / p95 / p99; delete p50"),
            value: format!("{p50:.2} / {p95:.2} / {p99:.2} ms; {:.1} ms", median(&deletes)),
            target: if *mode == "bridge+port" {
                format!("p50 <= 1.3 x floor ({:.2} ms)", 1.3 * floor_p50)
            } else {
                String::new()
            },
            met: (*mode == "bridge+port").then_some(p50 <= 1.3 * floor_p50),
        });
    }
    let (cli_create, cli_delete) = over_cli(&st, z.e2e.min(50));
    e2e.insert(
        "bridge+port, CLI".into(),
        json!({"create": {"p50": cli_create}, "delete": {"p50": cli_delete}}),
    );
    rows.push(Row {
        what: "create bridge+port over the CLI (one `ctnet` exec each): p50; delete p50".into(),
        value: format!("{cli_create:.2} ms; {cli_delete:.2} ms"),
        target: String::new(),
        met: None,
    });
    j.insert("end_to_end_ms".into(), serde_json::Value::Object(e2e));
    let ratio = bridge_port_p50 / floor_p50;
    j.insert("bridge_port_create_over_floor".into(), json!(ratio));

    // 2b. Against the peers, rep by rep.
    eprintln!("against the peers ...");
    against_peers(&mut st, z.peers, &mut rows, &mut notes, &mut j).await;

    // 2c. Dual stack beside IPv4 only.
    eprintln!("dual stack ...");
    dual_stack(&mut st, z.e2e, z.sandboxes.min(1000), z.window, &mut rows, &mut j).await;

    // 3a. Scaling to N sandboxes with one port each, spread over networks
    // (a bridge holds 1023 ports); the floor measured at both ends.
    eprintln!("scaling to {} sandboxes ...", z.sandboxes);
    let nets = z.sandboxes.div_ceil(1000);
    for k in 0..nets {
        let r = req::network(&format!("scale{k}"), &format!("10.{}.0.0/16", 230 + k));
        st.client.networks.create_network(r).await.expect("create network");
    }
    let floor_at = |st: &Stack| {
        median(
            &floor::measure(&st.host, &st.dir, z.window)
                .iter()
                .map(|s| s.total())
                .collect::<Vec<_>>(),
        )
    };
    let floor_first = floor_at(&st);
    let (mut lat, mut ids) = (Vec::new(), Vec::new());
    for i in 0..z.sandboxes {
        let net = format!("scale{}", i % nets);
        let port = format!("{}:80", 20000 + i);
        let (d, s) =
            timed_create(&mut st, req::published(&format!("s{i}"), &[&net], &[&port])).await;
        lat.push(d);
        ids.push(s.id);
    }
    let floor_last = floor_at(&st);
    let first = median(&lat[..z.window]);
    let last = median(&lat[z.sandboxes - z.window..]);
    let full = (rss(st.api_pid()), rss(st.netexec_pid()));
    let chart: Vec<(usize, f64)> =
        lat.chunks(z.window).enumerate().map(|(k, c)| ((k + 1) * z.window, median(c))).collect();
    std::fs::write(
        out.join("create-latency.svg"),
        report::svg(
            &chart,
            "ctnet: bridge create (1 port) p50 per window vs sandboxes on the host",
        ),
    )
    .unwrap();
    let (own_first, own_last) = (first - floor_first, last - floor_last);
    j.insert("scaling".into(), json!({"sandboxes": z.sandboxes, "networks": nets, "first_window_p50_ms": first, "last_window_p50_ms": last, "ratio": last / first, "floor_first_ms": floor_first, "floor_last_ms": floor_last, "own_first_ms": own_first, "own_last_ms": own_last, "windows": chart}));
    let windows = format!("1-{} vs {}-{}", z.window, z.sandboxes - z.window + 1, z.sandboxes);
    rows.push(Row {
        what: format!(
            "ctnet's own cost (create p50 - floor p50 at that population), sandboxes {windows}"
        ),
        value: format!("{own_first:.2} vs {own_last:.2} ms ({:.2}x)", own_last / own_first),
        target: "<= 1.2x".into(),
        met: Some(own_last / own_first <= 1.2),
    });
    rows.push(Row {
        what: format!("raw growth, sandboxes {windows}: create p50; floor p50"),
        value: format!(
            "{first:.2} vs {last:.2} ms ({:.2}x); {floor_first:.2} vs {floor_last:.2} ms ({:.2}x)",
            last / first,
            floor_last / floor_first
        ),
        target: String::new(),
        met: None,
    });
    eprintln!("deleting ...");
    delete_all(&st, std::mem::take(&mut ids)).await;
    for k in 0..nets {
        let r = pb::DeleteNetworkRequest { network: format!("scale{k}") };
        st.client.networks.delete_network(r).await.expect("delete network");
    }

    // 3b. 10,000 ports, and connect time with few and many mappings.
    eprintln!("{} ports ...", z.port_sandboxes * z.ports_each as usize);
    let mut plat = Vec::new();
    for k in 0..z.port_sandboxes {
        let base = 10000 + k as u16 * z.ports_each;
        let spec = format!("{base}-{}:1000-{}", base + z.ports_each - 1, 1000 + z.ports_each - 1);
        let (d, s) = timed_create(&mut st, req::published(&format!("p{k}"), &[], &[&spec])).await;
        plat.push(d);
        ids.push(s.id);
    }
    let (pf, pl) = (median(&plat[..z.ends]), median(&plat[z.port_sandboxes - z.ends..]));
    rows.push(Row {
        what: format!("create with {} ports: first {} vs last {}", z.ports_each, z.ends, z.ends),
        value: format!("{pf:.2} vs {pl:.2} ms ({:.2}x)", pl / pf),
        target: "<= 1.2x".into(),
        met: Some(pl / pf <= 1.2),
    });
    // A second fake host with only 10 mappings; connects interleaved.
    let mut few = Stack::start().await;
    let few_ext = few.add_external();
    let few_s = few.create(req::published("few", &[], &["10000-10009:1000-1009"])).await;
    let many_s = st.get(&format!("p{}", z.port_sandboxes - 1)).await;
    acceptor(&Stack::pin_of(&few_s), 1000);
    acceptor(&Stack::pin_of(&many_s), 1000);
    let (cf, cm) = (Connector::new(&few_ext.pin), Connector::new(&ext.pin));
    let many_port =
        many_s.ports.iter().find(|p| p.container_port == 1000).unwrap().host_port as u16;
    let (mut t_few, mut t_many) = (Vec::new(), Vec::new());
    for _ in 0..z.connects {
        t_few.extend(cf.connect(SocketAddr::from((HOST_OUTSIDE, 10000))));
        t_many.extend(cm.connect(SocketAddr::from((HOST_OUTSIDE, many_port))));
    }
    let (c10, c10k) = (median(&t_few), median(&t_many));
    let mappings = z.port_sandboxes * z.ports_each as usize;
    j.insert("ports".into(), json!({"mappings": mappings, "first_creates_p50_ms": pf, "last_creates_p50_ms": pl, "connect_ms_10": c10, "connect_ms_many": c10k, "samples": t_few.len().min(t_many.len())}));
    rows.push(Row {
        what: format!(
            "TCP connect to a published port, 10 vs {mappings} mappings (p50, {} samples each)",
            t_few.len()
        ),
        value: format!("{:.3} vs {:.3} ms ({:.2}x)", c10, c10k, c10k / c10),
        target: "<= 1.1x".into(),
        met: Some(c10k / c10 <= 1.1),
    });
    few.delete("few").await;
    few.finish().await;
    delete_all(&st, std::mem::take(&mut ids)).await;

    // 4. Concurrency, against the floor's create+delete pairs on 2 threads.
    eprintln!("concurrency ...");
    let floor2 = floor::throughput(&st.host, &st.dir, 2, z.ops_per_client);
    let mut conc = serde_json::Map::new();
    conc.insert("floor_2_threads_ops_per_s".into(), json!(floor2));
    rows.push(Row {
        what: "floor, 2 threads: ops/s (create+delete pairs, no port)".into(),
        value: format!("{floor2:.1}/s"),
        target: String::new(),
        met: None,
    });
    for &clients in &z.clients {
        let (ops_s, lat) = clients_run(&st, clients, z.ops_per_client, "k").await;
        let (p50, p99) = (median(&lat), pct(&lat, 99.0));
        conc.insert(
            clients.to_string(),
            json!({"ops_per_s": ops_s, "create_p50_ms": p50, "create_p99_ms": p99}),
        );
        let (target, met) = if clients == 64 {
            // The figure for the commit it was filed against: 642/s.
            let want = (2.0 * 642.0_f64).max(0.7 * floor2);
            (
                format!(">= 2 x 642/s and >= 0.7 x floor ({want:.0}/s); p99 <= 4 x p50"),
                Some(ops_s >= want && p99 <= 4.0 * p50),
            )
        } else {
            (String::new(), None)
        };
        rows.push(Row {
            what: format!("{clients} clients: ops/s (create+delete), create p50 / p99"),
            value: format!("{ops_s:.1}/s ({:.2}x floor), {p50:.2} / {p99:.2} ms", ops_s / floor2),
            target,
            met,
        });
    }
    let (alone, beside) = with_a_slow_client(&st, z.slow_rounds, z.ops_per_client / 4).await;
    conc.insert("slow_client".into(), json!({"p99_alone_ms": alone, "p99_beside_slow_ms": beside}));
    rows.push(Row {
        what: "16 clients' create p99: alone vs beside one slow client (16 B per 2 ms each way)"
            .into(),
        value: format!("{alone:.2} vs {beside:.2} ms ({:.2}x)", beside / alone),
        target: "<= 1.5x".into(),
        met: Some(beside / alone <= 1.5),
    });
    j.insert("concurrency".into(), serde_json::Value::Object(conc));

    // 5. Memory.
    j.insert("memory_mb".into(), json!({"api_idle": idle.0, "netexec_idle": idle.1, "api_full": full.0, "netexec_full": full.1}));
    rows.push(Row {
        what: format!("peak RSS with {} sandboxes: ctnet-api / ctnet-netexec", z.sandboxes),
        value: format!(
            "{:.1} / {:.1} MB (idle {:.1} / {:.1})",
            full.0 .1, full.1 .1, idle.0 .0, idle.1 .0
        ),
        target: "<= 50 / <= 30 MB".into(),
        met: Some(full.0 .1 <= 50.0 && full.1 .1 <= 30.0),
    });

    // 6. Healing after `nft flush ruleset`.
    eprintln!("healing ...");
    let s = st.create(req::published("heal", &[], &["8080:80"])).await;
    acceptor(&Stack::pin_of(&s), 80);
    let mut heals = Vec::new();
    for _ in 0..z.heals {
        st.flush_ruleset();
        let t = Instant::now();
        while cm.connect(SocketAddr::from((HOST_OUTSIDE, 8080))).is_none() {
            assert!(t.elapsed() < Duration::from_secs(30), "never healed");
        }
        heals.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let heal = median(&heals);
    j.insert("healing_ms".into(), json!(heal));
    rows.push(Row {
        what: "ports working again after `nft flush ruleset` (p50)".into(),
        value: format!("{heal:.1} ms"),
        target: "<= 1000 ms".into(),
        met: Some(heal <= 1000.0),
    });
    st.delete("heal").await;
    st.delete("target").await;

    // 7. Where the time of one bridge create goes.
    let commit = redb_commit(&st.dir, if smoke { 10 } else { 200 });
    let kernel = floor_p50;
    let other = bridge_port_p50 - kernel - 2.0 * commit;
    j.insert("breakdown_ms".into(), json!({"netns": part(|s| s.netns), "veth": part(|s| s.veth), "inside": part(|s| s.inside), "nft": part(|s| s.nft), "store_commits_2x": 2.0 * commit, "grpc_validation_bookkeeping": other, "total_p50": bridge_port_p50}));
    rows.push(Row {
        what: "one bridge+port create: netns / veth / inside / nft / 2 store commits / rest".into(),
        value: format!(
            "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} / {:.2} ms",
            part(|s| s.netns),
            part(|s| s.veth),
            part(|s| s.inside),
            part(|s| s.nft),
            2.0 * commit,
            other
        ),
        target: String::new(),
        met: None,
    });
    st.finish().await;

    // 8. Flood isolation: tenant beta's creates alone, then while tenant
    // alpha floods (8 clients retrying at once), in rounds, interleaved.
    eprintln!("tenant flood ...");
    let (alone, flooded) =
        tenant_flood(if smoke { 5 } else { 40 }, if smoke { 1 } else { 4 }).await;
    let ratio = flooded / alone;
    j.insert(
        "tenant_flood_ms".into(),
        json!({"beta_alone_p50": alone, "beta_flooded_p50": flooded, "ratio": ratio}),
    );
    rows.push(Row {
        what: "tenant B create p50: alone vs while tenant A floods (8 clients)".into(),
        value: format!("{alone:.2} vs {flooded:.2} ms ({ratio:.2}x)"),
        target: "<= 1.5x".into(),
        met: Some(ratio <= 1.5),
    });

    let machine = format!(
        "{} cores, kernel {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        kernel_release()
    );
    let command = if smoke {
        "cargo run --release -p ctnet-tests --bin ctnet-bench -- --smoke"
    } else {
        "scripts/bench.sh"
    };
    j.insert("machine".into(), json!(machine));
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(j)).unwrap(),
    )
    .unwrap();
    let mut md = report::markdown(&rows, &machine, command);
    for n in &notes {
        md.push_str(&format!("\n{n}\n"));
    }
    std::fs::write(out.join("results.md"), &md).unwrap();
    println!("{md}");
    println!("written to {}", out.display());
}

/// Beta's create p50 alone and while alpha floods, over `rounds` rounds
/// of `n` creates each way, on a fake host of its own.
/// Dual stack against IPv4 only, interleaved rep by rep: a bridge create
/// with one published port on each kind of network; then `n` sandboxes
/// with a port each on a dual-stack network, its first window against its
/// last.
async fn dual_stack(
    st: &mut Stack,
    reps: usize,
    n: usize,
    window: usize,
    rows: &mut Vec<Row>,
    j: &mut serde_json::Map<String, serde_json::Value>,
) {
    let v4 = req::network("v4only", "10.250.0.0/16");
    let ds = pb::CreateNetworkRequest {
        ipv6_subnet: Some("2001:db8:b0::/64".into()),
        ..req::network("dual", "10.251.0.0/16")
    };
    for r in [v4, ds] {
        st.client.networks.create_network(r).await.expect("create network");
    }
    let (mut only4, mut dual) = (Vec::new(), Vec::new());
    for i in 0..reps {
        for (net, base, lat) in [("v4only", 45000, &mut only4), ("dual", 46000, &mut dual)] {
            let r = req::published(&format!("{net}{i}"), &[net], &[&format!("{}:80", base + i)]);
            let (d, s) = timed_create(st, r).await;
            lat.push(d);
            timed_delete(st, &s.id).await;
        }
    }
    let (a, b) = (median(&only4), median(&dual));
    rows.push(Row {
        what: "create bridge+port (interleaved): IPv4-only vs dual-stack network, p50".into(),
        value: format!("{a:.2} vs {b:.2} ms ({:.2}x)", b / a),
        target: String::new(),
        met: None,
    });
    // Growth to n on each kind of network, interleaved create by create
    // (the IPv4-only network is the same-run baseline at the same host
    // population).
    let nets = [("v4only", 22000), ("dual", 47000)];
    let (mut lats, mut ids) = ([Vec::new(), Vec::new()], Vec::new());
    for i in 0..n {
        for (k, (net, base)) in nets.iter().enumerate() {
            let r = req::published(&format!("g{net}{i}"), &[net], &[&format!("{}:80", base + i)]);
            let (d, s) = timed_create(st, r).await;
            lats[k].push(d);
            ids.push(s.id);
        }
    }
    let mut scaling = serde_json::Map::new();
    for ((net, _), lat) in nets.iter().zip(&lats) {
        let (first, last) = (median(&lat[..window]), median(&lat[n - window..]));
        rows.push(Row {
            what: format!(
                "{net} network, create bridge+port p50: sandboxes 1-{window} vs {}-{n}",
                n - window + 1
            ),
            value: format!("{first:.2} vs {last:.2} ms ({:.2}x)", last / first),
            target: String::new(),
            met: None,
        });
        scaling.insert(
            net.to_string(),
            json!({"sandboxes": n, "first_window_p50_ms": first, "last_window_p50_ms": last}),
        );
    }
    delete_all(st, ids).await;
    st.wait_for_releases();
    j.insert(
        "dual_stack".into(),
        json!({"create_p50_ipv4_only_ms": a, "create_p50_dual_ms": b, "scaling": scaling}),
    );
    for net in ["v4only", "dual"] {
        let r = pb::DeleteNetworkRequest { network: net.into() };
        st.client.networks.delete_network(r).await.expect("delete network");
    }
}

async fn tenant_flood(n: usize, rounds: usize) -> (f64, f64) {
    use ctnet_tests::flood::{self, Flood};
    let f = Flood::new();
    let st = Stack::start_with(f.options()).await;
    let mut beta = ctnet_tests::remote::grpc_client(&st.host, &f.beta).await.unwrap();
    let (mut alone, mut flooded) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        alone.extend(flood::serial_creates(&mut beta, &format!("alone{r}"), n).await);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let measured = async {
            let _stop = flood::StopOnDrop(stop.clone());
            tokio::time::sleep(Duration::from_millis(200)).await;
            flood::serial_creates(&mut beta, &format!("flood{r}"), n).await
        };
        let flooding = flood::flood(&st.host, &f.alpha, 8, stop.clone());
        let (t, _) = tokio::join!(measured, flooding);
        flooded.extend(t);
        flood::clean_up(&st).await;
    }
    st.finish().await;
    (median(&alone), median(&flooded))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// Median of durable redb commits (one small record each), as ctnet-api makes them.
fn redb_commit(dir: &Path, n: usize) -> f64 {
    const T: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("bench");
    let db = redb::Database::create(dir.join("bench.redb")).unwrap();
    let mut times = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(format!("k{i}").as_str(), [0u8; 512].as_slice()).unwrap();
        txn.commit().unwrap();
        times.push(t.elapsed());
    }
    let _ = netns::mounts_under(dir);
    median(&times)
}

/// Create and delete p50 of bridge+port sandboxes made with the CLI, one
/// `ctnet` exec per call (connecting each time), as scripts use it.
fn over_cli(st: &Stack, n: usize) -> (f64, f64) {
    let ctnet = |args: &[&str]| {
        let t = Instant::now();
        let out = Command::new(ctnet_tests::bin("ctnet"))
            .env("CTNET_HOST", &st.api_socket)
            .args(args)
            .output()
            .expect("run ctnet");
        assert!(out.status.success(), "ctnet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        t.elapsed()
    };
    let (mut creates, mut deletes) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (name, port) = (format!("cli{i}"), format!("{}:80", 44000 + i));
        creates.push(ctnet(&["sandbox", "create", "--name", &name, "--publish", &port]));
        deletes.push(ctnet(&["sandbox", "rm", &name]));
    }
    (median(&creates), median(&deletes))
}

/// ctnet against netavark 1.4 (both iptables backends), the CNI chain and
/// a bare spawn, interleaved rep by rep, each tool in a fake host of its
/// own holding one resident container; only the tools' own work is timed.
async fn against_peers(
    st: &mut Stack,
    reps: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    j: &mut serde_json::Map<String, serde_json::Value>,
) {
    if !peers::installed() {
        rows.push(Row {
            what: "peers".into(),
            value: "not installed: scripts/deps.sh installs netavark, iptables and the CNI plugins"
                .into(),
            target: String::new(),
            met: None,
        });
        return;
    }
    let tools: Vec<Peer> = Tool::ALL.iter().map(|t| Peer::start(*t, &st.dir)).collect();
    for p in &tools {
        p.setup(0);
    }
    st.create(req::published("resident", &[], &["42999:80"])).await;
    let (owned, runtime) = ("ctnet", "ctnet, runtime netns");
    let mut setup: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    let mut teardown = setup.clone();
    for i in 1..=reps {
        let own = req::published(&format!("vs{i}"), &[], &[&format!("{}:80", 42000 + i)]);
        let (d, own) = timed_create(st, own).await;
        setup.entry(owned).or_default().push(d);
        let pin = st.runtime_dir.join(format!("vsrt{i}"));
        netns::create_pinned(&pin, || {});
        let mut rt = req::published(&format!("vr{i}"), &[], &[&format!("{}:80", 43000 + i)]);
        rt.netns_path = Some(pin.display().to_string());
        let (d, rt) = timed_create(st, rt).await;
        setup.entry(runtime).or_default().push(d);
        for p in &tools {
            setup.entry(p.tool.name()).or_default().push(p.setup(i));
        }
        teardown.entry(owned).or_default().push(timed_delete(st, &own.id).await);
        teardown.entry(runtime).or_default().push(timed_delete(st, &rt.id).await);
        netns::unpin(&pin);
        for p in &tools {
            teardown.entry(p.tool.name()).or_default().push(p.teardown(i));
        }
    }
    notes.push("Peers, exactly as run (each in a fake host of its own):".into());
    for p in tools {
        p.teardown(0);
        notes.push(format!("- {}: `{}`", p.tool.name(), p.commands()));
        p.finish();
    }
    st.delete("resident").await;
    let p50 = |m: &std::collections::BTreeMap<&str, Vec<Duration>>, k: &str| median(&m[k]);
    let mut peer_rows = serde_json::Map::new();
    for (k, v) in &setup {
        peer_rows.insert(
            k.to_string(),
            json!({"setup_p50_ms": median(v), "teardown_p50_ms": median(&teardown[k])}),
        );
        rows.push(Row {
            what: format!("{k}: setup p50 / teardown p50 ({reps} reps, interleaved)"),
            value: format!("{:.2} / {:.2} ms", median(v), median(&teardown[k])),
            target: String::new(),
            met: None,
        });
    }
    j.insert("peers_ms".into(), serde_json::Value::Object(peer_rows));
    let create = p50(&setup, owned);
    let mut ratio = |what: String, ours: f64, theirs: f64, max: f64| {
        rows.push(Row {
            what,
            value: format!("{:.3}x ({ours:.2} vs {theirs:.2} ms)", ours / theirs),
            target: format!("<= {max}x"),
            met: Some(ours / theirs <= max),
        });
    };
    for (tool, max) in
        [(Tool::NetavarkLegacy, 0.12), (Tool::NetavarkNft, 0.12), (Tool::CniChain, 0.08)]
    {
        let theirs = p50(&setup, tool.name());
        ratio(format!("bridge+port create / {} setup", tool.name()), create, theirs, max);
    }
    let legacy = p50(&teardown, Tool::NetavarkLegacy.name());
    for who in [owned, runtime] {
        let what = format!("delete ({who}) / netavark 1.4 iptables-legacy teardown");
        ratio(what, p50(&teardown, who), legacy, 0.15);
    }
}

/// `clients` clients, each creating and deleting bridge sandboxes (no
/// ports) in turn: operations per second and every create's latency.
async fn clients_run(st: &Stack, clients: usize, ops: usize, tag: &str) -> (f64, Vec<Duration>) {
    let t = Instant::now();
    let each = (ops / clients).max(2);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut cl = st.client.sandboxes.clone();
        let tag = format!("{tag}{clients}-{c}");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..each {
                let t = Instant::now();
                let r = req::bridge(&format!("{tag}-{i}"), &[]);
                let s = cl.create_sandbox(r).await.unwrap().into_inner();
                lat.push(t.elapsed());
                cl.delete_sandbox(pb::DeleteSandboxRequest { sandbox: s.id }).await.unwrap();
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    ((2 * clients * each) as f64 / t.elapsed().as_secs_f64(), lat)
}

/// The create p99 of 16 clients alone and beside one client on a slow
/// link (bench/slow.rs), in alternating rounds.
async fn with_a_slow_client(st: &Stack, rounds: usize, ops: usize) -> (f64, f64) {
    let link = st.dir.join("slow.sock");
    let proxy = slow::proxy(&link, &st.api_socket);
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        alone.extend(clients_run(st, 16, ops, &format!("a{r}-")).await.1);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut c = ctnet_client::connect(&link.display().to_string()).await.expect("slow link");
        let halt = stop.clone();
        let slow = tokio::spawn(async move {
            let mut n = 0;
            while !halt.load(std::sync::atomic::Ordering::SeqCst) {
                let r = req::bridge(&format!("slow{r}-{n}"), &[]);
                let s = c.sandboxes.create_sandbox(r).await.expect("slow create").into_inner();
                let d = pb::DeleteSandboxRequest { sandbox: s.id };
                c.sandboxes.delete_sandbox(d).await.expect("slow delete");
                n += 1;
            }
        });
        beside.extend(clients_run(st, 16, ops, &format!("b{r}-")).await.1);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        slow.await.unwrap();
    }
    proxy.abort();
    let _ = std::fs::remove_file(&link);
    (pct(&alone, 99.0), pct(&beside, 99.0))
}
