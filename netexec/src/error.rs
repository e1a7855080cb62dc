//! One error type for the executor, mapped onto gRPC status codes in one
//! place (`From<ExecError> for Status`). A failed kernel or system step keeps
//! which step it was and its cause (the netlink, io or errno value itself),
//! so logs and callers can tell them apart.
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A request field is malformed; names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request asks to act on something the executor does not own.
    #[error("{0}")]
    PermissionDenied(String),
    /// The kernel state conflicts with the request (e.g. a foreign link holds the name).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something the request needs does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A kernel or system step failed.
    #[error("{step}: {cause}")]
    Step {
        step: String,
        #[source]
        cause: Cause,
    },
    /// A broken expectation about the kernel (an object gone right after
    /// it was made).
    #[error("{0}")]
    Internal(String),
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Netlink(#[from] rtnetlink::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Errno(#[from] nix::Error),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Decode(#[from] rtnetlink::packet_core::DecodeError),
    /// A netlink error reply outside rtnetlink (sock_diag): its errno.
    #[error("the kernel answered errno {0}")]
    Reply(i32),
    /// A tool's own message (nft, conntrack).
    #[error("{0}")]
    Message(String),
}

pub type Result<T> = std::result::Result<T, ExecError>;

impl ExecError {
    /// The step that failed, with its cause.
    pub fn step(step: &str, cause: impl Into<Cause>) -> Self {
        ExecError::Step { step: step.to_string(), cause: cause.into() }
    }
}

impl From<ExecError> for Status {
    /// A step's cause goes to netexec's log; the caller learns which step
    /// failed and the errno, never a tool's output or a host path.
    fn from(e: ExecError) -> Status {
        if let ExecError::Step { step, cause } = &e {
            tracing::error!(%step, %cause, "kernel step failed");
            let why = match cause {
                Cause::Io(io) => io.kind().to_string(),
                Cause::Errno(errno) => errno.desc().to_string(),
                Cause::Netlink(rtnetlink::Error::NetlinkError(m)) => m.to_string(),
                Cause::Reply(errno) => nix::errno::Errno::from_raw(*errno).desc().to_string(),
                _ => "see netexec's log".to_string(),
            };
            return Status::internal(format!("{step} failed: {why}"));
        }
        let message = e.to_string();
        match e {
            ExecError::InvalidArgument(_) => Status::invalid_argument(message),
            ExecError::PermissionDenied(_) => Status::permission_denied(message),
            ExecError::FailedPrecondition(_) => Status::failed_precondition(message),
            ExecError::NotFound(_) => Status::not_found(message),
            ExecError::Step { .. } | ExecError::Internal(_) => Status::internal(message),
        }
    }
}

/// The errno of a failed netlink request, if it carried one.
pub fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(-msg.raw_code()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_step_keeps_its_cause() {
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        let e = ExecError::step("set arp_notify", io);
        assert!(e.to_string().starts_with("set arp_notify: "), "{e}");
        assert!(e.source().is_some(), "the cause is the source");
        let kept = matches!(&e, ExecError::Step { cause: Cause::Io(io), .. } if io.raw_os_error() == Some(libc::EPERM));
        assert!(kept, "{e:?}");
        assert_eq!(Status::from(e).code(), tonic::Code::Internal);
        let errno = ExecError::step("setns", nix::Error::EINVAL);
        assert!(matches!(errno, ExecError::Step { cause: Cause::Errno(nix::Error::EINVAL), .. }));
    }
}
