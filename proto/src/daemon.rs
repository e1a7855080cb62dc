//! Start-up glue shared by ctnet-api and ctnet-netexec.

/// Structured logs to stderr through tracing; `RUST_LOG` filters (default
/// info); `format` is "text" or "json".
pub fn init_logging(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// The listening sockets systemd passed (socket activation: LISTEN_PID is
/// ours, LISTEN_FDS sockets from fd 3 on), by family: the Unix one and a
/// TCP one, if any; a TCP one named "metrics" (FileDescriptorName=, in
/// LISTEN_FDNAMES) is the metrics listener.
pub struct Inherited {
    pub unix: Option<std::os::unix::net::UnixListener>,
    pub tcp: Option<std::net::TcpListener>,
    pub metrics: Option<std::net::TcpListener>,
}

pub fn inherited_sockets() -> Inherited {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut found = Inherited { unix: None, tcp: None, metrics: None };
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':');
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let (Some(pid), Some(fds)) = (env("LISTEN_PID"), env("LISTEN_FDS")) else {
        return found;
    };
    if pid != std::process::id() {
        return found;
    }
    for fd in 3..3 + fds.min(16) as i32 {
        // SAFETY: systemd hands these descriptors to this process for
        // exactly this purpose; each is taken once. Close-on-exec: nft must
        // not inherit them.
        let owned = unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            OwnedFd::from_raw_fd(fd)
        };
        let metrics = names.next() == Some("metrics");
        match socket_family(&owned) {
            Some(libc::AF_UNIX) => found.unix = Some(owned.into()),
            Some(libc::AF_INET | libc::AF_INET6) if metrics => found.metrics = Some(owned.into()),
            Some(libc::AF_INET | libc::AF_INET6) => found.tcp = Some(owned.into()),
            _ => {}
        }
    }
    for l in found.unix.iter() {
        let _ = l.set_nonblocking(true);
    }
    for l in found.tcp.iter().chain(found.metrics.iter()) {
        let _ = l.set_nonblocking(true);
    }
    found
}

fn socket_family(fd: &std::os::fd::OwnedFd) -> Option<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr_storage is a valid buffer; its size is passed.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr and len are live for the call; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(i32::from(addr.ss_family))
}

/// The Unix listening socket systemd passed, if any.
pub fn inherited_listener() -> Option<std::os::unix::net::UnixListener> {
    inherited_sockets().unix
}
