//! The generated clients in other languages drive a whole scenario against a
//! real stack, once over the Unix socket and once over TLS with a client
//! certificate: the Python package (clients/python, installed into a fresh
//! venv) and the Go client (clients/go, built offline with Debian's Go). A
//! published port is reached from an external namespace in between. And the
//! committed generated code is what the generators make of proto/ now.
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ctnet_tests::net::{self, Echo};
use ctnet_tests::pki::Pki;
use ctnet_tests::remote::{ClientFiles, LISTEN};
use ctnet_tests::{repo, test_python, Stack, EXTERNAL, HOST_OUTSIDE};
use serde_json::Value;

const GO: &str = "/usr/lib/go-1.19/bin/go";

/// How an example program reaches ctnet-api.
enum Via<'a> {
    Unix,
    Tls(&'a ClientFiles),
}

/// Runs `cmd` (an example scenario) in the fake host's namespace, reaches
/// the port it publishes from `ext` when it pauses, and returns its steps.
/// `n` keeps names, subnets and ports apart between runs on one stack.
fn drive(st: &Stack, ext: &Path, mut cmd: Command, via: Via, n: u8) -> Vec<Value> {
    let port = 18000 + u16::from(n);
    cmd.args(["--prefix", &format!("ex{n}"), "--host-port", &port.to_string()]);
    cmd.args(["--subnet", &format!("198.19.{n}.0/24")]);
    cmd.args(["--subnet2", &format!("198.19.{}.0/24", n + 1)]);
    match via {
        Via::Unix => cmd.arg("--unix").arg(&st.api_socket),
        Via::Tls(f) => cmd
            .args(["--tls", LISTEN, "--server-name", "localhost", "--ca"])
            .arg(&f.ca)
            .arg("--cert")
            .arg(&f.cert)
            .arg("--key")
            .arg(&f.key),
    };
    let log = st.dir.join(format!("example-{n}.log"));
    let ns = std::fs::File::open(&st.host).unwrap();
    let fd = ns.as_raw_fd();
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            nix::sched::setns(BorrowedFd::borrow_raw(fd), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start the example");
    drop(ns);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = Vec::new();
    let failed = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    while steps.last().is_none_or(|s: &Value| s["step"] != "published") {
        let line = lines.next().unwrap_or_else(|| panic!("example ended early: {}", failed(&log)));
        steps.push(serde_json::from_str::<Value>(&line.unwrap()).expect("a JSON step"));
    }
    let published = steps.last().unwrap().clone();
    assert_eq!(published["host_port"], u64::from(port), "{published}");
    let pin = PathBuf::from(published["netns"].as_str().unwrap());
    let echo = Echo::start_on(&pin, std::net::Ipv4Addr::UNSPECIFIED, 80, 1);
    let reply = net::tcp_roundtrip(ext, HOST_OUTSIDE, port, "from outside");
    assert_eq!(reply.as_deref(), Ok("from outside"), "the published port from outside");
    assert_eq!(echo.peers()[0].ip(), EXTERNAL, "the client's own address");
    child.stdin.take().unwrap().write_all(b"go on\n").unwrap();
    steps.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).expect("a JSON step")));
    assert!(child.wait().unwrap().success(), "example failed: {}", failed(&log));
    steps
}

/// What every run of the scenario must have seen.
fn check_steps(steps: &[Value], n: u8, who: &str) {
    let step = |name: &str| {
        steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no {name}: {steps:?}"))
    };
    assert_eq!(step("whoami")["name"], who);
    assert_eq!(step("network")["subnet"], format!("198.19.{n}.0/24"));
    assert_eq!(step("published")["address"], format!("198.19.{n}.2/24"));
    assert_eq!(step("connected")["interfaces"], serde_json::json!(["eth0", "eth1"]));
    assert_eq!(step("disconnected")["interfaces"], serde_json::json!(["eth0"]));
    assert_eq!(step("error")["code"], "NOT_FOUND");
    assert!(step("error")["message"].as_str().unwrap().contains(&format!("ex{n}-missing")));
    assert_eq!(step("deleted")["left"], serde_json::json!([]));
}

/// Both transports against one stack; nothing of either run is left.
/// `first` runs on the stack before them.
async fn both_transports(program: impl Fn() -> Command, first: impl FnOnce(&Stack)) {
    let p = Pki::new();
    let mut st = Stack::start_with(p.options(&[])).await;
    let ext = st.add_external();
    first(&st);
    let unix = drive(&st, &ext.pin, program(), Via::Unix, 80);
    check_steps(&unix, 80, "uid:0");
    let tls = drive(&st, &ext.pin, program(), Via::Tls(&p.client), 82);
    check_steps(&tls, 82, ctnet_tests::pki::CLIENT_ID);
    assert!(net::host_veths_is_empty(&st.host));
    assert_eq!(st.list_sandboxes().await.sandboxes.len(), 0);
    st.finish().await;
}

#[tokio::test]
async fn the_python_package_drives_a_scenario_over_unix_and_tls() {
    let venv = tempfile_dir("ctnet-pyvenv");
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
    assert!(made.success(), "python3 -m venv");
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .arg(repo().join("clients/python"))
        .status()
        .unwrap();
    assert!(pip.success(), "pip install clients/python into a fresh venv");
    let script = repo().join("clients/python/examples/scenario.py");
    let python = venv.join("bin/python");
    let program = || {
        let mut c = Command::new(&python);
        c.arg(&script);
        c
    };
    both_transports(program, |st| {
        // Why connect_unix pins the authority: grpcio's own unix: channel
        // sends the socket path, and the call fails (the control), while
        // the package's call succeeds.
        let call = |code: &str| {
            let out = Command::new(&python).args(["-c", code]).arg(&st.api_socket).output();
            String::from_utf8_lossy(&out.unwrap().stdout).trim().to_string()
        };
        let raw = "import sys, grpc, ctnet\nch = grpc.insecure_channel('unix:' + sys.argv[1])\ntry:\n    ctnet.Client(ch, 5).who_am_i(); print('ok')\nexcept ctnet.CtnetError as e: print(e.code.name)";
        assert_eq!(call(raw), "INTERNAL", "grpcio's own unix: channel is refused");
        let pinned = "import sys, ctnet\nprint(ctnet.connect_unix(sys.argv[1], 5).who_am_i().name)";
        assert_eq!(call(pinned), "uid:0");
    })
    .await;
    std::fs::remove_dir_all(&venv).unwrap();
}

#[tokio::test]
async fn the_go_client_drives_a_scenario_over_unix_and_tls() {
    let unformatted = Command::new("/usr/lib/go-1.19/bin/gofmt")
        .arg("-l")
        .arg(repo().join("clients/go"))
        .output()
        .unwrap();
    assert!(
        unformatted.status.success() && unformatted.stdout.is_empty(),
        "gofmt -l: {unformatted:?}"
    );
    let gopath = tempfile_dir("ctnet-gopath");
    let example = go_build(&gopath);
    both_transports(|| Command::new(&example), |_| {}).await;
    std::fs::remove_dir_all(&gopath).unwrap();
}

fn tempfile_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{what}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds the Go example in GOPATH mode, offline, against Debian's Go gRPC
/// packages; clients/go is linked in at its import path.
fn go_build(gopath: &Path) -> PathBuf {
    assert!(Path::new(GO).exists(), "{GO} is missing: scripts/deps.sh installs golang-1.19-go");
    let at = gopath.join("src/github.com/ctnet/ctnet/clients");
    std::fs::create_dir_all(&at).unwrap();
    std::os::unix::fs::symlink(repo().join("clients/go"), at.join("go")).unwrap();
    let out = gopath.join("ctnet-example");
    let built = Command::new(GO)
        .args(["build", "-o"])
        .arg(&out)
        .arg("github.com/ctnet/ctnet/clients/go/cmd/ctnet-example")
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
        .env("GOCACHE", gopath.join("cache"))
        .status()
        .unwrap();
    assert!(built.success(), "go build of the example failed");
    out
}

/// The files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Every file the generator made into `fresh` is committed under
/// `committed`, byte for byte.
fn same_as_committed(fresh: &Path, committed: &Path) {
    let made = files(fresh);
    assert!(!made.is_empty(), "the generator made nothing");
    for f in made {
        let want = std::fs::read(fresh.join(&f)).unwrap();
        let have = std::fs::read(committed.join(&f)).unwrap_or_default();
        assert!(
            want == have,
            "{} is not what the generator makes of proto/ now: regenerate it (see its README)",
            committed.join(&f).display()
        );
    }
}

#[test]
fn the_committed_python_code_is_what_grpcio_tools_makes() {
    let out = tempfile_dir("ctnet-pygen");
    let status = Command::new(test_python())
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repo().join("proto/proto"))
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--pyi_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .arg(repo().join("proto/proto/ctnet/v1/ctnet.proto"))
        .status()
        .unwrap();
    assert!(status.success(), "grpc_tools.protoc");
    same_as_committed(&out, &repo().join("clients/python/src"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_committed_go_code_is_what_debian_s_protoc_gen_go_makes() {
    let out = tempfile_dir("ctnet-gogen");
    let module = "module=github.com/ctnet/ctnet/clients/go";
    let status = Command::new("protoc")
        .arg("-I")
        .arg(repo().join("proto/proto"))
        .arg(format!("--go_out={}", out.display()))
        .arg(format!("--go_opt={module}"))
        .arg(format!("--go-grpc_out={}", out.display()))
        .arg(format!("--go-grpc_opt={module}"))
        .arg(repo().join("proto/proto/ctnet/v1/ctnet.proto"))
        .status()
        .unwrap();
    assert!(status.success(), "protoc with protoc-gen-go and protoc-gen-go-grpc");
    same_as_committed(&out, &repo().join("clients/go"));
    std::fs::remove_dir_all(&out).unwrap();
}
