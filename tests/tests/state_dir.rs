//! The state directory hand-over cannot be turned against root: started as
//! root with --user, ctnet-api used to chown every entry of its state
//! directory, following symlinks, so a compromised ctnet-api (its own uid)
//! could plant a link to any root file and get it at the next start. Now it
//! refuses to start, naming the entry, and the target stays root's.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ctnet_tests::bin;

const UID: u32 = 60_917;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctnet-statedir-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(dir.join("state")).unwrap();
    dir
}

/// A root-owned secret, as /etc/shadow is.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, "secret").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    v
}

/// Starts ctnet-api as root with --user; it must refuse before serving.
fn start(dir: &Path) -> std::process::Output {
    Command::new(bin("ctnet-api"))
        .arg("--socket")
        .arg(dir.join("api.sock"))
        .args(["--socket-group", "", "--user", &format!("{UID}:{UID}")])
        .arg("--netexec-socket")
        .arg(dir.join("no-netexec.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .expect("run ctnet-api")
}

fn refused_and_untouched(dir: &Path, victim: &Path, entry: &str) {
    let out = start(dir);
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "ctnet-api started: {log}");
    assert!(log.contains(entry) && log.contains("refusing to start"), "{log}");
    let meta = std::fs::metadata(victim).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (0, 0o600),
        "the target keeps its owner and mode"
    );
    let state = std::fs::symlink_metadata(dir.join("state")).unwrap();
    assert_eq!(
        (state.uid(), state.mode() & 0o777),
        (UID, 0o700),
        "the directory itself is handed over"
    );
}

#[test]
fn a_planted_symlink_is_refused_and_its_target_untouched() {
    let dir = scratch();
    let v = victim(&dir);
    std::os::unix::fs::symlink(&v, dir.join("state/ctnet.redb")).unwrap();
    refused_and_untouched(&dir, &v, "ctnet.redb");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_planted_hard_link_is_refused_and_its_target_untouched() {
    let dir = scratch();
    let v = victim(&dir);
    std::fs::hard_link(&v, dir.join("state/planted")).unwrap();
    refused_and_untouched(&dir, &v, "planted");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_directory_that_is_a_symlink_is_refused() {
    let dir = scratch();
    std::fs::remove_dir(dir.join("state")).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("state")).unwrap();
    let out = start(&dir);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::metadata(&elsewhere).unwrap().uid(),
        0,
        "the link's target keeps its owner"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
