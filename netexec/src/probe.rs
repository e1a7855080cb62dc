//! `ctnet-netexec probe-seccomp`: runs each probe in a forked child of a
//! single-threaded process, under netexec's exact filter or none (the
//! control), and prints {"probe": "ok" | "EPERM" | ...}. The parent stays
//! clean: a probe that succeeds (say, a new user namespace) dies with its
//! child. Mount probes would change the mount table, so this refuses to run
//! in the host's mount namespace.
// The probes run only on inputs fixed in this file (the probe-seccomp
// subcommand); no request reaches them, so a panic is a bug report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::confine::{self, Profile};

type Probe = (&'static str, fn(&Path) -> i32);

/// What the filter must refuse.
const REFUSED: &[Probe] = &[
    ("unshare_newuser", |_| unshare(libc::CLONE_NEWUSER)),
    ("unshare_newns", |_| unshare(libc::CLONE_NEWNS)),
    ("setns_any_type", |_| with_netns_fd(|fd| setns(fd, 0))),
    ("mount_remount", |_| mount(None, "/", libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY)),
    ("mount_shared_rec", |_| mount(None, "/", libc::MS_SHARED | libc::MS_REC)),
    ("socket_inet", |_| socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
    ("socket_packet", |_| socket(libc::AF_PACKET, libc::SOCK_RAW, 0)),
    ("netlink_kobject_uevent", |_| {
        socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_KOBJECT_UEVENT)
    }),
    ("ptrace", |_| ptrace_traceme()),
    ("bpf", |_| bpf_map_create()),
];

/// What netexec needs, which must keep working.
const ALLOWED: &[Probe] = &[
    ("unshare_newnet", |_| unshare(libc::CLONE_NEWNET)),
    ("setns_net", |_| with_netns_fd(|fd| setns(fd, libc::CLONE_NEWNET))),
    ("bind_mount_and_detach", bind_mount),
    ("socket_unix", |_| socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
    ("netlink_route", |_| socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)),
    ("netlink_netfilter", |_| socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER)),
    ("thread", |_| if std::thread::spawn(|| 1).join().is_ok() { 0 } else { libc::EPERM }),
    ("exec", |_| match std::process::Command::new("true").status() {
        Ok(s) if s.success() => 0,
        Ok(_) => libc::ECHILD,
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }),
];

/// 0 on success, else the errno.
fn sys(rc: i32) -> i32 {
    if rc < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
    } else {
        0
    }
}

fn unshare(flags: i32) -> i32 {
    // SAFETY: unshare takes no pointers; the probe runs in a throwaway child.
    sys(unsafe { libc::unshare(flags) })
}

/// Returns the raw result: `with_netns_fd` turns it into an errno.
fn setns(fd: i32, nstype: i32) -> i32 {
    // SAFETY: fd is an open namespace descriptor; no pointers are passed.
    unsafe { libc::setns(fd, nstype) }
}

fn ptrace_traceme() -> i32 {
    // SAFETY: PTRACE_TRACEME takes no pointers (addr and data are ignored).
    sys(unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } as i32)
}

fn socket(domain: i32, kind: i32, proto: i32) -> i32 {
    // SAFETY: socket takes no pointers; the descriptor is left to process exit.
    sys(unsafe { libc::socket(domain, kind, proto) })
}

fn mount(src: Option<&str>, target: &str, flags: libc::c_ulong) -> i32 {
    let target = CString::new(target).unwrap();
    let src = src.map(|s| CString::new(s).unwrap());
    let src_ptr = src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a NUL-terminated CString alive for the call,
    // or null where mount(2) allows it.
    sys(unsafe { libc::mount(src_ptr, target.as_ptr(), std::ptr::null(), flags, std::ptr::null()) })
}

fn with_netns_fd(f: impl Fn(i32) -> i32) -> i32 {
    let path = CString::new("/proc/self/ns/net").unwrap();
    // SAFETY: path is a NUL-terminated CString alive for the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return sys(fd);
    }
    sys(f(fd))
}

fn bind_mount(scratch: &Path) -> i32 {
    let (a, b) = (scratch.join("probe-src"), scratch.join("probe-dst"));
    let _ = std::fs::write(&a, "");
    let _ = std::fs::write(&b, "");
    let rc = mount(Some(a.to_str().unwrap()), b.to_str().unwrap(), libc::MS_BIND);
    if rc != 0 {
        return rc;
    }
    let target = CString::new(b.to_str().unwrap()).unwrap();
    // SAFETY: target is a NUL-terminated CString alive for the call.
    sys(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

fn bpf_map_create() -> i32 {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1]);
    // SAFETY: attr is a live, zero-filled buffer larger than the union
    // bpf(2) reads, and its size is passed with it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0, /* BPF_MAP_CREATE */
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    sys(rc as i32)
}

/// Runs `probe` in a forked child; returns its result.
fn in_child(probe: fn(&Path) -> i32, scratch: &Path) -> i32 {
    // SAFETY: this process is single-threaded; the child only runs the probe
    // and exits.
    match unsafe { libc::fork() } {
        // SAFETY: _exit ends the child without running the parent's destructors.
        0 => unsafe { libc::_exit(probe(scratch)) },
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: status is a live i32 the call writes into.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                libc::EINTR
            }
        }
        _ => sys(-1),
    }
}

fn errno_name(code: i32) -> String {
    match code {
        0 => "ok".into(),
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENOSYS => "ENOSYS".into(),
        c => format!("errno {c}"),
    }
}

pub fn run(profile: Profile, filter: bool, scratch: &Path) -> i32 {
    let own = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).unwrap_or(0);
    let init = std::fs::metadata("/proc/1/ns/mnt").map(|m| m.ino()).unwrap_or(0);
    if own == init {
        eprintln!(
            "probe-seccomp changes mounts: run it in a throwaway mount namespace (unshare --mount)"
        );
        return 2;
    }
    if filter {
        if let Err(e) = confine::install(profile) {
            eprintln!("install filter: {e}");
            return 1;
        }
    }
    // The allowed probes first: in the control run, the refused mount probes
    // really do remount this (throwaway) namespace's root read-only.
    let results: Vec<String> = ALLOWED
        .iter()
        .chain(REFUSED)
        .map(|(name, probe)| format!("\"{name}\": \"{}\"", errno_name(in_child(*probe, scratch))))
        .collect();
    // A plain JSON object on stdout: this is a diagnostic subcommand's output.
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{{{}}}", results.join(", "));
    0
}
