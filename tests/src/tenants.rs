//! Tenants for tests: a policy file in a temp dir whose tenants are uids
//! no other test uses, and the CLI run as one of them.
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::{bin, Stack};

pub struct Tenants {
    pub dir: PathBuf,
    pub policy: PathBuf,
    pub a: u32,
    pub b: u32,
}

impl Tenants {
    /// Tenants alpha (uid a) and beta (uid b) on random uids; `text` is the
    /// policy with `{a}` and `{b}` standing for them. The admin is root.
    pub fn new(text: &str) -> Tenants {
        let dir = std::env::temp_dir().join(format!("ctnet-policy-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = 61000 + rand::random::<u32>() % 4000;
        let (a, b) = (base + 21, base + 22);
        let t = Tenants { policy: dir.join("policy.toml"), dir, a, b };
        t.write(text);
        t
    }

    /// Replaces the policy file (SIGHUP makes the daemon reread it).
    pub fn write(&self, text: &str) {
        let text = text.replace("{a}", &self.a.to_string()).replace("{b}", &self.b.to_string());
        std::fs::write(&self.policy, format!("[admin]\nuids = [0]\n\n{text}")).unwrap();
        std::fs::set_permissions(&self.policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn args(&self) -> Vec<String> {
        vec!["--policy".into(), self.policy.display().to_string()]
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The CLI as `uid` over the Unix socket: Ok(stdout JSON) or Err(stderr).
pub fn as_uid(st: &Stack, uid: u32, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("setpriv")
        .args(["--reuid", &uid.to_string(), "--regid", &uid.to_string(), "--clear-groups"])
        .arg(bin("ctnet"))
        .args(["--json", "-H"])
        .arg(&st.api_socket)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)))
}

/// The test's uids stand in for the socket's group.
pub fn open_socket(st: &Stack) {
    std::fs::set_permissions(&st.api_socket, std::fs::Permissions::from_mode(0o666)).unwrap();
}

/// Sends SIGHUP to ctnet-api.
pub fn reload(st: &Stack) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(st.api_pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}
