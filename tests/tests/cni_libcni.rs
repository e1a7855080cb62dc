//! ctnet-cni under the real libcni (Debian's golang-github-appc-cni-dev):
//! a small Go driver built here runs VERSION negotiation, ADD, CHECK and
//! DEL the way containerd and CRI-O call plugins. A missing Go toolchain
//! fails this test; it never skips.
use std::path::{Path, PathBuf};
use std::process::Command;

use ctnet_tests::cni::{in_namespace, Container};
use ctnet_tests::{net, req, Stack};
use serde_json::{json, Value};

const GO: &str = "/usr/lib/go-1.19/bin/go";

/// Builds the driver into `dir` in GOPATH mode, offline.
fn build_driver(dir: &Path) -> PathBuf {
    assert!(Path::new(GO).exists(), "{GO} is missing: scripts/deps.sh installs golang-1.19-go");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-driver/driver.go");
    let out = dir.join("driver");
    let status = Command::new(GO)
        .arg("build")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOPROXY", "off")
        .env("GOCACHE", dir.join("gocache"))
        .env("HOME", dir)
        .status()
        .expect("run go build");
    assert!(status.success(), "go build of the libcni driver failed");
    out
}

struct Driver {
    bin: PathBuf,
    conflist: PathBuf,
    plugins: PathBuf,
    cache: PathBuf,
    host: PathBuf,
}

impl Driver {
    fn run(&self, verb: &str, c: &Container, ports: Option<&Value>) -> Result<Value, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(verb).arg(&self.conflist).arg(&c.id).arg(&c.netns).arg("eth0");
        cmd.arg(&self.plugins).arg(&self.cache);
        if let Some(p) = ports {
            cmd.arg(p.to_string());
        }
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let out = in_namespace(&self.host, cmd, b"");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap()
        })
    }
}

#[tokio::test]
async fn libcni_runs_add_check_and_del_against_ctnet() {
    let mut st = Stack::start().await;
    st.client.networks.create_network(req::network("libcni", "198.19.48.0/24")).await.unwrap();
    let work = st.dir.join("libcni");
    std::fs::create_dir_all(work.join("bin")).unwrap();
    // CNI finds a plugin by its type: ctnet-cni is installed as "ctnet".
    std::os::unix::fs::symlink(ctnet_tests::bin("ctnet-cni"), work.join("bin/ctnet")).unwrap();
    let conflist = work.join("libcni.conflist");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "libcni",
        "plugins": [{
            "type": "ctnet",
            "api": st.api_socket.display().to_string(),
            "capabilities": { "portMappings": true },
        }],
    });
    std::fs::write(&conflist, list.to_string()).unwrap();
    let driver = Driver {
        bin: build_driver(&work),
        conflist,
        plugins: work.join("bin"),
        cache: work.join("cache"),
        host: st.host.clone(),
    };
    let c = Container::new(&st, "libcni");
    let ports = json!([{ "hostPort": 18090, "containerPort": 80, "protocol": "tcp" }]);
    let r = driver.run("add", &c, Some(&ports)).expect("ADD through libcni");
    let address = r["ips"][0]["address"].as_str().expect("an address").to_string();
    assert_eq!(net::addresses(&c.netns, "eth0"), vec![address.clone()]);
    let sandboxes = st.list_sandboxes().await.sandboxes;
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].ports.len(), 1, "portMappings reached ctnet");
    assert_eq!(sandboxes[0].ports[0].host_port, 18090);

    driver.run("check", &c, Some(&ports)).expect("CHECK through libcni");
    // Control: CHECK notices kernel state that differs.
    net::ip_do(&c.netns, &["addr", "del", &address, "dev", "eth0"]);
    let err = driver.run("check", &c, Some(&ports)).expect_err("CHECK must fail");
    assert!(err.contains("differs"), "{err}");

    driver.run("del", &c, Some(&ports)).expect("DEL through libcni");
    assert!(st.list_sandboxes().await.sandboxes.is_empty());
    assert!(st.nft_elements("ports_any").is_empty());
    c.unpin();
    st.finish().await;
}
