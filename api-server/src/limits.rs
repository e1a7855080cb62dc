//! Every bound a caller can consume, in one place. The README's "Limits"
//! table lists them with these defaults; each is a ctnet-api flag.
use crate::error::Error;

/// A Linux bridge holds at most 1024 ports (BR_MAX_PORTS, port 0 reserved);
/// the 1024th attach would fail with the kernel's cryptic "exchange full".
pub const BRIDGE_MAX_PORTS: usize = 1023;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sandboxes in every mode and phase (--max-sandboxes).
    pub sandboxes: usize,
    /// Sandboxes whose namespace ctnet owns (--max-owned-netns): each costs
    /// kernel memory (about 230 kB measured) whether or not it is used.
    pub owned_netns: usize,
    /// Mutating operations in flight, counted as operation tasks, including
    /// those whose client went away (--max-inflight-ops).
    pub inflight_ops: usize,
    /// Interfaces per network (--bridge-max-ports), at most BRIDGE_MAX_PORTS.
    pub bridge_ports: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sandboxes: 4096,
            owned_netns: 1024,
            inflight_ops: 256,
            bridge_ports: BRIDGE_MAX_PORTS,
        }
    }
}

/// Bounds on the API's connections and requests, enforced in the accept
/// stream and in tower layers before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections of one peer uid (--max-connections-per-uid); more are
    /// closed as soon as they are accepted.
    pub per_uid: usize,
    /// Connections in all (--max-connections); at the limit the oldest
    /// connection with no RPC in flight is closed to admit a new one.
    pub global: usize,
    /// Time a connection has to finish the HTTP/2 handshake
    /// (--handshake-timeout-ms): silent and preface-only ones are closed.
    pub handshake: std::time::Duration,
    /// Time a connection may stay with no RPC in flight (--idle-timeout-ms).
    pub idle: std::time::Duration,
    /// Deadline of every RPC (--rpc-timeout-ms); a mutation already started
    /// finishes in its own task.
    pub rpc: std::time::Duration,
    /// Largest request message, in bytes (fixed).
    pub max_message: usize,
    /// RPCs in flight on one connection (fixed).
    pub per_connection_rpcs: usize,
    /// New TLS connections a second from one source address, twice that as
    /// burst, before any handshake work (--tls-handshakes-per-address).
    pub handshakes_per_addr: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            per_uid: 64,
            global: 512,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
            rpc: Duration::from_secs(120),
            max_message: 1 << 20,
            per_connection_rpcs: 64,
            handshakes_per_addr: 20,
        }
    }
}

impl Limits {
    /// The ResourceExhausted answer for a bound, naming it and its value.
    pub fn exhausted(what: &str, flag: &str, value: usize) -> Error {
        Error::Exhausted(format!(
            "{what}: the limit of {value} is reached ({flag}); retry after some are removed"
        ))
    }
}
