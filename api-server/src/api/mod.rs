//! The public gRPC services, one file each: each handler parses its request
//! into a domain spec, runs the operation (mutations in their own task, see
//! `Ops::spawn`), and renders records back into proto messages. `status` is
//! the one place where an error becomes a gRPC status.
pub mod events;
pub mod maintenance;
pub mod network;
pub mod sandbox;

use std::sync::Arc;

use tonic::Status;

use crate::error::{Error, Refusal};
use crate::identity::Identity;
use crate::ops::Ops;
use crate::policy::{Caller, PolicyHolder};

#[derive(Clone)]
pub struct Api {
    pub ops: Arc<Ops>,
    pub policy: Arc<PolicyHolder>,
}

/// A reply naming, for the audit log, the resources the call touched.
pub fn touching<T>(msg: T, ids: impl IntoIterator<Item = String>) -> tonic::Response<T> {
    let mut r = tonic::Response::new(msg);
    r.extensions_mut().insert(crate::audit::Resources(ids.into_iter().collect()));
    r
}

impl Api {
    /// The caller of a request, from the identity the request layer put
    /// into it and the policy in force.
    pub fn caller<T>(&self, req: &tonic::Request<T>) -> Result<Caller, Status> {
        if let Some(c) = req.extensions().get::<Caller>() {
            return Ok(c.clone());
        }
        let id = req
            .extensions()
            .get::<Identity>()
            .ok_or_else(|| Status::unauthenticated("no caller identity"))?;
        Ok(self.policy.get().caller(id)?)
    }
}

pub type Reply<T> = Result<tonic::Response<T>, Status>;

/// Metadata on a refused call's answer naming, for the audit line, what
/// the caller asked for; the request layer moves it into the line and
/// strips it from the answer.
pub const ASKED: &str = "ctnet-audit-asked";

/// Runs a handler; a refusal carries what the call named (sandbox and
/// network references as given, cut to what a header may hold).
pub async fn naming<T>(
    asked: &[String],
    handler: impl std::future::Future<Output = Reply<T>>,
) -> Reply<T> {
    handler.await.map_err(|mut s| {
        let clean = |a: &String| -> String {
            a.chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-/:".contains(*c))
                .take(128)
                .collect()
        };
        let named: Vec<String> = asked.iter().filter(|a| !a.is_empty()).map(clean).collect();
        if let Ok(v) = named.join(",").parse() {
            s.metadata_mut().insert(ASKED, v);
        }
        s
    })
}

/// The gRPC code each error means. Messages say what to fix; a store
/// failure's cause goes to the log only (it names host paths).
pub fn status(e: Error) -> Status {
    let message = e.to_string();
    match e {
        Error::Invalid { .. } => Status::invalid_argument(message),
        Error::NotFound(_) => Status::not_found(message),
        Error::AlreadyExists(_) => Status::already_exists(message),
        Error::Conflict(_) => Status::failed_precondition(message),
        Error::Exhausted(_) => Status::resource_exhausted(message),
        Error::Denied(_) => Status::permission_denied(message),
        Error::Unavailable(_) => Status::unavailable(message),
        Error::ExecutorUnavailable(_) => Status::unavailable(message),
        Error::ExecutorRefused { kind, .. } => match kind {
            Refusal::Invalid => Status::invalid_argument(message),
            Refusal::NotFound => Status::not_found(message),
            Refusal::Precondition => Status::failed_precondition(message),
            Refusal::Denied => Status::permission_denied(message),
            Refusal::Internal => Status::internal(message),
        },
        Error::Store { ref source, .. } => {
            tracing::error!(error = %message, cause = %source, "state store failure");
            Status::unavailable(format!("{message} failed; retry later"))
        }
        Error::Internal(_) => Status::internal(message),
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        status(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn every_error_kind_has_its_code() {
        let refused = |kind| Error::ExecutorRefused { kind, message: "x".into() };
        let cases = [
            (Error::invalid("name", "bad"), Code::InvalidArgument),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::Conflict("x".into()), Code::FailedPrecondition),
            (Error::Exhausted("x".into()), Code::ResourceExhausted),
            (Error::Denied("x".into()), Code::PermissionDenied),
            (Error::ExecutorUnavailable("x".into()), Code::Unavailable),
            (refused(Refusal::Invalid), Code::InvalidArgument),
            (refused(Refusal::NotFound), Code::NotFound),
            (refused(Refusal::Precondition), Code::FailedPrecondition),
            (refused(Refusal::Denied), Code::PermissionDenied),
            (refused(Refusal::Internal), Code::Internal),
            (
                Error::store("write", std::io::Error::other("/var/lib/ctnet: full")),
                Code::Unavailable,
            ),
            (Error::Internal("x".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let s = status(e);
            assert_eq!(s.code(), code, "{}", s.message());
            assert!(!s.message().contains("/var/lib"), "no host path in {:?}", s.message());
        }
        assert_eq!(status(Error::invalid("name", "too long")).message(), "name: too long");
    }
}
