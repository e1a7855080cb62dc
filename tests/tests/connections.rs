//! Connection exhaustion and slowloris, at reduced scale: ctnet-api with a
//! lowered RLIMIT_NOFILE and small connection limits. Before, idle
//! connections ran ctnet-api out of descriptors, its accept loop spun at
//! 100 % CPU, and silent or preface-only connections stayed open forever.
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use ctnet_tests::{req, Options, Stack};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// Opens unix-socket connections and holds them: `silent` sends nothing,
/// `preface` the HTTP/2 preface and SETTINGS only, `idle` a full handshake
/// and then no RPC. Prints "open N", then "closed KIND" as each one ends.
const HOLDER: &str = r#"
import socket, sys, time
path, plan = sys.argv[1], sys.argv[2:]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
conns = []
for item in plan:
    kind, n = item.split(":")
    for _ in range(int(n)):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            if kind != "silent":
                s.sendall(PREFACE + SETTINGS)
            if kind == "idle":
                s.sendall(ACK)
        except OSError:
            # Refused over a limit before the bytes went out: closed already.
            print("closed", kind, flush=True)
            continue
        s.setblocking(False)
        conns.append([kind, s])
print("open", len(conns), flush=True)
while True:
    for c in conns:
        if c[1] is None:
            continue
        try:
            if c[1].recv(65536) == b"":
                raise OSError
        except BlockingIOError:
            pass
        except OSError:
            c[1] = None
            print("closed", c[0], flush=True)
    time.sleep(0.05)
"#;

struct Holder {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Holder {
    fn start(st: &Stack, uid: u32, plan: &[&str]) -> Holder {
        let name = format!("holder-{uid}.log");
        let mut cmd = Command::new("setpriv");
        let id = uid.to_string();
        cmd.args([
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            HOLDER,
        ]);
        cmd.arg(&st.api_socket).args(plan);
        Holder { child: st.spawn_in_host(cmd, &name), log: st.dir.join(name) }
    }

    fn lines(&self, prefix: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.starts_with(prefix)).count()
    }

    async fn wait(&self, prefix: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.lines(prefix) < n {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            assert!(Instant::now() < deadline, "{prefix:?} x{n} not seen:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after "pid (comm)" they are the 12th and 13th.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap();
    ticks as f64 / hz as f64
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[tokio::test]
async fn idle_and_preface_only_connections_cannot_lock_out_another_uid() {
    let api_args = [
        "--max-connections-per-uid",
        "8",
        "--max-connections",
        "24",
        "--handshake-timeout-ms",
        "1000",
    ];
    let opts = Options {
        api_args: api_args.iter().map(|s| s.to_string()).collect(),
        // About 15 descriptors are in use at rest: fewer are left than the
        // global limit, so the accept loop meets EMFILE too.
        api_nofile: Some(36),
        ..Default::default()
    };
    let mut st = Stack::start_with(opts).await;
    let pid = st.api_pid();
    eprintln!("ctnet-api holds {} descriptors before the attack", open_fds(pid));
    // The attackers' uids stand in for the socket's group.
    std::fs::set_permissions(&st.api_socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    // Uid A: preface-only and silent connections, far over its limit;
    // uids A2-A4: full handshakes then nothing, over the global limit
    // together with A, and over the descriptors left under RLIMIT_NOFILE.
    let a = Holder::start(&st, st.api_uid + 1, &["preface:20", "silent:20"]);
    let idle: Vec<Holder> =
        (2..5).map(|i| Holder::start(&st, st.api_uid + i, &["idle:20"])).collect();
    a.wait("open", 1, Duration::from_secs(20)).await;
    for h in &idle {
        h.wait("open", 1, Duration::from_secs(20)).await;
    }

    // Uid B (root here) is still answered: status and a create.
    let mut b = ctnet_client::connect(&st.api_socket.display().to_string()).await.unwrap();
    let health = HealthClient::new(b.channel.clone())
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
    b.sandboxes.create_sandbox(req::bridge("b", &[])).await.expect("a create is answered");

    // Every preface-only and silent connection is closed (polled).
    a.wait("closed", 40, Duration::from_secs(10)).await;
    // Hold the idle ones for the rest of 10 s, then look at the CPU spent.
    let held = Duration::from_secs(10).saturating_sub(started.elapsed());
    tokio::time::sleep(held).await;
    let spent = cpu_seconds(pid) - cpu_before;
    assert!(spent < 1.0, "ctnet-api spent {spent:.2} s of CPU over the 10 s");
    let still_open: usize = idle.iter().map(|h| 20 - h.lines("closed")).sum();
    assert!(still_open <= 24, "{still_open} idle connections held, over the global limit");

    let log = std::fs::read_to_string(st.dir.join("api-1.log")).unwrap_or_default();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "cpu {spent:.2} s; EMFILE back-offs {}; idle connections closed to make room {}",
        count("out of resources"),
        count("oldest idle connection closed")
    );
    st.client = b;
    st.delete("b").await;
    drop(idle);
    drop(a);
    st.finish().await;
}
