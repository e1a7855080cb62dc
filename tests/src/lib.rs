//! The end-to-end harness. Each test gets its own fake host network
//! namespace, runs the real ctnet-netexec and ctnet-api in it with their own
//! socket, netns, run and state directories, and removes it all afterwards,
//! asserting that nothing is left behind.
pub mod bench;
pub mod cni;
pub mod flood;
pub mod net;
pub mod netns;
pub mod pki;
pub mod raw;
pub mod remote;
pub mod tenants;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use ctnet_client::{pb, Client};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// Subnet of the default network in tests: a documentation range, so no
/// traffic could ever be mistaken for real.
pub const DEFAULT_SUBNET: &str = "198.18.0.0/16";

/// The built daemons and CLI, next to the test binary in target/.
pub fn bin(name: &str) -> PathBuf {
    // Test binaries live in target/PROFILE/deps, ctnet-bench in target/PROFILE.
    let exe = std::env::current_exe().expect("current_exe");
    let here = exe.parent().expect("exe dir");
    let dir = if here.ends_with("deps") { here.parent().expect("target dir") } else { here };
    let p = dir.join(name);
    assert!(p.exists(), "{} not built: run `cargo build --workspace` first", p.display());
    p
}

/// Extra flags for the daemons.
#[derive(Default, Clone)]
pub struct Options {
    pub api_args: Vec<String>,
    pub netexec_args: Vec<String>,
    /// ctnet-api runs in a private mount namespace with a tmpfs of this
    /// size ("4m") on its state directory (a disk the test can fill).
    pub state_tmpfs: Option<String>,
    /// ctnet-api's RLIMIT_NOFILE (lowered at spawn).
    pub api_nofile: Option<u64>,
    /// Run ctnet-api without a policy file. Otherwise, unless `api_args`
    /// names one, the suite runs under a policy whose admin is root (the
    /// test's identity), so every end-to-end test also exercises the
    /// policy path; `no_policy` keeps the policy-less path covered.
    pub no_policy: bool,
    /// netexec runs in this mount namespace (a path that opens it, e.g.
    /// `MountNs::path`): where a runtime such as podman pins namespaces
    /// under a /run/netns of the test's own.
    pub netexec_mount_ns: Option<PathBuf>,
}

pub struct Stack {
    pub dir: PathBuf,
    /// Pin of the fake host namespace.
    pub host: PathBuf,
    pub netns_dir: PathBuf,
    pub api_socket: PathBuf,
    pub exec_socket: PathBuf,
    pub state_dir: PathBuf,
    /// Where the test may pin namespaces for netns_path (allow-listed).
    pub runtime_dir: PathBuf,
    /// The unprivileged account ctnet-api runs as (no passwd entry needed).
    pub api_uid: u32,
    pub api_gid: u32,
    opts: Options,
    netexec: Option<Child>,
    api: Option<Child>,
    api_starts: u32,
    /// Links and pins the test itself made in the fake host (e.g. the
    /// external veth), removed in cleanup and allowed by `finish`.
    test_links: Vec<String>,
    test_pins: Vec<PathBuf>,
    pub client: Client,
}

/// A fake outside host, joined to the fake host by a veth: the host end is
/// `ext0` with HOST_OUTSIDE, the far end eth0 with EXTERNAL.
pub struct External {
    pub pin: PathBuf,
}

/// The fake host's outside address (documentation range).
pub const HOST_OUTSIDE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
/// The external namespace's address.
pub const EXTERNAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 2);
/// The same two on IPv6 (documentation prefix), once `add_external_ipv6`
/// gave them.
pub const HOST_OUTSIDE6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
pub const EXTERNAL6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2);

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctnet-test-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Spawns `cmd` inside the namespace pinned at `ns`, dying with this thread.
/// The venv the README's test command makes (override with CTNET_PYTHON).
pub fn test_python() -> PathBuf {
    let p = std::env::var_os("CTNET_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python")
    });
    assert!(
        p.exists(),
        "{} missing: run the README's test command, which creates the venv",
        p.display()
    );
    p
}

/// The repository's top directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn spawn_in(ns: &Path, mut cmd: Command, log: &Path) -> Child {
    let ns_file = std::fs::File::open(ns).expect("open fake host netns");
    let fd = ns_file.as_raw_fd();
    let out = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            nix::sched::setns(BorrowedFd::borrow_raw(fd), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn daemon");
    drop(ns_file);
    child
}

/// Makes `cmd` start in a mount namespace of its own with a tmpfs of
/// `size` on `dir`: the mount dies with the process.
fn private_tmpfs(cmd: &mut Command, dir: &Path, size: &str) {
    use nix::mount::{mount, MsFlags};
    use std::ffi::CString;
    std::fs::create_dir_all(dir).expect("state dir");
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    let data = CString::new(format!("size={size},mode=0700")).expect("options");
    // SAFETY: only unshare and mount (async-signal-safe syscalls) on
    // strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            let none: Option<&std::ffi::CStr> = None;
            mount(none, c"/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
            mount(
                Some(c"tmpfs"),
                target.as_c_str(),
                Some(c"tmpfs"),
                MsFlags::empty(),
                Some(data.as_c_str()),
            )?;
            Ok(())
        });
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Stack {
        let dir = temp_dir();
        let host = dir.join("host.ns");
        netns::create_pinned(&host, || {
            // New namespaces copy some IPv4 settings from the real host: set
            // what the tests rely on.
            for (k, v) in [
                ("net/ipv4/ip_forward", "0"),
                ("net/ipv4/conf/all/rp_filter", "0"),
                ("net/ipv4/conf/default/rp_filter", "0"),
                ("net/ipv4/conf/all/route_localnet", "0"),
            ] {
                std::fs::write(Path::new("/proc/sys").join(k), v).unwrap();
            }
            // A real host has loopback up. (A child forked from this thread
            // starts in this thread's namespace.)
            let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
            assert!(up.success());
        });
        assert_eq!(netns::sysctl_get(&host, "net.ipv4.ip_forward"), "0");
        let runtime_dir = dir.join("runtime");
        std::fs::create_dir_all(&runtime_dir).expect("runtime dir");
        let api_uid = 61000 + rand::random::<u32>() % 4000;
        let mut stack = Stack {
            runtime_dir,
            api_uid,
            api_gid: api_uid,
            netns_dir: dir.join("netns"),
            api_socket: dir.join("api.sock"),
            exec_socket: dir.join("exec.sock"),
            state_dir: dir.join("state"),
            host,
            dir,
            opts,
            netexec: None,
            api: None,
            api_starts: 0,
            test_links: Vec::new(),
            test_pins: Vec::new(),
            client: placeholder_client(),
        };
        stack.start_netexec();
        stack.start_api().await;
        stack
    }

    /// The flags the daemons get at their next start.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.opts
    }

    pub fn start_netexec(&mut self) {
        let mut cmd = Command::new(bin("ctnet-netexec"));
        cmd.arg("--socket").arg(&self.exec_socket).arg("--netns-dir").arg(&self.netns_dir);
        cmd.arg("--netns-allow-dir").arg(&self.runtime_dir);
        cmd.args([
            "--allow-uid",
            &self.api_uid.to_string(),
            "--socket-group",
            &self.api_gid.to_string(),
        ]);
        cmd.args(&self.opts.netexec_args);
        if let Some(mnt) = &self.opts.netexec_mount_ns {
            cni::enter_mount_ns(&mut cmd, mnt);
        }
        self.netexec = Some(spawn_in(&self.host, cmd, &self.dir.join("netexec.log")));
    }

    pub async fn start_api(&mut self) {
        let mut cmd = self.api_command(&self.api_socket, &self.state_dir);
        cmd.args(["--default-subnet", DEFAULT_SUBNET]);
        if !self.opts.no_policy && !self.opts.api_args.iter().any(|a| a == "--policy") {
            cmd.arg("--policy").arg(self.admin_policy());
        }
        cmd.args(&self.opts.api_args);
        if let Some(size) = &self.opts.state_tmpfs {
            private_tmpfs(&mut cmd, &self.state_dir, size);
        }
        if let Some(n) = self.opts.api_nofile {
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let r = nix::sys::resource::Resource::RLIMIT_NOFILE;
                    nix::sys::resource::setrlimit(r, n, n)?;
                    Ok(())
                });
            }
        }
        self.api_starts += 1;
        let log = self.dir.join(format!("api-{}.log", self.api_starts));
        self.api = Some(spawn_in(&self.host, cmd, &log));
        self.client = self.wait_serving().await;
    }

    /// A policy file in which root, the test's identity, is the admin.
    fn admin_policy(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("admin-policy.toml");
        std::fs::write(&path, "[admin]\nuids = [0]\n").expect("write policy");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// ctnet-api for this stack's netexec, as its account, serving `socket`
    /// on the store in `state_dir`.
    pub fn api_command(&self, socket: &Path, state_dir: &Path) -> Command {
        let mut cmd = Command::new(bin("ctnet-api"));
        cmd.arg("--socket").arg(socket);
        cmd.args(["--socket-group", "", "--health-interval-ms", "100"]);
        cmd.arg("--netexec-socket").arg(&self.exec_socket).arg("--state-dir").arg(state_dir);
        cmd.args(["--user", &format!("{}:{}", self.api_uid, self.api_gid)]);
        cmd
    }

    /// Runs `cmd` in the fake host, logging to `log` in the test directory.
    pub fn spawn_in_host(&self, cmd: Command, log: &str) -> Child {
        spawn_in(&self.host, cmd, &self.dir.join(log))
    }

    /// Adds a link the test owns (removed at cleanup, allowed by `finish`).
    pub fn add_test_link(&mut self, name: &str, kind: &str) {
        net::ip_do(&self.host, &["link", "add", name, "type", kind]);
        self.test_links.push(name.into());
    }

    /// Waits (generously) until the API answers health checks with SERVING.
    async fn wait_serving(&mut self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = ctnet_client::connect(&self.api_socket.display().to_string()).await {
                if self.health_of(&c).await == Some(ServingStatus::Serving) {
                    return c;
                }
            }
            if let Some(status) = self.api.as_mut().and_then(|a| a.try_wait().unwrap()) {
                panic!("ctnet-api exited with {status}");
            }
            assert!(Instant::now() < deadline, "ctnet-api did not become SERVING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health_of(&self, c: &Client) -> Option<ServingStatus> {
        let mut h = HealthClient::new(c.channel.clone());
        let r = h.check(HealthCheckRequest { service: String::new() }).await.ok()?;
        ServingStatus::try_from(r.into_inner().status).ok()
    }

    pub async fn health(&self) -> Option<ServingStatus> {
        self.health_of(&self.client).await
    }

    /// Polls (generously) until health reports `want`.
    pub async fn wait_health(&self, want: ServingStatus) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.health().await != Some(want) {
            assert!(Instant::now() < deadline, "health never became {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill_netexec(&mut self) {
        kill(self.netexec.take());
    }

    pub fn kill_api(&mut self) {
        kill(self.api.take());
    }

    pub fn netexec_pid(&self) -> u32 {
        self.netexec.as_ref().expect("netexec running").id()
    }

    pub fn api_pid(&self) -> u32 {
        self.api.as_ref().expect("ctnet-api running").id()
    }

    /// netexec's log so far.
    pub fn netexec_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("netexec.log")).unwrap_or_default()
    }

    /// Adds the external namespace (see `External`).
    pub fn add_external(&mut self) -> External {
        let pin = self.dir.join("external.ns");
        netns::create_pinned(&pin, || {
            let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
            assert!(up.success());
        });
        self.test_pins.push(pin.clone());
        let p = pin.display().to_string();
        net::ip_do(
            &self.host,
            &["link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", &p],
        );
        self.test_links.push("ext0".into());
        net::ip_do(&self.host, &["addr", "add", &format!("{HOST_OUTSIDE}/24"), "dev", "ext0"]);
        net::ip_do(&self.host, &["link", "set", "ext0", "up"]);
        net::ip_do(&pin, &["addr", "add", &format!("{EXTERNAL}/24"), "dev", "eth0"]);
        net::ip_do(&pin, &["link", "set", "eth0", "up"]);
        External { pin }
    }

    /// IPv6 on the link to the external namespace: HOST_OUTSIDE6 and
    /// EXTERNAL6, without DAD.
    pub fn add_external_ipv6(&self, ext: &External) {
        let (host, external) = (format!("{HOST_OUTSIDE6}/64"), format!("{EXTERNAL6}/64"));
        net::ip_do(&self.host, &["addr", "add", &host, "dev", "ext0", "nodad"]);
        net::ip_do(&ext.pin, &["addr", "add", &external, "dev", "eth0", "nodad"]);
    }

    /// Elements of one of ctnet's nft maps or sets in the fake host, as
    /// nft -j prints them.
    pub fn nft_elements(&self, set: &str) -> Vec<serde_json::Value> {
        net::nft_elements(&self.host, set)
    }

    /// The sandbox's namespace path, as the API reports it.
    /// Flushes one of ctnet's chains in the fake host (stop netexec first:
    /// drift repair would restore it at once).
    pub fn flush_chain(&self, family: &str, chain: &str) {
        let flush = Command::new("nsenter")
            .arg(format!("--net={}", self.host.display()))
            .args(["nft", "flush", "chain", family, "ctnet", chain])
            .status()
            .expect("run nft");
        assert!(flush.success(), "nft flush chain {family} ctnet {chain}");
    }

    /// `nft flush ruleset` in the fake host: a change from outside ctnet,
    /// which netexec's drift repair undoes.
    pub fn flush_ruleset(&self) {
        let flush = Command::new("nsenter")
            .arg(format!("--net={}", self.host.display()))
            .args(["nft", "flush", "ruleset"])
            .status()
            .expect("run nft");
        assert!(flush.success(), "nft flush ruleset");
    }

    pub fn pin_of(s: &pb::Sandbox) -> PathBuf {
        PathBuf::from(&s.netns_path)
    }

    /// Pins in the netns directory other than the host's.
    pub fn sandbox_pins(&self) -> Vec<String> {
        let mut pins: Vec<String> = std::fs::read_dir(&self.netns_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        pins.retain(|p| p != "host");
        pins.sort();
        pins
    }

    /// Host links carrying ctnet's veth prefix.
    pub fn host_veths(&self) -> Vec<String> {
        net::link_names(&self.host).into_iter().filter(|n| n.starts_with("ctv")).collect()
    }

    /// Every sandbox, as a client lists them.
    pub async fn list_sandboxes(&self) -> pb::ListSandboxesResponse {
        let mut c = self.client.sandboxes.clone();
        c.list_sandboxes(pb::ListSandboxesRequest::default()).await.unwrap().into_inner()
    }

    /// The host's ctnet veths, sorted, once they equal `want` (sorted) or
    /// 10 s passed: deleted sandboxes' veths outlive the answer briefly.
    pub fn host_veths_settled(&self, want: &[String]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut veths = self.host_veths();
            veths.sort();
            if veths == want || Instant::now() >= deadline {
                return veths;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Deletes are answered before the kernel has destroyed the old veths
    /// (ctnet holds their addresses meanwhile) and their guards go after
    /// them: once every sandbox is deleted, waits, up to 10 s, until no veth
    /// of ctnet's and no guard is left on the fake host.
    pub fn wait_for_releases(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let busy = || !self.host_veths().is_empty() || !self.nft_elements("guards").is_empty();
        while busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ends the test: asserts that the API has no sandboxes and the kernel
    /// holds no sandbox pins and no veths, stops the daemons, removes every
    /// namespace and mount, and asserts none is left.
    pub async fn finish(mut self) {
        let list = self.list_sandboxes().await;
        assert!(
            list.sandboxes.is_empty(),
            "sandboxes left: {:?}",
            list.sandboxes.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        assert_eq!(self.sandbox_pins(), Vec::<String>::new(), "netns pins left");
        self.wait_for_releases();
        assert_eq!(self.host_veths(), Vec::<String>::new(), "veths left");
        let nets = self
            .client
            .networks
            .list_networks(pb::ListNetworksRequest::default())
            .await
            .unwrap()
            .into_inner();
        let mut expected: Vec<String> =
            nets.networks.iter().map(|n| n.bridge_name.clone()).collect();
        expected.push("lo".into());
        expected.extend(self.test_links.iter().cloned());
        expected.sort();
        assert_eq!(
            net::link_names(&self.host),
            expected,
            "only lo and the bridges of existing networks remain"
        );
        self.cleanup();
        assert_eq!(netns::mounts_under(&self.dir), Vec::<String>::new(), "mounts left");
        assert!(!self.dir.exists(), "test directory left");
    }

    fn cleanup(&mut self) {
        let pids: Vec<u32> =
            [&self.netexec, &self.api].iter().filter_map(|c| c.as_ref().map(|c| c.id())).collect();
        kill(self.api.take());
        kill(self.netexec.take());
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} still running");
        }
        if let Ok(entries) = std::fs::read_dir(&self.netns_dir) {
            for e in entries.flatten() {
                netns::unpin(&e.path());
            }
        }
        let _ = nix::mount::umount2(&self.netns_dir, nix::mount::MntFlags::MNT_DETACH);
        if let Ok(entries) = std::fs::read_dir(&self.runtime_dir) {
            for e in entries.flatten() {
                netns::unpin(&e.path());
            }
        }
        let _ = nix::mount::umount2(&self.runtime_dir, nix::mount::MntFlags::MNT_DETACH);
        for dir in self.extra_allowed_dirs() {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        }
        for pin in &self.test_pins {
            netns::unpin(pin);
        }
        netns::unpin(&self.host);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Stack {
    /// Further `--netns-allow-dir`s a test gave netexec in this mount
    /// namespace: netexec makes each a shared mount, which outlives it.
    /// Only the test's own temporary directories, never a host path.
    fn extra_allowed_dirs(&self) -> Vec<PathBuf> {
        if self.opts.netexec_mount_ns.is_some() {
            return Vec::new();
        }
        let args = &self.opts.netexec_args;
        args.windows(2)
            .filter(|w| w[0] == "--netns-allow-dir")
            .map(|w| PathBuf::from(&w[1]))
            .filter(|p| p.starts_with(std::env::temp_dir()) && p.is_absolute())
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.dir.exists() {
            if std::thread::panicking() {
                self.keep_logs();
            }
            self.cleanup();
        }
    }
}

impl Stack {
    /// Copies the daemons' logs of a failed test next to the test directory.
    fn keep_logs(&self) {
        let keep = PathBuf::from(format!("{}-logs", self.dir.display()));
        let _ = std::fs::create_dir_all(&keep);
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".log") {
                let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
            }
        }
        eprintln!("daemon logs kept in {}", keep.display());
    }
}

fn kill(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A client that is never used: replaced as soon as the API is up.
fn placeholder_client() -> Client {
    Client::on(tonic::transport::Endpoint::from_static("http://[::1]:1").connect_lazy())
}

/// The seed of a chaos test: CTNET_CHAOS_SEED, or a random one; printed
/// so a failing run can be replayed.
pub fn chaos_seed() -> u64 {
    let seed = std::env::var("CTNET_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed: {seed} (replay with CTNET_CHAOS_SEED={seed})");
    seed
}

/// Asserts a link alias is ctnet's tag for `kind` ("sb", "net") and `id`:
/// `ctnet:KIND:ID:STORE`, STORE the 16 hex digits of the store's identity.
pub fn assert_tag(alias: &serde_json::Value, kind: &str, id: &str) {
    let alias = alias.as_str().unwrap_or_default();
    let head = format!("ctnet:{kind}:{id}:");
    let store = alias.strip_prefix(&head).unwrap_or_default();
    let hex = store.len() == 16 && store.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(hex, "{alias:?} is not {head}<store>");
}

/// Request builders for the common cases.
pub mod req {
    use super::pb;
    use pb::create_sandbox_request::Mode;

    pub fn bridge(name: &str, networks: &[&str]) -> pb::CreateSandboxRequest {
        pb::CreateSandboxRequest {
            name: Some(name.to_string()),
            mode: Some(Mode::Bridge(pb::BridgeMode {
                networks: networks
                    .iter()
                    .map(|n| pb::NetworkAttachment {
                        network: n.to_string(),
                        ipv4_address: None,
                        ipv6_address: None,
                        interface_name: None,
                        mac_address: None,
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    pub fn mode(name: &str, mode: Mode) -> pb::CreateSandboxRequest {
        pb::CreateSandboxRequest {
            name: Some(name.to_string()),
            mode: Some(mode),
            ..Default::default()
        }
    }

    /// A bridge sandbox on the default network at the static address `ip`.
    pub fn at_address(name: &str, ip: &str) -> pb::CreateSandboxRequest {
        let mut r = bridge(name, &[]);
        r.mode = Some(Mode::Bridge(pb::BridgeMode {
            networks: vec![pb::NetworkAttachment {
                network: "bridge".into(),
                ipv4_address: Some(ip.to_string()),
                ipv6_address: None,
                interface_name: None,
                mac_address: None,
            }],
        }));
        r
    }

    /// A bridge-mode sandbox on `networks` with these `-p` specs.
    pub fn published(name: &str, networks: &[&str], specs: &[&str]) -> pb::CreateSandboxRequest {
        pb::CreateSandboxRequest {
            publish: specs.iter().map(|s| s.to_string()).collect(),
            ..bridge(name, networks)
        }
    }

    pub fn network(name: &str, subnet: &str) -> pb::CreateNetworkRequest {
        pb::CreateNetworkRequest { name: name.into(), subnet: subnet.into(), ..Default::default() }
    }

    /// A dual-stack network on 198.19.N.0/24 and 2001:db8:N::/64 (N in hex).
    pub fn dual_stack(name: &str, n: u8) -> pb::CreateNetworkRequest {
        pb::CreateNetworkRequest {
            ipv6_subnet: Some(format!("2001:db8:{n:x}::/64")),
            ..network(name, &format!("198.19.{n}.0/24"))
        }
    }
}

/// Small helpers on the client, so tests read like the scenario.
impl Stack {
    pub async fn create(&mut self, r: pb::CreateSandboxRequest) -> pb::Sandbox {
        self.client.sandboxes.create_sandbox(r).await.expect("create sandbox").into_inner()
    }

    pub async fn delete(&mut self, sandbox: &str) {
        let r = pb::DeleteSandboxRequest { sandbox: sandbox.into() };
        self.client.sandboxes.delete_sandbox(r).await.expect("delete sandbox");
    }

    pub async fn get(&mut self, sandbox: &str) -> pb::Sandbox {
        let r = pb::GetSandboxRequest { sandbox: sandbox.into() };
        self.client.sandboxes.get_sandbox(r).await.expect("get sandbox").into_inner()
    }

    pub async fn network(&mut self, network: &str) -> pb::Network {
        let r = pb::GetNetworkRequest { network: network.into() };
        self.client.networks.get_network(r).await.expect("get network").into_inner()
    }
}

/// The IPv4 address (without prefix) of a sandbox's interface.
pub fn ip_of(s: &pb::Sandbox, ifname: &str) -> std::net::Ipv4Addr {
    let i = s
        .interfaces
        .iter()
        .find(|i| i.name == ifname)
        .unwrap_or_else(|| panic!("{ifname} missing on {}", s.id));
    i.address.split('/').next().unwrap().parse().unwrap()
}

/// The IPv6 address (without prefix) of a sandbox's interface.
pub fn ip6_of(s: &pb::Sandbox, ifname: &str) -> std::net::Ipv6Addr {
    let i = s
        .interfaces
        .iter()
        .find(|i| i.name == ifname)
        .unwrap_or_else(|| panic!("{ifname} missing on {}", s.id));
    i.ipv6_address.split('/').next().unwrap().parse().expect("an IPv6 address")
}

/// Asserts a request failed with `code` and a message naming `mentions`.
pub fn expect_status(
    r: Result<impl std::fmt::Debug, tonic::Status>,
    code: tonic::Code,
    mentions: &str,
    case: &str,
) {
    let err = r.expect_err(case);
    assert_eq!(err.code(), code, "{case}: {}", err.message());
    assert!(
        err.message().contains(mentions),
        "{case}: message {:?} should mention {mentions:?}",
        err.message()
    );
}
