//! Driving CNI plugins exactly as a runtime does: a subprocess in the fake
//! host's namespace with CNI_* in a clean environment and the network
//! configuration on stdin; stdout parsed as the result or error object.
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::Stack;

/// Where Debian's containernetworking-plugins put the reference plugins.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// One plugin run: exit status and stdout as JSON (Null when empty).
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub json: Value,
    pub stderr: String,
}

impl Out {
    /// The CNI error code (0 on success).
    pub fn code(&self) -> u64 {
        if self.ok {
            0
        } else {
            self.json["code"].as_u64().unwrap_or(u64::MAX)
        }
    }

    /// The result of a successful verb, or a panic naming the error.
    pub fn result(self) -> Value {
        assert!(self.ok, "plugin failed: {} (stderr: {})", self.json, self.stderr);
        self.json
    }
}

/// A container as a runtime sees it: an id, a pinned namespace, an ifname.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub netns: PathBuf,
}

impl Container {
    /// A fresh id and a namespace pinned in the stack's runtime directory
    /// (loopback up, as runtimes leave it).
    pub fn new(st: &Stack, tag: &str) -> Container {
        Self::pinned_in(&st.runtime_dir, tag)
    }

    /// The same, pinned in `dir`.
    pub fn pinned_in(dir: &Path, tag: &str) -> Container {
        let id = format!("{tag}{:016x}", rand::random::<u64>());
        let netns = dir.join(format!("netns-{id}"));
        crate::netns::create_pinned(&netns, || {
            let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("ip");
            assert!(up.success());
        });
        Container { id, netns }
    }

    /// Removes the runtime's pin (the namespace dies with it).
    pub fn unpin(&self) {
        crate::netns::unpin(&self.netns);
    }

    /// The environment of a verb on `ifname`.
    pub fn env(&self, ifname: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_CONTAINERID".into(), self.id.clone()),
            ("CNI_NETNS".into(), self.netns.display().to_string()),
            ("CNI_IFNAME".into(), ifname.into()),
        ]
    }
}

/// ctnet-cni against one stack.
pub struct Cni {
    host: PathBuf,
    socket: PathBuf,
}

impl Cni {
    pub fn new(st: &Stack) -> Cni {
        Cni { host: st.host.clone(), socket: st.api_socket.clone() }
    }

    /// A network configuration of type ctnet for `network`, with the
    /// capabilities podman and CRI runtimes use.
    pub fn conf(&self, network: &str) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "ctnet",
            "api": self.socket.display().to_string(),
            "capabilities": { "portMappings": true, "ips": true, "mac": true },
        })
    }

    /// Runs ctnet-cni with `command`.
    pub fn run(&self, command: &str, env: &[(String, String)], conf: &Value) -> Out {
        self.run_raw(command, env, conf.to_string().as_bytes())
    }

    /// Runs ctnet-cni as `uid` (its identity for ctnet's policy).
    pub fn run_as(&self, uid: u32, command: &str, env: &[(String, String)], conf: &Value) -> Out {
        let mut cmd = Command::new("setpriv");
        let uid = uid.to_string();
        cmd.args(["--reuid", &uid, "--regid", &uid, "--clear-groups"]).arg(crate::bin("ctnet-cni"));
        plugin_env(&mut cmd, command, env);
        parse_out(in_namespace(&self.host, cmd, conf.to_string().as_bytes()))
    }

    /// Runs ctnet-cni with `stdin` as it is (not necessarily JSON).
    pub fn run_raw(&self, command: &str, env: &[(String, String)], stdin: &[u8]) -> Out {
        run_plugin(&self.host, &crate::bin("ctnet-cni"), command, env, stdin)
    }
}

/// Runs the plugin binary `bin` in the namespace `ns`, as a runtime does.
pub fn run_plugin(
    ns: &Path,
    bin: &Path,
    command: &str,
    env: &[(String, String)],
    stdin: &[u8],
) -> Out {
    let mut cmd = Command::new(bin);
    plugin_env(&mut cmd, command, env);
    parse_out(in_namespace(ns, cmd, stdin))
}

/// A runtime's clean environment for one verb.
fn plugin_env(cmd: &mut Command, command: &str, env: &[(String, String)]) {
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", REFERENCE_PLUGINS)
        .envs(env.iter().map(|(k, v)| (k, v)));
}

fn parse_out(out: std::process::Output) -> Out {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {stdout:?}"))
    };
    Out { ok: out.status.success(), json, stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// Runs `cmd` to completion inside `ns` with `stdin`.
pub fn in_namespace(ns: &Path, mut cmd: Command, stdin: &[u8]) -> std::process::Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let ns_file = std::fs::File::open(ns).expect("open netns");
    let fd = ns_file.as_raw_fd();
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            nix::sched::setns(BorrowedFd::borrow_raw(fd), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    drop(ns_file);
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("wait for plugin")
}

/// Makes `cmd` start in the mount namespace `mnt` opens (before any other
/// pre_exec step that needs paths of that namespace).
pub fn enter_mount_ns(cmd: &mut Command, mnt: &Path) {
    let file = std::fs::File::open(mnt).expect("open mount namespace");
    // SAFETY: only setns (async-signal-safe) between fork and exec; the
    // descriptor is kept open by the closure until the command is dropped.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)?;
            Ok(())
        });
    }
}

/// A private mount namespace in which a runtime's hard-coded host paths
/// are the test's own: a tmpfs on /run (with /run/netns bound from the test
/// directory) and on /var/lib (with /var/lib/cni, libcni's cache, bound
/// from the test directory). Nothing propagates back to the host (/ is a
/// slave). It lives as long as this value or a process in it.
pub struct MountNs {
    file: std::fs::File,
}

impl MountNs {
    pub fn new(netns_dir: &Path, cni_cache: &Path) -> MountNs {
        use nix::mount::{mount, MsFlags};
        std::fs::create_dir_all(netns_dir).unwrap();
        std::fs::create_dir_all(cni_cache).unwrap();
        let (netns_dir, cni_cache) = (netns_dir.to_path_buf(), cni_cache.to_path_buf());
        let file = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare mount ns");
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none).expect("/ slave");
            for (tmpfs, sub, from) in
                [("/run", "netns", &netns_dir), ("/var/lib", "cni", &cni_cache)]
            {
                mount(Some("tmpfs"), tmpfs, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
                    .expect("tmpfs");
                let target = Path::new(tmpfs).join(sub);
                std::fs::create_dir(&target).expect("mount point");
                mount(Some(from.as_path()), &target, none, MsFlags::MS_BIND, none).expect("bind");
            }
            std::fs::File::open("/proc/thread-self/ns/mnt").expect("open mount ns")
        })
        .join()
        .expect("mount namespace thread");
        MountNs { file }
    }

    /// A path that opens this namespace (while this value lives).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd()))
    }
}

/// A configuration with the runtime config and previous result a runtime
/// adds for one call.
pub fn with(conf: &Value, extra: Value) -> Value {
    let mut c = conf.clone();
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// `env` plus one more variable.
pub fn plus(env: &[(String, String)], k: &str, v: &str) -> Vec<(String, String)> {
    let mut e = env.to_vec();
    e.push((k.into(), v.into()));
    e
}
