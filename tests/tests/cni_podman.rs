//! podman 4.3 with its CNI backend, networks of type ctnet: a container
//! serving HTTP is reached from an external namespace through ctnet's port
//! mapping, a second container sits on two ctnet networks, and `podman rm
//! -f` leaves nothing. Hermetic: podman runs in the fake host's network
//! namespace (setns) and in a mount namespace where /run/netns and libcni's
//! /var/lib/cni are the test's; its storage, run root, configuration and
//! events are in the test directory.
use std::path::{Path, PathBuf};
use std::process::Command;

use ctnet_tests::cni::{enter_mount_ns, in_namespace, MountNs};
use ctnet_tests::{net, req, Options, Stack, HOST_OUTSIDE};
use serde_json::json;

struct Podman {
    dir: PathBuf,
    host: PathBuf,
    mnt: PathBuf,
}

impl Podman {
    /// Configuration, storage, CNI plugin directory and conflists for
    /// `networks` (conflist name = ctnet network name) in `dir`.
    fn new(st: &Stack, dir: &Path, mnt: PathBuf, networks: &[&str]) -> Podman {
        let bin = dir.join("cni-bin");
        let conf = dir.join("cni-conf");
        for d in [&bin, &conf] {
            std::fs::create_dir_all(d).unwrap();
        }
        // CNI finds a plugin by its type: ctnet-cni is installed as "ctnet".
        std::os::unix::fs::symlink(ctnet_tests::bin("ctnet-cni"), bin.join("ctnet")).unwrap();
        for n in networks {
            let list = json!({
                "cniVersion": "1.0.0",
                "name": n,
                "plugins": [{
                    "type": "ctnet",
                    "api": st.api_socket.display().to_string(),
                    "capabilities": { "portMappings": true, "ips": true, "mac": true },
                }],
            });
            std::fs::write(conf.join(format!("{n}.conflist")), list.to_string()).unwrap();
        }
        let d = dir.display();
        let containers_conf = format!(
            r#"[containers]
default_ulimits = ["nofile=4096:4096", "nproc=1024:1024"]
init_path = "/usr/bin/catatonit"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
runtime = "runc"
tmp_dir = "{d}/libpod-tmp"
volume_path = "{d}/volumes"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{d}/cni-bin"]
network_config_dir = "{d}/cni-conf"
default_network = "{}"
"#,
            networks[0]
        );
        std::fs::write(dir.join("containers.conf"), containers_conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n"
        );
        std::fs::write(dir.join("storage.conf"), storage).unwrap();
        busybox_rootfs(&dir.join("rootfs"));
        Podman { dir: dir.to_path_buf(), host: st.host.clone(), mnt }
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("podman");
        cmd.arg("--root").arg(self.dir.join("root"));
        cmd.arg("--runroot").arg(self.dir.join("runroot"));
        cmd.args(args);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.dir)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"));
        enter_mount_ns(&mut cmd, &self.mnt);
        let out = in_namespace(&self.host, cmd, b"");
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(format!("podman {args:?}: {}", text(&out.stderr)))
        }
    }

    fn rootfs(&self) -> String {
        self.dir.join("rootfs").display().to_string()
    }
}

/// A root filesystem of busybox-static: no image registry is reachable.
fn busybox_rootfs(root: &Path) {
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "httpd", "ip", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("www/index.html"), "served by busybox behind ctnet\n").unwrap();
}

/// The real host's mounts at /run/netns (none, or what was there).
fn run_netns_mounts() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with("/run/netns")))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn podman_with_the_cni_backend_runs_containers_on_ctnet_networks() {
    let real_run_netns = run_netns_mounts();
    let dir = ctnet_tests::temp_dir();
    let mnt = MountNs::new(&dir.join("run-netns"), &dir.join("cni-cache"));
    let opts = Options {
        netexec_args: vec!["--netns-allow-dir".into(), "/run/netns".into()],
        netexec_mount_ns: Some(mnt.path()),
        ..Default::default()
    };
    let mut st = Stack::start_with(opts).await;
    for (n, subnet) in [("podnet", "198.19.50.0/24"), ("podnet2", "198.19.51.0/24")] {
        st.client.networks.create_network(req::network(n, subnet)).await.unwrap();
    }
    let ext = st.add_external();
    let podman = Podman::new(&st, &dir, mnt.path(), &["podnet", "podnet2"]);
    let rootfs = podman.rootfs();

    let web = podman
        .run(&[
            "run",
            "-d",
            "--init",
            "--name",
            "web",
            "-p",
            "18100:80",
            "--network",
            "podnet",
            "--rootfs",
            &rootfs,
            "/bin/httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ])
        .unwrap();
    assert!(!web.is_empty());
    let list = st.list_sandboxes().await.sandboxes;
    assert_eq!(list.len(), 1, "one sandbox for the container");
    let sb = &list[0];
    assert_eq!(sb.labels.get("cni.dev/container-id"), Some(&web));
    assert_eq!(sb.ports.len(), 1);
    assert_eq!(sb.ports[0].host_port, 18100);
    // libcni's cache went to the test's directory, not the host's.
    let cached = std::fs::read_dir(dir.join("cni-cache/results")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(cached, 1, "podman's libcni cached the ADD in the test directory");
    // The container's eth0 has the address ctnet reports.
    let seen = podman.run(&["exec", "web", "/bin/ip", "-4", "-o", "addr", "show", "eth0"]).unwrap();
    assert!(seen.contains(&sb.interfaces[0].address), "{seen} vs {:?}", sb.interfaces[0]);
    // Rootful podman reserves the host port itself (conmon keeps it busy),
    // after the ADD: ctnet's mapping stands beside that reservation.
    let mut ss = Command::new("ss");
    ss.args(["-Hltn", "sport = :18100"]);
    let held = String::from_utf8_lossy(&in_namespace(&st.host, ss, b"").stdout).to_string();
    assert!(held.contains(":18100"), "podman holds the port: {held:?}");
    // An external client reaches it through ctnet's port mapping.
    let reply =
        net::tcp_roundtrip(&ext.pin, HOST_OUTSIDE, 18100, "GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(reply.contains("200"), "{reply}");

    // A second container on two ctnet networks has both interfaces.
    let two = podman
        .run(&[
            "run",
            "-d",
            "--init",
            "--name",
            "two",
            "--network",
            "podnet,podnet2",
            "--rootfs",
            &rootfs,
            "/bin/sleep",
            "600",
        ])
        .unwrap();
    let sb2 = st
        .list_sandboxes()
        .await
        .sandboxes
        .into_iter()
        .find(|s| s.labels.get("cni.dev/container-id") == Some(&two))
        .expect("second sandbox");
    assert_eq!(sb2.interfaces.len(), 2, "{sb2:?}");
    let links = podman.run(&["exec", "two", "/bin/ip", "-4", "-o", "addr", "show"]).unwrap();
    for i in &sb2.interfaces {
        assert!(links.contains(&i.address), "{links} lacks {}", i.address);
    }

    for c in ["web", "two"] {
        podman.run(&["rm", "-f", c]).unwrap();
    }
    assert!(st.list_sandboxes().await.sandboxes.is_empty(), "podman rm -f left a sandbox");
    assert!(st.nft_elements("ports_any").is_empty(), "a port element is left");
    let pins: Vec<_> = std::fs::read_dir(dir.join("run-netns")).unwrap().flatten().collect();
    assert!(pins.is_empty(), "podman's pins are gone: {pins:?}");
    drop(ext);
    st.finish().await;
    drop(mnt);
    assert_eq!(run_netns_mounts(), real_run_netns, "/run/netns is as it was");
    std::fs::remove_dir_all(&dir).unwrap();
}
