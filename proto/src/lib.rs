//! Generated gRPC code for ctnet's two APIs.

/// The public API, `ctnet.v1`.
pub mod v1 {
    tonic::include_proto!("ctnet.v1");
}

/// The executor API between ctnet-api and ctnet-netexec, `ctnet.exec.v1`.
pub mod exec {
    tonic::include_proto!("ctnet.exec.v1");
}

/// Encoded FileDescriptorSet of the public API (ctnet.v1), for server
/// reflection. The executor API is deliberately not in it.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ctnet_v1_descriptor.bin"));

#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod request_id;
#[cfg(feature = "daemon")]
pub mod seccomp;
