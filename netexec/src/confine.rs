//! How netexec confines itself before serving, so that it holds only what
//! the kernel demands: CAP_NET_ADMIN and CAP_SYS_ADMIN, no_new_privs, and an
//! argument-level seccomp filter on every thread (CAP_SYS_ADMIN is only
//! tolerable with one). Setup that needs more than that (shared pin
//! directory, host pin, socket, mount namespace) happens before.
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

/// What this netexec may do with namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Creates, pins and deletes sandbox namespaces (the default).
    Creates,
    /// Only configures namespaces a runtime pinned (`netns_path`): no mount
    /// or unshare in its filter.
    JoinOnly,
}

pub const KEEP: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN];
/// CapEff/CapPrm/CapBnd with exactly KEEP: bits 12 and 21.
pub const KEEP_MASK: u64 = (1 << 12) | (1 << 21);

/// The errno the filter answers refused calls with.
pub const REFUSED: u32 = libc::EPERM as u32;

/// netexec's own mount namespace: the pin directory (and any runtime netns
/// directory it reads) stay shared peers of the host's, so pins still reach
/// the host; every other mount turns slave and read-only, so a bind mount
/// made elsewhere by a compromised netexec never reaches the host. In /proc
/// only /proc/sys/net stays writable; /dev is a minimal private one (a
/// read-only mount does not stop writes to device nodes such as disks).
pub fn isolate_mounts(keep_shared: &[PathBuf]) -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)?;
    slave_and_read_only(keep_shared)?;
    guard_proc()?;
    private_dev()
}

fn bind(path: &str, flags: MsFlags) -> io::Result<()> {
    mount(Some(path), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
        None::<&str>,
    )?;
    Ok(())
}

/// Kernel tunables and sysrq read-only; network sysctls (resolved per
/// thread namespace at open) writable.
fn guard_proc() -> io::Result<()> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    bind("/proc/sys", hardened | MsFlags::MS_RDONLY)?;
    bind("/proc/sys/net", hardened)?;
    // Kernels built without magic SysRq have no trigger file.
    if Path::new("/proc/sysrq-trigger").exists() {
        bind("/proc/sysrq-trigger", hardened | MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// A tmpfs /dev with null, zero, random and urandom only.
fn private_dev() -> io::Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), "/dev", Some("tmpfs"), flags, Some("mode=0755,size=64k"))?;
    for (name, minor) in [("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)] {
        let path = format!("/dev/{name}");
        mknod(path.as_str(), SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(1, minor))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    }
    mount(
        None::<&str>,
        "/dev",
        None::<&str>,
        MsFlags::MS_REMOUNT | flags | MsFlags::MS_RDONLY,
        None::<&str>,
    )?;
    Ok(())
}

fn slave_and_read_only(keep_shared: &[PathBuf]) -> io::Result<()> {
    for m in mounts()? {
        if keep_shared.iter().any(|k| m.point.starts_with(k)) {
            continue;
        }
        match mount(None::<&str>, &m.point, None::<&str>, MsFlags::MS_SLAVE, None::<&str>) {
            // Unmounted meanwhile (an unmount in a shared peer propagates
            // into this fresh copy): nothing left to isolate.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => continue,
            other => other?,
        }
        if m.point.starts_with("/proc") {
            continue;
        }
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | m.kept_flags;
        if let Err(e) = mount(None::<&str>, &m.point, None::<&str>, flags, None::<&str>) {
            tracing::warn!(mount = %m.point.display(), error = %e, "could not make mount read-only");
        }
    }
    Ok(())
}

struct MountPoint {
    point: PathBuf,
    /// Per-mount flags a read-only bind remount must repeat.
    kept_flags: MsFlags,
}

fn mounts() -> io::Result<Vec<MountPoint>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let point = PathBuf::from(unescape(fields.get(4)?));
            let mut kept_flags = MsFlags::empty();
            for opt in fields.get(5)?.split(',') {
                kept_flags |= match opt {
                    "nosuid" => MsFlags::MS_NOSUID,
                    "nodev" => MsFlags::MS_NODEV,
                    "noexec" => MsFlags::MS_NOEXEC,
                    "noatime" => MsFlags::MS_NOATIME,
                    "nodiratime" => MsFlags::MS_NODIRATIME,
                    "relatime" => MsFlags::MS_RELATIME,
                    _ => MsFlags::empty(),
                };
            }
            Some(MountPoint { point, kept_flags })
        })
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        let octal = s.get(i + 1..i + 4).filter(|_| c == b'\\');
        match octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Drops every capability but KEEP from every set; the bounding set is what
/// an exec'd `nft` (uid 0) gets its capabilities from.
/// Each set is only written when it differs, so under a unit that already
/// grants exactly these two no capset(2) is needed (systemd's
/// ~@privileged filter refuses it).
pub fn drop_capabilities() -> Result<(), caps::errors::CapsError> {
    let keep: CapsHashSet = KEEP.into_iter().collect();
    if !caps::read(None, CapSet::Ambient)?.is_empty() {
        caps::clear(None, CapSet::Ambient)?;
    }
    for cap in caps::read(None, CapSet::Bounding)? {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    let wanted = [
        (CapSet::Inheritable, CapsHashSet::new()),
        (CapSet::Effective, keep.clone()),
        (CapSet::Permitted, keep),
    ];
    for (set, value) in wanted {
        if caps::read(None, set)? != value {
            caps::set(None, set, &value)?;
        }
    }
    Ok(())
}

// The filter is built from constants of this file; no input reaches it, and
// a filter that does not build must stop netexec before it serves.
#[allow(clippy::expect_used)]
fn arg(index: u8, op: Op, value: u64) -> Cond {
    Cond::new(index, Len::Qword, op, value).expect("valid seccomp condition")
}

// The filter is built from constants of this file; no input reaches it, and
// a filter that does not build must stop netexec before it serves.
#[allow(clippy::expect_used)]
fn rule(conds: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conds).expect("valid seccomp rule")
}

fn eq(index: u8, value: u64) -> SeccompRule {
    rule(vec![arg(index, Op::Eq, value)])
}

/// Calls allowed whatever their arguments: what tokio, tonic, rtnetlink,
/// glibc's thread and process creation, and the exec'd nft and conntrack
/// need. Everything not listed (ptrace, bpf, kexec, module loading,
/// keyctl, io_uring, perf, process_vm_*, open_by_handle_at, pivot_root,
/// chroot, the new mount API ...) is refused.
const PLAIN: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_ioctl,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_pipe2,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_fsync,
    libc::SYS_getcwd,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_unlinkat,
    libc::SYS_fadvise64,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getgroups,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_capget,
    libc::SYS_set_tid_address,
    libc::SYS_rseq,
    libc::SYS_prlimit64,
    libc::SYS_getrandom,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_tgkill,
    libc::SYS_execve,
    libc::SYS_pidfd_open,
    libc::SYS_restart_syscall,
    libc::SYS_membarrier,
    // clone3 passes here and is answered ENOSYS by the second filter, so
    // glibc falls back to clone, whose flags this filter can inspect.
    libc::SYS_clone3,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_arch_prctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_stat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_access,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_readlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_pipe,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_dup2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_getdents,
];

const NEW_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u64;

/// prctl options glibc, Rust's std and the exec'd tools use.
const PRCTL_OPTIONS: &[u64] = &[
    libc::PR_SET_NAME as u64,
    libc::PR_GET_NAME as u64,
    libc::PR_CAPBSET_READ as u64,
    libc::PR_GET_NO_NEW_PRIVS as u64,
    libc::PR_GET_SECUREBITS as u64,
    libc::PR_GET_KEEPCAPS as u64,
    libc::PR_GET_DUMPABLE as u64,
    0x5356_4d41, // PR_SET_VMA (glibc names its mappings)
];

fn rules(profile: Profile) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut r: BTreeMap<i64, Vec<SeccompRule>> = PLAIN.iter().map(|s| (*s, vec![])).collect();
    // Sockets: Unix (gRPC), and netlink for routes, nftables, sock_diag.
    let netlink = |proto: i32| {
        rule(vec![arg(0, Op::Eq, libc::AF_NETLINK as u64), arg(2, Op::Eq, proto as u64)])
    };
    r.insert(
        libc::SYS_socket,
        vec![
            eq(0, libc::AF_UNIX as u64),
            netlink(libc::NETLINK_ROUTE),
            netlink(libc::NETLINK_NETFILTER),
            netlink(libc::NETLINK_SOCK_DIAG),
        ],
    );
    r.insert(libc::SYS_socketpair, vec![eq(0, libc::AF_UNIX as u64)]);
    // Threads and child processes, never in new namespaces.
    r.insert(libc::SYS_clone, vec![rule(vec![arg(0, Op::MaskedEq(NEW_NAMESPACES), 0)])]);
    r.insert(libc::SYS_prctl, PRCTL_OPTIONS.iter().map(|o| eq(0, *o)).collect());
    // Entering sandbox namespaces: network namespaces only.
    r.insert(libc::SYS_setns, vec![eq(1, libc::CLONE_NEWNET as u64)]);
    if profile == Profile::Creates {
        r.insert(libc::SYS_unshare, vec![eq(0, libc::CLONE_NEWNET as u64)]);
        // Pinning: a plain bind mount; unpinning: detach.
        r.insert(libc::SYS_mount, vec![eq(3, libc::MS_BIND)]);
        let detach = (libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) as u64;
        r.insert(libc::SYS_umount2, vec![eq(1, 0), eq(1, libc::MNT_DETACH as u64), eq(1, detach)]);
    }
    r
}

// The filter is built from constants of this file; no input reaches it, and
// a filter that does not build must stop netexec before it serves.
#[allow(clippy::expect_used)]
fn arch() -> TargetArch {
    TargetArch::try_from(std::env::consts::ARCH).expect("a seccomp-supported architecture")
}

/// The main filter (refuse what is not allowed) and the clone3 filter.
// The filter is built from constants of this file; no input reaches it, and
// a filter that does not build must stop netexec before it serves.
#[allow(clippy::expect_used)]
pub fn filters(profile: Profile) -> (BpfProgram, BpfProgram) {
    let main = SeccompFilter::new(
        rules(profile),
        SeccompAction::Errno(REFUSED),
        SeccompAction::Allow,
        arch(),
    )
    .expect("valid filter");
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .expect("valid filter");
    (main.try_into().expect("compiles"), clone3.try_into().expect("compiles"))
}

/// Installs both filters on every thread (this also sets no_new_privs).
/// The clone3 filter goes first: the main one refuses seccomp(2) itself,
/// and for clone3 its ERRNO outranks the main filter's ALLOW either way.
pub fn install(profile: Profile) -> Result<(), seccompiler::Error> {
    let (main, clone3) = filters(profile);
    seccompiler::apply_filter_all_threads(&clone3)?;
    seccompiler::apply_filter_all_threads(&main)
}

/// Reads every thread's status: refuses to go on unless each holds exactly
/// KEEP, nothing inheritable or ambient, no_new_privs and a filter.
pub fn verify() -> Result<(), String> {
    let tasks = std::fs::read_dir("/proc/self/task").map_err(|e| e.to_string())?;
    for task in tasks.flatten() {
        let status =
            std::fs::read_to_string(task.path().join("status")).map_err(|e| e.to_string())?;
        check_status(&status)
            .map_err(|e| format!("thread {}: {e}", task.file_name().to_string_lossy()))?;
    }
    Ok(())
}

pub fn check_status(status: &str) -> Result<(), String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let hex = |name: &str| u64::from_str_radix(&field(name), 16).unwrap_or(u64::MAX);
    let want = [
        ("CapEff:", KEEP_MASK),
        ("CapPrm:", KEEP_MASK),
        ("CapBnd:", KEEP_MASK),
        ("CapInh:", 0),
        ("CapAmb:", 0),
    ];
    for (name, value) in want {
        if hex(name) != value {
            return Err(format!("{name} is {}, expected {value:016x}", field(name)));
        }
    }
    if field("NoNewPrivs:") != "1" || field("Seccomp:") != "2" {
        return Err(format!("NoNewPrivs {} Seccomp {}", field("NoNewPrivs:"), field("Seccomp:")));
    }
    Ok(())
}

/// Directories that stay shared with the host in netexec's namespace.
pub fn shared_dirs(pin_dir: &Path, netns_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut v = vec![pin_dir.to_path_buf()];
    v.extend(netns_dirs.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescapes() {
        assert_eq!(unescape(r"/run/with\040space"), "/run/with space");
        assert_eq!(unescape(r"/plain"), "/plain");
    }

    #[test]
    fn both_profiles_compile() {
        for p in [Profile::Creates, Profile::JoinOnly] {
            let (main, clone3) = filters(p);
            assert!(!main.is_empty() && !clone3.is_empty());
        }
    }

    #[test]
    fn status_check_wants_exactly_two_capabilities() {
        let ok = "CapInh:\t0000000000000000\nCapPrm:\t0000000000201000\nCapEff:\t0000000000201000\n\
                  CapBnd:\t0000000000201000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        assert!(check_status(ok).is_ok());
        assert!(check_status(
            &ok.replace("CapBnd:\t0000000000201000", "CapBnd:\t000001ffffffffff")
        )
        .is_err());
        assert!(check_status(&ok.replace("Seccomp:\t2", "Seccomp:\t0")).is_err());
    }
}
