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

impl Limits {
    /// The ResourceExhausted answer for a bound, naming it and its value.
    pub fn exhausted(what: &str, flag: &str, value: usize) -> Error {
        Error::Exhausted(format!(
            "{what}: the limit of {value} is reached ({flag}); retry after some are removed"
        ))
    }
}
