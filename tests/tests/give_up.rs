//! Clients that give up: 40 bridge creates with published ports, each
//! abandoned by its client at a random 1-15 ms deadline or by killing the
//! client process, with netexec SIGSTOPped during some of them. After
//! netexec is continued and one reconciliation period has passed, no record
//! is stuck, no address, pin or port is leaked, and every name can be
//! deleted and created again without restarting anything. Seeded: it prints
//! its seed; CTNET_GIVE_UP_SEED replays a run.
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use ctnet_tests::{bin, pb, req, Options, Stack};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};

const CREATES: u16 = 40;
const BASE_PORT: u16 = 41000;

fn spec(i: u16) -> (String, String) {
    (format!("g{i}"), format!("{}:80", BASE_PORT + i))
}

/// SIGCONT on drop, so a failing test never leaves netexec stopped.
struct Stopped(Pid);

impl Stopped {
    fn new(pid: u32) -> Self {
        let pid = Pid::from_raw(pid as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP netexec");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

async fn give_up(st: &Stack, i: u16, rng: &mut rand::rngs::StdRng) {
    let (name, publish) = spec(i);
    let ms = rng.random_range(1..=15);
    if rng.random_bool(0.5) {
        let mut c = st.client.clone();
        let r = req::published(&name, &[], &[&publish]);
        let _ =
            tokio::time::timeout(Duration::from_millis(ms), c.sandboxes.create_sandbox(r)).await;
    } else {
        let mut child = Command::new(bin("ctnet"))
            .env("CTNET_HOST", &st.api_socket)
            .args(["sandbox", "create", "--name", &name, "-p", &publish])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ctnet");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls until the records stop changing and none is transient (bounded).
async fn settled(st: &Stack) -> Vec<pb::Sandbox> {
    let mut last: Option<Vec<(String, i32)>> = None;
    for _ in 0..120 {
        let now = st.list_sandboxes().await.sandboxes;
        let key: Vec<(String, i32)> = now.iter().map(|s| (s.id.clone(), s.state)).collect();
        let calm = now.iter().all(|s| s.state != pb::SandboxState::Creating as i32);
        if calm && last.as_ref() == Some(&key) {
            return now;
        }
        last = Some(key);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("records never settled: {:?}", last);
}

#[tokio::test]
async fn clients_that_give_up_leave_nothing_stuck_or_leaked() {
    let seed = std::env::var("CTNET_GIVE_UP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("give-up test: CTNET_GIVE_UP_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let opts = Options {
        api_args: vec!["--reconcile-interval-ms".into(), "300".into()],
        ..Default::default()
    };
    let st = Stack::start_with(opts).await;
    let mut stopped = None;
    for i in 0..CREATES {
        // netexec stopped during every eighth pair of creates.
        if i % 8 == 3 {
            stopped = Some(Stopped::new(st.netexec_pid()));
        }
        give_up(&st, i, &mut rng).await;
        if i % 8 == 4 {
            stopped = None;
        }
    }
    drop(stopped);
    // One reconciliation period (and the requests still queued) later:
    let sandboxes = settled(&st).await;
    let ready = pb::SandboxState::Ready as i32;
    assert!(sandboxes.iter().all(|s| s.state == ready), "stuck: {sandboxes:?}");
    let mut pins: Vec<String> = sandboxes.iter().map(|s| s.id.clone()).collect();
    pins.sort();
    assert_eq!(st.sandbox_pins(), pins, "one pin per sandbox, no other");
    let mut veths: Vec<String> = sandboxes
        .iter()
        .flat_map(|s| s.interfaces.iter().map(|i| i.host_interface.clone()))
        .collect();
    veths.sort();
    assert_eq!(st.host_veths_settled(&veths), veths, "one veth per interface, no other");
    assert_eq!(st.nft_elements("ports_any").len(), sandboxes.len(), "one port element per sandbox");
    let addrs: HashSet<String> =
        sandboxes.iter().map(|s| s.interfaces[0].address.clone()).collect();
    assert_eq!(addrs.len(), sandboxes.len(), "no address held twice");
    eprintln!("{} of {CREATES} abandoned creates were completed", sandboxes.len());
    // Every name can be deleted and created again.
    let mut c = st.client.clone();
    for s in &sandboxes {
        c.sandboxes
            .delete_sandbox(pb::DeleteSandboxRequest { sandbox: s.id.clone() })
            .await
            .unwrap();
    }
    for i in 0..CREATES {
        let (name, publish) = spec(i);
        c.sandboxes.create_sandbox(req::published(&name, &[], &[&publish])).await.unwrap();
    }
    for i in 0..CREATES {
        let (name, _) = spec(i);
        c.sandboxes.delete_sandbox(pb::DeleteSandboxRequest { sandbox: name }).await.unwrap();
    }
    st.finish().await;
}
