//! CNI error objects: the spec's codes, and the one place where a ctnet
//! gRPC status becomes one.
use serde_json::{json, Value};
use tonic::Code;

/// The spec's well-known codes (1-99 are reserved to it), and ctnet's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    NotAvailable = 50,
    NotAvailableLimited = 51,
    /// ctnet refused the request (the gRPC code is in the details).
    Refused = 100,
    /// The attachment exists with other settings, or the kernel state
    /// differs from ctnet's record (CHECK).
    Mismatch = 101,
}

#[derive(Debug)]
pub struct CniError {
    pub kind: Kind,
    pub msg: String,
    pub details: String,
}

pub type Result<T> = std::result::Result<T, CniError>;

impl CniError {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Self { kind, msg: msg.into(), details: String::new() }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The object printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = json!({ "cniVersion": cni_version, "code": self.kind as u32, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

/// What ctnet said, as the runtime should act on it: retry later, fix the
/// config, or give up.
pub fn from_status(what: &str, s: &tonic::Status) -> CniError {
    let kind = match s.code() {
        Code::InvalidArgument | Code::NotFound => Kind::InvalidConfig,
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::DeadlineExceeded => {
            Kind::TryAgainLater
        }
        _ => Kind::Refused,
    };
    CniError::new(kind, format!("{what}: {}", s.message()))
        .details(format!("ctnet answered {:?}", s.code()))
}

/// ctnet could not be reached at all.
pub fn unreachable(addr: &str, e: String) -> CniError {
    CniError::new(Kind::NotAvailable, format!("ctnet at {addr} is not reachable: {e}"))
        .details("start ctnet, or fix the config's \"api\" address")
}
