//! Network namespaces: pins in our directory, and work done inside a
//! namespace. A thread's netns decides which namespace its netlink sockets
//! and /proc/sys/net files belong to, so every setns/unshare happens on a
//! short-lived dedicated OS thread with its own small runtime, never on a
//! tokio worker.
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::Handle;

use crate::error::{ExecError, Result};

/// Makes `dir` a shared mount, the way `ip netns` does, so pins bind-mounted
/// below it propagate to every peer mount namespace.
pub fn make_shared_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let shared = || mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match shared() {
        Ok(()) if is_mount_point(dir)? => Ok(()),
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {
            mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
            shared().map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let canon = std::fs::canonicalize(dir)?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table.lines().any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap_or(""))))
}

/// True when `path` is a namespace file (a live pin).
pub fn is_pin(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type().0 as i64 == crate::checks::NSFS_MAGIC)
        .unwrap_or(false)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Pins the executor's own namespace at `path`, so host mode has a path too.
pub fn pin_own(path: &Path) -> io::Result<()> {
    let own = Path::new("/proc/self/ns/net");
    if same_file(path, own) {
        return Ok(());
    }
    if is_pin(path) {
        unpin(path)?;
    }
    create_pin_file(path)?;
    mount(Some(own), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    Ok(())
}

fn create_pin_file(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o444).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a pin; success if it is already gone. The namespace itself dies
/// when its last user (process, socket, open fd) goes.
pub fn unpin(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Opens a namespace file for setns or for handing its fd to the kernel.
pub fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ExecError::NotFound(format!("network namespace {} does not exist", path.display())),
        _ => ExecError::internal(&format!("open {}", path.display()), e),
    })
}

/// Where a dedicated thread should run its work.
pub enum Place {
    /// Inside an existing namespace.
    Existing(File),
    /// Inside a new namespace, pinned at this path first.
    New(PathBuf),
}

/// Runs `work` with a netlink handle inside a namespace, on a dedicated
/// thread that exits afterwards (so its namespace switch dies with it).
pub async fn run_in<F, Fut, T>(place: Place, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ctnet-netns".into())
        .spawn(move || {
            let _ = tx.send(enter(place).and_then(|()| block_on_netlink(work)));
        })
        .map_err(|e| ExecError::internal("spawn namespace thread", e))?;
    rx.await.map_err(|_| ExecError::Internal("namespace thread died".into()))?
}

fn enter(place: Place) -> Result<()> {
    match place {
        Place::Existing(ns) => setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| ExecError::internal("setns", e)),
        Place::New(pin) => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ExecError::internal("unshare", e))?;
            create_pin_file(&pin).map_err(|e| ExecError::internal("create pin file", e))?;
            // thread-self: /proc/self/ns/net would be the main thread's namespace.
            mount(Some("/proc/thread-self/ns/net"), &pin, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| {
                let _ = std::fs::remove_file(&pin);
                ExecError::internal("pin namespace", e)
            })
        }
    }
}

fn block_on_netlink<F, Fut, T>(work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ExecError::internal("runtime", e))?;
    rt.block_on(async move {
        // The socket is created here, on this thread, so it belongs to this namespace.
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| ExecError::internal("netlink socket", e))?;
        let task = tokio::spawn(conn);
        let out = work(handle).await;
        task.abort();
        out
    })
}
