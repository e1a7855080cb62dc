//! Network namespaces: pins in our directory, and work done inside a
//! namespace. A thread's netns decides which namespace its netlink sockets
//! and /proc/sys/net files belong to, so every setns/unshare happens on a
//! short-lived dedicated OS thread with its own small runtime, never on a
//! tokio worker.
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use rtnetlink::Handle;

use crate::error::{ExecError, Result};

/// Makes `dir` a shared mount, the way `ip netns` does, so pins bind-mounted
/// below it propagate to every peer mount namespace.
pub fn make_shared_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let shared = || {
        mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
    };
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
    nix::sys::statfs::statfs(path).map(|fs| is_nsfs(&fs)).unwrap_or(false)
}

fn is_nsfs(fs: &nix::sys::statfs::Statfs) -> bool {
    fs.filesystem_type().0 == crate::checks::NSFS_MAGIC
}

/// Our pin directory, held open: every pin is opened and created relative to
/// it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no name, `..`
/// or symlink can lead a pin operation outside it.
pub struct PinDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl PinDir {
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { path: path.to_path_buf(), fd })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn open_at(&self, name: &str, flags: OFlag, mode: Mode) -> io::Result<File> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        Ok(File::from(nix::fcntl::openat2(&self.fd, name, how)?))
    }

    /// Opens a live pin for setns or for handing its fd to the kernel.
    pub fn open_pin(&self, name: &str) -> Result<File> {
        let f = self.open_at(name, OFlag::O_RDONLY, Mode::empty()).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                ExecError::NotFound(format!("network namespace {name} does not exist"))
            }
            _ => ExecError::step(&format!("open pin {name}"), e),
        })?;
        let fs = nix::sys::statfs::fstatfs(&f).map_err(|e| ExecError::step("fstatfs", e))?;
        if !is_nsfs(&fs) {
            return Err(ExecError::NotFound(format!("network namespace {name} is not pinned")));
        }
        Ok(f)
    }

    /// The empty file a pin is mounted on (kept if it exists).
    fn create_file(&self, name: &str) -> io::Result<File> {
        self.open_at(name, OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o444))
    }

    /// Pins the namespace of the calling thread at `name`. The file is made
    /// with openat2 (a plain file right in our directory, no symlink on the
    /// way), then mounted on by path: a bind mount onto /proc/self/fd/N is
    /// refused here with EINVAL. Only netexec can write the directory.
    pub fn pin_current_thread(&self, name: &str) -> Result<()> {
        self.create_file(name).map_err(|e| ExecError::step("create pin file", e))?;
        let target = self.path_of(name);
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
            ExecError::step("pin namespace", e)
        })
    }

    /// Pins the executor's own namespace, so host mode has a path too.
    pub fn pin_own(&self, name: &str) -> io::Result<()> {
        let own = Path::new("/proc/self/ns/net");
        let path = self.path_of(name);
        if same_file(&path, own) {
            return Ok(());
        }
        if is_pin(&path) {
            self.unpin(name)?;
        }
        self.create_file(name)?;
        mount(Some(own), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
        Ok(())
    }

    /// Removes a pin; success if it is already gone. The namespace itself
    /// dies when its last user (process, socket, open fd) goes.
    pub fn unpin(&self, name: &str) -> io::Result<()> {
        let flags = MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW;
        match umount2(&self.path_of(name), flags) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names in the directory.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.path)?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Where a dedicated thread should run its work.
pub enum Place {
    /// Inside an existing namespace.
    Existing(File),
    /// Inside a new namespace, pinned under this name first.
    New(std::sync::Arc<PinDir>, String),
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
        .map_err(|e| ExecError::step("spawn namespace thread", e))?;
    rx.await.map_err(|_| ExecError::Internal("namespace thread died".into()))?
}

fn enter(place: Place) -> Result<()> {
    match place {
        Place::Existing(ns) => {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| ExecError::step("setns", e))
        }
        Place::New(dir, name) => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ExecError::step("unshare", e))?;
            // thread-self: /proc/self/ns/net would be the main thread's namespace.
            dir.pin_current_thread(&name)
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
        .map_err(|e| ExecError::step("runtime", e))?;
    rt.block_on(async move {
        // The socket is created here, on this thread, so it belongs to this namespace.
        let (conn, handle, _) =
            crate::kernel::connection().map_err(|e| ExecError::step("netlink socket", e))?;
        let task = tokio::spawn(conn);
        let out = work(handle).await;
        task.abort();
        out
    })
}
