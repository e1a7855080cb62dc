//! The seccomp building blocks both daemons share: the calls every tokio,
//! tonic and glibc process needs, thread creation without new namespaces,
//! the clone3 fallback, and the install step. Each daemon adds what only it
//! needs in its own `confine` module and says why there.
use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

pub use seccompiler::{Error, SeccompCmpOp};

/// The errno the filters answer refused calls with.
pub const REFUSED: u32 = libc::EPERM as u32;

/// Rules by syscall number.
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

// Filters are built from constants of the daemons' sources; no input reaches
// them, and a filter that does not build must stop the daemon before it serves.
#[allow(clippy::expect_used)]
pub fn arg(index: u8, op: Op, value: u64) -> Cond {
    Cond::new(index, Len::Qword, op, value).expect("valid seccomp condition")
}

#[allow(clippy::expect_used)]
pub fn rule(conds: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conds).expect("valid seccomp rule")
}

pub fn eq(index: u8, value: u64) -> SeccompRule {
    rule(vec![arg(index, Op::Eq, value)])
}

/// Calls allowed whatever their arguments, in both daemons: memory, files
/// by descriptor, time, signals, epoll, Unix-socket I/O, futexes and
/// threads. Everything not listed by a daemon (ptrace, bpf, kexec, module
/// loading, keyctl, io_uring, perf, process_vm_*, open_by_handle_at,
/// pivot_root, chroot, the new mount API ...) is refused.
pub const COMMON: &[i64] = &[
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
    libc::SYS_tgkill,
    libc::SYS_restart_syscall,
    libc::SYS_membarrier,
    // clone3 passes here and is answered ENOSYS by the second filter, so
    // glibc falls back to clone, whose flags the main filter can inspect.
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

/// prctl options glibc, Rust's std and the tools netexec runs use.
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

/// COMMON, Unix sockets, clone never into new namespaces, and the prctl
/// options in use: the rules both daemons start from.
pub fn common_rules() -> Rules {
    let mut r: Rules = COMMON.iter().map(|s| (*s, vec![])).collect();
    r.insert(libc::SYS_socket, vec![eq(0, libc::AF_UNIX as u64)]);
    r.insert(libc::SYS_socketpair, vec![eq(0, libc::AF_UNIX as u64)]);
    r.insert(libc::SYS_clone, vec![rule(vec![arg(0, Op::MaskedEq(NEW_NAMESPACES), 0)])]);
    r.insert(libc::SYS_prctl, PRCTL_OPTIONS.iter().map(|o| eq(0, *o)).collect());
    r
}

#[allow(clippy::expect_used)]
fn arch() -> TargetArch {
    TargetArch::try_from(std::env::consts::ARCH).expect("a seccomp-supported architecture")
}

/// The main filter (refuse what `rules` does not allow) and the clone3 one.
#[allow(clippy::expect_used)]
pub fn filters(rules: Rules) -> (BpfProgram, BpfProgram) {
    let main =
        SeccompFilter::new(rules, SeccompAction::Errno(REFUSED), SeccompAction::Allow, arch())
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
pub fn install(rules: Rules) -> Result<(), seccompiler::Error> {
    let (main, clone3) = filters(rules);
    seccompiler::apply_filter_all_threads(&clone3)?;
    seccompiler::apply_filter_all_threads(&main)
}

/// Seccomp mode and bounding set of every thread of this process: Err
/// naming the first thread whose status is not "Seccomp: 2" with CapBnd
/// equal to `bounding`.
pub fn verify_threads(bounding: u64) -> Result<(), String> {
    let tasks = std::fs::read_dir("/proc/self/task").map_err(|e| e.to_string())?;
    for task in tasks.flatten() {
        let status =
            std::fs::read_to_string(task.path().join("status")).map_err(|e| e.to_string())?;
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default()
        };
        let bnd = u64::from_str_radix(field("CapBnd:"), 16).unwrap_or(u64::MAX);
        if field("Seccomp:") != "2" || field("NoNewPrivs:") != "1" || bnd != bounding {
            return Err(format!(
                "thread {}: Seccomp {} NoNewPrivs {} CapBnd {}",
                task.file_name().to_string_lossy(),
                field("Seccomp:"),
                field("NoNewPrivs:"),
                field("CapBnd:")
            ));
        }
    }
    Ok(())
}

/// Probes of what a filter allows, for the daemons' probe commands: each
/// returns 0 or the errno, and runs in a forked child of a single-threaded
/// process so that a call that succeeds (a user namespace, say) dies with it.
pub mod probe {
    /// 0 on success, else the errno.
    pub fn sys(rc: i32) -> i32 {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
        } else {
            0
        }
    }

    pub fn unshare(flags: i32) -> i32 {
        // SAFETY: unshare takes no pointers; the probe runs in a throwaway child.
        sys(unsafe { libc::unshare(flags) })
    }

    pub fn ptrace_traceme() -> i32 {
        // SAFETY: PTRACE_TRACEME takes no pointers (addr and data are ignored).
        sys(unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) } as i32)
    }

    pub fn socket(domain: i32, kind: i32, proto: i32) -> i32 {
        // SAFETY: socket takes no pointers; the descriptor is left to process exit.
        sys(unsafe { libc::socket(domain, kind, proto) })
    }

    pub fn bpf_map_create() -> i32 {
        // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
        let mut attr = [0u32; 32];
        for (slot, v) in attr.iter_mut().zip([2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1]) {
            *slot = v;
        }
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

    pub fn thread() -> i32 {
        if std::thread::spawn(|| 1).join().is_ok() {
            0
        } else {
            libc::EPERM
        }
    }

    /// Runs `probe` in a forked child; returns its result.
    pub fn in_child(probe: impl Fn() -> i32) -> i32 {
        // SAFETY: the caller is single-threaded; the child only runs the
        // probe and exits.
        match unsafe { libc::fork() } {
            // SAFETY: _exit ends the child without running the parent's destructors.
            0 => unsafe { libc::_exit(probe()) },
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

    pub fn errno_name(code: i32) -> String {
        match code {
            0 => "ok".into(),
            libc::EPERM => "EPERM".into(),
            libc::EACCES => "EACCES".into(),
            libc::EINVAL => "EINVAL".into(),
            libc::ENOSYS => "ENOSYS".into(),
            c => format!("errno {c}"),
        }
    }

    /// Prints {"probe": "ok" | "EPERM" | ...} on stdout: the output of a
    /// diagnostic command.
    pub fn report(results: &[(&str, i32)]) {
        use std::io::Write;
        let fields: Vec<String> =
            results.iter().map(|(n, r)| format!("\"{n}\": \"{}\"", errno_name(*r))).collect();
        let _ = writeln!(std::io::stdout(), "{{{}}}", fields.join(", "));
    }
}
