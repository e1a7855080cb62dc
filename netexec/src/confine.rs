//! How netexec confines itself before serving, so that it holds only what
//! the kernel demands: CAP_NET_ADMIN and CAP_SYS_ADMIN, no_new_privs, and an
//! argument-level seccomp filter on every thread (CAP_SYS_ADMIN is only
//! tolerable with one). Setup that needs more than that (shared pin
//! directory, host pin, socket, mount namespace) happens before.
use std::io;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use ctnet_proto::seccomp::{self, arg, eq, rule, Rules, SeccompCmpOp as Op};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use seccompiler::BpfProgram;

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
pub const REFUSED: u32 = seccomp::REFUSED;

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

/// Calls netexec needs beyond the shared set, whatever their arguments:
/// statfs (pin and netns_path checks), unlink (its socket), bind and listen
/// (its socket), and running nft and conntrack (execve, wait).
const EXTRA: &[i64] = &[
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_unlinkat,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_execve,
    libc::SYS_pidfd_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
];

fn rules(profile: Profile) -> Rules {
    let mut r = seccomp::common_rules();
    r.extend(EXTRA.iter().map(|s| (*s, vec![])));
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

/// The main filter (refuse what is not allowed) and the clone3 filter.
pub fn filters(profile: Profile) -> (BpfProgram, BpfProgram) {
    seccomp::filters(rules(profile))
}

/// Installs both filters on every thread (this also sets no_new_privs).
pub fn install(profile: Profile) -> Result<(), seccompiler::Error> {
    seccomp::install(rules(profile))
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
