//! Rust client for ctnet's public API (ctnet.v1), over its Unix socket or
//! over TLS with a client certificate.
use std::collections::HashMap;

pub use ctnet_proto::v1 as pb;
use pb::event_service_client::EventServiceClient;
use pb::maintenance_service_client::MaintenanceServiceClient;
use pb::network_service_client::NetworkServiceClient;
use pb::sandbox_service_client::SandboxServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Where the API socket is unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ctnet/ctnet.sock";
/// Environment variable naming the server, like DOCKER_HOST.
pub const HOST_ENV: &str = "CTNET_HOST";

#[derive(Clone)]
pub struct Client {
    pub networks: NetworkServiceClient<Transport>,
    pub sandboxes: SandboxServiceClient<Transport>,
    pub maintenance: MaintenanceServiceClient<Transport>,
    pub events: EventServiceClient<Transport>,
    pub channel: Channel,
}

/// The channel with the client's request id on every call.
pub type Transport = InterceptedService<Channel, RequestId>;

/// The metadata a server takes a call's request id from.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Sends `x-request-id` on every call when set: the id the server logs the
/// call under (1-64 of [A-Za-z0-9._-]; the server replaces anything else).
#[derive(Clone, Default)]
pub struct RequestId(Option<tonic::metadata::AsciiMetadataValue>);

impl tonic::service::Interceptor for RequestId {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert(REQUEST_ID_HEADER, v.clone());
        }
        Ok(r)
    }
}

/// Connects to `addr`: a socket path, or a `unix://PATH` URI.
pub async fn connect(addr: &str) -> Result<Client, tonic::transport::Error> {
    let channel = Endpoint::from_shared(to_uri(addr))?.connect().await?;
    Ok(Client::on(channel))
}

/// The PEM files of a remote connection: the CA that signed the server's
/// certificate, and this client's certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Environment variables naming the TLS files, like DOCKER_CERT_PATH's.
pub const CACERT_ENV: &str = "CTNET_CACERT";
pub const CERT_ENV: &str = "CTNET_CERT";
pub const KEY_ENV: &str = "CTNET_KEY";

/// Connects to `addr`: a socket path, `unix://PATH`, or `tls://HOST:PORT`
/// (which needs `tls`).
pub async fn connect_to(addr: &str, tls: Option<&TlsFiles>) -> Result<Client, String> {
    let Some(hostport) = addr.strip_prefix("tls://") else {
        return connect(addr).await.map_err(|e| format!("{e}"));
    };
    let files = tls.ok_or("tls:// needs --cacert, --cert and --key")?;
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(&files.ca)?))
        .identity(tonic::transport::Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    let endpoint = Endpoint::from_shared(format!("https://{hostport}"))
        .and_then(|e| e.tls_config(config))
        .map_err(|e| format!("{e}"))?;
    let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
    Ok(Client::on(channel))
}

/// An error with its causes, "outer: inner: ..." (a TLS refusal is only
/// said by the innermost one).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg = format!("{msg}: {c}");
        cause = c.source();
    }
    msg
}

impl Client {
    /// The service clients over one channel.
    pub fn on(channel: Channel) -> Self {
        Self::with_request_id(channel, RequestId::default())
    }

    fn with_request_id(channel: Channel, id: RequestId) -> Self {
        let c = || InterceptedService::new(channel.clone(), id.clone());
        Client {
            networks: NetworkServiceClient::new(c()),
            sandboxes: SandboxServiceClient::new(c()),
            maintenance: MaintenanceServiceClient::new(c()),
            events: EventServiceClient::new(c()),
            channel: channel.clone(),
        }
    }

    /// The same connection, sending `id` as every call's request id.
    pub fn sending_request_id(self, id: &str) -> Result<Self, String> {
        let v = id.parse().map_err(|_| format!("request id {id:?}: not ASCII"))?;
        Ok(Self::with_request_id(self.channel, RequestId(Some(v))))
    }
}

fn to_uri(addr: &str) -> String {
    if addr.starts_with("unix:") {
        addr.to_string()
    } else {
        format!("unix://{addr}")
    }
}

/// Docker's `--net` values: `bridge`, `host`, `none`, `container:<id|name>`,
/// or the name of a network (bridge mode on it).
pub fn mode_from_net(
    net: &[String],
    ip: Option<String>,
    ip6: Option<String>,
) -> Result<pb::create_sandbox_request::Mode, String> {
    use pb::create_sandbox_request::Mode;
    let single = |m: Mode| {
        if net.len() == 1 && ip.is_none() && ip6.is_none() {
            Ok(m)
        } else {
            Err(format!("--net {} takes no other --net, --ip or --ip6", net[0]))
        }
    };
    match net.first().map(String::as_str) {
        None => {
            let mut first = attachment("bridge", ip);
            first.ipv6_address = ip6;
            Ok(Mode::Bridge(pb::BridgeMode { networks: vec![first] }))
        }
        Some("host") => single(Mode::Host(pb::HostMode {})),
        Some("none") => single(Mode::None(pb::NoneMode {})),
        Some(c) if c.starts_with("container:") => single(Mode::Container(pb::ContainerMode {
            target: c["container:".len()..].to_string(),
        })),
        Some(_) => {
            let mut networks: Vec<pb::NetworkAttachment> =
                net.iter().map(|n| attachment(n, None)).collect();
            networks[0].ipv4_address = ip;
            networks[0].ipv6_address = ip6;
            Ok(Mode::Bridge(pb::BridgeMode { networks }))
        }
    }
}

fn attachment(network: &str, ip: Option<String>) -> pb::NetworkAttachment {
    pb::NetworkAttachment {
        network: network.to_string(),
        ipv4_address: ip,
        ipv6_address: None,
        interface_name: None,
        mac_address: None,
    }
}

/// Parses `key=value` labels.
pub fn parse_labels(raw: &[String]) -> Result<HashMap<String, String>, String> {
    raw.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("label {kv:?} is not key=value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::create_sandbox_request::Mode;

    #[test]
    fn net_values() {
        assert!(matches!(mode_from_net(&["host".into()], None, None), Ok(Mode::Host(_))));
        assert!(mode_from_net(&["host".into()], Some("1.2.3.4".into()), None).is_err());
        assert!(mode_from_net(&["host".into()], None, Some("2001:db8::5".into())).is_err());
        match mode_from_net(&["container:web".into()], None, None) {
            Ok(Mode::Container(c)) => assert_eq!(c.target, "web"),
            other => panic!("{other:?}"),
        }
        let six = Some("2001:db8::9".to_string());
        match mode_from_net(&["a".into(), "b".into()], Some("198.18.0.9".into()), six) {
            Ok(Mode::Bridge(b)) => {
                assert_eq!(b.networks.len(), 2);
                assert_eq!(b.networks[0].ipv4_address.as_deref(), Some("198.18.0.9"));
                assert_eq!(b.networks[0].ipv6_address.as_deref(), Some("2001:db8::9"));
                assert_eq!(b.networks[1].ipv6_address, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
