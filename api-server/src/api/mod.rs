//! The public gRPC services: each handler parses its request into a domain
//! spec, runs the operation, and renders records back into proto messages.
pub mod network;
pub mod sandbox;

use std::sync::Arc;

use crate::ops::Ops;

#[derive(Clone)]
pub struct Api {
    pub ops: Arc<Ops>,
}

pub type Reply<T> = Result<tonic::Response<T>, tonic::Status>;
