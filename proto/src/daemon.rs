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

/// The listening socket systemd passed (socket activation: LISTEN_PID is
/// ours and LISTEN_FDS >= 1, the socket is fd 3), if any.
pub fn inherited_listener() -> Option<std::os::unix::net::UnixListener> {
    use std::os::fd::FromRawFd;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd hands fd 3 to this process for exactly this purpose.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    // SAFETY: fd 3 is ours; mark it close-on-exec (nft must not inherit it).
    unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}
