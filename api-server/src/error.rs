//! api-server's one error type. Everything below the gRPC edge returns it;
//! `api::status` is the only place that decides a gRPC code.
use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What netexec answered when it refused a request (its gRPC code, kept so
/// a caller's mistake it caught, such as a bad `netns_path`, stays the
/// caller's mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Invalid,
    NotFound,
    Precondition,
    Denied,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is wrong; names the public field and says what to fix.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource is in a state that forbids the request (in use, busy,
    /// not ready, overlapping).
    #[error("{0}")]
    Conflict(String),
    /// A bound or a pool is used up.
    #[error("{0}")]
    Exhausted(String),
    /// The caller's tenant may not do this (a policy permission).
    #[error("{0}")]
    Denied(String),
    /// A part of ctnet-api itself cannot serve now (the audit log).
    #[error("{0}")]
    Unavailable(String),
    /// netexec could not be reached, or did not answer in time.
    #[error("netexec is unavailable: {0}")]
    ExecutorUnavailable(String),
    /// netexec answered and refused.
    #[error("netexec: {message}")]
    ExecutorRefused { kind: Refusal, message: String },
    /// The state store failed; the cause is kept for the log.
    #[error("state store: {what}")]
    Store {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// A broken invariant of api-server itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Invalid { field: field.into(), reason: reason.to_string() }
    }

    pub fn store(what: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Store { what, source: source.into() }
    }

    /// True when the failure says nothing about the request: netexec was
    /// unreachable, so the kernel work may or may not have happened.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::ExecutorUnavailable(_))
    }

    /// The same error with its field renamed (flag parsing reuses request
    /// parsers; the operator should see the flag's name).
    pub fn for_field(self, field: &str) -> Self {
        match self {
            Error::Invalid { reason, .. } => Error::Invalid { field: field.to_string(), reason },
            other => other,
        }
    }
}
