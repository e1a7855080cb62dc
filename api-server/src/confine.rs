//! ctnet-api's seccomp filter, its allow-list in one place. ctnet-api holds
//! no capability; the filter narrows what a compromised ctnet-api could ask
//! of the kernel to what serving the API needs: no new sockets but Unix
//! ones, no exec, no namespaces, no mounts, no ptrace, no bpf. Later
//! features that need more (a TCP listener, say) add it here and say why.
use ctnet_proto::seccomp::{self, probe, Rules};

/// Calls ctnet-api needs beyond the shared set, whatever their arguments:
/// the state store (redb locks its file, grows it, syncs its data) and the
/// state directory it may create.
const EXTRA: &[i64] = &[
    libc::SYS_flock,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_mkdirat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mkdir,
];

fn rules() -> Rules {
    let mut r = seccomp::common_rules();
    r.extend(EXTRA.iter().map(|s| (*s, vec![])));
    r
}

/// Installs the filter on every thread (and no_new_privs).
pub fn install() -> Result<(), seccomp::Error> {
    seccomp::install(rules())
}

type Probe = (&'static str, fn() -> i32);

/// What the filter must refuse.
const REFUSED: &[Probe] = &[
    ("socket_inet", || probe::socket(libc::AF_INET, libc::SOCK_STREAM, 0)),
    ("socket_netlink", || probe::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)),
    ("unshare_newuser", || probe::unshare(libc::CLONE_NEWUSER)),
    ("ptrace", probe::ptrace_traceme),
    ("bpf", probe::bpf_map_create),
    ("exec", || match std::process::Command::new("/bin/true").status() {
        Ok(s) if s.success() => 0,
        Ok(_) => libc::ECHILD,
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }),
];

/// What ctnet-api needs, which must keep working.
const ALLOWED: &[Probe] = &[
    ("socket_unix", || probe::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
    ("thread", probe::thread),
];

/// `ctnet-api --probe-seccomp on|off`: each probe in a forked child that
/// installs the filter first, or not (the control); prints the results as
/// JSON. The parent stays unfiltered, so it can wait for its children
/// (ctnet-api itself has no use for wait4).
pub fn run_probe(filter: bool) -> i32 {
    let under = |p: &fn() -> i32| {
        probe::in_child(|| match filter.then(install) {
            Some(Err(_)) => libc::ENOTRECOVERABLE,
            _ => p(),
        })
    };
    let results: Vec<(&str, i32)> =
        ALLOWED.iter().chain(REFUSED).map(|(n, p)| (*n, under(p))).collect();
    probe::report(&results);
    0
}
