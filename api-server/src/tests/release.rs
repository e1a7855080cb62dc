//! Deletes acknowledged at once, endpoints released once the kernel is
//! done: what a caller sees meanwhile, what stays held, and what waits.
use super::*;
use crate::error::Error;
use crate::fake::{Fault, Op};

/// A bridge sandbox named `name` asking for `addr` on the default network.
fn at(name: &str, addr: &str) -> pb::CreateSandboxRequest {
    let attach = pb::NetworkAttachment {
        network: "bridge".into(),
        ipv4_address: Some(addr.into()),
        ipv6_address: None,
        interface_name: None,
        mac_address: None,
    };
    let bridge = pb::BridgeMode { networks: vec![attach] };
    pb::CreateSandboxRequest {
        name: Some(name.into()),
        mode: Some(pb::create_sandbox_request::Mode::Bridge(bridge)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_deleted_sandbox_is_gone_for_callers_while_its_address_stays_held() {
    let env = Env::new().await;
    let old = env.sandbox(at("web", "198.18.0.9")).await.unwrap();
    // The release's detach hangs: the kernel has not destroyed the veth yet.
    env.fake.inject(Some(Op::Detach), 1, Fault::Hang);
    env.delete("web").await.unwrap();
    env.fake.hung(1).await;
    let e = env.delete("web").await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "gone for callers: {e}");
    // Its name is free, its address and ports are not handed to anyone.
    let other = env.bridge("web", &["8080:80"]).await.unwrap();
    assert_ne!(other.endpoints[0].address, old.endpoints[0].address);
    assert_ne!(other.endpoints[0].mac, old.endpoints[0].mac);
    assert_eq!(env.ops.lock().await.releasing().count(), 1, "held until the kernel is done");
    env.fake.release();
    env.idle(false).await;
    assert_eq!(env.ops.lock().await.releasing().count(), 0);
    env.agree().await;
}

#[tokio::test]
async fn a_create_naming_a_releasing_address_waits_for_the_release() {
    let env = Env::new().await;
    // In a runtime's namespace: the old veth stays (unplugged) until the
    // release deletes it, and the fake refuses an address on two veths.
    env.fake.tamper(|k| {
        k.external.insert(super::faults::EXTERNAL.into());
    });
    let mut old = at("a", "198.18.0.9");
    old.netns_path = Some(super::faults::EXTERNAL.into());
    env.sandbox(old).await.unwrap();
    env.fake.inject(Some(Op::Detach), 1, Fault::Hang);
    env.delete("a").await.unwrap();
    env.fake.hung(1).await;
    // On this one-thread runtime the create runs first, meets the held
    // address and waits; only then is the kernel done.
    let (b, ()) = tokio::join!(env.sandbox(at("b", "198.18.0.9")), async {
        tokio::task::yield_now().await;
        env.fake.release();
    });
    let b = b.expect("the address came free within the wait");
    assert_eq!(b.endpoints[0].address.unwrap().to_string(), "198.18.0.9");
    env.agree().await;
}

#[tokio::test]
async fn releasing_sandboxes_count_against_the_global_limit() {
    let env = Env::with_limits(Limits { sandboxes: 1, ..settings().limits }).await;
    env.bridge("a", &[]).await.unwrap();
    env.fake.inject(Some(Op::Detach), 1, Fault::Hang);
    env.delete("a").await.unwrap();
    env.fake.hung(1).await;
    let e = env.bridge("b", &[]).await.unwrap_err();
    assert!(matches!(e, Error::Exhausted(_)), "{e}");
    env.fake.release();
    env.idle(false).await;
    env.bridge("b", &[]).await.expect("free once released");
    env.agree().await;
}

#[tokio::test]
async fn a_network_delete_waits_for_its_releasing_sandboxes() {
    let env = Env::new().await;
    env.network("n2", "198.19.2.0/24").await.unwrap();
    let mut req = at("a", "198.19.2.9");
    if let Some(pb::create_sandbox_request::Mode::Bridge(b)) = &mut req.mode {
        b.networks[0].network = "n2".into();
    }
    env.sandbox(req).await.unwrap();
    env.fake.inject(Some(Op::Detach), 1, Fault::Hang);
    env.delete("a").await.unwrap();
    env.fake.hung(1).await;
    let (deleted, ()) = tokio::join!(env.delete_network("n2"), async {
        tokio::task::yield_now().await;
        env.fake.release();
    });
    deleted.expect("the network goes once its interfaces are gone");
    env.agree().await;
}
