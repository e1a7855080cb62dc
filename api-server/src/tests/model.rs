//! Model-based property test: random sequences of operations with random
//! injected failures and cancellations against the fake executor. After
//! each step (and one periodic reconciliation) the invariants hold: no
//! address, MAC or host port held twice; no kernel object without a record
//! and no record without its kernel objects; nothing transient or claimed.
//!
//! 200 cases of 40 steps; `PROPTEST_CASES=N` changes the count. The seed is
//! printed; `PROPTEST_RNG_SEED=S` replays one.
use crate::policy::Caller;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use super::*;
use crate::fake::Fault;

#[derive(Debug, Clone)]
enum Action {
    Create {
        name: u8,
        ports: bool,
    },
    Delete(u8),
    Connect(u8),
    Disconnect(u8),
    /// n2, IPv4-only or IPv6-only.
    CreateNetwork {
        ipv6_only: bool,
    },
    DeleteNetwork,
    Reconcile,
    Restart,
}

#[derive(Debug, Clone, Copy)]
enum Cut {
    None,
    /// The nth executor call fails this way.
    Fault(usize, Fault),
    /// The caller gives up when the nth call hangs.
    CallerGivesUp(usize),
    /// The operation task is dropped when the nth call hangs.
    TaskDropped(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..6u8, any::<bool>()).prop_map(|(name, ports)| Action::Create { name, ports }),
        3 => (0..6u8).prop_map(Action::Delete),
        2 => (0..6u8).prop_map(Action::Connect),
        2 => (0..6u8).prop_map(Action::Disconnect),
        1 => any::<bool>().prop_map(|ipv6_only| Action::CreateNetwork { ipv6_only }),
        1 => Just(Action::DeleteNetwork),
        1 => Just(Action::Reconcile),
        1 => Just(Action::Restart),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    let fault = prop_oneof![Just(Fault::Fail), Just(Fault::FailAfter), Just(Fault::Unavailable)];
    prop_oneof![
        4 => Just(Cut::None),
        3 => (1..6usize, fault).prop_map(|(n, f)| Cut::Fault(n, f)),
        1 => (1..6usize).prop_map(Cut::CallerGivesUp),
        1 => (1..6usize).prop_map(Cut::TaskDropped),
    ]
}

/// The step's operation; errors are expected (refusals, injected faults).
async fn act(env: &Env, a: &Action, direct: bool) {
    let sb = |n: &u8| format!("s{n}");
    let _ = match a {
        Action::Create { name, ports } => {
            let publish: &[&str] = if *ports { &["80", "81/udp"] } else { &[] };
            let spec = match SandboxSpec::parse(&bridge_req(&sb(name), publish)) {
                Ok(s) => s,
                Err(_) => return,
            };
            if direct {
                env.ops.create_sandbox(&Caller::admin(), spec).await.map(drop)
            } else {
                env.sandbox(bridge_req(&sb(name), publish)).await.map(drop)
            }
        }
        Action::Delete(n) if direct => {
            env.ops.delete_sandbox(&Caller::admin(), &Ref::parse("s", &sb(n)).unwrap()).await
        }
        Action::Delete(n) => env.delete(&sb(n)).await,
        Action::Connect(n) => env.connect(&sb(n), "n2", &["90"]).await.map(drop),
        Action::Disconnect(n) => env.disconnect(&sb(n), "n2").await.map(drop),
        Action::CreateNetwork { ipv6_only: false } => {
            env.network("n2", "198.19.2.0/24").await.map(drop)
        }
        Action::CreateNetwork { ipv6_only: true } => {
            env.ipv6_only("n2", "2001:db8:2::/64").await.map(drop)
        }
        Action::DeleteNetwork => env.delete_network("n2").await,
        Action::Reconcile => env.ops.reconcile().await,
        Action::Restart => Ok(()),
    };
}

async fn step(env: Env, a: &Action, c: Cut) -> Env {
    if let Action::Restart = a {
        return env.restart().await;
    }
    match c {
        Cut::None => act(&env, a, false).await,
        Cut::Fault(n, f) => {
            env.fake.inject(None, n, f);
            act(&env, a, false).await;
        }
        Cut::CallerGivesUp(n) | Cut::TaskDropped(n) => {
            let hangs = env.fake.hangs();
            env.fake.inject(None, n, Fault::Hang);
            let direct = matches!(c, Cut::TaskDropped(_));
            tokio::select! {
                () = act(&env, a, direct) => {}
                () = env.fake.hung(hangs + 1) => {}
            }
        }
    }
    env.settle().await;
    env
}

fn run_case(actions: Vec<(Action, Cut)>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut env = Env::new().await;
        for (a, c) in &actions {
            env = step(env, a, *c).await;
            env.agree().await;
        }
        // Everything can still be deleted.
        let ids: Vec<String> =
            env.ops.lock().await.sandboxes.keys().map(|k| k.to_string()).collect();
        for id in ids {
            env.delete(&id).await.unwrap();
        }
        env.agree().await;
        assert!(env.fake.kernel().endpoints.is_empty() && env.fake.kernel().netns.is_empty());
    });
}

#[test]
fn random_operations_failures_and_cancellations_keep_the_invariants() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200);
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("model test: {cases} cases, PROPTEST_RNG_SEED={seed}");
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let steps = proptest::collection::vec((action(), cut()), 40);
    let out = runner.run(&steps, |actions| {
        run_case(actions);
        Ok(())
    });
    if let Err(e) = out {
        panic!("model test failed (replay with PROPTEST_RNG_SEED={seed}): {e}");
    }
}

/// The model test's checks can fail: a kernel object without a record is
/// caught (the control).
#[tokio::test]
async fn the_invariants_catch_an_orphan() {
    let env = Env::new().await;
    env.fake.tamper(|k| {
        k.netns.insert(crate::domain::SandboxId::random());
    });
    let caught = tokio::spawn(async move { env.agree().await }).await;
    assert!(caught.is_err(), "agree() must fail on an orphan namespace");
}
