//! Validated domain types. Every proto message is turned into one of these at
//! the edge (one module per resource); everything behind the edge takes only
//! these types.
pub mod common;
pub mod ids;
pub mod ipv6;
pub mod network;
pub mod ports;
pub mod sandbox;

pub use common::*;
pub use ids::{LinkName, NetworkId, Ref, SandboxId, StoreId};
pub use ipv6::{Addressing6, Subnet6};
pub use network::GatewayMode;
