//! The request id of the call an operation serves, kept in a task-local
//! so it follows the operation into its own task (`Ops::spawn`) and onto
//! every executor request (`executor::grpc`) and event it makes.
use std::future::Future;

use futures_util::future::Either;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A fresh id for a call that brought none (or an invalid one).
pub fn fresh() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The id of the call being served, if any (none in background work).
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(String::clone).ok()
}

/// Runs `f` as part of the call `id`.
pub fn scope<F: Future>(id: String, f: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, f)
}

/// `f` keeps the current call's id, for a task spawned on its behalf.
pub fn carry<F: Future>(f: F) -> impl Future<Output = F::Output> {
    match current() {
        Some(id) => Either::Left(scope(id, f)),
        None => Either::Right(f),
    }
}
