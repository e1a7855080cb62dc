//! Chaos with three clients at once: each creates (with a published port),
//! deletes, connects and disconnects its own sandboxes while ctnet-api and
//! ctnet-netexec are SIGKILLed at random moments, at least 20 times. Seeded:
//! it prints its seed; CTNET_CHAOS_SEED replays the kill schedule and each
//! client's choices (the interleaving is the scheduler's). At the end: every
//! acknowledged create exists and is ready, no sandbox whose delete was
//! acknowledged is back in the records in any state, no request failed on
//! nft's "File exists", the nft port elements are exactly the records'
//! ports, and the tagged kernel objects equal the store.
//!
//! Before "one firewall truth", a full rebuild from an older desired state
//! raced the deltas: a deleted sandbox's DNAT element came back after its
//! delete was acknowledged, and creates failed with "File exists".
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctnet_tests::{pb, req, Stack};
use rand::{Rng, SeedableRng};

const CLIENTS: u64 = 3;
const MIN_KILLS: usize = 20;
const NETWORKS: [&str; 3] = ["bridge", "blue", "green"];

/// What a client knows of one of its sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its create was acknowledged and no delete was tried since.
    Exists,
    /// Its delete was acknowledged.
    Gone,
    /// A request on it failed: it may or may not exist.
    Unknown,
}

#[derive(Default)]
struct Outcome {
    fates: BTreeMap<String, Fate>,
    /// Every error message a request got.
    errors: Vec<String>,
    acked: usize,
}

async fn client_loop(
    socket: String,
    id: u64,
    seed: u64,
    ports: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ id);
    let mut out = Outcome::default();
    let mut c = loop {
        match ctnet_client::connect(&socket).await {
            Ok(c) => break c.sandboxes,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut next = 0;
    while !stop.load(Ordering::SeqCst) {
        let live: Vec<String> =
            out.fates.iter().filter(|(_, f)| **f != Fate::Gone).map(|(n, _)| n.clone()).collect();
        let choice =
            if live.len() < 4 || rng.random_bool(0.35) { 0 } else { rng.random_range(1..4) };
        let net = NETWORKS[rng.random_range(0..NETWORKS.len())].to_string();
        let result = match choice {
            0 => {
                let name = format!("c{id}-{next}");
                next += 1;
                let port = ports.fetch_add(1, Ordering::SeqCst);
                let r = pb::CreateSandboxRequest {
                    publish: vec![format!("{port}:80")],
                    ..req::bridge(&name, &[&net])
                };
                let done = c.create_sandbox(r).await.map(drop);
                out.fates.insert(name, if done.is_ok() { Fate::Exists } else { Fate::Unknown });
                done
            }
            1 => {
                let name = live[rng.random_range(0..live.len())].clone();
                let r = pb::DeleteSandboxRequest { sandbox: name.clone() };
                let done = c.delete_sandbox(r).await.map(drop);
                out.fates.insert(name, if done.is_ok() { Fate::Gone } else { Fate::Unknown });
                done
            }
            2 => {
                let sandbox = live[rng.random_range(0..live.len())].clone();
                let r = pb::ConnectRequest {
                    sandbox,
                    network: net,
                    ipv4_address: None,
                    ipv6_address: None,
                    publish: vec![],
                    interface_name: None,
                    mac_address: None,
                };
                c.connect(r).await.map(drop)
            }
            _ => {
                let sandbox = live[rng.random_range(0..live.len())].clone();
                c.disconnect(pb::DisconnectRequest { sandbox, network: net }).await.map(drop)
            }
        };
        match result {
            Ok(()) => out.acked += 1,
            Err(e) => {
                out.errors.push(format!("{:?}: {}", e.code(), e.message()));
                // Down or restarting: do not spin on a dead socket.
                if e.code() == tonic::Code::Unavailable {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_under_kills_end_consistent() {
    let seed = ctnet_tests::chaos_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut st = Stack::start().await;
    for (name, subnet) in [("blue", "198.19.52.0/24"), ("green", "198.19.53.0/24")] {
        st.client.networks.create_network(req::network(name, subnet)).await.unwrap();
    }
    let socket = st.api_socket.display().to_string();
    let (ports, stop) = (Arc::new(AtomicU16::new(21000)), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client_loop(socket.clone(), i, seed, ports.clone(), stop.clone())))
        .collect();

    for _ in 0..MIN_KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..600))).await;
        match rng.random_range(0..3) {
            0 => {
                st.kill_api();
                st.start_api().await;
            }
            1 => {
                // The running api's watcher sees the new instance and reconciles.
                st.kill_netexec();
                st.start_netexec();
            }
            _ => {
                st.kill_netexec();
                st.kill_api();
                st.start_netexec();
                st.start_api().await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.push(c.await.unwrap());
    }
    // A last restart: its reconciliation finishes whatever the kills cut.
    st.kill_api();
    st.start_api().await;

    let acked: usize = outcomes.iter().map(|o| o.acked).sum();
    println!("chaos: {acked} acknowledged requests from {CLIENTS} clients, {MIN_KILLS} kills");
    assert!(acked >= 30, "too few requests were answered to prove anything: {acked}");
    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    let exists: Vec<&&String> = errors.iter().filter(|e| e.contains("File exists")).collect();
    assert!(exists.is_empty(), "requests failed on nft's File exists: {exists:?}");

    let list = st.list_sandboxes().await.sandboxes;
    let recorded: BTreeMap<&str, &pb::Sandbox> =
        list.iter().map(|s| (s.name.as_str(), s)).collect();
    for (name, fate) in outcomes.iter().flat_map(|o| &o.fates) {
        match (fate, recorded.get(name.as_str())) {
            (Fate::Gone, Some(s)) => {
                panic!("{name}: its delete was acknowledged, it is back: {s:?}")
            }
            (Fate::Exists, None) => panic!("{name}: its create was acknowledged, it is lost"),
            _ => {}
        }
    }
    for s in &list {
        assert_eq!(s.state, pb::SandboxState::Ready as i32, "{} ended half-done: {s:?}", s.name);
        let check = pb::CheckRequest { sandbox: s.id.clone() };
        let diffs = st.client.sandboxes.check(check).await.unwrap().into_inner().differences;
        assert!(diffs.is_empty(), "{}: {diffs:?}", s.name);
    }

    // The firewall holds exactly the records' ports, and the kernel the
    // records' veths and pins.
    let record_ports: BTreeSet<u32> =
        list.iter().flat_map(|s| s.ports.iter().map(|p| p.host_port)).collect();
    let nft_ports: BTreeSet<u32> =
        st.nft_elements("ports_any").iter().map(ctnet_tests::net::element_host_port).collect();
    assert_eq!(nft_ports, record_ports, "nft port elements = records' ports");
    let mut want: Vec<String> =
        list.iter().flat_map(|s| s.interfaces.iter().map(|i| i.host_interface.clone())).collect();
    want.sort();
    assert_eq!(st.host_veths_settled(&want), want, "host veths = store");
    let mut pins: Vec<String> = list.iter().map(|s| s.id.clone()).collect();
    pins.sort();
    assert_eq!(st.sandbox_pins(), pins, "pins = store");

    for s in &list {
        st.delete(&s.name).await;
    }
    for n in ["blue", "green"] {
        let r = pb::DeleteNetworkRequest { network: n.into() };
        st.client.networks.delete_network(r).await.unwrap();
    }
    st.finish().await;
}
