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
use ctnet_proto::seccomp::probe::{
    bpf_map_create, in_child, ptrace_traceme, report, socket, sys, thread, unshare,
};

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
    ("thread", |_| thread()),
    ("exec", |_| match std::process::Command::new("true").status() {
        Ok(s) if s.success() => 0,
        Ok(_) => libc::ECHILD,
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }),
];

/// Returns the raw result: `with_netns_fd` turns it into an errno.
fn setns(fd: i32, nstype: i32) -> i32 {
    // SAFETY: fd is an open namespace descriptor; no pointers are passed.
    unsafe { libc::setns(fd, nstype) }
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
    let results: Vec<(&str, i32)> = ALLOWED
        .iter()
        .chain(REFUSED)
        .map(|(name, probe)| (*name, in_child(|| probe(scratch))))
        .collect();
    report(&results);
    0
}
