//! The seam for packet filtering and NAT. netexec calls its firewall at the
//! points where a bridge network appears or goes; the NAT issue puts an
//! nftables implementation behind this trait. Until then no filtering or NAT
//! is installed: sandboxes on a bridge reach each other and the gateway.
use crate::error::Result;

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct FirewallNetwork {
    pub bridge: String,
}

#[tonic::async_trait]
pub trait Firewall: Send + Sync + 'static {
    /// Called once the bridge exists; idempotent.
    async fn network_ready(&self, net: &FirewallNetwork) -> Result<()>;
    /// Called before the bridge is deleted; idempotent.
    async fn network_removed(&self, net: &FirewallNetwork) -> Result<()>;
}

/// No filtering, no NAT: plain L2/L3 connectivity on each bridge.
pub struct NoFirewall;

#[tonic::async_trait]
impl Firewall for NoFirewall {
    async fn network_ready(&self, net: &FirewallNetwork) -> Result<()> {
        tracing::debug!(bridge = %net.bridge, "no firewall configured: nothing to install");
        Ok(())
    }
    async fn network_removed(&self, _net: &FirewallNetwork) -> Result<()> {
        Ok(())
    }
}
