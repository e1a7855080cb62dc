//! Namespaces for tests: fake hosts and runtime-style pins, and running code
//! inside a namespace on a dedicated thread (never the test's own thread,
//! whose namespace must stay the real host's... which tests never touch).
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Runs `f` on a fresh thread inside the namespace pinned at `ns`.
pub fn run_in<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(ns).unwrap_or_else(|e| panic!("open netns {}: {e}", ns.display()));
    std::thread::spawn(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

/// Creates a new network namespace and pins it at `pin` (an empty file is
/// created). Runs `init` inside it first.
pub fn create_pinned(pin: &Path, init: impl FnOnce() + Send + 'static) {
    let pin = pin.to_path_buf();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare netns");
        File::create(&pin).expect("create pin file");
        mount(Some("/proc/thread-self/ns/net"), &pin, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .expect("pin netns");
        init();
    })
    .join()
    .expect("netns creation thread panicked");
}

pub fn unpin(pin: &Path) {
    let _ = umount2(pin, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(pin);
}

/// The namespace identity of a pin or /proc/.../ns/net file.
pub fn inode(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.dev(), m.ino())
}

/// Writes a sysctl under /proc/sys/net, which resolves to the namespace of
/// the thread that opens it.
pub fn sysctl_set(ns: &Path, key: &str, value: &str) {
    let (key, value) = (key.to_string(), value.to_string());
    run_in(ns, move || {
        std::fs::write(sysctl_path(&key), value).unwrap_or_else(|e| panic!("sysctl {key}: {e}"))
    });
}

pub fn sysctl_get(ns: &Path, key: &str) -> String {
    let key = key.to_string();
    run_in(ns, move || {
        std::fs::read_to_string(sysctl_path(&key)).expect("read sysctl").trim().to_string()
    })
}

fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Mount points at or below `dir`, from this process's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = dir.display().to_string();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// True when `path` is a mounted namespace file.
pub fn is_pin(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).map(|fs| fs.filesystem_type().0 == 0x6e73_6673).unwrap_or(false)
}
