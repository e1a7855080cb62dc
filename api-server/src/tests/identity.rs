//! The store's identity against the fake kernel: an emptied or foreign
//! store refuses to start and touches nothing; objects of the release
//! before identities are adopted by the store with their records; another
//! store's objects are kept or discarded only when the operator says so.
use super::*;
use crate::error::Error;
use crate::model::Owner;
use crate::ops::identity::Foreign;

/// The tags of the release before store identities.
fn strip_store(k: &mut Kernel) {
    let legacy = |o: &Owner| match o {
        Owner::Network(id, _) => Owner::Network(id.clone(), None),
        Owner::Sandbox(id, _) => Owner::Sandbox(id.clone(), None),
        Owner::Other(t) => Owner::Other(t.clone()),
    };
    k.bridges.values_mut().for_each(|b| b.owner = legacy(&b.owner));
    k.endpoints.values_mut().for_each(|e| e.owner = legacy(&e.owner));
}

fn link_owners(k: &Kernel) -> Vec<Owner> {
    let bridges = k.bridges.values().map(|b| b.owner.clone());
    bridges.chain(k.endpoints.values().map(|e| e.owner.clone())).collect()
}

async fn populated() -> Env {
    let env = Env::new().await;
    env.network("second", "198.19.7.0/24").await.unwrap();
    env.bridge("web", &["8080:80"]).await.unwrap();
    let mut two = bridge_req("two", &[]);
    let attach = |n: &str| pb::NetworkAttachment {
        network: n.into(),
        ipv4_address: None,
        ipv6_address: None,
        interface_name: None,
        mac_address: None,
    };
    two.mode = Some(pb::create_sandbox_request::Mode::Bridge(pb::BridgeMode {
        networks: vec![attach("bridge"), attach("second")],
    }));
    env.sandbox(two).await.unwrap();
    env
}

/// A second api-server on an empty store of its own, over a copy of `of`'s kernel.
async fn newcomer(of: &Env, foreign: Foreign) -> Env {
    let kernel = of.fake.kernel();
    let default_bridge = LinkName::parse("b", "ct1", PREFIX).unwrap();
    let s = Settings { foreign, default_bridge, ..settings() };
    Env::unreconciled(s, move |k| *k = kernel).await
}

#[tokio::test]
async fn tags_carry_the_store_identity() {
    let env = populated().await;
    let ours = env.ops.store().id().clone();
    let owners = link_owners(&env.fake.kernel());
    assert!(!owners.is_empty());
    assert!(owners.iter().all(|o| o.store() == Some(&ours)), "{owners:?}");
}

#[tokio::test]
async fn objects_of_the_previous_release_are_adopted_with_their_records() {
    let env = populated().await;
    env.fake.tamper(strip_store);
    let env = env.restart().await;
    env.ops.check_identity().await.expect("a store with records starts");
    env.ops.reconcile().await.unwrap();
    let ours = env.ops.store().id().clone();
    let owners = link_owners(&env.fake.kernel());
    assert!(owners.iter().all(|o| o.store() == Some(&ours)), "{owners:?}");
    assert_eq!(
        env.ops.lock().await.sandboxes.values().filter(|s| s.phase == Phase::Ready).count(),
        2
    );
    env.agree().await;
}

#[tokio::test]
async fn an_empty_store_refuses_to_start_over_tagged_objects() {
    let old = populated().await;
    old.fake.tamper(strip_store);
    let new = newcomer(&old, Foreign::Refuse).await;
    let before = new.fake.kernel();
    let e = new.ops.check_identity().await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains("the state store is empty"), "{e}");
    assert!(e.to_string().contains("--foreign-objects"), "{e}");
    assert_eq!(new.fake.kernel(), before, "nothing touched");
}

#[tokio::test]
async fn another_stores_objects_refuse_the_start_and_survive_adopt() {
    let old = populated().await;
    let new = newcomer(&old, Foreign::Refuse).await;
    let e = new.ops.check_identity().await.unwrap_err();
    assert!(e.to_string().contains("made by another state store"), "{e}");

    let new = newcomer(&old, Foreign::Adopt).await;
    new.ops.check_identity().await.unwrap();
    new.ops.reconcile().await.unwrap();
    new.ops.garbage_collect().await.unwrap();
    let (was, now) = (old.fake.kernel(), new.fake.kernel());
    assert!(was.endpoints.keys().all(|v| now.endpoints.contains_key(v)), "veths kept");
    assert!(was.bridges.keys().all(|b| now.bridges.contains_key(b)), "bridges kept");
    assert_eq!(was.netns, now.netns, "pins kept");
}

#[tokio::test]
async fn discard_removes_another_stores_objects_and_only_those() {
    let old = populated().await;
    let new = newcomer(&old, Foreign::Discard).await;
    new.ops.check_identity().await.unwrap();
    new.ops.reconcile().await.unwrap();
    let now = new.fake.kernel();
    assert!(now.endpoints.is_empty() && now.netns.is_empty(), "{now:?}");
    assert_eq!(now.bridges.keys().collect::<Vec<_>>(), ["ct1"], "only its own default bridge");
    new.agree().await;
}
