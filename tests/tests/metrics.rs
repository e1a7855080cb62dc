//! Metrics: a real Prometheus (Debian's) in the fake host scrapes
//! ctnet-api's endpoint on loopback after a scenario, and PromQL returns
//! what the scenario implies: the create count, a latency quantile, the
//! default network's IPAM usage, ports in use, netexec up.
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ctnet_tests::{netns, pb, req, Options, Stack};
use serde_json::Value;

const METRICS: &str = "127.0.0.1:9464";
const PROMETHEUS: &str = "127.0.0.1:9090";

/// One HTTP GET inside `ns`: the status line's code and the body.
fn get(ns: &Path, addr: &'static str, path: String) -> Option<(u16, String)> {
    netns::run_in(ns, move || {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let (head, body) = reply.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    })
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant PromQL query with one result, if it has one.
fn query(ns: &Path, q: &str) -> Option<f64> {
    let (code, body) = get(ns, PROMETHEUS, format!("/api/v1/query?query={}", encode(q)))?;
    let v: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    let result = v["data"]["result"].as_array()?;
    let [one] = result.as_slice() else { return None };
    one["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn prometheus_scrapes_what_the_scenario_implies() {
    let opts =
        Options { api_args: vec!["--metrics-listen".into(), METRICS.into()], ..Default::default() };
    let mut st = Stack::start_with(opts).await;
    // The endpoint itself: OpenMetrics text, and nothing but /metrics.
    let (code, text) = get(&st.host, METRICS, "/metrics".into()).expect("the endpoint answers");
    assert_eq!(code, 200);
    assert!(text.ends_with("# EOF\n") && text.contains("ctnet_netexec_up 1"), "{text}");
    assert_eq!(get(&st.host, METRICS, "/other".into()).map(|r| r.0), Some(404));

    st.client.networks.create_network(req::network("m1", "198.19.88.0/24")).await.unwrap();
    for name in ["a", "b", "c"] {
        st.create(req::bridge(name, &[])).await;
    }
    st.create(req::published("web", &["m1"], &["18088:80"])).await;
    let bad = st.client.sandboxes.create_sandbox(req::bridge("bad", &["no-such-net"])).await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::NotFound);
    let default = st.network("bridge").await.id;

    let dir = st.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ctnet\n    static_configs:\n      - targets: ['{METRICS}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/prometheus");
    cmd.arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={PROMETHEUS}"));
    let mut prom = st.spawn_in_host(cmd, "prometheus.log");

    let creates = "sum(ctnet_rpc_duration_seconds_count{method=\"CreateSandbox\",code=\"Ok\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(&st.host, creates) != Some(4.0) {
        assert!(
            Instant::now() < deadline,
            "no scrape with the creates: {:?}",
            query(&st.host, creates)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let q = |s: &str| query(&st.host, s);
    assert_eq!(
        q("sum(ctnet_rpc_duration_seconds_count{method=\"CreateSandbox\",code=\"NotFound\"})"),
        Some(1.0)
    );
    let p90 = q("histogram_quantile(0.9, sum by (le) (ctnet_rpc_duration_seconds_bucket{method=\"CreateSandbox\",code=\"Ok\"}))");
    assert!(p90.is_some_and(|v| v > 0.0 && v < 16.0), "a create's 90th percentile: {p90:?}");
    let used = format!("ctnet_ipam_addresses_used{{network_id=\"{default}\",family=\"ipv4\"}}");
    assert_eq!(q(&used), Some(3.0), "a, b and c on the default network");
    let size = format!("ctnet_ipam_addresses{{network_id=\"{default}\",family=\"ipv4\"}}");
    assert!(q(&size).is_some_and(|v| v > 3.0));
    assert_eq!(q("sum(ctnet_published_ports)"), Some(1.0));
    assert_eq!(q("sum(ctnet_sandboxes{state=\"ready\"})"), Some(4.0));
    assert_eq!(q("ctnet_netexec_up"), Some(1.0));
    assert_eq!(q("ctnet_events_total{kind=\"sandbox_created\"}"), Some(4.0));
    let exec = q("sum(ctnet_executor_call_duration_seconds_count{operation=\"AttachEndpoint\"})");
    assert_eq!(exec, Some(4.0), "one endpoint per create");
    assert!(q("sum(ctnet_store_commit_duration_seconds_count)").is_some_and(|v| v >= 8.0));
    assert!(q("ctnet_reconciliations_total{kind=\"full\"}").is_some_and(|v| v >= 1.0));

    let _ = prom.kill();
    let _ = prom.wait();
    for name in ["a", "b", "c", "web"] {
        st.delete(name).await;
    }
    st.client
        .networks
        .delete_network(pb::DeleteNetworkRequest { network: "m1".into() })
        .await
        .unwrap();
    st.finish().await;
}

/// Under systemd the endpoint is a socket passed in, named "metrics"
/// (ctnet-api-metrics.socket's FileDescriptorName): systemd-socket-activate
/// passes one the same way, and ctnet-api, given no --metrics-listen,
/// serves metrics on it.
#[tokio::test]
async fn a_socket_passed_in_named_metrics_serves_the_metrics() {
    let mut st = Stack::start().await;
    st.kill_api();
    let api = st.api_command(&st.api_socket, &st.state_dir);
    let mut cmd = std::process::Command::new("systemd-socket-activate");
    cmd.args(["--listen", "127.0.0.1:9465", "--fdname=metrics"])
        .arg(api.get_program())
        .args(api.get_args());
    let mut activated = st.spawn_in_host(cmd, "activated.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        match get(&st.host, "127.0.0.1:9465", "/metrics".into()) {
            Some((200, text)) if text.contains("ctnet_netexec_up 1") => break text,
            other => {
                let log = std::fs::read_to_string(st.dir.join("activated.log")).unwrap_or_default();
                assert!(
                    Instant::now() < deadline,
                    "no metrics on the passed socket: {other:?}\n{log}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(text.contains("ctnet_ipam_addresses_used{"), "the default network's pool: {text}");
    let _ = activated.kill();
    let _ = activated.wait();
    st.start_api().await;
    st.finish().await;
}
