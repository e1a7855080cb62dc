//! A failure injected at each executor step of every mutating path. The
//! outcome is always reported (an error, never a silent half), and after one
//! periodic reconciliation the operation is either done or undone: records,
//! store and fake kernel agree, nothing is claimed or transient, and the
//! same request again succeeds or says why not.
use super::*;
use crate::error::Error;
use crate::fake::{Fault, Op};
use crate::policy::Caller;

/// One mutating path, with what it needs first.
#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    CreateBridge,
    CreateTwoNetworks,
    CreateNoneExternal,
    CreateNoneOwned,
    DeleteSandbox,
    Connect,
    Disconnect,
    CreateNetwork,
    DeleteNetwork,
}

pub const EXTERNAL: &str = "/run/netns/runtime-1";

impl Scenario {
    pub async fn setup(self, env: &Env) {
        env.fake.tamper(|k| {
            k.external.insert(EXTERNAL.into());
        });
        use Scenario::*;
        if matches!(self, CreateTwoNetworks | Connect | Disconnect | DeleteNetwork) {
            env.network("n2", "198.19.2.0/24").await.unwrap();
        }
        if matches!(self, Scenario::DeleteSandbox | Scenario::Connect | Scenario::Disconnect) {
            env.bridge("web", &["8080:80"]).await.unwrap();
        }
        if matches!(self, Scenario::Disconnect) {
            env.connect("web", "n2", &["9090:90"]).await.unwrap();
        }
    }

    /// The operation, in its own task (as the API runs it) or, with
    /// `direct`, as a plain future the caller may drop.
    pub async fn run(self, env: &Env, direct: bool) -> Result<()> {
        let ops = env.ops.clone();
        match self {
            Scenario::CreateBridge => {
                let spec = SandboxSpec::parse(&bridge_req("app", &["8081:80"]))?;
                run(env, direct, move || async move {
                    ops.create_sandbox(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::CreateTwoNetworks => {
                let mut req = bridge_req("app", &["8081:80"]);
                let attach = |n: &str| pb::NetworkAttachment {
                    network: n.into(),
                    ipv4_address: None,
                    ipv6_address: None,
                    interface_name: None,
                    mac_address: None,
                };
                req.mode = Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode {
                    networks: vec![attach("bridge"), attach("n2")],
                }));
                let spec = SandboxSpec::parse(&req)?;
                run(env, direct, move || async move {
                    ops.create_sandbox(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::CreateNoneExternal => {
                let req = pb::CreateSandboxRequest {
                    name: Some("app".into()),
                    netns_path: Some(EXTERNAL.into()),
                    mode: Some(pb::create_sandbox_request::Mode::None(pb::NoneMode {})),
                    ..Default::default()
                };
                let spec = SandboxSpec::parse(&req)?;
                run(env, direct, move || async move {
                    ops.create_sandbox(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::CreateNoneOwned => {
                let req = pb::CreateSandboxRequest {
                    name: Some("app".into()),
                    mode: Some(pb::create_sandbox_request::Mode::None(pb::NoneMode {})),
                    ..Default::default()
                };
                let spec = SandboxSpec::parse(&req)?;
                run(env, direct, move || async move {
                    ops.create_sandbox(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::DeleteSandbox => {
                let r = Ref::parse("sandbox", "web")?;
                run(
                    env,
                    direct,
                    move || async move { ops.delete_sandbox(&Caller::admin(), &r).await },
                )
                .await
            }
            Scenario::Connect => {
                let req = pb::ConnectRequest {
                    sandbox: "web".into(),
                    network: "n2".into(),
                    publish: vec!["9090:90".into()],
                    ..Default::default()
                };
                let spec = ConnectSpec::parse(&req)?;
                run(env, direct, move || async move {
                    ops.connect(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::Disconnect => {
                let req = pb::DisconnectRequest { sandbox: "web".into(), network: "n2".into() };
                let spec = DisconnectSpec::parse(&req)?;
                run(env, direct, move || async move {
                    ops.disconnect(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::CreateNetwork => {
                let req = pb::CreateNetworkRequest {
                    name: "n3".into(),
                    subnet: "198.19.3.0/24".into(),
                    ..Default::default()
                };
                let spec = NetworkSpec::parse(&req, PREFIX)?;
                run(env, direct, move || async move {
                    ops.create_network(&Caller::admin(), spec).await.map(drop)
                })
                .await
            }
            Scenario::DeleteNetwork => {
                let r = Ref::parse("network", "n2")?;
                run(
                    env,
                    direct,
                    move || async move { ops.delete_network(&Caller::admin(), &r).await },
                )
                .await
            }
        }
    }

    /// After an interrupted or failed attempt and one reconciliation: the
    /// same request again succeeds, or is told why (the first attempt was
    /// finished instead of undone).
    pub async fn retry(self, env: &Env) {
        let again = self.run(env, false).await;
        match (self, again) {
            (_, Ok(())) => {}
            (
                Scenario::DeleteSandbox | Scenario::Disconnect | Scenario::DeleteNetwork,
                Err(Error::NotFound(_)),
            ) => {}
            // The first attempt was completed, and the answer says so.
            (_, Err(Error::AlreadyExists(m))) => {
                assert!(m.contains("n3") || m.contains("app") || m.contains("n2"), "{m}")
            }
            (s, Err(e)) => panic!("{s:?}: the same request again failed: {e}"),
        }
        env.agree().await;
    }
}

/// Runs `op` in its own task, like the API, or directly.
async fn run<F, Fut>(env: &Env, direct: bool, op: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    if direct {
        return op().await;
    }
    let fut = op();
    env.ops.spawn(|_| fut).await
}

/// Whether a fault is the caller's to hear, or hits work done after the
/// answer (a delete's release), which reconciliation finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Reported,
    Background,
}

async fn fault_case(s: Scenario, op: Op, nth: usize, fault: Fault, heard: Heard) {
    let env = Env::new().await;
    s.setup(&env).await;
    let before = env.fake.count(op);
    env.fake.inject(Some(op), nth, fault);
    let out = s.run(&env, false).await;
    env.idle(false).await;
    assert!(env.fake.count(op) >= before + nth, "{s:?}: {op:?} #{nth} was never called");
    match heard {
        Heard::Reported => assert!(out.is_err(), "{s:?}: {op:?} #{nth} {fault:?} was not reported"),
        Heard::Background => assert!(out.is_ok(), "{s:?}: {op:?} #{nth} {fault:?}: {out:?}"),
    }
    env.settle().await;
    env.agree().await;
    s.retry(&env).await;
}

macro_rules! fault_tests {
    ($($name:ident: $scenario:ident, $op:ident, $nth:literal $(, $heard:ident)?;)*) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test]
                async fn fails() {
                    fault_case(Scenario::$scenario, Op::$op, $nth, Fault::Fail, heard!($($heard)?)).await;
                }
                #[tokio::test]
                async fn fails_after_taking_effect() {
                    fault_case(Scenario::$scenario, Op::$op, $nth, Fault::FailAfter, heard!($($heard)?)).await;
                }
                #[tokio::test]
                async fn finds_netexec_unreachable() {
                    fault_case(Scenario::$scenario, Op::$op, $nth, Fault::Unavailable, heard!($($heard)?)).await;
                }
            }
        )*
    };
}

macro_rules! heard {
    () => {
        Heard::Reported
    };
    (background) => {
        Heard::Background
    };
}

fault_tests! {
    create_bridge_listeners: CreateBridge, ListListeners, 1;
    create_bridge_netns: CreateBridge, CreateNetns, 1;
    create_bridge_attach: CreateBridge, Attach, 1;
    create_bridge_ports: CreateBridge, UpdateFirewall, 1;
    create_two_networks_second_attach: CreateTwoNetworks, Attach, 2;
    create_none_external_loopback: CreateNoneExternal, SetupLoopback, 1;
    create_none_owned_netns: CreateNoneOwned, CreateNetns, 1;
    delete_sandbox_ports: DeleteSandbox, UpdateFirewall, 1;
    delete_sandbox_netns: DeleteSandbox, DeleteNetns, 1;
    delete_sandbox_detach: DeleteSandbox, Detach, 1, background;
    connect_attach: Connect, Attach, 1;
    connect_ports: Connect, UpdateFirewall, 1;
    disconnect_ports: Disconnect, UpdateFirewall, 1;
    disconnect_detach: Disconnect, Detach, 1;
    create_network_host_routes: CreateNetwork, HostRoutes, 1;
    create_network_bridge: CreateNetwork, EnsureBridge, 1;
    create_network_elements: CreateNetwork, UpdateFirewall, 1;
    delete_network_elements: DeleteNetwork, UpdateFirewall, 1;
    delete_network_bridge: DeleteNetwork, DeleteBridge, 1;
}
