//! One error type for the executor, mapped onto gRPC status codes.
use tonic::Status;

#[derive(Debug)]
pub enum ExecError {
    /// A request field is malformed; names the field.
    InvalidArgument(String),
    /// The request asks to act on something the executor does not own.
    PermissionDenied(String),
    /// The kernel state conflicts with the request (e.g. a foreign link holds the name).
    FailedPrecondition(String),
    /// Something the request needs does not exist.
    NotFound(String),
    /// The kernel or the system refused.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ExecError>;

impl ExecError {
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        ExecError::Internal(format!("{what}: {err}"))
    }
}

impl From<ExecError> for Status {
    fn from(e: ExecError) -> Status {
        match e {
            ExecError::InvalidArgument(m) => Status::invalid_argument(m),
            ExecError::PermissionDenied(m) => Status::permission_denied(m),
            ExecError::FailedPrecondition(m) => Status::failed_precondition(m),
            ExecError::NotFound(m) => Status::not_found(m),
            ExecError::Internal(m) => Status::internal(m),
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

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::InvalidArgument(m)
            | ExecError::PermissionDenied(m)
            | ExecError::FailedPrecondition(m)
            | ExecError::NotFound(m)
            | ExecError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ExecError {}
